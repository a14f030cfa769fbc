#!/bin/bash
# Writes target/test-filters/ (loop.wasm, oob.wasm, ok.wasm, garbage.wasm, deep.wasm, too_deep.wasm,
# mixed.pcap) with xtask/src/testfilters.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec nice cargo xtask build-test-filters
