#!/bin/bash
# Control operations never wait behind a load (issue 16). The netdevice
# notifier and the pernet exit take the control mutex (under rtnl), and
# LOAD holds that mutex only to reserve a slot and to publish: its compile
# for every possible CPU and each instance's wasmfw_init run under the load
# mutex. While loads of big.wasm (~0.95 MiB of code and an init spending
# most of the init fuel: ~0.4 s per load under qemu TCG, 2 CPUs) run back
# to back, a LIST ioctl, which takes the control mutex as the notifier
# does, must answer with a median wait of at most a quarter of a load (if
# the mutex were held across the compile it would wait half a load on
# average). `ip link del` of an unrelated veth pair is timed too and
# printed: it also waits for RCU grace periods, which a load's compile
# delays on this non-preemptible guest kernel whatever the mutex (no
# cond_resched inside wasmi's compile), so its figure is reported, not
# asserted. x86 guest: 2 vCPUs, the load and the ioctl side by side.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_NET=none
test_rtnl() {
  local rounds=${WASMFW_RTNL_ROUNDS:-12}
  D=$(mktemp -d)
  # The times of $rounds `ip link del` of a fresh veth pair, sorted, one
  # per line (bash's clock: no exec of date around the command).
  link_del_times() {
    local t
    for _ in $(seq "$rounds"); do
      ip link add wfr0 type veth peer name wfr1 || fail "ip link add"
      t=$EPOCHREALTIME
      ip link del wfr0 || fail "ip link del"
      echo "$EPOCHREALTIME - $t" | bc
    done | sort -n
  }
  median() { sed -n "$(((rounds + 1) / 2))p" "$1"; }
  link_del_times > "$D/idle"
  $IO loadloop "$TF/big.wasm" "${WASMFW_RTNL_LOAD_SECS:-30}" > "$D/loads" 2>&1 & lp=$!
  sleep 1 # the first load is under way
  read -r _ list_median _ list_longest < <($IO listlat 40 0.1) || fail "LIST during loads"
  link_del_times > "$D/busy"
  wait "$lp" || fail "loads of big.wasm: $(cat "$D/loads")"
  read -r _ loads _ longest < "$D/loads"
  idle=$(median "$D/idle") busy=$(median "$D/busy") worst=$(tail -1 "$D/busy")
  say "LIST during $loads loads of big.wasm (longest load ${longest}s): median ${list_median}s, longest ${list_longest}s"
  say "ip link del, median: ${idle}s on an idle module, ${busy}s during the loads; longest ${worst}s"
  figure rtnl_list_during_loads_s "median $list_median, longest $list_longest (loads $loads, longest load ${longest}s)"
  figure rtnl_link_del_s "median idle $idle, during loads $busy, longest $worst"
  expect_ge "$loads" 2 "loads of big.wasm while LIST and ip link del ran"
  # A load too short to stand out of the noise would show nothing.
  [[ $(echo "$longest > 0.2" | bc) == 1 ]] || fail "a load of big.wasm took only ${longest}s: too short to show a wait"
  [[ $(echo "$list_median <= $longest / 4" | bc -l) == 1 ]] ||
    fail "LIST waited ${list_median}s (median) during loads of ${longest}s: the control mutex is held across the compile"
  [[ -z $($IO list) ]] || fail "filters left after the loads: $($IO list)"
}
