#!/bin/bash
# policies/l4-dos.toml (syn_rate 10/s, syn_burst 20, blocked ports 23/2323):
# a SYN flood from 10.0.0.1 is cut to the bucket while a second source
# (10.0.0.3) still connects; a blocked port is dropped.
# The second source.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_SENDER_ADDRS=10.0.0.3/24
test_l4_dos() {
  tcp_listen 0.0.0.0 8080
  tcp_listen 0.0.0.0 23
  r=$(tcp_connect 10.0.0.2 23 10.0.0.3); expect_eq "$r" hello "port 23 before the filter"

  load policies/l4-dos.toml
  N=${WASMFW_SYNS:-200}
  t0=$(now)
  A hping3 -q -S -p 8080 -c "$N" -i u1000 10.0.0.2 2>&1 | tail -3 | sed 's/^/    /' || true
  secs=$(elapsed "$t0")
  show_stats
  limited=$(counter syn_limited)
  expect_ge "$limited" 1 "syn_limited after $N SYNs in ${secs}s"
  passed=$((N - limited))
  # Tokens: burst 20 at the first SYN, then 10/s (+1 for rounding at the edges).
  max=$(echo "20 + 10 * $secs + 1" | bc | cut -d. -f1)
  say "SYNs passed: $passed (bucket allows 20 + 10/s * ${secs}s = up to $max)"
  figure syn_flood_passed "$passed/$N in ${secs}s"
  [[ $passed -ge 20 && $passed -le $max ]] || fail "SYNs passed $passed, want 20..$max"
  expect_eq "$(counter drop)" "$limited" "drop (only SYN limiting so far)"

  r=$(tcp_connect 10.0.0.2 8080 10.0.0.3); expect_eq "$r" hello "second source 10.0.0.3 connects during the limit"
  r=$(tcp_connect 10.0.0.2 23 10.0.0.3 1)
  [[ $r == *[Tt]imeout* || $r == *"timed out"* ]] || fail "port 23 (blocked) answered: $r"
  say "blocked port 23: $r"
  expect_ge "$(counter blocked_port)" 1 "blocked_port"
  unload
}
