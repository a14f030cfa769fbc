#!/usr/bin/env bash
# Test only (issue 12): builds wasmfw_spectest.ko for a guest kernel. The
# executor (kmod/spectest/ffi over kmod/spectest/exec) is compiled exactly
# as kmod/build-engine.sh compiles the product's engine (same target spec,
# RUSTFLAGS, -Zbuild-std, wasmi features), reduced to one object exporting
# only wfs_*, then linked with module/ through kmod/guest/module.sh.
# Prints the .ko path.
#   build.sh <uml|x86>
set -euo pipefail
arch=${1:?uml|x86}
here=$(cd "$(dirname "$0")" && pwd); kmod=$(dirname "$here"); root=$(dirname "$kmod")
case $arch in
  x86) spec=$kmod/targets/x86_64-linux-kmod.json ;;
  uml) spec=$kmod/targets/x86_64-um-kmod.json ;;
  *) echo "build.sh: unknown arch $arch" >&2; exit 2 ;;
esac
[ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src; }
tdir=$root/target/kmod-spectest-$arch
# The flags of kmod/build-engine.sh, unchanged.
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
RUSTFLAGS="-Cembed-bitcode=n -Cforce-unwind-tables=n -Ctarget-cpu=x86-64 -Crelocation-model=static -Csymbol-mangling-version=v0" \
  cargo build --quiet --release --manifest-path "$here/ffi/Cargo.toml" \
    -Zbuild-std=core,alloc -Zjson-target-spec --target "$spec" --target-dir "$tdir"
lib=$(ls "$tdir"/*/release/libwasmfw_spectest_ffi.a)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && ar x "$lib")
syms=(wfs_session_new wfs_session_free wfs_exec)
ld -r --gc-sections -z noexecstack "${syms[@]/#/--undefined=}" -o "$work/all.o" "$work"/*.o
stage=$root/target/kmod-spectest-stage-$arch
mkdir -p "$stage"
objcopy "${syms[@]/#/--keep-global-symbol=}" --strip-debug --remove-section=.comment "$work/all.o" "$work/engine.o"
undef=$(nm -u "$work/engine.o" | awk '{print $2}' | sort -u | tr '\n' ' ')
echo "kmod/spectest/build.sh: executor object $(stat -c %s "$work/engine.o") bytes; needs from the kernel: $undef" >&2
# Copy only what changed, so Kbuild rebuilds only that.
for f in "$here"/module/*; do cmp -s "$f" "$stage/$(basename "$f")" || cp "$f" "$stage/"; done
cmp -s "$work/engine.o" "$stage/wasmfw_spectest_engine.o_shipped" || cp "$work/engine.o" "$stage/wasmfw_spectest_engine.o_shipped"
"$kmod/guest/module.sh" "$arch" "$stage" | grep '/wasmfw_spectest\.ko$'
