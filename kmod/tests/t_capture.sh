#!/bin/bash
# wasmfw capture on the kernel engine: pings dropped by policies/icmp.toml
# (netfilter, then XDP) are exactly the drop capture's packets, each with
# its verdict comment (a trapping filter's: fault; in audit mode: drop,
# mode=audit), as tshark and wasmfw replay read them; a pass
# capture holds the TCP traffic; a flood while capturing loses records,
# never the kernel; a killed capture and a filter unloaded under a running
# capture leave nothing armed; a CAPTURE_READ that fails with EFAULT
# consumes nothing.
test_capture() {
  tcp_listen 10.0.0.2 8080
  TS=$(command -v tshark || true)
  D=$(mktemp -d)

  # capture_bg <name> <args...>: starts wasmfw capture in wfb writing $D/<name>.pcapng,
  # waits until it is armed (its "capturing on" line); CAP_PID is its pid.
  capture_bg() {
    local name=$1; shift
    : > "$D/$name.err"
    # Not through wf(): a function in the background is a subshell, and
    # CAP_PID must be wasmfw itself (ip netns exec execs it).
    ip netns exec wfb "$W" capture --iface vb -w "$D/$name.pcapng" --json "$@" > "$D/$name.json" 2> "$D/$name.err" &
    CAP_PID=$!
    for _ in $(seq 100); do
      grep -q '^capturing on' "$D/$name.err" && return 0
      kill -0 "$CAP_PID" 2>/dev/null || { cat "$D/$name.err" "$D/$name.json"; fail "wasmfw capture $* exited early"; }
      sleep 0.1
    done
    fail "wasmfw capture $* never armed"
  }
  # finish <name>: waits for the capture (in this shell: a $(...) subshell
  # cannot wait for it); N = its packet count.
  finish() {
    wait "$CAP_PID" || { sed 's/^/    /' "$D/$1.err" "$D/$1.json"; fail "wasmfw capture ($1) failed"; }
    sed 's/^/    /' "$D/$1.json"
    N=$(jq -r .packets "$D/$1.json")
  }
  # replay_drops <name>: how many packets wasmfw replay drops in the capture.
  replay_drops() {
    "$W" replay "$REPO/policies/icmp.toml" --pcap "$D/$1.pcapng" --json | jq -s '[.[] | select(.verdict == "drop")] | length'
  }
  # tshark_count <name> <display filter> <comment text>: packets matching both.
  tshark_count() {
    "$TS" -r "$D/$1.pcapng" -Y "$2" -T fields -e frame.comment 2>/dev/null | grep -c -- "$3" || true
  }

  check_drops() { # check_drops <name> <sent> <link: raw|eth>
    local name=$1 sent=$2 link=$3
    expect_eq "$(replay_drops "$name")" "$sent" "$name: packets wasmfw replay drops"
    if [[ -n $TS ]]; then
      expect_eq "$(tshark_count "$name" 'icmp.type == 8 && ip.src == 10.0.0.1 && ip.dst == 10.0.0.2' 'wasmfw verdict=drop filter=')" "$sent" \
        "$name: tshark: echo requests 10.0.0.1 -> 10.0.0.2 with comment 'wasmfw verdict=drop'"
      local encap; encap=$("$TS" -r "$D/$name.pcapng" -T fields -e frame.protocols 2>/dev/null | head -1)
      say "$name: tshark frame.protocols: $encap"
      case $link in
        raw) [[ $encap == raw:ip:icmp* ]] || fail "$name: not raw IP: $encap" ;;
        eth) [[ $encap == eth:ethertype:ip:icmp* ]] || fail "$name: not Ethernet: $encap" ;;
      esac
    else
      say "tshark not installed: the file is checked by wasmfw replay only"
    fi
  }

  # --- netfilter: drops ------------------------------------------------------
  load policies/icmp.toml
  capture_bg nf-drop --verdict drop -c 5 --duration 60
  read -r s4 r4 < <(ping4 5)
  expect_eq "$r4" 0 "IPv4 echo replies under icmp_drop"
  finish nf-drop
  expect_eq "$N" "$s4" "netfilter drop capture: packets (pings sent: $s4)"
  check_drops nf-drop "$s4" raw

  # --- CAPTURE_READ that cannot copy out (raw ioctls, wfioctl.py) -------------
  # Into an unmapped buffer, or with a read-only request (the records are
  # copied, the reply cannot be): EFAULT, and the records stay in the ring
  # for the next read, which gets them all (lost 0); the read after that
  # is empty (the good read consumed them).
  id=$($IO list | awk '{print $2}' | tail -1)
  out=$($IO capefault "$id" "$($IO const WASMFW_CAPTURE_DROP)" ip netns exec wfa ping -c 3 -i 0.2 -W 1 10.0.0.2) \
    || fail "wfioctl.py capefault: $out"
  say "capefault: $out"
  expect_eq "${out% bytes *}" "badbuf 14 roreq 14 first 3 lost 0 again 0" "CAPTURE_READs: unmapped, read-only, good, good"

  # --- netfilter: passes (TCP) -----------------------------------------------
  capture_bg nf-pass --verdict pass --duration 3
  r=$(tcp_connect 10.0.0.2 8080); expect_eq "$r" hello "TCP under icmp_drop while capturing"
  read -r s4 r4 < <(ping4 2)
  finish nf-pass
  expect_ge "$N" 3 "netfilter pass capture: packets"
  expect_eq "$(replay_drops nf-pass)" 0 "nf-pass: packets wasmfw replay drops"
  if [[ -n $TS ]]; then
    expect_ge "$(tshark_count nf-pass 'tcp.dstport == 8080' 'wasmfw verdict=pass')" 3 "nf-pass: tshark: TCP packets to :8080 marked pass"
    expect_eq "$(tshark_count nf-pass 'icmp' 'wasmfw')" 0 "nf-pass: tshark: ICMP packets in the pass capture"
  fi

  # --- replacing the filter ends its capture ------------------------------------
  capture_bg replaced --verdict pass --duration 60
  out=$(wf load policies/icmp.toml --iface vb --hook netfilter --replace 2>&1) || { echo "$out"; fail "load --replace"; }
  if wait "$CAP_PID"; then fail "capture went on after its filter was replaced"; fi
  say "capture after replace: $(cat "$D/replaced.json")"

  # --- a killed capture is disarmed (its file closed) --------------------------
  capture_bg killed --verdict drop,pass --duration 60
  kill -9 "$CAP_PID"; wait "$CAP_PID" 2>/dev/null || true
  capture_bg after-kill --verdict drop -c 1 --duration 30
  read -r s4 r4 < <(ping4 1)
  finish after-kill
  expect_eq "$N" 1 "capture after a killed one (EBUSY if the first were still armed)"

  # --- flood while capturing: records lost, counted, nothing else; a capture
  # stopped, killed or whose filter is unloaded under the flood ---------------
  # UDP to a closed port for FLOOD_SECS, in the background; FLOOD_PID.
  FLOOD_SECS=6
  A python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for _ in range(200):
        s.sendto(b"x" * 1000, ("10.0.0.2", 9))
