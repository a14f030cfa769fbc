#!/bin/bash
# The worst packet costs about the same time whatever its fuel is spent on
# (issue 16): each fuel_*.wasm loop filter (target/test-filters/, from
# wasmfw_engine::fuel_filters: log of 256 bytes, map_update + map_lookup
# with 64-byte keys and 256-byte values, map_delete, counter_add, now_ns,
# memory.fill + memory.copy in 64 KiB and in 16 MiB) is loaded at
# WASMFW_MAX_FUEL and timed with the module's test-run against loop.wasm
# (a plain loop) in the same boot. Each must end in the fault verdict (its
# loop never returns) and cost at most FUELCOST_MAX_RATIO times the plain
# loop's packet; the host calls' fuel costs are kmod/engine/src/fuel.rs.
# Then the log cap on real packets: fuel_log.wasm on vb writes 16 records a
# packet (MAX_LOG_RECORDS_PER_PACKET) and counts the rest in log_dropped.
# The ceiling, in tenths: a loop filter's packet may cost 3x the plain
# loop's (room for a loaded host; free host calls cost 11x, issue 16).
FUELCOST_MAX_RATIO_TENTHS=${WASMFW_FUELCOST_MAX_RATIO_TENTHS:-30}
# Log records a packet may write (MAX_LOG_RECORDS_PER_PACKET, kmod/engine/src/fuel.rs).
LOG_CAP=16
# Runs per figure: 20 packets of ~2 ms.
FUELCOST_RUNS=${WASMFW_FUELCOST_RUNS:-20}
test_fuelcost() {
  MAXFUEL=$($IO const WASMFW_MAX_FUEL) || fail "WASMFW_MAX_FUEL: not in wasmfw uapi-layout"
  # An IPv4/ICMP echo request, raw IP (link 2); the filters ignore it.
  PKT=4500005400010000400100000a0000010a000002080000000001000100000000
  DROP=1
  # per_packet <file> [memory_limit]: ns per packet at the maximum fuel, on_fault = drop.
  per_packet() {
    local out id ns
    out=$($IO load "$TF/$1" "$MAXFUEL" "$DROP" "${2:-131072}"); id=$(sed -n 's/^id \([0-9]*\) .*/\1/p' <<< "$out")
    [[ -n $id ]] || fail "$1 at the maximum fuel: $out"
    out=$($IO testrun "$id" "$PKT" "$FUELCOST_RUNS")
    $IO unload "$id" >/dev/null
    [[ $out == "verdict $DROP ns "* ]] || fail "$1: test-run gave '$out', want the fault verdict (drop)"
    ns=${out##* }
    echo $((ns / FUELCOST_RUNS))
  }
  plain=$(per_packet loop.wasm)
  figure "fuelcost_ns[loop]" "$plain (plain loop, WASMFW_MAX_FUEL=$MAXFUEL)"
  worst=0 over=()
  for f in log map map_delete counter now bulk bulk_big; do
    mem=131072; [[ $f == bulk_big ]] && mem=$((32 << 20))
    ns=$(per_packet "fuel_$f.wasm" "$mem")
    tenths=$((ns * 10 / plain))
    figure "fuelcost_ns[$f]" "$ns ($((tenths / 10)).$((tenths % 10))x the plain loop)"
    ((tenths > worst)) && worst=$tenths
    ((tenths <= FUELCOST_MAX_RATIO_TENTHS)) || over+=("fuel_$f.wasm: $ns ns per packet, $((tenths / 10)).$((tenths % 10))x")
  done
  # The plain loop again: a loaded host shows as the two disagreeing.
  again=$(per_packet loop.wasm)
  figure "fuelcost_ns[loop,again]" "$again"
  figure fuelcost_worst_ratio "$((worst / 10)).$((worst % 10)) (ceiling $((FUELCOST_MAX_RATIO_TENTHS / 10)).$((FUELCOST_MAX_RATIO_TENTHS % 10)))"
  [[ ${#over[@]} -eq 0 ]] || fail "over $((FUELCOST_MAX_RATIO_TENTHS / 10)).$((FUELCOST_MAX_RATIO_TENTHS % 10))x the plain loop (${plain} ns): ${over[*]}"

  # The log cap, through the kernel's ring: 16 records per packet, every
  # later call of the packet counted in log_dropped (thousands per packet).
  D=$(mktemp -d)
  printf 'filter = "%s"\nfuel = %s\nmemory_limit = 131072\non_fault = "pass"\n' "$TF/fuel_log.wasm" "$MAXFUEL" > "$D/log.toml"
  load "$D/log.toml"
  read -r _ r < <(ping4 3)
  expect_eq "$r" 3 "echo replies through fuel_log.wasm (on_fault = pass)"
  # The log before the counters: background packets (IPv6 ND) may add to both in between.
  lines=$(wf log --iface vb --json | jq -s '[.[] | select(has("msg"))] | length') || fail "wasmfw log --json"
  snapshot
  pk=$(snap packets)
  expect_eq "$(snap fault_fuel)" "$pk" "fault_fuel = packets"
  ((lines % LOG_CAP == 0 && lines >= 3 * LOG_CAP && lines <= pk * LOG_CAP)) \
    || fail "$lines log records for $pk packets: want $LOG_CAP per packet"
  say "$lines log records for $pk packets ($LOG_CAP each)"
  expect_ge "$(snap log_dropped)" $((pk * 1000)) "log_dropped (calls past the per-packet cap)"
  figure fuelcost_log_dropped_per_packet "$(($(snap log_dropped) / pk))"
  unload
}
