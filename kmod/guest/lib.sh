# shellcheck shell=bash
# Shared settings and helpers for kernel.sh, module.sh, boot.sh, selftest.sh.
# Sourced, not executed. Everything that is built lives in the cache
# (outside the repo) so that a fresh clone reuses it and `git status` stays clean.

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this
REPO_DIR=$(cd "$GUEST_DIR/../.." && pwd)
WASMFW_CACHE=${WASMFW_CACHE:-$HOME/.cache/wasmfw}
KCACHE=$WASMFW_CACHE/kernel
TOOLS_DIR=$WASMFW_CACHE/tools

# Debian's rustc-web ships library sources (rustup's toolchain here has no
# rust-src), which the kernel's Rust build needs.
RUSTC_BIN=/usr/bin/rustc
BINDGEN_VERSION=0.73.2
BINDGEN_BIN=$TOOLS_DIR/bin/bindgen
LINUX_SOURCE_PKG=linux-source-6.12
LINUX_SOURCE_TAR=/usr/src/linux-source-6.12.tar.xz
# The debug variant is built with clang (CONFIG_RUST needs CC_IS_CLANG for
# KASAN); its bindgen must then parse clang-22 flags, so use libclang 22 there.
CLANG_BIN=clang-22

log() { printf '[guest] %s\n' "$*" >&2; }
die() { printf '[guest] ERROR: %s\n' "$*" >&2; exit 1; }

# parse_variant <uml|x86> [--debug]: sets ARCH_NAME, DEBUG (0/1), VARIANT.
parse_variant() {
  ARCH_NAME=${1:-}
  case $ARCH_NAME in
    uml|x86) ;;
    *) die "first argument must be uml or x86 (got '${ARCH_NAME}')" ;;
  esac
  DEBUG=0
  if [[ ${2:-} == --debug ]]; then DEBUG=1; fi
  VARIANT=$ARCH_NAME$([[ $DEBUG == 1 ]] && echo -debug || true)
}

# libclang used by bindgen: 19 for gcc builds (as tested), 22 for clang builds.
libclang_path() {
  if [[ $DEBUG == 1 ]]; then echo /usr/lib/llvm-22/lib; else echo /usr/lib/llvm-19/lib; fi
}

# Make variables shared by the kernel build and out-of-tree module builds.
# BINDGEN_TARGET: 6.12's rust/Makefile has no bindgen target for ARCH=um
# ("unknown target triple 'unknown'"), so pass the x86_64 one explicitly.
kmake_vars() {
  local -a v=(RUSTC="$RUSTC_BIN" BINDGEN="$BINDGEN_BIN" BINDGEN_TARGET=x86_64-linux-gnu)
  if [[ $ARCH_NAME == uml ]]; then
    # SUBARCH=x86 (what the kernel derives on an x86_64 host; 64BIT=y makes it
    # x86_64): scripts/Makefile.clang only knows a clang target for "x86".
    v+=(ARCH=um SUBARCH=x86)
  else
    v+=(ARCH=x86_64)
  fi
  if [[ $DEBUG == 1 ]]; then
    # clang for C (KASAN+Rust needs it); GNU binutils stay, so no lld needed.
    v+=(CC="$CLANG_BIN")
  fi
  printf '%s\n' "${v[@]}"
}

# UML loads modules above 2 GiB and arch/um/Makefile compiles Rust as PIE:
# without these flags insmod fails with "Unknown rela relocation: 9"
# (R_X86_64_GOTPCREL); large+static leaves only R_X86_64_64 relocations.
UML_RUSTFLAGS_MODULE="-Ccode-model=large -Crelocation-model=static"

