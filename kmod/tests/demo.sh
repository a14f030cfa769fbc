#!/bin/bash
# Runs inside the guest for `run.sh --demo`: the ICMP interceptor dropping
# real ping across a veth pair, its counters, and ping working after unload.
. "$WASMFW_REPO/kmod/tests/lib.sh"   # boot.sh runs a copy of this script
trap cleanup EXIT
T=demo
banner() { echo; echo "### $*"; }
ensure_module
pair_up
banner "two network namespaces: wfa (va 10.0.0.1) <-veth-> wfb (vb 10.0.0.2)"
banner "before: ping 10.0.0.2 from wfa"
A ping -c 3 -i 0.2 -W 1 10.0.0.2 || true
banner "ip netns exec wfb wasmfw load policies/icmp.toml --iface vb --hook netfilter"
wf load policies/icmp.toml --iface vb --hook netfilter
wf status
banner "with the filter: ping 10.0.0.2 and ping -6 fd00::2 from wfa"
A ping -c 3 -i 0.2 -W 1 10.0.0.2 || true
A ping -6 -c 3 -i 0.2 -W 1 fd00::2 || true
banner "wasmfw stats (the filter's counters, in the kernel)"
wf stats
wf stats --json
banner "dmesg | grep wasmfw"
klog | grep 'wasmfw: ' | sed 's/^\[[^]]*\] //' || true
banner "wasmfw unload --iface vb"
wf unload --iface vb
banner "after: ping 10.0.0.2 from wfa"
A ping -c 3 -i 0.2 -W 1 10.0.0.2
