#!/bin/bash
# Runs inside the guest (boot.sh --init): the tests named in WASMFW_TESTS
# (comma-separated t_<name>.sh), each in its own bash, printing
# "ok <name>", "FAILED <name>" or "skipped <name>" and appending the same to
# $WASMFW_SCRATCH/results.txt. Exit status: 1 if any test failed.
set -uo pipefail
here=$WASMFW_REPO/kmod/tests
: "${WASMFW_KO:?}" "${WASMFW_TESTS:?}"
export WASMFW_KO
res=$WASMFW_SCRATCH/results.txt
: > "$res"; : > "$WASMFW_SCRATCH/figures.txt"
if [[ -w /sys/kernel/debug/kmemleak ]]; then
  # Leak suspects from boot are not ours: report only what the tests leave.
  { echo scan > /sys/kernel/debug/kmemleak && echo clear > /sys/kernel/debug/kmemleak; } 2>/dev/null
fi
echo "wasmfw-tests: guest $WASMFW_GUEST, kernel $(uname -r), tests: $WASMFW_TESTS"
failed=0
IFS=, read -ra tests <<< "$WASMFW_TESTS"
for t in "${tests[@]}"; do
  echo "=== $t"
  t0=$(date +%s.%N)
  WASMFW_TEST=$t timeout -k 5 "${WASMFW_TEST_TIMEOUT:-600}" bash ${WASMFW_TRACE:+-x} "$here/t_$t.sh"
  rc=$?
  secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  case $rc in
    0) line="ok $t" ;;
    77) line="skipped $t" ;;
    124) line="FAILED $t"; echo "  [$t] timed out" ;;
    *) line="FAILED $t"; failed=1 ;;
  esac
  [[ $rc == 124 ]] && failed=1
  echo "$line (${secs}s)"
  echo "$line ${secs}" >> "$res"
  # Leave nothing behind for the next test: namespaces, filters, processes.
  ip -all netns delete 2>/dev/null
  if grep -q '^wasmfw ' /proc/modules && [[ -n $("$WASMFW_REPO/target/release/wasmfw" status --json 2>/dev/null | jq -r '.[]?.iface' 2>/dev/null) ]]; then
    echo "  [$t] filters left loaded: rmmod wasmfw"
    # An attached xdp-bridge keeps the module (its kfunc) in use.
    for i in $(ip -o link show | sed -n 's/^[0-9]*: \([^:@]*\).* xdp.*/\1/p'); do ip link set dev "$i" xdp off; done
    rmmod wasmfw || true
  fi
done
log=$(dmesg)
echo "=== the module's kernel log lines (dmesg | grep wasmfw), summarised"
grep -c 'wasmfw: filter .* loaded' <<< "$log" | sed 's/^/  filter loads: /'
grep 'stack used by the load' <<< "$log" | sed 's/.*: \([0-9]*\) bytes.*/\1/' | sort -n | uniq -c | sed 's/^/  kernel stack used by a load (count bytes): /'
grep 'wasmfw: ' <<< "$log" | grep -v 'taints kernel' | grep -v 'filter .* loaded\|loaded: /dev/wasmfw\|unloaded$' | sort | uniq -c | sort -rn | head -15 | sed 's/^/  /'
exit $failed
