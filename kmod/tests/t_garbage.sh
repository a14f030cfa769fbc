#!/bin/bash
# A file that is not Wasm, and a truncated real filter, are refused with one
# line naming "invalid module"; nothing is left loaded.
test_garbage() {
  D=$(mktemp -d)
  head -c 1000 "$REPO/target/filters/icmp_drop.wasm" > "$D/truncated.wasm"
  for m in "$TF/garbage.wasm" "$D/truncated.wasm"; do
    set +e
    err=$(wf load "$m" --iface vb --hook netfilter 2>&1 >/dev/null); rc=$?
    set -e
    say "$(basename "$m"): exit $rc: $err"
    [[ $rc != 0 ]] || fail "$(basename "$m") was accepted"
    [[ $(wc -l <<< "$err") == 1 ]] || fail "error is not one line: $err"
    [[ $err == wasmfw:* && $err == *"invalid module"* ]] || fail "error does not say 'invalid module': $err"
  done
  st=$(wf status 2>&1)
  grep -q ' vb ' <<< " $st " && fail "something is attached on vb after refused loads: $st"
  read -r s r < <(ping4 2)
  expect_eq "$r" "$s" "ping after refused loads"
  # The module itself, without the CLI's checks in front: the raw ioctl.
  for m in "$TF/garbage.wasm" "$D/truncated.wasm"; do
    out=$($IO load "$m")
    say "raw WASMFW_IOC_LOAD $(basename "$m"): $out"
    [[ $out == "errno 22 "* ]] || fail "module accepted or wrong errno for $(basename "$m"): $out"
  done
  out=$($IO load "$TF/ok.wasm")
  say "raw WASMFW_IOC_LOAD ok.wasm: $out"
  [[ $out == id* ]] || fail "raw load of ok.wasm failed: $out"
  $IO unload "$(cut -d' ' -f2 <<< "$out")" >/dev/null
  log=$(klog); grep 'load refused' <<< "$log" | tail -2 | sed 's/^/    dmesg: /'
}
