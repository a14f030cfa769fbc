#!/bin/bash
# rtnl never waits behind a load (issue 16). The netdevice notifier takes
# the control mutex under rtnl, and LOAD holds that mutex only to reserve a
# slot and to publish (its compile runs under the load mutex). So while
# loads of big.wasm (~0.95 MiB of code and an init spending most of the
# init fuel: ~0.4 s per load under qemu TCG with 2 CPUs) run back to back,
# `ip link del` of an unrelated veth pair must not slow down: its median
# may grow by at most a quarter of a load (if it waited behind the loads
# it would wait half a load on average); its longest is printed. x86
# guest: 2 vCPUs, so the load and the rtnl work really run side by side.
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
  link_del_times > "$D/busy"
  wait "$lp" || fail "loads of big.wasm: $(cat "$D/loads")"
  read -r _ loads _ longest < "$D/loads"
  idle=$(median "$D/idle") busy=$(median "$D/busy") worst=$(tail -1 "$D/busy")
  say "ip link del, median: ${idle}s on an idle module, ${busy}s during $loads loads of big.wasm (longest load ${longest}s); longest del ${worst}s"
  figure rtnl_link_del_s "median idle $idle, during loads $busy, longest $worst (loads $loads, longest load ${longest}s)"
  expect_ge "$loads" 2 "loads of big.wasm while ip link del ran"
  # A load too short to stand out of the noise would show nothing.
  [[ $(echo "$longest > 0.2" | bc) == 1 ]] || fail "a load of big.wasm took only ${longest}s: too short to show rtnl waiting"
  [[ $(echo "$busy - $idle <= $longest / 4" | bc -l) == 1 ]] ||
    fail "ip link del's median went from ${idle}s to ${busy}s during loads of ${longest}s: rtnl waits behind a load"
  # A sanity bound, not the test: on a non-preemptible guest kernel a
  # load's compile also delays the grace period ip link del waits for
  # (seen: 1.3 s once under a loaded host), mutex or not.
  [[ $(echo "$worst < 3" | bc) == 1 ]] || fail "an ip link del took ${worst}s during loads"
  [[ -z $($IO list) ]] || fail "filters left after the loads: $($IO list)"
}
