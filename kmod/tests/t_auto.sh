#!/bin/bash
# `--engine auto` with wasmfw.ko loaded (docs/compiled.md, "In the CLI"):
# log.wasm logs on the packet path, which the compiled tier refuses, so at
# XDP auto falls back to the module's interpreter and says why; status
# names `wasm` and the filter runs (its log lines). At netfilter auto picks
# wasm too. icmp_drop at XDP: compiled if this kernel's verifier accepts
# the translation (x86), else wasm with the reason (UML: misaligned loads);
# either way ping is dropped and status names the engine the load reported.
test_auto() {
  out=$(wf load "$TF/log.wasm" --iface vb --engine auto --json 2>&1) || fail "load log.wasm --engine auto: $out"
  say "log.wasm at xdp: $(jq -c '.attached | {engine, chosen_by, fallback_reason}' <<< "$out")"
  expect_eq "$(jq -r .attached.engine <<< "$out")" wasm "engine auto chose for log.wasm"
  jq -r .attached.fallback_reason <<< "$out" | grep -q 'log on the packet path' \
    || fail "no fallback reason naming log: $out"
  expect_eq "$(wf status --json | jq -r '.[0].engine')" wasm "status engine of log.wasm"
  read -r s _ < <(ping4 3)
  expect_eq "$(wf log --iface vb | grep -c 'echo seq=' || true)" "$s" "log lines of log.wasm (auto -> wasm, xdp)"
  unload

  out=$(wf load policies/icmp.toml --iface vb --hook netfilter --engine auto --json 2>&1) || fail "load at netfilter: $out"
  expect_eq "$(jq -r .attached.engine <<< "$out")" wasm "engine auto chose at netfilter"
  jq -r .attached.fallback_reason <<< "$out" | grep -q 'xdp hook only' || fail "no netfilter reason: $out"
  read -r _ r < <(ping4 2)
  expect_eq "$r" 0 "echo replies under icmp_drop (auto, netfilter)"
  unload

  out=$(wf load policies/icmp.toml --iface vb --engine auto --json 2>&1) || fail "load icmp_drop at xdp: $out"
  engine=$(jq -r .attached.engine <<< "$out")
  say "icmp_drop at xdp: $(jq -c '.attached | {engine, chosen_by, fallback_reason}' <<< "$out")"
  expect_eq "$(wf status --json | jq -r '.[0].engine')" "$engine" "status engine of icmp_drop"
  read -r s r < <(ping4 3)
  expect_eq "$r" 0 "echo replies under icmp_drop (auto, xdp, $engine)"
  expect_eq "$(counter echo_dropped)" "$s" "echo_dropped (auto, xdp, $engine)"
  unload
  read -r s r < <(ping4 2)
  expect_eq "$r" "$s" "echo replies after unload"
}
