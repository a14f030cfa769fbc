#!/bin/bash
# Build an out-of-tree kernel module (a dir with a Kbuild file) against the
# cached development kernel; prints the path of each built .ko on stdout.
#
#   module.sh <uml|x86> [--debug] <module-dir> [extra make args...]
#
# The module is built in a copy under ${WASMFW_CACHE:-$HOME/.cache/wasmfw}/modules/
# (one per kernel variant), so UML and x86 objects never mix and the repo
# stays clean. make gets WASMFW_SRC=<module-dir> for Kbuild files that need
# to reach files next to the original directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[[ $# -ge 2 ]] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
parse_variant "$@"
shift; [[ $DEBUG == 1 ]] && shift
SRC=$(cd "${1:?module dir}" && pwd); shift
[[ -e $SRC/Kbuild || -e $SRC/Makefile ]] || die "$SRC has no Kbuild"

KDIR=$(require_built)
ensure_build_tools
OUT=$WASMFW_CACHE/modules/$(basename "$KDIR")/$(echo "$SRC" | sed 's|^/||; s|/|_|g')
mkdir -p "$OUT"

# Copy only files whose content changed: they get a new mtime, so make
# rebuilds exactly what changed (a plain cp -a could keep an old mtime).
while IFS= read -r -d '' f; do
  rel=${f#"$SRC"/}
  if ! cmp -s "$f" "$OUT/$rel"; then
    mkdir -p "$(dirname "$OUT/$rel")"
    cp "$f" "$OUT/$rel"
  fi
done < <(find "$SRC" \( -name target -o -name '.git' \) -prune -o -type f \
  ! -name '*.o' ! -name '*.ko' ! -name '*.mod' ! -name '*.mod.c' ! -name '.*.cmd' \
  ! -name Module.symvers ! -name modules.order -print0)

mapfile -t MV < <(kmake_vars)
[[ $ARCH_NAME == uml ]] && MV+=(RUSTFLAGS_MODULE="$UML_RUSTFLAGS_MODULE")
t0=$SECONDS
if ! nice -n 10 make -C "$KDIR" M="$OUT" "${MV[@]}" LIBCLANG_PATH="$(libclang_path)" \
     WASMFW_SRC="$SRC" -j2 "$@" modules >&2; then
  die "module build failed in $OUT"
fi
log "module built for $VARIANT in $((SECONDS - t0)) s"
find "$OUT" -maxdepth 1 -name '*.ko' | sort
