#!/bin/bash
# Issue 10 item 4: the kernel engine now against the engine object of an
# older commit (default 6766f40), in one UML boot, same harness: two
# wasmfw.ko built from the CURRENT module sources, differing only in
# wasmfw_engine.o (the old commit's kmod/build-engine.sh output; one from
# before the log ring of uapi v6 also gets bench/engine-compat.c), each
# inserted in turn for `wasmfw-bench guest` (the module's test-run ioctl,
# column kmod-wasm of `cargo xtask bench`), rounds alternating old/new.
# Prints old/new ns per row and the speed-up; writes
# target/bench/engine-compare-<COMMIT>.json.
#
# Both engines run today's filters (target/filters), unless --old-filters:
# then the old rounds run the old commit's own filters, built by that
# tree's `cargo xtask build-filters` (into target/engine-<COMMIT>/src/
# target/filters), so the comparison is (old engine + old filters) vs
# (engine now + filters now), same module sources, same harness and
# policies (policies/*.toml); output
# target/bench/engine-compare-<COMMIT>-old-filters.json.
#   bench/engine-compare.sh [COMMIT] [--old-filters] [--rounds N] [--runs N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
commit=6766f40 rounds=5 runs=20000 old_filters=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift ;;
    --runs) runs=$2; shift ;;
    --old-filters) old_filters=1 ;;
    *) commit=$1 ;;
  esac
  shift
done
base=$root/target/engine-$commit
out=$root/target/bench; mkdir -p "$out"
suffix=; (( old_filters )) && suffix=-old-filters
tag=$commit$suffix

echo "engine-compare: engine object of $commit (git archive into $base/src)" >&2
if [[ ! -s $base/engine-uml.o || ! -f $base/src/Cargo.toml ]]; then
  rm -rf "$base/src" "$base/engine-uml.o"; mkdir -p "$base/src"
  git archive "$commit" | tar -x -C "$base/src"
  nice "$base/src/kmod/build-engine.sh" uml "$base/engine-uml.o" >&2
fi
echo "engine-compare: modules (current sources; engine now / engine of $commit)" >&2
kmod/guest/kernel.sh build uml >/dev/null
ko_new=$(nice kmod/build-module.sh uml | tail -1)
stage=$root/target/kmod-stage-uml-$commit; mkdir -p "$stage"
# kmod/wasmfw holds links to the uapi crate, the engine's C ABI and the verdict: cp follows them.
for f in kmod/wasmfw/*; do [[ $f == */Kbuild ]] || cmp -s "$f" "$stage/$(basename "$f")" || cp "$f" "$stage/"; done
engine=$base/engine-uml.o kbuild=$(cat kmod/wasmfw/Kbuild)
if ! nm "$engine" | grep -q ' T wf_log_ring$'; then
  # An engine from before the log ring (uapi v6): bench/engine-compat.c
  # supplies wf_log_ring and the old wasmfw_host_log(cookie, ...), which
  # the old object is relinked to call.
  objcopy --redefine-sym wasmfw_host_log=wasmfw_compat_host_log "$engine" "$base/engine-uml-compat.o"
  engine=$base/engine-uml-compat.o
  cmp -s bench/engine-compat.c "$stage/wasmfw_engine_compat.c" || cp bench/engine-compat.c "$stage/wasmfw_engine_compat.c"
  kbuild+=$'\nwasmfw-y += wasmfw_engine_compat.o'
else
  rm -f "$stage/wasmfw_engine_compat.c"
