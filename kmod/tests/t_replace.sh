#!/bin/bash
# Atomic replacement (`wasmfw load --replace`) under a ping flood:
#  A. icmp_drop -> l4_dos (passes ICMP): replies start after the swap and
#     then none is lost; the old filter is gone, the new one counts.
#  B. icmp_drop -> oob.wasm with on_fault=drop: both drop every echo
#     request, so a single reply would mean a packet saw no filter.
test_replace() {
  N=${WASMFW_FLOOD:-1500}
  flood() { A ping -c "$N" -i 0.002 -W 1 10.0.0.2 > "$1" 2>&1 || true; }
  seqs() { sed -n 's/.*icmp_seq=\([0-9]*\) .*/\1/p' "$1"; }
  dmesg_before=$(klog | wc -l)

  say "A: icmp_drop -> l4_dos under a flood of $N pings"
  load policies/icmp.toml
  flood "$WASMFW_SCRATCH/flood-a.txt" & fp=$!
  sleep 1
  load policies/l4-dos.toml --replace
  wait $fp
  grep 'packets transmitted' "$WASMFW_SCRATCH/flood-a.txt" | sed 's/^/    /'
  mapfile -t got < <(seqs "$WASMFW_SCRATCH/flood-a.txt")
  [[ ${#got[@]} -gt 0 ]] || fail "no reply after the swap to l4_dos"
  first=${got[0]} last=${got[-1]}
  say "replies: ${#got[@]}, icmp_seq $first..$last"
  expect_eq "${#got[@]}" $((last - first + 1)) "replies after the swap without a gap"
  [[ $last -ge $((N - 5)) ]] || fail "replies stopped at icmp_seq $last of $N"
  show_stats
  st=$(wf status 2>&1); echo "$st" | sed 's/^/    /'
  grep -q l4_dos <<< "$st" || fail "status does not show l4_dos"
  grep -q icmp_drop <<< "$st" && fail "status still shows icmp_drop"
  expect_ge "$(counter packets)" "${#got[@]}" "l4_dos packets (counts since the swap)"
  unload

  say "B: icmp_drop -> oob.wasm (on_fault=drop) under a flood of $N pings"
  D=$(mktemp -d)
  printf 'filter = "%s"\nfuel = 20000\nmemory_limit = 131072\non_fault = "drop"\n' "$TF/oob.wasm" > "$D/oob-drop.toml"
  load policies/icmp.toml
  flood "$WASMFW_SCRATCH/flood-b.txt" & fp=$!
  sleep 1
  load "$D/oob-drop.toml" --replace
  wait $fp
  grep 'packets transmitted' "$WASMFW_SCRATCH/flood-b.txt" | sed 's/^/    /'
  n=$(seqs "$WASMFW_SCRATCH/flood-b.txt" | wc -l)
  expect_eq "$n" 0 "echo replies across the swap between two dropping filters"
  show_stats
  expect_ge "$(counter fault_trap)" 1 "oob fault_trap after the swap"
  unload
  new=$(klog | tail -n +$((dmesg_before + 1)))
  echo "$new" | grep wasmfw | sed 's/^/    dmesg: /' || true
  if grep -E 'WARNING|BUG|Oops|refused' <<< "$new"; then fail "kernel log has problems during the replacement"; fi
}