' "$FLOOD_SECS" &
  FLOOD_PID=$!
  sleep 0.3
  # Stopped by its duration while the flood goes on.
  capture_bg flood --verdict drop,pass --duration 1.5
  finish flood
  lost=$(jq -r .lost "$D/flood.json")
  say "flood: $N packets written, $lost lost"
  expect_ge "$N" 1000 "flood capture: packets written"
  figure capture_flood_written "$N"
  figure capture_flood_lost "$lost"
  # Killed mid-flood: closing its file frees the ring under traffic.
  capture_bg flood-killed --verdict pass --duration 60
  sleep 0.5
  kill -9 "$CAP_PID"; wait "$CAP_PID" 2>/dev/null || true
  # Its filter unloaded mid-flood: the capture ends with it.
  capture_bg unloaded --verdict pass --duration 60
  sleep 0.5
  unload
  if wait "$CAP_PID"; then fail "capture went on after its filter was unloaded"; fi
  say "capture after unload: $(cat "$D/unloaded.json")"
  wait "$FLOOD_PID" || true
  expect_eq "$(cat /sys/module/wasmfw/parameters/packet_allocs)" 0 "heap allocations on the packet path (packet_allocs)"

  # --- faults: oob.wasm traps on every packet, on_fault=drop --------------------
  printf 'filter = "%s"\nhook = "netfilter"\nfuel = 20000\nmemory_limit = 131072\non_fault = "drop"\n' "$TF/oob.wasm" > "$D/oob.toml"
  load "$D/oob.toml"
  capture_bg fault --verdict fault -c 3 --duration 60
  read -r s4 r4 < <(ping4 3)
  expect_eq "$r4" 0 "echo replies through oob.wasm (on_fault=drop)"
  finish fault
  expect_eq "$N" "$s4" "fault capture: packets (pings sent: $s4)"
  if [[ -n $TS ]]; then
    expect_eq "$(tshark_count fault 'icmp.type == 8' 'wasmfw verdict=fault')" "$s4" "fault: tshark: echo requests marked fault"
  fi
  unload

  # --- audit mode: the pings pass, and are captured as drops marked mode=audit ---
  out=$(wf load policies/icmp.toml --iface vb --hook netfilter --audit 2>&1) || { echo "$out"; fail "load --audit"; }
  capture_bg audit --verdict drop -c 3 --duration 60
  read -r s4 r4 < <(ping4 3)
  expect_eq "$r4" "$s4" "echo replies under icmp_drop in audit mode"
  finish audit
  expect_eq "$N" "$s4" "audit capture: would-be drops (pings sent: $s4)"
  if [[ -n $TS ]]; then
    expect_eq "$(tshark_count audit 'icmp.type == 8' 'wasmfw verdict=drop .*mode=audit')" "$s4" "audit: tshark: echo requests marked drop, mode=audit"
  fi
  unload

  # --- XDP: Ethernet frames ----------------------------------------------------
  out=$(wf load policies/icmp.toml --iface vb --hook xdp 2>&1) || { echo "$out"; fail "load at XDP"; }
  capture_bg xdp-drop --verdict drop -c 3 --duration 60
  read -r s4 r4 < <(ping4 3)
  expect_eq "$r4" 0 "IPv4 echo replies under icmp_drop at XDP"
  finish xdp-drop
  expect_eq "$N" "$s4" "XDP drop capture: packets (pings sent: $s4)"
  check_drops xdp-drop "$s4" eth
  unload
  rm -rf "$D"
}
