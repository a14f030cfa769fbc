#!/bin/bash
# The kernel module's tests, in one command: builds (or reuses) the guest
# kernels, wasmfw.ko for each, wasmfw, the filters and the test filters,
# then boots the guests and runs kmod/tests/t_*.sh inside.
#
#   run.sh [--only uml|x86] [--tests a,b,...] [--cycles N] [--no-debug]
#   run.sh --demo            boot UML and show icmp.toml dropping real ping
#
# Guests (kmod/guest/): uml runs every test; x86 (qemu TCG, slow, but with
# the eBPF JIT) runs icmp, xdp, the XDP benchmark and a few load/unload/rmmod cycles; a --debug kernel (KASAN, kmemleak,
# lockdep), when one is already built, runs the stress cycles and the
# kmemleak check. Writes target/kmod-tests/results.txt, one line per guest
# test: "<PASS|FAIL|SKIP> <guest>:<test> <secs|-> [reason]" (what `cargo
# xtask test` reads), prints it and "N passed, M failed, K skipped"; exit
# status 1 if anything failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
G=$root/kmod/guest
# Scratch dirs are per checkout: runs from two clones must not clobber each other.
repo_key=$(printf %s "$root" | md5sum | cut -c1-8)
cd "$root"

ALL_UML=icmp,l4_dos,maps,apply,faults,garbage,replace,audit,caps,test_run,fuelcost,stack,capture,log,auto,xdp,xdp_bench,stress,lifetime,adversarial,kmemleak
DEMO=0 ONLY='' TESTS='' CYCLES='' USE_DEBUG=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --demo) DEMO=1 ;;
    --only) ONLY=$2; shift ;;
    --tests) TESTS=$2; shift ;;
    --cycles) CYCLES=$2; shift ;;
    --no-debug) USE_DEBUG=0 ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift
done
[[ -z $ONLY || $ONLY == uml || $ONLY == x86 ]] || { echo "run.sh: --only uml|x86" >&2; exit 2; }

say() { printf '\n### run.sh: %s\n' "$*" >&2; }

# Does this guest boot on this host? Prints the reason when it does not.
guest_boots() {
  local scratch=$CACHE/scratch/boot-probe-$1-$repo_key
  rm -rf "$scratch"; mkdir -p "$scratch"
  printf '#!/bin/bash\ntrue\n' > "$scratch/probe.sh"
  if "$G/boot.sh" "$1" --init "$scratch/probe.sh" --timeout 120 --scratch "$scratch" >/dev/null 2>&1; then return 0; fi
  cat "$scratch/boot-failure.txt" 2>/dev/null || true
  return 1
}
# A failed build leaves no results file, never the last run's.
RESULTS=$root/target/kmod-tests/results.txt
rm -f "$RESULTS"
T0=$SECONDS
CACHE=${WASMFW_CACHE:-$HOME/.cache/wasmfw}

# ---- build --------------------------------------------------------------
archs=(uml x86)
[[ $DEMO == 1 ]] && archs=(uml)
[[ -n $ONLY ]] && archs=("$ONLY")
for a in "${archs[@]}"; do
  say "kernel $a (kmod/guest/kernel.sh build $a)"
  "$G/kernel.sh" build "$a" >/dev/null
done
# The demo runs in UML (native speed); where UML cannot boot, in x86.
DEMO_ARCH=uml
if [[ $DEMO == 1 && -z $ONLY ]] && ! why=$(guest_boots uml); then
  say "the UML guest does not boot on this host (${why:-no reason printed}): the demo runs in the x86 guest (qemu TCG) instead"
  DEMO_ARCH=x86
  "$G/kernel.sh" build x86 >/dev/null
fi
[[ $DEMO == 1 && $ONLY == x86 ]] && DEMO_ARCH=x86
# x86 --debug (KASAN, kmemleak, lockdep) is the leak-checking guest:
# kmemleak is off on UML (boot-time false positives, kmod/guest/README.md).
if [[ $DEMO == 0 && $USE_DEBUG == 1 && -z $TESTS && " ${archs[*]} " == *" x86 "* ]]; then
  say "kernel x86 --debug (kmod/guest/kernel.sh build x86 --debug)"
  "$G/kernel.sh" build x86 --debug >/dev/null
