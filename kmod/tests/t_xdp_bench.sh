#!/bin/bash
# Not a speed test: runs the XDP benchmark table (empty XDP, eBPF twin,
# bridge + Wasm, bridge + native) so every CI run prints the figures; fails
# only if it cannot run or the paths disagree on a verdict.
WASMFW_REPEAT=${WASMFW_REPEAT:-20000} exec bash "$WASMFW_REPO/kmod/tests/bench-xdp-guest.sh"
