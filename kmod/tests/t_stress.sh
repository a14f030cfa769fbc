#!/bin/bash
# Cycles of insmod / load+attach / traffic / unload / rmmod while a ping
# flood runs through the hooked interface, until WASMFW_CYCLE_SECS (180 s)
# or WASMFW_CYCLES (100) cycles, failing below WASMFW_MIN_CYCLES (10); every
# 10th cycle rmmods with the filter still attached (module teardown path).
# Each cycle inserts the module itself.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_MODULE=none
test_stress() {
  D=$(mktemp -d)
  printf 'filter = "%s"\nfuel = 20000\nmemory_limit = 131072\non_fault = "pass"\n' "$TF/loop.wasm" > "$D/loop-pass.toml"
  printf 'filter = "%s"\nfuel = 20000\nmemory_limit = 131072\non_fault = "pass"\n' "$TF/oob.wasm" > "$D/oob-pass.toml"
  pols=(policies/icmp.toml policies/l4-dos.toml "$D/loop-pass.toml" "$D/oob-pass.toml" policies/dns-block.toml)
  drops=(1 0 0 0 0)  # does the policy drop ping?
  # Background floods: ping -f, or one ping per WASMFW_BG_INTERVAL seconds
  # (x86 under TCG: a flood starves everything else).
  bgargs=(-f); [[ -n ${WASMFW_BG_INTERVAL:-} ]] && bgargs=(-i "$WASMFW_BG_INTERVAL")
  slab0=$(awk '/^Slab:/{print $2}' /proc/meminfo)
  ip netns exec wfa ping "${bgargs[@]}" -q -w 900 10.0.0.2 > "$WASMFW_SCRATCH/bg-ping4.txt" 2>&1 & bg1=$!
  ip netns exec wfa ping -6 "${bgargs[@]}" -q -w 900 fd00::2 > "$WASMFW_SCRATCH/bg-ping6.txt" 2>&1 & bg2=$!
  cycles_start "${WASMFW_CYCLES:-100}" "${WASMFW_CYCLE_SECS:-180}" "${WASMFW_MIN_CYCLES:-10}"
  while cycle_next; do
    i=$CYC_I
    insmod "$KO"
    k=$((i % ${#pols[@]}))
    out=$(wf load "${pols[$k]}" --iface vb --hook netfilter 2>&1) || fail "cycle $i: load ${pols[$k]}: $out"
    # 3 pings: a pass policy must let at least one through (the floods may
    # cost a reply), a drop policy none.
    r=$( (A ping -c 3 -i 0.2 -W 1 10.0.0.2 2>&1 || true) | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    [[ -n $r ]] || fail "cycle $i: ping printed no statistics"
    if [[ ${drops[$k]} == 1 ]]; then ok=$((r == 0)); else ok=$((r >= 1)); fi
    [[ $ok == 1 ]] || fail "cycle $i: ${pols[$k]}: $r of 3 echo replies (policy drops ping: ${drops[$k]})"
    if ((i % 10 == 0)); then
      p=$(counter packets)
      [[ $p =~ ^[0-9]+$ && $p -gt 0 ]] || fail "cycle $i: packets counter $p under a flood"
      rmmod wasmfw || fail "cycle $i: rmmod with a filter attached"
    else
      wf unload --iface vb >/dev/null || fail "cycle $i: unload"
      rmmod wasmfw || fail "cycle $i: rmmod"
    fi
    if ((i % 25 == 0)); then say "$i cycles, $(elapsed "$CYC_T0")s"; fi
  done
  kill -INT $bg1 $bg2 2>/dev/null || true   # ping prints its statistics on SIGINT
  wait $bg1 $bg2 2>/dev/null || true
  grep -h 'packets transmitted' "$WASMFW_SCRATCH"/bg-ping*.txt | sed 's/^/    background: /' || fail "background floods printed no statistics"
  slab1=$(awk '/^Slab:/{print $2}' /proc/meminfo)
  say "Slab ${slab0} kB -> ${slab1} kB over the cycles"
  cycles_done stress_cycles "with background floods"
  A ping -c 1 -W 2 10.0.0.2 >/dev/null || fail "no connectivity after the cycles"
  insmod "$KO"
}