fi
say "wasmfw and wasmfw-bench (cargo build --release), filters, test filters"
nice cargo build --quiet --release -p wasmfw -p wasmfw-bench
nice cargo xtask build-filters
"$here/build-test-filters.sh"
if [[ ! -e target/demo/sample.pcap ]]; then nice cargo xtask demo --replay >/dev/null; fi

# The verdicts the userspace engine gives, for test_run to compare with.
exp=target/test-filters/expected
rm -rf "$exp"; mkdir -p "$exp"
for c in "icmp mixed 1000" "icmp sample 1" "l4-dos mixed 1" "dns-block sample 100"; do
  read -r pol cap rep <<< "$c"
  pcap=target/test-filters/$cap.pcap; [[ -e $pcap ]] || pcap=target/demo/$cap.pcap
  target/release/wasmfw replay "policies/$pol.toml" --pcap "$pcap" --json > "$exp/$pol@$cap@$rep.json"
done

# ---- plan: which guest runs what -------------------------------------------
# variant | tests | --env extras | timeout
plan=()
for a in "${archs[@]}"; do
  if [[ $DEMO == 1 ]]; then plan+=("$DEMO_ARCH|demo||900"); break; fi
  if [[ $a == uml ]]; then
    plan+=("uml|${TESTS:-$ALL_UML}|WASMFW_CYCLES=${CYCLES:-100}|1200")
  else
    # TCG: every exec of a host binary over 9p costs ~0.5 s; keep it short.
    plan+=("x86|${TESTS:-icmp,maps,stack,capture,log,auto,xdp,xdp_bench,stress,audit,rtnl}|WASMFW_CYCLES=${CYCLES:-3}|1500")
  fi
  if [[ $USE_DEBUG == 1 && -z $TESTS ]]; then
    if "$G/kernel.sh" path "$a" --debug >/dev/null 2>&1; then
      # The adversarial suite (issue 9) belongs in the KASAN + lockdep guests.
      if [[ $a == uml ]]; then
        plan+=("uml --debug|icmp,stress,lifetime,adversarial,kmemleak|WASMFW_CYCLES=${CYCLES:-100} WASMFW_ADV_CYCLES=${CYCLES:-100} WASMFW_CYCLE_SECS=300 WASMFW_ADV_SECS=300 WASMFW_TEST_TIMEOUT=1800|3000")
      else
        # KASAN under TCG: ~16 s a stress cycle, ~56 s a churn cycle (2 vCPUs,
        # the only guest where a hook and a detach really race); 10 + 10 keep
        # a fresh-machine `cargo xtask test` inside CI's 90 minutes. The
        # hundreds of cycles run in UML (stress 100, churn 40; uml --debug 100).
        plan+=("x86 --debug|stress,lifetime,adversarial,kmemleak|WASMFW_CYCLES=${CYCLES:-10} WASMFW_ADV_CYCLES=${CYCLES:-10} WASMFW_CYCLE_SECS=300 WASMFW_MIN_CYCLES=3 WASMFW_ADV_SECS=400 WASMFW_ADV_MIN_CYCLES=3 WASMFW_ADV_FUZZ=5000 WASMFW_ADV_FAULT_STRIDE=20 WASMFW_TEST_TIMEOUT=1500|1800")
      fi
    else
      say "no $a --debug kernel built (kmod/guest/kernel.sh build $a --debug): KASAN/lockdep not run on $a"
    fi
  fi
done

