#!/usr/bin/env bash
# Builds the engine (wasmi, no_std) as one relocatable object for the
# kernel module: kmod/engine-ffi as a staticlib for a kernel target, linked
# with `ld -r` and stripped down to the wf_* entry points, so its private
# copy of core/alloc never clashes with the kernel's symbols.
#   build-engine.sh <uml|x86> OUT.o
set -euo pipefail
arch=${1:?uml|x86}; out=${2:?output object}
here=$(cd "$(dirname "$0")" && pwd); root=$(dirname "$here")
case $arch in
  x86) spec=$here/targets/x86_64-linux-kmod.json ;;  # code model kernel, like C
  uml) spec=$here/targets/x86_64-um-kmod.json ;;     # UML modules load above 2 GiB: large code model
  *) echo "build-engine.sh: unknown arch $arch" >&2; exit 2 ;;
esac
[ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src; }
tdir=$root/target/kmod-engine-$arch
# Mirrors what Kbuild passes rustc for kernel objects (no unwind tables, no
# SSE: the target spec is soft-float with the red zone disabled).
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
RUSTFLAGS="-Cembed-bitcode=n -Cforce-unwind-tables=n -Ctarget-cpu=x86-64 -Crelocation-model=static -Csymbol-mangling-version=v0" \
  cargo build --quiet --release --manifest-path "$here/engine-ffi/Cargo.toml" \
    -Zbuild-std=core,alloc -Zjson-target-spec --target "$spec" --target-dir "$tdir"
lib=$(ls "$tdir"/*/release/libwasmfw_engine_ffi.a)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && ar x "$lib")
syms=(wf_load wf_run wf_free wf_counters wf_maps wf_map_update wf_map_delete wf_map_dump wf_log_ring)
ld -r --gc-sections -z noexecstack "${syms[@]/#/--undefined=}" -o "$work/all.o" "$work"/*.o
objcopy "${syms[@]/#/--keep-global-symbol=}" --strip-debug --remove-section=.comment "$work/all.o" "$out"
# What the object still needs from the kernel must be plain C symbols.
undef=$(nm -u "$out" | awk '{print $2}' | sort -u | tr '\n' ' ')
echo "build-engine.sh: $out ($(stat -c %s "$out") bytes); needs from the kernel: $undef"
