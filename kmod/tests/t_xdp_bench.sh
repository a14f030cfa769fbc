#!/bin/bash
# Not a speed test: runs the XDP benchmark table (bench/src/xdp.rs: empty
# XDP, eBPF twin, bridge + Wasm, bridge + native) so every CI run prints the
# figures; fails only if it cannot run or the paths disagree on a verdict.
# WASMFW_REPEAT runs per figure (20000).
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_NET=none
test_xdp_bench() {
  ip link set lo up
  "$W" load "$REPO/target/filters/icmp_drop.wasm" --iface lo >/dev/null
  "$REPO/target/release/wasmfw-bench" xdp --runs "${WASMFW_REPEAT:-20000}"
  "$W" unload --iface lo >/dev/null
}
