#!/bin/bash
# Runs inside the guest (via boot.sh): load/unload the self-test module,
# check module BTF, ping between two network namespaces over veth (IPv4 and
# IPv6), and check that an nftables rule in one of them drops the ping.
set -euo pipefail
KO=${WASMFW_SELFTEST_KO:?set by selftest.sh}
step() { echo "selftest: $*"; }
# (grep on a captured log: `dmesg | grep -q` trips pipefail with SIGPIPE)
klog_has() { local log; log=$(dmesg); grep -qF "$1" <<< "$log" || { echo "not in dmesg: $1"; exit 1; }; }

step "insmod $KO"
insmod "$KO"
grep -q '^wasmfw_selftest ' /proc/modules
klog_has 'wasmfw_selftest: loaded (sum=30)'
[[ -e /sys/kernel/btf/wasmfw_selftest ]] || { echo "no module BTF in /sys/kernel/btf"; exit 1; }
step "rmmod"
rmmod wasmfw_selftest
klog_has 'wasmfw_selftest: unloaded (4 values)'

step "netns + veth"
ip netns add a
ip netns add b
ip link add va netns a type veth peer name vb netns b
ip -n a addr add 10.99.0.1/24 dev va
ip -n b addr add 10.99.0.2/24 dev vb
ip -n a addr add fd99::1/64 dev va nodad
ip -n b addr add fd99::2/64 dev vb nodad
for ns in a b; do ip -n $ns link set lo up; done
ip -n a link set va up
ip -n b link set vb up
ip netns exec a ping -c 3 -i 0.2 -W 2 10.99.0.2
ip netns exec a ping -6 -c 3 -i 0.2 -W 2 fd99::2

step "nftables drop in netns b"
ip netns exec b nft add table inet selftest
ip netns exec b nft add chain inet selftest input '{ type filter hook input priority 0; policy accept; }'
ip netns exec b nft add rule inet selftest input icmp type echo-request counter drop
if ip netns exec a ping -c 2 -i 0.2 -W 1 10.99.0.2; then echo "ping passed a drop rule"; exit 1; fi
rules=$(ip netns exec b nft list ruleset)
grep -q 'counter packets 2 bytes' <<< "$rules" || { echo "drop rule did not count 2 packets: $rules"; exit 1; }
ip netns exec b nft delete table inet selftest
ip netns exec a ping -c 1 -W 2 10.99.0.2 >/dev/null

ip netns del a
ip netns del b
step "PASS"
