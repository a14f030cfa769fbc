#!/bin/bash
# Guest half of bench/engine-compare.sh: alternately inserts the module with
# the old and the new engine object and runs `wasmfw-bench guest` (one round
# of WASMFW_RUNS runs per packet) with each; writes compare-<n>-<engine>.json
# (the guest JSON plus "engine") into $WASMFW_SCRATCH. With
# WASMFW_FILTER_DIR_OLD / _NEW set (engine-compare.sh --old-filters), each
# engine's rounds run the filters of that directory (WASMFW_FILTER_DIR);
# otherwise both run the repository's target/filters.
WASMFW_TEST=engine-compare
WASMFW_KO=$WASMFW_KO_NEW
. "$WASMFW_REPO/kmod/tests/lib.sh"
BENCH=$REPO/target/release/wasmfw-bench
ip link set lo up
for r in $(seq "${WASMFW_ROUNDS:-5}"); do
  for eng in old new; do
    ko=WASMFW_KO_${eng^^}
    dir=WASMFW_FILTER_DIR_${eng^^}
    insmod "${!ko}" || fail "insmod ${!ko}"
    env ${!dir:+"WASMFW_FILTER_DIR=${!dir}"} "$BENCH" guest --runs "${WASMFW_RUNS:-20000}" --rounds 1 --work "$WASMFW_SCRATCH/work" \
      | jq -c --arg e "$eng" '. + {engine: $e}' > "$WASMFW_SCRATCH/compare-$r-$eng.json" || fail "wasmfw-bench guest ($eng)"
    say "round $r $eng${!dir:+ (filters ${!dir})}: icmp_drop echo 64B $(jq '.rows[0].test_run_ns | floor' "$WASMFW_SCRATCH/compare-$r-$eng.json") ns"
    rmmod wasmfw || fail "rmmod ($eng)"
  done
done