# --- installing what is missing (CI runs on a fresh machine) -------------
_apt_updated=0
apt_install() {
  [[ $# -gt 0 ]] || return 0
  log "installing with apt-get: $*"
  if [[ $_apt_updated == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# need_paths "path:package" ...: install packages whose file is missing.
need_paths() {
  local spec path pkg
  local -a missing=()
  for spec in "$@"; do
    path=${spec%%:*}; pkg=${spec#*:}
    if [[ $path == /* ]]; then
      [[ -e $path ]] || missing+=("$pkg")
    else
      command -v "$path" >/dev/null 2>&1 || missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    apt_install "${missing[@]}"
  fi
}

ensure_build_tools() {
  need_paths make:make gcc:gcc flex:flex bison:bison bc:bc perl:perl cpio:cpio \
    xz:xz-utils pahole:dwarves python3:python3 patch:patch \
    /usr/include/libelf.h:libelf-dev /usr/include/openssl/opensslv.h:libssl-dev \
    "$RUSTC_BIN":rustc-web /usr/lib/rustlib/src/rust/library/core:rust-web-src \
    /usr/lib/llvm-19/lib/libclang.so:libclang-19-dev \
    "$LINUX_SOURCE_TAR":"$LINUX_SOURCE_PKG"
  if [[ $DEBUG == 1 ]]; then
    need_paths "$CLANG_BIN":clang-22 /usr/lib/llvm-22/lib/libclang-22.so.1:libclang1-22
  fi
  ensure_bindgen
}

# bindgen-cli from crates.io, pinned, into the cache's tools dir.
ensure_bindgen() {
  if [[ -x $BINDGEN_BIN ]] && [[ $("$BINDGEN_BIN" --version 2>/dev/null) == "bindgen $BINDGEN_VERSION" ]]; then
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found (needed to install bindgen-cli)"
  log "installing bindgen-cli $BINDGEN_VERSION into $TOOLS_DIR"
  mkdir -p "$TOOLS_DIR"
  nice -n 10 cargo install "bindgen-cli@$BINDGEN_VERSION" --locked --root "$TOOLS_DIR" >&2
}

ensure_boot_tools() {
  case $ARCH_NAME in
    x86) need_paths qemu-system-x86_64:qemu-system-x86 ;;
  esac
  # The guest runs the host's binaries: make sure the usual ones exist.
  need_paths busybox:busybox-static ip:iproute2 insmod:kmod ping:iputils-ping \
    nft:nftables bpftool:bpftool timeout:coreutils
}

# --- kernel cache -----------------------------------------------------------
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not-installed"; }

# Source tree per (package version, patch set): extracted once, read-only
# afterwards (all builds use O=). Prints its path.
src_key() {
  local ver; ver=$(pkg_version "$LINUX_SOURCE_PKG")
  {
    echo "$ver"
    for p in $(arch_patches); do cat "$p"; done
  } | sha256sum | cut -c1-12
}

# Patches applied to the source of this arch (test-only UML kfunc patch).
arch_patches() {
  if [[ $ARCH_NAME == uml ]]; then ls "$GUEST_DIR"/patches/uml-*.patch 2>/dev/null || true; fi
}

config_fragments() {
  echo "$GUEST_DIR/config/common.config"
  echo "$GUEST_DIR/config/$ARCH_NAME.config"
  if [[ $DEBUG == 1 ]]; then
    echo "$GUEST_DIR/config/debug.config"
    [[ -e $GUEST_DIR/config/$ARCH_NAME-debug.config ]] && echo "$GUEST_DIR/config/$ARCH_NAME-debug.config"
  fi
  return 0
}

tool_version() { "$@" 2>/dev/null | head -1 || echo "missing: $*"; }

# The cache key: everything that changes the built kernel.
kernel_hash() {
  {
    echo "variant=$VARIANT"
    echo "linux-source=$(pkg_version "$LINUX_SOURCE_PKG")"
    for f in $(config_fragments) $(arch_patches) "$GUEST_DIR/kernel.sh"; do
      echo "== ${f#"$GUEST_DIR"/}"; cat "$f"
    done
    # lib.sh as a whole is not hashed (boot helpers live there too); the
    # parts of it that shape the kernel build are:
    kmake_vars; echo "uml-rustflags=$UML_RUSTFLAGS_MODULE"
    echo "rustc=$(tool_version "$RUSTC_BIN" --version)"
    echo "bindgen=$BINDGEN_VERSION"
    echo "libclang=$(libclang_path)"
    echo "pahole=$(tool_version pahole --version)"
    echo "gcc=$(tool_version gcc --version)"
    if [[ $DEBUG == 1 ]]; then echo "clang=$(tool_version "$CLANG_BIN" --version)"; fi
  } | sha256sum | cut -c1-16
}

build_dir() { echo "$KCACHE/$VARIANT-$(kernel_hash)"; }
src_dir() { echo "$KCACHE/src-$(src_key)/linux"; }

# The kernel image to boot for this arch, inside a build dir.
kernel_image() {
  if [[ $ARCH_NAME == uml ]]; then echo "$1/linux"; else echo "$1/arch/x86/boot/bzImage"; fi
}

# Prints the KDIR of a complete build, or fails.
require_built() {
  local b; b=$(build_dir)
  [[ -e $b/.wasmfw-stamp ]] || die "kernel $VARIANT not built (no $b/.wasmfw-stamp): run kmod/guest/kernel.sh build $ARCH_NAME$([[ $DEBUG == 1 ]] && echo ' --debug' || true)"
  echo "$b"
}
