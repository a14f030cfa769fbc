#!/bin/bash
# Wasm filters at XDP through xdp-bridge and the module's kfunc. Needs the
# eBPF JIT (x86) or the test-only interpreter patch (UML). Loads as users
# run it (`ip netns exec wfb wasmfw load ...`: a private mount namespace
# and a fresh /sys that die with the command; the attachment must outlive
# it), two namespaces with an interface of the same name, replace under a
# flood, a SYN flood and the maps, the guest's own NIC, a looping filter,
# and BPF_PROG_TEST_RUN through the bridge against userspace replay.
# Two namespaces with an interface of the same name as wfa/va <-> wfb/vb:
# wfc/va <-> wfd/vb; (netns, iface) is the key. 10.0.0.3: a second source.
setup_extra() {
  ip netns add wfc
  ip netns add wfd
  veth_link wfc va 10.0.0.1/24 wfd vb 10.0.0.2/24
}
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_SENDER_ADDRS=10.0.0.3/24
test_xdp() {
  local out d lim fl pol
  ping_ok() { A ping -c "${1:-2}" -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1; }
  ping_c() { ip netns exec wfc ping -c 2 -i 0.2 -W 1 10.0.0.2 >/dev/null 2>&1; }
  not() { ! "$@"; }
  bridge_on_vb() { ip -n wfb link show vb | grep -q xdp; }
  # status_is <python list of (netns, iface, attached)>: wasmfw status --json, sorted.
  status_is() {
    "$W" status --json | python3 -c 'import json,sys;l=json.load(sys.stdin);assert sorted((e["netns"],e["iface"],e["attached"]) for e in l)==eval(sys.argv[1]),l' "$1"
  }
  tcp_ok() { # tcp_ok <port> [source]: a connection from wfa to 10.0.0.2:<port> gets "ok"
    B python3 -c 'import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("10.0.0.2",int(sys.argv[1])));s.listen();s.settimeout(5);c,_=s.accept();c.send(b"ok")' "$1" &
    wait_listening "$1" || { wait; return 1; }
    A python3 -c 'import socket,sys;s=socket.create_connection(("10.0.0.2",int(sys.argv[1])),timeout=3,source_address=(sys.argv[2],0));assert s.recv(2)==b"ok"' "$1" "${2:-}" 2>/dev/null
    local rc=$?
    wait
    return $rc
  }

  check "ping before load" ping_ok
  out=$(B "$W" load "$REPO/target/filters/icmp_drop.wasm" --iface vb 2>&1 || true)
  echo "$out"
  check "ip netns exec wfb wasmfw load icmp_drop.wasm --iface vb (default hook xdp)" grep -q "hook xdp" <<< "$out"
  check "bridge program attached after the command exited" bridge_on_vb
  check "ping dropped (3 of 3) after ip netns exec exited" not ping_ok 3
  check "status from the initial namespace: attached on vb in netns wfb" status_is '[("wfb","vb",True)]'
  check "TCP passes" tcp_ok 8080
  d=$(counter echo_dropped)
  echo "echo_dropped=$d"
  check "echo_dropped counts the pings (3)" test "$d" = 3
  B "$W" status || true
  check "unload" B "$W" unload --iface vb
  check "bridge gone after unload" not bridge_on_vb
  check "ping after unload" ping_ok
  check "unload twice is an error" not B "$W" unload --iface vb

  check "load on vb in wfb (nsenter)" nsenter --net=/run/netns/wfb "$W" load "$REPO/policies/icmp.toml" --iface vb
  check "load on vb in wfd (ip netns exec), same name" ip netns exec wfd "$W" load "$REPO/policies/icmp.toml" --iface vb
  check "both drop ping" not ping_ok 2
  check "both drop ping (wfc -> wfd)" not ping_c
  check "status shows both, by namespace" status_is '[("wfb","vb",True),("wfd","vb",True)]'
  check "unload in wfd (--netns wfd) leaves wfb's" "$W" --netns wfd unload --iface vb
  check "wfd passes" ping_c
  check "wfb still drops" not ping_ok 2
  check "unload in wfb" B "$W" unload --iface vb

  check "load policies/icmp.toml" B "$W" load "$REPO/policies/icmp.toml" --iface vb
  check "policy drops ping" not ping_ok 2
  replace_under_flood() {
    ip netns exec wfa ping -f -c 2000 -W 1 10.0.0.2 >/dev/null 2>&1 &
    local p=$! rc=0
    B "$W" load "$REPO/policies/l4-dos.toml" --iface vb --replace || rc=$?
    wait $p
    return $rc
  }
  check "replace with l4-dos under ping flood" replace_under_flood
  check "after replace ping passes (l4_dos does not drop ICMP)" ping_ok
  check "unload again" B "$W" unload --iface vb

  # SYN flood from one source at XDP: cut to the bucket (burst 20 + 10/s);
  # a second source still connects.
  check "load policies/l4-dos.toml" B "$W" load "$REPO/policies/l4-dos.toml" --iface vb
  A hping3 -q -S -p 8080 -c 200 -i u1000 10.0.0.2 >/dev/null 2>&1 || true
  lim=$(counter syn_limited)
  echo "syn flood: 200 SYNs sent, syn_limited=$lim"
  check "SYN flood limited (syn_limited >= 150)" test "$lim" -ge 150
  check "second source still connects" tcp_ok 8081 10.0.0.3
  # Maps from the CLI (wasm engine): the flooder's token bucket is there;
  # deleting it is seen by the next packet, which creates a fresh one.
  fl=00000000000000000000ffff0a000001 # ::ffff:10.0.0.1
  check "map list: syn_buckets hash 16/16" grep -qE '^syn_buckets +hash +16 +16 ' <<< "$(B "$W" map list --iface vb)"
  check "map dump syn_buckets has the flooder" grep -q $fl <<< "$(B "$W" map dump --iface vb syn_buckets --json)"
  check "map del the flooder's bucket" B "$W" map del --iface vb syn_buckets "$fl"
  check "the bucket is gone" not B "$W" map get --iface vb syn_buckets $fl
  A hping3 -q -S -p 8080 -c 1 10.0.0.2 >/dev/null 2>&1 || true
  check "the next SYN made a new bucket" B "$W" map get --iface vb syn_buckets "$fl"
  check "unload l4-dos" B "$W" unload --iface vb

  # The exact command of the docs on the guest's own NIC, if it has one.
  if ip link show eth0 >/dev/null 2>&1; then
    ip link set eth0 up
    check "(cd target/filters && wasmfw load icmp_drop.wasm --iface eth0)" bash -c "cd $REPO/target/filters && $W load icmp_drop.wasm --iface eth0"
    check "status lists eth0" grep -q ' eth0 .*wasm .*xdp' <<< "$("$W" status)"
    check "unload eth0" "$W" unload --iface eth0
  fi

  # Looping filter contained: fuel stops it, fallback verdict counted.
  if [[ -f $TF/loop.wasm ]]; then
    local D
    D=$(mktemp -d)
    printf 'filter = "%s"\nfuel = 20000\non_fault = "drop"\n' "$TF/loop.wasm" > "$D/loop.toml"
    check "looping filter loads" B "$W" load "$D/loop.toml" --iface vb
    check "looping filter drops by fallback" not ping_ok 2
    f=$(counter fault_fuel)
    echo "fault_fuel=$f"
    check "fault_fuel counted" test "$f" -ge 2
    B "$W" unload --iface vb || true
  fi

  # BPF_PROG_TEST_RUN through the bridge == userspace replay, packet by packet.
  if [[ -f $REPO/target/demo/sample.pcap ]]; then
    verdicts() { python3 -c 'import json,sys;[print(json.loads(l)["verdict"]) for l in open(sys.argv[1])]' "$1"; }
    for pol in icmp l4-dos dns-block; do
      "$W" test-run "$REPO/policies/$pol.toml" --pcap "$REPO/target/demo/sample.pcap" --hook xdp --json > /tmp/k.json 2> /tmp/k.err || cat /tmp/k.err
      "$W" replay "$REPO/policies/$pol.toml" --pcap "$REPO/target/demo/sample.pcap" --json | grep -v summary > /tmp/u.json || true
      verdicts /tmp/k.json > /tmp/k.v || true
      verdicts /tmp/u.json > /tmp/u.v || true
      echo "$pol: $(wc -l < /tmp/k.v) packets, kernel drops $(grep -c drop /tmp/k.v), replay drops $(grep -c drop /tmp/u.v)"
      check "bridge test-run verdicts == replay ($pol)" bash -c "test -s /tmp/k.v && cmp -s /tmp/k.v /tmp/u.v"
    done
  fi
  check "rmmod" rmmod wasmfw
}
