#!/bin/bash
# PID 1 inside the guest (started by boot.sh through init=). Mounts what a
# test needs, runs the test script, records its exit status and the kernel
# log in the scratch dir, then powers the guest off.
#
# Inputs come as environment variables, which the kernel hands to init from
# the unknown name=value words of its command line:
#   WASMFW_GUEST    uml | x86
#   WASMFW_SCRIPT   the test script (host path, run with bash)
#   WASMFW_SCRATCH  writable host dir shared with boot.sh (status, dmesg)
#   WASMFW_REPO     the repo, mounted writable at the same path
# No `set -e`: whatever happens, the guest must reach power-off.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

# --env WASMFW_TRACE=1: trace this wrapper with timestamps (slow-boot hunting)
if [[ ${WASMFW_TRACE:-0} == 1 ]]; then PS4='+ ${EPOCHREALTIME} '; set -x; fi

if [[ $$ != 1 ]]; then
  echo "guest-init.sh: not PID 1, refusing to run (it mounts over / and powers off)" >&2
  exit 1
fi

poweroff_now() {
  sync
  # busybox's -f calls reboot(2) directly: no init system here to ask.
  busybox poweroff -f
  busybox reboot -f   # qemu runs with -no-reboot, so this also ends it
  sleep 5
}

uptime_s() { local up _; read -r up _ < /proc/uptime; echo "$up"; }

fail_early() { echo "WASMFW-GUEST: setup failed: $*"; echo 125 > "$WASMFW_SCRATCH/status" 2>/dev/null; poweroff_now; }

# Under TCG every exec of a dynamically linked host binary over 9p costs
# ~0.3-0.8 s, so the setup uses bash builtins and the static busybox only.
mounted() { # is $1 a mount point? (reads /proc/mounts without forking)
  local _src mp _rest
  while read -r _src mp _rest; do [[ $mp == "$1" ]] && return 0; done < /proc/mounts
  return 1
}

mnt() { # mnt <type> <source> <dir> [options]: mount unless already mounted
  local type=$1 src=$2 dir=$3 opts=${4:-}
  mounted "$dir" && return 0
  [[ -d $dir ]] || busybox mkdir -p "$dir" 2>/dev/null
  busybox mount -t "$type" ${opts:+-o "$opts"} "$src" "$dir"
}

# The root (host /) is read-only; writable and kernel filesystems go on top.
# proc first and unconditionally: until then /proc is the HOST's /proc, seen
# through 9p/hostfs, and its mounts file would lie. (devtmpfs on /dev is
# already mounted by the kernel.)
busybox mount -t proc proc /proc
mnt sysfs sysfs /sys
mnt devtmpfs devtmpfs /dev
mnt devpts devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt tmpfs tmpfs /dev/shm mode=1777
mnt tmpfs tmpfs /run mode=755      # ip netns keeps its bind mounts here
# The guest's own /tmp would hide a cache under the host's /tmp
# (WASMFW_CACHE=/tmp/...: kernels and modules are read from there): carry
# it over with a bind mount. (The repo and scratch are mounted below.)
keep=${WASMFW_CACHE:-}
if [[ $keep == /tmp/* && -d $keep ]]; then
  busybox mkdir -p /run/wasmfw-keep && busybox mount --bind "$keep" /run/wasmfw-keep || keep=''
else
  keep=''
fi
mnt tmpfs tmpfs /tmp mode=1777
if [[ -n $keep ]]; then
  busybox mkdir -p "$keep" && busybox mount --move /run/wasmfw-keep "$keep" || fail_early "keeping $keep"
fi
mnt debugfs debugfs /sys/kernel/debug
mnt bpf bpf /sys/fs/bpf mode=700
mnt cgroup2 cgroup2 /sys/fs/cgroup
[[ -d /sys/kernel/tracing ]] && mnt tracefs tracefs /sys/kernel/tracing

# Writable shares: the repo and the scratch dir, at their host paths.
case $WASMFW_GUEST in
  uml)
    mnt hostfs none "$WASMFW_SCRATCH" "$WASMFW_SCRATCH" || fail_early "scratch mount"
    mnt hostfs none "$WASMFW_REPO" "$WASMFW_REPO" || fail_early "repo mount"
    ;;
  x86)
    # tags set by boot.sh's -virtfs options
    mnt 9p scratch "$WASMFW_SCRATCH" trans=virtio,version=9p2000.L,msize=262144 || fail_early "scratch mount"
    mnt 9p repo "$WASMFW_REPO" trans=virtio,version=9p2000.L,msize=262144,cache=mmap || fail_early "repo mount"
    ;;
esac
busybox hostname "wasmfw-$WASMFW_GUEST" 2>/dev/null
busybox ip link set lo up 2>/dev/null

# kmemleak baseline: report what boot left unreferenced and mark it as known
# ("clear"), so the final report only holds what the test leaked (UML, where
# boot.sh turns kmemleak off by default, shows ~540 false positives here).
# Objects younger than 5 s are never reported, hence the wait after boot.
# (The file exists even with kmemleak=off; then writes fail with EPERM.)
KMEMLEAK=0
if [[ -w /sys/kernel/debug/kmemleak ]] && { echo scan > /sys/kernel/debug/kmemleak; } 2>/dev/null; then
  KMEMLEAK=1
  up=$(uptime_s); up=${up%.*}
  if (( up < 6 )); then sleep $((6 - up)); fi
  # two scans: the first only records each object's checksum
  echo scan > /sys/kernel/debug/kmemleak
  echo scan > /sys/kernel/debug/kmemleak
  echo clear > /sys/kernel/debug/kmemleak
fi

echo "WASMFW-GUEST: up after $(uptime_s) s, kernel $(uname -r), running $WASMFW_SCRIPT"
cd "$WASMFW_REPO" || true
bash "$WASMFW_SCRIPT"
rc=$?
echo "$rc" > "$WASMFW_SCRATCH/status"
echo "WASMFW-GUEST-STATUS: $rc"

# kmemleak only reports objects older than 5 s that two scans found
# unreferenced (and unchanged); scan after the test so leaks of the test's
# modules show up.
if [[ $KMEMLEAK == 1 ]]; then
  sleep 6
  echo scan > /sys/kernel/debug/kmemleak
  echo scan > /sys/kernel/debug/kmemleak
  cat /sys/kernel/debug/kmemleak > "$WASMFW_SCRATCH/kmemleak.txt"
fi
dmesg > "$WASMFW_SCRATCH/dmesg.txt"
echo "WASMFW-GUEST: ----- kernel log -----"
cat "$WASMFW_SCRATCH/dmesg.txt"
[[ -s $WASMFW_SCRATCH/kmemleak.txt ]] && { echo "WASMFW-GUEST: ----- kmemleak -----"; cat "$WASMFW_SCRATCH/kmemleak.txt"; }
echo "WASMFW-GUEST: ----- end, uptime $(uptime_s) s -----"
poweroff_now
