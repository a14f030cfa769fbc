#!/bin/bash
# /dev/wasmfw needs CAP_NET_ADMIN: root without it (setpriv dropping it from
# the bounding set) and an unprivileged uid are refused; the attached filter
# is untouched.
test_caps() {
  load policies/icmp.toml
  nocap() { B setpriv --inh-caps=-net_admin --ambient-caps=-net_admin --bounding-set=-net_admin -- "$@"; }
  grep CapEff /proc/self/status | sed 's/^/    root: /'
  nocap grep CapEff /proc/self/status | sed 's/^/    setpriv: /'
  try() { # try <label> <cmd...>: must fail with a message about permission
    local label=$1 err rc; shift
    set +e; err=$("$@" 2>&1 >/dev/null); rc=$?; set -e
    say "$label: exit $rc: $err"
    [[ $rc != 0 ]] || fail "$label succeeded without CAP_NET_ADMIN"
    grep -qiE 'permi|CAP_NET_ADMIN' <<< "$err" || fail "$label: message does not mention permission: $err"
  }
  try "status without CAP_NET_ADMIN" nocap "$W" status
  try "stats without CAP_NET_ADMIN" nocap "$W" stats --iface vb
  try "unload without CAP_NET_ADMIN" nocap "$W" unload --iface vb
  try "load without CAP_NET_ADMIN" nocap "$W" load policies/l4-dos.toml --iface vb --hook netfilter --replace
  try "test-run without CAP_NET_ADMIN" nocap "$W" test-run policies/icmp.toml --pcap "$TF/mixed.pcap"
  try "status as uid 65534" B setpriv --reuid=65534 --regid=65534 --clear-groups -- "$W" status
  # The raw ioctl with the device already open: EPERM from the module itself.
  set +e
  out=$(nocap python3 -c '
import fcntl, os, struct
fd = os.open("/dev/wasmfw", os.O_RDWR)
buf = bytearray(4)
try:
    fcntl.ioctl(fd, (2 << 30) | (4 << 16) | (0xf7 << 8) | 0, buf); print("ok")
except OSError as e:
    print("errno", e.errno, e.strerror)
' 2>&1)
  set -e
  say "raw WASMFW_IOC_VERSION without CAP_NET_ADMIN: $out"
  [[ $out == "errno 1 "* ]] || fail "raw ioctl without CAP_NET_ADMIN: want EPERM, got $out"
  read -r s r < <(ping4 2)
  expect_eq "$r" 0 "echo replies: icmp_drop still attached after the refused calls"
  expect_eq "$(counter echo_dropped)" "$s" "echo_dropped"
  unload
}
