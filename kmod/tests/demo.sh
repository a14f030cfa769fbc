#!/bin/bash
# Runs inside the guest for `run.sh --demo`: the ICMP interceptor at XDP
# (wasmfw load icmp_drop.wasm --iface vb) dropping real ping across a veth
# pair, its counters, and ping working after unload.
. "$WASMFW_REPO/kmod/tests/lib.sh"   # boot.sh runs a copy of this script
trap cleanup EXIT
T=demo
banner() { echo; echo "### $*"; }
ensure_module
pair_up
banner "two network namespaces: wfa (va 10.0.0.1) <-veth-> wfb (vb 10.0.0.2)"
banner "before: ping 10.0.0.2 from wfa"
A ping -c 3 -i 0.2 -W 1 10.0.0.2 || true
# As a user would: the attachment outlives `ip netns exec` (netlink XDP).
wfx() { ip netns exec wfb "$W" "$@"; }
banner "in wfb: wasmfw load target/filters/icmp_drop.wasm --iface vb   (XDP, the default hook)"
wfx load target/filters/icmp_drop.wasm --iface vb
wfx status
banner "ip -n wfb link show vb   (the xdp-bridge program that calls the module's kfunc)"
ip -n wfb link show vb
banner "with the filter: ping 10.0.0.2 and ping -6 fd00::2 from wfa"
A ping -c 3 -i 0.2 -W 1 10.0.0.2 || true
A ping -6 -c 3 -i 0.2 -W 1 fd00::2 || true
banner "wasmfw stats (the filter's counters, in the kernel)"
wf stats
wf stats --json
banner "dmesg | grep wasmfw"
klog | grep 'wasmfw: ' | sed 's/^\[[^]]*\] //' || true
banner "wasmfw unload --iface vb"
wfx unload --iface vb
banner "after: ping 10.0.0.2 from wfa"
A ping -c 3 -i 0.2 -W 1 10.0.0.2
