#!/usr/bin/env bash
# Builds wasmfw.ko for a guest kernel: the engine object (build-engine.sh)
# next to the module sources in a staging dir, then Kbuild via
# guest/module.sh against the cached kernel. Prints the .ko path.
#   build-module.sh <uml|x86> [--debug]
set -euo pipefail
arch=${1:?uml|x86}; shift
here=$(cd "$(dirname "$0")" && pwd); root=$(dirname "$here")
stage=$root/target/kmod-stage-$arch
mkdir -p "$stage"
# Copy only what changed, so Kbuild rebuilds only that. wasmfw/ holds
# symlinks to what is defined elsewhere (the ioctl ABI in the wasmfw-uapi
# crate, the engine's C ABI beside its Rust in engine-ffi, the verdict in
# filters/abi): cp follows them.
put() { cmp -s "$1" "$2" || cp "$1" "$2"; }
for f in "$here"/wasmfw/*; do put "$f" "$stage/$(basename "$f")"; done
eng=$root/target/kmod-engine-$arch.o
"$here/build-engine.sh" "$arch" "$eng.new" >&2
put "$eng.new" "$stage/wasmfw_engine.o_shipped"
"$here/guest/module.sh" "$arch" "$@" "$stage" | grep '/wasmfw\.ko$'
