#!/bin/bash
# Kernel stack per packet: deep.wasm (a loop of 8 rounds per packet byte,
# then the deepest Wasm call chain the engine allows, a host call at the
# bottom) runs through test-run, netfilter and XDP with the module's
# stack_probe on; the deepest stack a run used is printed and must stay
# within PACKET_STACK_BUDGET. too_deep.wasm (one frame more) must trap.
# A quarter of x86_64's 16 KiB task/IRQ stack: the rest is the kernel's
# receive path under the filter (kmod/README.md, "Dispatch").
PACKET_STACK_BUDGET=4096
PROBE=/sys/module/wasmfw/parameters/stack_probe

test_stack() {
  [[ -w $PROBE ]] || fail "no $PROBE (module without the stack probe?)"
  [[ -e $TF/deep.wasm && -e $TF/too_deep.wasm ]] || fail "no $TF/deep.wasm: run kmod/tests/build-test-filters.sh"
  work=$WASMFW_SCRATCH/stack; mkdir -p "$work"

  policy() { # policy <wasm> <hook>: fuel at the module's maximum, a trap passes
    cat > "$work/$(basename "$1" .wasm).toml" <<EOF
filter = "$1"
hook = "$2"
fuel = 1000000
memory_limit = 131072
on_fault = "pass"
EOF
    echo "$work/$(basename "$1" .wasm).toml"
  }
  # probe_read: "peak runs skipped" of the probe since it was last switched on.
  probe_read() { sed -n 's/^peak \([0-9]*\) runs \([0-9]*\) skipped \([0-9]*\)$/\1 \2 \3/p' "$PROBE"; }
  # check_probe <where>: the probe measured runs, within the budget.
  check_probe() {
    local peak runs skipped
    read -r peak runs skipped < <(probe_read)
    say "$1: stack probe: peak $peak bytes over $runs measured runs ($skipped not measurable)"
    # KASAN kernels: the probe cannot paint poisoned stack redzones.
    if [[ $runs == 0 && $skipped -gt 0 ]] && klog | grep -q KernelAddressSanitizer; then skip "stack not measurable under KASAN"; fi
    expect_ge "$runs" 1 "$1: runs measured by the stack probe"
    [[ $peak -le $PACKET_STACK_BUDGET ]] || fail "$1: a packet used $peak bytes of kernel stack, budget $PACKET_STACK_BUDGET"
    figure "packet_stack_bytes[$1]" "$peak"
  }

  # One 1514-byte frame (1500 bytes of IPv4/UDP): 12 000 loop rounds.
  python3 - "$work/big.pcap" <<'EOF'
import struct, sys
ip_len = 1500
udp = struct.pack('!HHHH', 40000, 9, ip_len - 20, 0) + b'\x42' * (ip_len - 28)
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, ip_len, 1, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
frame = b'\x02\x00\x00\x00\x00\x02' + b'\x02\x00\x00\x00\x00\x01' + b'\x08\x00' + ip + udp
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    f.write(struct.pack('<IIII', 0, 0, len(frame), len(frame)) + frame)
EOF

  ALLOCS=/sys/module/wasmfw/parameters/packet_allocs
  allocs0=$(cat $ALLOCS)
  echo 1 > "$PROBE"
  out=$("$W" test-run "$(policy "$TF/deep.wasm" netfilter)" --pcap "$work/big.pcap" --repeat 200 --json) || fail "test-run deep.wasm failed"
  echo "$out" | sed 's/^/    /'
  expect_eq "$(jq -r .verdict <<< "$out")" drop "deep.wasm verdict (drop = the loop and the call chain completed)"
  check_probe test_run
  out=$("$W" test-run "$(policy "$TF/too_deep.wasm" netfilter)" --pcap "$work/big.pcap" --json) || fail "test-run too_deep.wasm failed"
  expect_eq "$(jq -r .verdict <<< "$out")" pass "too_deep.wasm verdict (pass = on_fault: one frame past the engine's limit traps)"

  for hook in netfilter xdp; do
    echo 1 > "$PROBE"
    wf load "$(policy "$TF/deep.wasm" $hook)" --iface vb 2>&1 | sed 's/^/    /'
    read -r s r < <(ping4 5 -s 1400)
    expect_eq "$r" 0 "$hook: echo replies to 1428-byte pings under deep.wasm"
    expect_ge "$(counter drop)" "$s" "$hook: drop counter (pings sent: $s)"
    expect_eq "$(counter fault_trap)" 0 "$hook: fault_trap"
    expect_eq "$(counter fault_fuel)" 0 "$hook: fault_fuel"
    check_probe "$hook"
    unload
  done
  echo 0 > "$PROBE"
  # The deepest call chain must not grow wasmi's call stack on a packet (a
  # heap allocation in softirq): the engine grows it to the limit at load.
  expect_eq "$(( $(cat $ALLOCS) - allocs0 ))" 0 "heap allocations on the packet path under deep.wasm (packet_allocs)"
}
