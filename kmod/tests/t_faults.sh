#!/bin/bash
# Filters that never return (loop.wasm, stopped by fuel) or trap (oob.wasm)
# get the policy's fault verdict: on_fault=pass keeps traffic flowing and
# counts every packet as a fault; on_fault=drop stops it.
test_faults() {
  D=$(mktemp -d)
  for f in loop oob; do
    for v in pass drop; do
      printf 'filter = "%s"\nhook = "netfilter"\nfuel = 20000\nmemory_limit = 131072\non_fault = "%s"\n' \
        "$TF/$f.wasm" "$v" > "$D/$f-$v.toml"
    done
  done
  check_filter() { # check_filter <filter> <counter>
    local f=$1 c=$2 s r t0 secs
    load "$D/$f-pass.toml"
    t0=$(now)
    read -r s r < <(ping4 5)
    secs=$(elapsed "$t0")
    expect_eq "$r" "$s" "$f.wasm on_fault=pass: echo replies"
    say "5 pings through $f.wasm took ${secs}s"
    B true || fail "guest unresponsive"
    show_stats
    snapshot
    local pk; pk=$(snap packets)
    expect_ge "$pk" "$s" "$f: packets"
    expect_eq "$(snap "$c")" "$pk" "$f: $c (== packets)"
    expect_eq "$(snap pass)" "$pk" "$f: pass (== packets)"
    unload
    load "$D/$f-drop.toml"
    read -r s r < <(ping4 3)
    expect_eq "$r" 0 "$f.wasm on_fault=drop: echo replies"
    snapshot
    pk=$(snap packets)
    expect_ge "$pk" "$s" "$f drop: packets"
    expect_eq "$(snap "$c")" "$pk" "$f drop: $c (== packets)"
    expect_eq "$(snap drop)" "$pk" "$f drop: drop (== packets)"
    unload
  }
  check_filter loop fault_fuel
  check_filter oob fault_trap
  read -r s r < <(ping4 2)
  expect_eq "$r" "$s" "ping after the faulty filters are gone"
}
