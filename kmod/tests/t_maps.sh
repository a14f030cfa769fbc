#!/bin/bash
# Live list edits (`wasmfw map set|del` with typed keys) change the next
# verdict of the Wasm filters in the kernel: l4_dos's blocked_ports and
# allow (policies/l4-dos.toml), dns_block's dns_names (policies/dns-block.toml).
# The source the allow list lets through.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_SENDER_ADDRS=10.0.0.3/24
test_maps() {
  tcp_listen 0.0.0.0 8080
  tcp_listen 0.0.0.0 23

  blocked() { [[ $1 == *[Tt]imeout* || $1 == *"timed out"* ]]; }

  load policies/l4-dos.toml
  r=$(tcp_connect 10.0.0.2 8080 10.0.0.3); expect_eq "$r" hello "port 8080 before the edit"
  wf map set --iface vb blocked_ports 8080 | sed 's/^/    /'
  r=$(tcp_connect 10.0.0.2 8080 10.0.0.3 1); blocked "$r" || fail "port 8080 answered after map set: $r"
  say "port 8080 after map set: $r"
  expect_ge "$(counter blocked_port)" 1 "blocked_port"
  got=$(wf map get --iface vb blocked_ports 8080 --json | jq -r '.as')
  expect_eq "$got" 8080 "map get blocked_ports 8080 (typed form)"
  wf map del --iface vb blocked_ports 8080 | sed 's/^/    /'
  r=$(tcp_connect 10.0.0.2 8080 10.0.0.3); expect_eq "$r" hello "port 8080 after map del"

  # allow: a /32 (a prefix length the policy does not use) bypasses port 23.
  r=$(tcp_connect 10.0.0.2 23 10.0.0.3 1); blocked "$r" || fail "port 23 (policy) answered: $r"
  wf map set --iface vb allow 10.0.0.3 | sed 's/^/    /'
  r=$(tcp_connect 10.0.0.2 23 10.0.0.3); expect_eq "$r" hello "port 23 from 10.0.0.3 once allowed"
  expect_ge "$(counter allowed)" 1 "allowed"
  r=$(tcp_connect 10.0.0.2 23 10.0.0.1 1); blocked "$r" || fail "port 23 from 10.0.0.1 answered: $r"
  wf map dump --iface vb allow | sed 's/^/    /'
  wf map del --iface vb allow 10.0.0.3/32 | sed 's/^/    /'
  r=$(tcp_connect 10.0.0.2 23 10.0.0.3 1); blocked "$r" || fail "port 23 answered after map del allow: $r"
  say "port 23 from 10.0.0.3 after map del allow: $r"
  unload
  stop_listeners

  # dns_block: a UDP responder on 10.0.0.2:53 echoes each query; a name not
  # in the policy is answered until `map set dns_names` adds a suffix of it.
  ip netns exec wfb python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.0.2", 53))
while True:
    d, a = s.recvfrom(2048); s.sendto(d, a)
' >/dev/null &
  LISTENER_PIDS+=("$!")
  sleep 0.5
  dns_query() { # dns_query <name>: "answered" or "timeout"
    A python3 -c '
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[1].split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(q, ("10.0.0.2", 53))
try:
    s.recv(2048); print("answered")
except socket.timeout:
    print("timeout")
' "$1"
  }
  load policies/dns-block.toml
  expect_eq "$(dns_query ads.example.com)" timeout "ads.example.com (policy)"
  expect_eq "$(dns_query www.example.org)" answered "www.example.org before the edit"
  wf map set --iface vb dns_names Example.ORG | sed 's/^/    /'
  expect_eq "$(dns_query www.example.org)" timeout "www.example.org after map set dns_names example.org"
  expect_eq "$(counter blocked)" 2 "blocked"
  wf map del --iface vb dns_names example.org | sed 's/^/    /'
  expect_eq "$(dns_query www.example.org)" answered "www.example.org after map del"
  wf map del --iface vb dns_names ads.example.com | sed 's/^/    /'
  expect_eq "$(dns_query ads.example.com)" answered "ads.example.com after map del (policy entry)"
  unload
}
