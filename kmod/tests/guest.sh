#!/bin/bash
# The guest test runner (boot.sh --init, from run.sh): for each test named
# in WASMFW_TESTS (comma-separated, kmod/tests/t_<name>.sh) it sets up what
# the test declares (lib.sh: wasmfw.ko, the wfa/wfb veth pair, a
# setup_extra hook), runs its test_<name> under a timeout in its own
# process, tears everything down afterwards (also after a failure or a
# timeout) and prints one line "PASS|FAIL|SKIP <name> (<secs>s)[: reason]".
# $WASMFW_SCRATCH/results.txt gets the same, one line per test:
# "<PASS|FAIL|SKIP> <name> <secs> [reason]" (run.sh reads it). Exit status:
# 1 if any test failed.
# (boot.sh runs a copy of this script: lib.sh comes from the repo.)
. "$WASMFW_REPO/kmod/tests/lib.sh"
set +e
trap - EXIT
: "${WASMFW_TESTS:?}"
export WASMFW_KO
res=$WASMFW_SCRATCH/results.txt
: > "$res"; : > "$FIG"
if [[ -w /sys/kernel/debug/kmemleak ]]; then
  # Leak suspects from boot are not ours: report only what the tests leave.
  { echo scan > /sys/kernel/debug/kmemleak && echo clear > /sys/kernel/debug/kmemleak; } 2>/dev/null
fi
echo "wasmfw-tests: guest $WASMFW_GUEST, kernel $(uname -r), tests: $WASMFW_TESTS"
# What a failure report needs beyond the test's own words: where the module
# sits (UML's interpreter calls a kfunc through a 32-bit offset from
# __bpf_call_base, so a module placed too far away refuses the bridge) and
# what holds vmalloc space.
state_after_failure() {
  echo "--- guest state after the failure"
  grep '^wasmfw ' /proc/modules | sed 's/^/  module: /'
  grep -wE '__bpf_call_base|wasmfw_xdp_run' /proc/kallsyms | sed 's/^/  symbol: /'
  grep -E '^(MemFree|Vmalloc(Used|Chunk))' /proc/meminfo | sed 's/^/  /'
  awk '{s[$3] += $2} END {for (c in s) print s[c], c}' /proc/vmallocinfo 2>/dev/null | sort -rn | head -6 | sed 's/^/  vmalloc bytes by caller: /'
}
failed=0
IFS=, read -ra tests <<< "$WASMFW_TESTS"
for t in "${tests[@]}"; do
  echo "=== $t"
  rm -f "$REASON"
  t0=$(date +%s.%N)
  # timeout runs the test in a process group of its own (pgid = its pid):
  # whatever the test leaves running is killed with the group afterwards.
  to=${WASMFW_TEST_TIMEOUT:-600}
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash
  WASMFW_TEST=$t timeout -k 5 "$to" bash ${WASMFW_TRACE:+-x} -c '. "$1/lib.sh"; run_test' _ "$HERE" &
  pg=$!
  wait "$pg"
  rc=$?
  kill -KILL -- -"$pg" 2>/dev/null
  secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  why=$(head -1 "$REASON" 2>/dev/null)
  case $rc in
    0) st=PASS ;;
    77) st=SKIP ;;
    124 | 137) st=FAIL why="timed out after ${to}s" ;;
    *) st=FAIL; [[ -n $why ]] || why="exit status $rc" ;;
  esac
  [[ $st == FAIL ]] && failed=1 && state_after_failure
  T=$t teardown
  echo "$st $t (${secs}s)${why:+: $why}"
  echo "$st $t $secs${why:+ $why}" >> "$res"
done
log=$(dmesg)
echo "=== the module's kernel log lines (dmesg | grep wasmfw), summarised"
grep -c 'wasmfw: filter .* loaded' <<< "$log" | sed 's/^/  filter loads: /'
grep 'stack used by the load' <<< "$log" | sed 's/.*: \([0-9]*\) bytes.*/\1/' | sort -n | uniq -c | sed 's/^/  kernel stack used by a load (count bytes): /'
grep 'wasmfw: ' <<< "$log" | grep -v 'taints kernel' | grep -v 'filter .* loaded\|loaded: /dev/wasmfw\|unloaded$' | sort | uniq -c | sort -rn | head -15 | sed 's/^/  /'
exit $failed
