#!/bin/bash
# rtnl never waits behind a load (issue 16). big.wasm (~1 MiB of code, a
# wasmfw_init that spends most of the init fuel) takes seconds to load
# under qemu TCG. The netdevice notifier takes the control mutex under
# rtnl, and LOAD holds that mutex only to reserve a slot and to publish
# (its compile runs under the load mutex). So while loads of big.wasm run
# back to back, `ip link del` of an unrelated veth pair may take at most
# RTNL_SLACK_S (1 s) longer than on an idle module. x86 guest: 2 vCPUs, so
# the load and the rtnl work really run side by side.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_NET=none
test_rtnl() {
  local slack=1 rounds=${WASMFW_RTNL_ROUNDS:-6}
  D=$(mktemp -d)
  # The longest `ip link del` of a fresh veth pair over $rounds (bash's
  # clock: no exec of date around the command).
  link_del_max() {
    local worst=0 t dt
    for _ in $(seq "$rounds"); do
      ip link add wfr0 type veth peer name wfr1 || fail "ip link add"
      t=$EPOCHREALTIME
      ip link del wfr0 || fail "ip link del"
      dt=$(echo "$EPOCHREALTIME - $t" | bc)
      [[ $(echo "$dt > $worst" | bc) == 1 ]] && worst=$dt
    done
    echo "$worst"
  }
  idle=$(link_del_max)
  $IO loadloop "$TF/big.wasm" "${WASMFW_RTNL_LOAD_SECS:-30}" > "$D/loads" 2>&1 & lp=$!
  sleep 1 # the first load is under way
  busy=$(link_del_max)
  wait "$lp" || fail "loads of big.wasm: $(cat "$D/loads")"
  read -r _ loads _ longest < "$D/loads"
  say "ip link del: longest ${idle}s on an idle module, ${busy}s during $loads loads of big.wasm (longest load ${longest}s)"
  figure rtnl_link_del_s "idle $idle, during loads $busy (loads $loads, longest load ${longest}s)"
  expect_ge "$loads" 2 "loads of big.wasm while ip link del ran"
  # A load shorter than the bound would show nothing either way.
  [[ $(echo "$longest > 2 * $slack" | bc) == 1 ]] || fail "a load of big.wasm took only ${longest}s: too short to show rtnl waiting"
  [[ $(echo "$busy <= $idle + $slack" | bc) == 1 ]] ||
    fail "ip link del took ${busy}s during loads (${idle}s idle): rtnl waited behind a load"
  [[ -z $($IO list) ]] || fail "filters left after the loads: $($IO list)"
}
