#!/bin/bash
# Inside a guest: Wasm filters at XDP through xdp-bridge and the module's
# kfunc. Needs the eBPF JIT (x86) or the test-only interpreter patch (UML).
# Prints "ok NAME" / "FAILED NAME" and a final "N passed, M failed".
set -u
R=${WASMFW_REPO:?}
W=$R/target/release/wasmfw
KO=${WASMFW_KO:?path of wasmfw.ko}
pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAILED $1${2:+: $2}"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# `ip netns exec` as users run it: a private mount namespace and a fresh
# /sys that die with the command. The attachment must outlive it.
inb() { ip netns exec b "$@"; }
ping_ok() { ip netns exec a ping -c "${1:-2}" -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1; }
export -f inb ping_ok   # used inside `bash -c` checks below
tcp_ok() {
  inb python3 -c 'import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("10.0.0.2",8080));s.listen();s.settimeout(5);c,_=s.accept();c.send(b"ok")' &
  sleep 0.5
  ip netns exec a python3 -c 'import socket;s=socket.create_connection(("10.0.0.2",8080),timeout=3);assert s.recv(2)==b"ok"' 2>/dev/null
  local rc=$?; wait; return $rc
}
counter() { inb "$W" stats --iface vb --json | python3 -c "import json,sys;print(json.load(sys.stdin)[0]['counters'].get('$1',-1))"; }

grep -q '^wasmfw ' /proc/modules || insmod "$KO" || { echo "FAILED insmod"; echo "0 passed, 1 failed"; exit 1; }
ip netns add a; ip netns add b
ip link add va type veth peer name vb
ip link set va netns a; ip link set vb netns b
ip -n a addr add 10.0.0.1/24 dev va; ip -n b addr add 10.0.0.2/24 dev vb
for n in a b; do ip -n $n link set lo up; done
ip -n a link set va up; ip -n b link set vb up
check "xdp: ping before load" ping_ok

out=$(inb "$W" load "$R/target/filters/icmp_drop.wasm" --iface vb 2>&1); echo "$out"
check "xdp: ip netns exec b wasmfw load icmp_drop.wasm --iface vb (default hook xdp)" grep -q "hook xdp" <<<"$out"
check "xdp: bridge program attached after the command exited" bash -c "ip -n b link show vb | grep -q xdp"
check "xdp: ping dropped (3 of 3) after ip netns exec exited" bash -c "! ip netns exec a ping -c 3 -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1"
check "xdp: status from the initial namespace: attached on vb in netns b" bash -c \
  "$W status --json | python3 -c 'import json,sys;l=json.load(sys.stdin);assert [(e[\"netns\"],e[\"iface\"],e[\"attached\"]) for e in l]==[(\"b\",\"vb\",True)],l'"
check "xdp: TCP passes" tcp_ok
d=$(counter echo_dropped); echo "echo_dropped=$d"
check "xdp: echo_dropped counts the pings (3)" test "$d" = 3
inb "$W" status
check "xdp: unload" inb "$W" unload --iface vb
check "xdp: bridge gone after unload" bash -c "! ip -n b link show vb | grep -q xdp"
check "xdp: ping after unload" ping_ok
check "xdp: unload twice is an error" bash -c "! inb $W unload --iface vb"

# Two namespaces with an interface of the same name: (netns, iface) is the key.
ip netns add c; ip netns add d
ip link add va type veth peer name vb
ip link set va netns c; ip link set vb netns d
ip -n c addr add 10.0.0.1/24 dev va; ip -n d addr add 10.0.0.2/24 dev vb
ip -n c link set va up; ip -n d link set vb up
check "xdp: load on vb in b (nsenter)" nsenter --net=/run/netns/b "$W" load "$R/policies/icmp.toml" --iface vb
check "xdp: load on vb in d (ip netns exec), same name" ip netns exec d "$W" load "$R/policies/icmp.toml" --iface vb
check "xdp: both drop ping" bash -c "! ping_ok 2 && ! ip netns exec c ping -c 2 -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1"
check "xdp: status shows both, by namespace" bash -c \
  "$W status --json | python3 -c 'import json,sys;l=json.load(sys.stdin);assert sorted((e[\"netns\"],e[\"iface\"],e[\"attached\"]) for e in l)==[(\"b\",\"vb\",True),(\"d\",\"vb\",True)],l'"
check "xdp: unload in d (--netns d) leaves b's" "$W" --netns d unload --iface vb
check "xdp: d passes, b still drops" bash -c "ip netns exec c ping -c 2 -i 0.2 -W 1 10.0.0.2 >/dev/null && ! ping_ok 2"
check "xdp: unload in b" inb "$W" unload --iface vb
ip netns del c; ip netns del d

check "xdp: load policies/icmp.toml" inb "$W" load "$R/policies/icmp.toml" --iface vb
check "xdp: policy drops ping" bash -c "! ip netns exec a ping -c 2 -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1"
check "xdp: replace with l4-dos under ping flood" bash -c "
  ip netns exec a ping -f -c 2000 -W 1 10.0.0.2 >/dev/null 2>&1 & p=\$!
  ip netns exec b $W load $R/policies/l4-dos.toml --iface vb --replace; rc=\$?
  wait \$p; exit \$rc"
