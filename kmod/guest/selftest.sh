#!/bin/bash
# Proves the whole guest harness: for each guest (default: uml then x86),
# build or reuse the kernel, build the self-test Rust module, boot, and run
# selftest-guest.sh in it (insmod/rmmod, netns+veth ping, nftables).
#
#   selftest.sh [uml|x86|all] [--debug] [--timeout SEC]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

WHICH=all DBG='' TIMEOUT=''
while [[ $# -gt 0 ]]; do
  case $1 in
    uml|x86|all) WHICH=$1 ;;
    --debug) DBG=--debug ;;
    --timeout) TIMEOUT=$2; shift ;;
    *) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift
done
[[ $WHICH == all ]] && ARCHES=(uml x86) || ARCHES=("$WHICH")

summary=()
for arch in "${ARCHES[@]}"; do
  t0=$SECONDS
  "$GUEST_DIR/kernel.sh" build "$arch" $DBG >/dev/null
  t1=$SECONDS
  ko=$("$GUEST_DIR/module.sh" "$arch" $DBG "$GUEST_DIR/selftest" | grep '/wasmfw_selftest.ko$')
  [[ -n $ko ]] || die "selftest module was not built"
  t2=$SECONDS
  # TCG emulation is ~10-50x slower than UML; the debug kernel slower still.
  to=${TIMEOUT:-$([[ $arch == uml ]] && echo 300 || echo 900)}
  "$GUEST_DIR/boot.sh" "$arch" $DBG --init "$GUEST_DIR/selftest-guest.sh" \
    --env "WASMFW_SELFTEST_KO=$ko" --timeout "$to" \
    || die "selftest failed in the $arch${DBG:+ --debug} guest (exit $?)"
  t3=$SECONDS
  summary+=("$arch${DBG:+-debug}: kernel $((t1 - t0)) s, module $((t2 - t1)) s, boot+test $((t3 - t2)) s")
done
printf 'selftest OK: %s\n' "${summary[@]}"
