#!/bin/bash
# XDP through xdp-bridge and the module's kfunc (see xdp-guest.sh).
exec bash "$WASMFW_REPO/kmod/tests/xdp-guest.sh"