check "xdp: after replace ping passes (l4_dos does not drop ICMP)" ping_ok
check "xdp: unload again" inb "$W" unload --iface vb

# SYN flood from one source at XDP: cut to the bucket (burst 20 + 10/s);
# a second source still connects.
check "xdp: load policies/l4-dos.toml" inb "$W" load "$R/policies/l4-dos.toml" --iface vb
ip -n a addr add 10.0.0.3/24 dev va
ip netns exec a hping3 -q -S -p 8080 -c 200 -i u1000 10.0.0.2 >/dev/null 2>&1
lim=$(counter syn_limited); echo "syn flood: 200 SYNs sent, syn_limited=$lim"
check "xdp: SYN flood limited (syn_limited >= 150)" test "$lim" -ge 150
second_source() {
  inb python3 -c 'import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("10.0.0.2",8081));s.listen();s.settimeout(5);c,_=s.accept();c.send(b"ok")' &
  sleep 0.5
  ip netns exec a python3 -c 'import socket;s=socket.create_connection(("10.0.0.2",8081),timeout=3,source_address=("10.0.0.3",0));assert s.recv(2)==b"ok"' 2>/dev/null
  local rc=$?; wait; return $rc
}
check "xdp: second source still connects" second_source
# Maps from the CLI (wasm engine): the flooder's token bucket is there;
# deleting it is seen by the next packet, which creates a fresh one.
fl=00000000000000000000ffff0a000001   # ::ffff:10.0.0.1
check "xdp: map list: syn_buckets hash 16/16" bash -c "ip netns exec b $W map list --iface vb | grep -qE '^syn_buckets +hash +16 +16 '"
check "xdp: map dump syn_buckets has the flooder" bash -c "ip netns exec b $W map dump --iface vb syn_buckets --json | grep -q $fl"
check "xdp: map del the flooder's bucket" ip netns exec b "$W" map del --iface vb syn_buckets "$fl"
check "xdp: the bucket is gone" bash -c "! ip netns exec b $W map get --iface vb syn_buckets $fl"
ip netns exec a hping3 -q -S -p 8080 -c 1 10.0.0.2 >/dev/null 2>&1
check "xdp: the next SYN made a new bucket" ip netns exec b "$W" map get --iface vb syn_buckets "$fl"
check "xdp: unload l4-dos" inb "$W" unload --iface vb

# The exact command of the docs on the guest's own NIC, if it has one.
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up
  check "xdp: (cd target/filters && wasmfw load icmp_drop.wasm --iface eth0)" bash -c "cd $R/target/filters && $W load icmp_drop.wasm --iface eth0"
  check "xdp: status lists eth0" bash -c "$W status | grep -q ' eth0 .*wasm .*xdp'"
  check "xdp: unload eth0" "$W" unload --iface eth0
fi

# Looping filter contained: fuel stops it, fallback verdict counted.
if [[ -f $R/target/test-filters/loop.wasm ]]; then
  T=$(mktemp -d)
  printf 'filter = "%s"\nfuel = 20000\non_fault = "drop"\n' "$R/target/test-filters/loop.wasm" > "$T/loop.toml"
  check "xdp: looping filter loads" inb "$W" load "$T/loop.toml" --iface vb
  check "xdp: looping filter drops by fallback" bash -c "! ip netns exec a ping -c 2 -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1"
  f=$(counter fault_fuel); echo "fault_fuel=$f"
  check "xdp: fault_fuel counted" test "$f" -ge 2
  inb "$W" unload --iface vb
fi

# BPF_PROG_TEST_RUN through the bridge == userspace replay, packet by packet.
if [[ -f $R/target/demo/sample.pcap ]]; then
  for pol in icmp l4-dos dns-block; do
    "$W" test-run "$R/policies/$pol.toml" --pcap "$R/target/demo/sample.pcap" --hook xdp --json > /tmp/k.json 2>/tmp/k.err || cat /tmp/k.err
    "$W" replay "$R/policies/$pol.toml" --pcap "$R/target/demo/sample.pcap" --json | grep -v summary > /tmp/u.json
    verdicts() { python3 -c 'import json,sys;[print(json.loads(l)["verdict"]) for l in open(sys.argv[1])]' "$1"; }
    verdicts /tmp/k.json > /tmp/k.v; verdicts /tmp/u.json > /tmp/u.v
    echo "$pol: $(wc -l < /tmp/k.v) packets, kernel drops $(grep -c drop /tmp/k.v), replay drops $(grep -c drop /tmp/u.v)"
    check "xdp: bridge test-run verdicts == replay ($pol)" bash -c "test -s /tmp/k.v && cmp -s /tmp/k.v /tmp/u.v"
  done
fi
check "xdp: rmmod" rmmod wasmfw
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