# ---- run ---------------------------------------------------------------------
figures=() durations=()
outdir=$root/target/kmod-tests
mkdir -p "$outdir"
: > "$RESULTS"
# result <STATUS> <guest>:<test> <secs|-> [reason]
result() { echo "$1 $2 $3${4:+ $4}" >> "$RESULTS"; }
for p in "${plan[@]}"; do
  IFS='|' read -r variant tests extra timeout <<< "$p"
  name=${variant/ --debug/-debug}
  say "$name: wasmfw.ko (kmod/build-module.sh $variant)"
  ko=$(nice "$root/kmod/build-module.sh" $variant)
  [[ -n $ko && -e $ko ]] || { result FAIL "$name:build-module" -; continue; }
  scratch=$CACHE/scratch/kmod-tests-$name-$repo_key
  rm -rf "$scratch"; mkdir -p "$scratch"
  envs=(--env "WASMFW_KO=$ko")
  [[ $variant == x86* ]] && envs+=(--env WASMFW_FLOOD=300 --env WASMFW_SYNS=100 --env WASMFW_BG_INTERVAL=0.01 --env WASMFW_ADV_MAX_PACKET_MS=500)
  for e in $extra; do envs+=(--env "$e"); done  # NAME=VALUE words
  if [[ $tests == demo ]]; then init=$here/demo.sh; else init=$here/guest.sh; envs+=(--env "WASMFW_TESTS=$tests"); fi
  say "$name: booting, tests: $tests (log: target/kmod-tests/$name.log)"
  t0=$SECONDS
  set +e
  "$G/boot.sh" $variant --init "$init" "${envs[@]}" --timeout "$timeout" --scratch "$scratch" \
    --log "$outdir/$name.log" 2>&1 | grep -avE '^\[ *[0-9]+\.[0-9]+\] ' | grep -av '^WASMFW-GUEST: ----- '
  rc=${PIPESTATUS[0]}
  set -e
  durations+=("$name: $((SECONDS - t0)) s (boot + tests: $tests)")
  if [[ $tests == demo ]]; then
    echo; [[ $rc == 0 ]] && echo "demo OK ($((SECONDS - T0)) s)" || echo "demo FAILED (boot.sh exit $rc)"
    exit "$rc"
  fi
  # The guest runner's lines: "<STATUS> <test> <secs> [reason]".
  touch "$scratch/results.txt"
  while read -r st t secs why; do
    result "$st" "$name:$t" "$secs" "$why"
  done < "$scratch/results.txt"
  # Tests named but never reported: the guest died or timed out.
  why=$(cat "$scratch/boot-failure.txt" 2>/dev/null || true)
  IFS=, read -ra want <<< "$tests"
  for t in "${want[@]}"; do
    awk -v t="$t" '$2 == t { found = 1 } END { exit !found }' "$scratch/results.txt" \
      || result FAIL "$name:$t" - "not run: guest exit $rc${why:+: $why}"
  done
  # boot.sh scans the guest's kernel log (and knows the one UML debug
  # lockdep message at t=0 to ignore) into kernel-problems.txt.
  bad=$(cat "$scratch/kernel-problems.txt" 2>/dev/null || true)
  [[ -s $scratch/dmesg.txt ]] || bad="no kernel log (guest exit $rc)"
  if [[ -z $bad && $rc != 124 && $rc != 125 && $rc != 126 ]]; then
    result PASS "$name:kernel-log-clean" -
  else
    result FAIL "$name:kernel-log-clean" - "boot.sh exit $rc: $(head -1 <<< "${bad:-no problem line}")"
    printf '%s\n' "$bad" | head -20 | sed 's/^/    /'
  fi
  [[ -s $scratch/figures.txt ]] && while read -r line; do figures+=("$line"); done < "$scratch/figures.txt"
  cp "$scratch"/{figures.txt,dmesg.txt,kmemleak.txt} "$outdir/" 2>/dev/null || true
  for f in results.txt figures.txt dmesg.txt kernel-problems.txt; do [[ -e $scratch/$f ]] && cp "$scratch/$f" "$outdir/$name-$f"; done
done

# ---- summary -------------------------------------------------------------------
echo
echo "=== kmod tests: results ($RESULTS)"
cat "$RESULTS"
if [[ ${#figures[@]} -gt 0 ]]; then
  echo "=== measured (guest test figure value)"
  printf '%s\n' "${figures[@]}" | awk '{k=$1" "$2" "$3; v=$0; sub(/^[^ ]+ [^ ]+ [^ ]+ /,"",v); if (!(k in seen)) {order[++n]=k}; seen[k]=v} END {for (i=1;i<=n;i++) print "  " order[i] ": " seen[order[i]]}'
fi
echo "=== durations"
printf '  %s\n' "${durations[@]}" "total: $((SECONDS - T0)) s"
pass=$(grep -c '^PASS ' "$RESULTS" || true) fail=$(grep -c '^FAIL ' "$RESULTS" || true) skip=$(grep -c '^SKIP ' "$RESULTS" || true)
echo "$pass passed, $fail failed, $skip skipped"
[[ $fail == 0 ]]
