#!/usr/bin/env bash
# Test only (issue 12), run inside the guest by `cargo xtask spec`
# (kmod/guest/boot.sh): inserts wasmfw_spectest.ko ($WFS_KO), feeds
# $WASMFW_SCRATCH/requests.bin through /dev/wasmfw_spectest with the host's
# xtask binary ($WFS_XTASK spec-guest) and leaves responses.bin there.
set -uo pipefail
insmod "$WFS_KO" || exit 1
"$WFS_XTASK" spec-guest "$WASMFW_SCRATCH/requests.bin" "$WASMFW_SCRATCH/responses.bin"
rc=$?
rmmod wasmfw_spectest || rc=1
exit $rc
