#!/bin/bash
# policies/icmp.toml on vb (netfilter): IPv4 and IPv6 ping dropped and
# counted, TCP still connects; after unload ping works again.
test_icmp() {
  tcp_listen 10.0.0.2 8080
  tcp_listen fd00::2 8081

  load policies/icmp.toml
  read -r s4 r4 < <(ping4 5)
  read -r s6 r6 < <(ping6 5)
  expect_eq "$r4" 0 "IPv4 echo replies under icmp_drop"
  expect_eq "$r6" 0 "IPv6 echo replies under icmp_drop"
  show_stats
  expect_eq "$(counter echo_dropped)" $((s4 + s6)) "echo_dropped (pings sent: $s4 + $s6)"
  expect_ge "$(counter packets)" $((s4 + s6)) "packets"
  expect_ge "$(counter drop)" $((s4 + s6)) "drop"
  r=$(tcp_connect 10.0.0.2 8080); expect_eq "$r" hello "TCP over IPv4 under icmp_drop"
  r=$(tcp_connect fd00::2 8081); expect_eq "$r" hello "TCP over IPv6 under icmp_drop"
  expect_eq "$(counter echo_dropped)" $((s4 + s6)) "echo_dropped after TCP"
  st=$(wf status 2>&1); echo "$st" | sed 's/^/    /'
  grep -q 'icmp_drop' <<< "$st" || fail "wasmfw status does not list icmp_drop"

  unload
  read -r s4 r4 < <(ping4 3)
  read -r s6 r6 < <(ping6 3)
  expect_eq "$r4" "$s4" "IPv4 echo replies after unload"
  expect_eq "$r6" "$s6" "IPv6 echo replies after unload"
  if out=$(wf stats --iface vb 2>&1); then fail "stats after unload succeeded: $out"; fi
  say "stats after unload: $out"
}