fi
[[ $(cat "$stage/Kbuild" 2>/dev/null) == "$kbuild" ]] || printf '%s\n' "$kbuild" > "$stage/Kbuild"
cmp -s "$engine" "$stage/wasmfw_engine.o_shipped" || cp "$engine" "$stage/wasmfw_engine.o_shipped"
ko_old=$(nice kmod/guest/module.sh uml "$stage" | grep '/wasmfw\.ko$')
nice cargo build --quiet --release -p wasmfw -p wasmfw-bench
cargo xtask build-filters >/dev/null   # also installs lld-22 (the filters' wasm-ld)
filter_env=()
if (( old_filters )); then
  # The old tree's own build. Its filters/.cargo/wasm-ld links with
  # `rust-lld -flavor wasm` from the PATH, which a fresh machine does not
  # have (Debian's /usr/bin/rust-lld dangles): a rust-lld here that is
  # Debian's wasm-ld of lld-22 (the LLVM of rustc-web), as today's wasm-ld uses.
  echo "engine-compare: filters of $commit (its own cargo xtask build-filters in $base/src)" >&2
  mkdir -p "$base/bin"
  printf '%s\n' '#!/bin/sh' '[ "$1" = -flavor ] && shift 2' 'exec /usr/lib/llvm-22/bin/wasm-ld "$@"' > "$base/bin/rust-lld"
  chmod +x "$base/bin/rust-lld"
  (cd "$base/src" && PATH=$base/bin:$PATH nice cargo xtask build-filters >&2)
  for f in icmp_drop l4_dos dns_block; do   # the filters wasmfw-bench guest runs
    [[ -s $base/src/target/filters/$f.wasm ]] || { echo "engine-compare: $commit built no $f.wasm" >&2; exit 1; }
  done
  filter_env=(--env "WASMFW_FILTER_DIR_OLD=$base/src/target/filters" --env "WASMFW_FILTER_DIR_NEW=$root/target/filters")
fi

scratch=${WASMFW_CACHE:-$HOME/.cache/wasmfw}/scratch/engine-compare; rm -rf "$scratch"; mkdir -p "$scratch"
echo "engine-compare: UML guest, $rounds rounds x (old, new) x $runs runs per packet" >&2
kmod/guest/boot.sh uml --init "$root/bench/engine-compare-guest.sh" --env "WASMFW_KO_OLD=$ko_old" \
  --env "WASMFW_KO_NEW=$ko_new" --env "WASMFW_ROUNDS=$rounds" --env "WASMFW_RUNS=$runs" "${filter_env[@]}" \
  --timeout 1500 --scratch "$scratch" --log "$out/engine-compare-uml$suffix.log" >&2

# Fastest round per row and engine (UML's clock runs on while the host
# deschedules it: the fastest round is the least disturbed).
if (( old_filters )); then
  filters="old rounds: filters of $commit ($base/src/target/filters); new rounds: today's (target/filters)"
  header="engine + filters of $commit vs engine + filters now"
else
  filters="both: today's filters (target/filters)"
  header="engine of $commit vs engine now, both on today's filters"
fi
jq -s --arg commit "$commit" --arg filters "$filters" --arg header "$header" '
  (map(select(.engine == "old")) ) as $o | (map(select(.engine == "new"))) as $n |
  [range(0; $n[0].rows | length) as $i |
    { filter: $n[0].rows[$i].filter, packet: $n[0].rows[$i].packet,
      old_ns: ([$o[].rows[$i].test_run_ns] | min), new_ns: ([$n[].rows[$i].test_run_ns] | min) }
    | .speedup = ((.old_ns / .new_ns * 100 | round) / 100)]
  | {baseline_commit: $commit, comparison: $header, filters: $filters,
     harness: "wasmfw-bench guest, test_run (kmod-wasm), UML, fastest round", rows: .}
' "$scratch"/compare-*.json > "$out/engine-compare-$tag.json"
jq -r '"kmod-wasm test-run ns/packet, \(.comparison) (same module sources, one UML boot):",
  (.rows[] | "  \(.filter | .+"          " | .[0:10]) \(.packet | .+"                              " | .[0:30]) \(.old_ns|floor) -> \(.new_ns|floor)  \(.speedup)x")' \
  "$out/engine-compare-$tag.json"
