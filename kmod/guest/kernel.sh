#!/bin/bash
# Build and cache the development kernel (Linux 6.12 + Rust-for-Linux) that the
# wasmfw module is tested in.
#
#   kernel.sh build  <uml|x86> [--debug]   build unless a complete cached build exists
#   kernel.sh config <uml|x86> [--debug]   only generate and check .config
#   kernel.sh path   <uml|x86> [--debug]   print the build dir (KDIR); fails if not built
#   kernel.sh hash   <uml|x86> [--debug]   print the cache key
#
# Cache: ${WASMFW_CACHE:-$HOME/.cache/wasmfw}/kernel/<variant>-<hash>/ (O= build
# dir, also the KDIR for out-of-tree modules) and src-<key>/linux (the source,
# extracted from Debian's linux-source-6.12, patched, then never written to).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 2 ]] || usage
CMD=$1; shift
parse_variant "$@"

# Extract the source once per (package version, patch set), patch it, then
# move it into place so an interrupted extraction is never mistaken for a tree.
prepare_source() {
  local s; s=$(src_dir)
  if [[ -e $s/.wasmfw-src-stamp ]]; then echo "$s"; return; fi
  local parent; parent=$(dirname "$s")
  rm -rf "$parent"; mkdir -p "$parent"
  log "extracting $LINUX_SOURCE_TAR into $parent"
  local tmp=$parent/linux.tmp
  mkdir -p "$tmp"
  tar -xf "$LINUX_SOURCE_TAR" -C "$tmp" --strip-components=1
  local p
  for p in $(arch_patches); do
    log "applying $(basename "$p")"
    patch -d "$tmp" -p1 --forward --batch --fuzz=0 -s < "$p" || die "patch $p does not apply"
  done
  pkg_version "$LINUX_SOURCE_PKG" > "$tmp/.wasmfw-src-stamp"
  mv "$tmp" "$s"
  echo "$s"
}

# Every option line of the fragments must hold after olddefconfig: Kconfig
# silently drops options whose dependencies are unmet.
verify_config() {
  local b=$1 line sym want have
  local -a bad=()
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      sym=${BASH_REMATCH[1]}; want=${BASH_REMATCH[2]}
      have=$(grep -E "^$sym=" "$b/.config" | head -1 | cut -d= -f2- || true)
      [[ $have == "$want" ]] || bad+=("$sym: wanted $want, got ${have:-<not set>}")
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set ]]; then
      sym=${BASH_REMATCH[1]}
      if grep -qE "^$sym=" "$b/.config"; then bad+=("$sym: wanted unset, got $(grep -E "^$sym=" "$b/.config")"); fi
    fi
  done < <(cat $(config_fragments))
  if [[ ${#bad[@]} -gt 0 ]]; then
    printf '[guest]   %s\n' "${bad[@]}" >&2
    die "${#bad[@]} requested option(s) not set in $b/.config (missing dependency or toolchain?)"
  fi
}

configure() {
  local s=$1 b=$2
  local -a mv; mapfile -t mv < <(kmake_vars)
  mkdir -p "$b"
  log "configuring $VARIANT in $b"
  # tinyconfig + fragments; merge_config -m only merges text, then
  # olddefconfig resolves dependencies with the real toolchain (RUSTC,
  # BINDGEN: RUST_IS_AVAILABLE is probed here).
  make -s -C "$s" O="$b" "${mv[@]}" tinyconfig >/dev/null
  (cd "$b" && "$s/scripts/kconfig/merge_config.sh" -m -O "$b" "$b/.config" $(config_fragments) >/dev/null)
  make -s -C "$s" O="$b" "${mv[@]}" LIBCLANG_PATH="$(libclang_path)" olddefconfig >/dev/null
  verify_config "$b"
}

build() {
  ensure_build_tools
  local b; b=$(build_dir)
  if [[ -e $b/.wasmfw-stamp ]]; then log "up to date: $b"; echo "$b"; return 0; fi
  mkdir -p "$KCACHE"
  # One builder per variant+hash at a time (e.g. two selftests in parallel).
  exec 9>"$b.lock"
  flock 9
  if [[ -e $b/.wasmfw-stamp ]]; then log "up to date: $b"; echo "$b"; return 0; fi
  local s; s=$(prepare_source)
  export LIBCLANG_PATH; LIBCLANG_PATH=$(libclang_path)
  configure "$s" "$b"
  [[ $CMD == config ]] && { echo "$b"; return 0; }
  local -a mv; mapfile -t mv < <(kmake_vars)
  [[ $ARCH_NAME == uml ]] && mv+=(RUSTFLAGS_MODULE="$UML_RUSTFLAGS_MODULE")
  local t0=$SECONDS
  log "building $VARIANT (log: $b/build.log); this takes 5-30 min"
  if ! nice -n 10 make -C "$s" O="$b" "${mv[@]}" -j2 all > "$b/build.log" 2>&1; then
    grep -nE 'error|Error' "$b/build.log" | tail -20 >&2 || true
    tail -20 "$b/build.log" >&2
    die "kernel build failed (full log: $b/build.log)"
  fi
  [[ -e $(kernel_image "$b") ]] || die "build finished but $(kernel_image "$b") is missing"
  echo "$((SECONDS - t0))" > "$b/.wasmfw-build-seconds"
  log "built $VARIANT in $((SECONDS - t0)) s"
  # The stamp goes last: its presence means the build is complete.
  kernel_hash > "$b/.wasmfw-stamp"
  prune_old "$b"
  echo "$b"
}

# Older builds of the same variant are dead weight (GBs of debug info).
prune_old() {
  [[ ${WASMFW_KEEP_OLD_KERNELS:-0} == 1 ]] && return 0
  local keep=$1 d
  for d in "$KCACHE/$VARIANT"-*; do
    [[ -d $d && $d != "$keep" && $d =~ /$VARIANT-[0-9a-f]{16}$ ]] || continue
    log "removing old build $d"
    rm -rf "$d" "$d.lock"
  done
}

case $CMD in
  build|config) build ;;
  path) require_built ;;
  hash) kernel_hash ;;
  *) usage ;;
esac
