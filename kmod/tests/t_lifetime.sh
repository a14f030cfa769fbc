#!/bin/bash
# Namespace and device lifetime with filters attached at both hooks
# (netfilter, and the module's XDP slot, published through the raw ATTACH
# ioctl: the xdp-bridge program is not needed for the lifetime rules):
#   - `ip link del` of a filtered interface,
#   - moving a filtered interface to another namespace,
#   - `ip netns del` of a namespace with filters attached.
# Each time the module must detach and free both filters (`status` and
# the raw LIST no longer show them, the module logs why), and a deleted
# namespace must really go away: its veth peer in the init namespace
# disappears (an attachment pinning the namespace would keep it).
# Also: LIST reports the attachment's namespace inode (netns_ino).
test_lifetime() {

  # attach_both <netns> <ifname>: icmp.toml at netfilter (CLI), ok.wasm in the
  # XDP slot (raw ioctls); prints the XDP filter's id.
  attach_both() {
    ip netns exec "$1" "$W" load policies/icmp.toml --iface "$2" --hook netfilter >/dev/null 2>&1 \
      || fail "netfilter load on $1/$2"
    local out id
    out=$(ip netns exec "$1" $IO load "$TF/ok.wasm"); id=$(sed -n 's/^id \([0-9]*\) .*/\1/p' <<< "$out")
    [[ -n $id ]] || fail "raw load of ok.wasm: $out"
    out=$(ip netns exec "$1" $IO attach "$id" 2 "$2")
    [[ $out == attached ]] || fail "raw XDP attach on $1/$2: $out"
    echo "$id"
  }
  # attached_on <ifindex> <netns inode>: how many filters LIST shows there.
  attached_on() { $IO list | awk -v i="$1" -v n="$2" '$6 == i && $8 == n' | wc -l; }
  wait_gone() { # wait_gone <what> <cmd...>: until cmd fails, 10 s at most
    local what=$1; shift
    for _ in $(seq 100); do "$@" >/dev/null 2>&1 || return 0; sleep 0.1; done
    fail "$what still there after 10 s"
  }

  # --- netns_ino: LIST names the namespace of an attachment -----------------
  ino_b=$(stat -L -c %i /run/netns/wfb)
  attach_both wfb vb >/dev/null
  ifb=$(ip -n wfb -o link show vb | cut -d: -f1)
  expect_eq "$(attached_on "$ifb" "$ino_b")" 2 "filters LIST shows on vb with netns_ino of wfb"
  wf unload --iface vb >/dev/null
  B $IO detach vb >/dev/null
  expect_eq "$($IO list | wc -l)" 0 "filters left after unload/detach"

  # --- ip link del --------------------------------------------------------------
  ip -n wfb link add vx type veth peer name vy
  ip -n wfb link set vx up; ip -n wfb link set vy up
  ifx=$(ip -n wfb -o link show vx | cut -d: -f1)
  attach_both wfb vx >/dev/null
  expect_eq "$(attached_on "$ifx" "$ino_b")" 2 "filters on vx before ip link del"
  ip -n wfb link del vx
  expect_eq "$($IO list | wc -l)" 0 "filters listed after ip link del vx"
  st=$(wf status 2>&1 || true)
  grep -q 'vx' <<< "$st" && fail "status still lists vx: $st"

  # --- move to another namespace -------------------------------------------------
  ip -n wfb link add vx type veth peer name vy
  ifx=$(ip -n wfb -o link show vx | cut -d: -f1)
  attach_both wfb vx >/dev/null
  expect_eq "$(attached_on "$ifx" "$ino_b")" 2 "filters on vx before the move"
  ip -n wfb link set vx netns wfa
  expect_eq "$($IO list | wc -l)" 0 "filters listed after moving vx to wfa"
  # The moved device works in its new namespace, unfiltered.
  ip -n wfa link del vx

  # --- ip netns del ------------------------------------------------------------------
  ip netns add wfc
  ip link add vd type veth peer name vc netns wfc
  ip -n wfc link set lo up; ip -n wfc link set vc up; ip link set vd up
  ino_c=$(stat -L -c %i /run/netns/wfc)
  ifc=$(ip -n wfc -o link show vc | cut -d: -f1)
  attach_both wfc vc >/dev/null
  attach_both wfc lo >/dev/null
  expect_eq "$(attached_on "$ifc" "$ino_c")" 2 "filters on wfc/vc before ip netns del"
  ip netns del wfc
  # The namespace is dismantled asynchronously (cleanup_net): its veth peer
  # vd in this namespace goes with it, unless something pins the namespace.
  wait_gone "veth peer vd of the deleted namespace (namespace leaked?)" ip link show vd
  wait_gone "filters of the deleted namespace" bash -c "[[ -n \$($IO list) ]]"
  expect_eq "$($IO list | wc -l)" 0 "filters listed after ip netns del wfc"

  log=$(klog)
  n=$(grep -c 'detached from ifindex' <<< "$log" || true)
  grep 'detached from ifindex' <<< "$log" | tail -4 | sed 's/^/    dmesg: /'
  expect_ge "$n" 8 "filters detached by the kernel (2 link del + 2 move + 4 netns del)"
  figure "lifetime_auto_detached" "$n"
  # Nothing stuck: the module unloads.
  rmmod wasmfw || fail "rmmod after the lifetime cases"
}
