#!/bin/bash
# Inside a guest: the XDP benchmark table (bench/src/xdp.rs). Not a test:
# prints figures; fails only if something cannot run or verdicts disagree.
set -eu
R=${WASMFW_REPO:?}; KO=${WASMFW_KO:?}
grep -q "^wasmfw " /proc/modules || insmod "$KO"
ip link set lo up
"$R/target/release/wasmfw" load "$R/target/filters/icmp_drop.wasm" --iface lo >/dev/null
# The bridge on lo holds the module (its kfunc): always unload it.
trap '"$R/target/release/wasmfw" unload --iface lo >/dev/null; rmmod wasmfw' EXIT
"$R/target/release/wasmfw-bench" xdp --runs "${WASMFW_REPEAT:-100000}"
