# shellcheck shell=bash
# Helpers for the guest test scripts (t_*.sh) and the guest runner
# (guest.sh), sourced inside the guest.
# Environment (from guest.sh): WASMFW_REPO, WASMFW_SCRATCH, WASMFW_GUEST,
# WASMFW_KO (the wasmfw.ko for this kernel), WASMFW_TEST (the test's name).
#
# A test file t_<name>.sh only defines the function test_<name> (its
# checks) and, before it, what it needs besides the default; guest.sh sets
# that up before the function runs and tears it down after (also after a
# failure or a timeout):
#   TEST_MODULE=fresh  (default) wasmfw.ko freshly inserted; none: not loaded
#   TEST_NET=pair      (default) the veth pair wfa/va <-> wfb/vb (pair_up); none
#   TEST_SENDER_ADDRS  more addresses on va (comma-separated: a second source)
#   TEST_REQUIRES="kmemleak"     require_<word> checks: the test is skipped
#                                (with their reason) when one fails
#   setup_extra()      a hook run after that (a second veth pair, an address)
set -euo pipefail

REPO=${WASMFW_REPO:?run inside the guest (kmod/tests/run.sh)}
HERE=$REPO/kmod/tests
W=${WASMFW_BIN:-$REPO/target/release/wasmfw}
KO=${WASMFW_KO:?}
# shellcheck disable=SC2034 # TF, FIG, IO: for the tests
TF=$REPO/target/test-filters
T=${WASMFW_TEST:-$(basename "$0" .sh)}
FIG=$WASMFW_SCRATCH/figures.txt
# The message of the test's fail/skip, for the runner's result line.
REASON=$WASMFW_SCRATCH/reason.txt
# Raw ioctls (the module's own answers, without the CLI's checks).
# shellcheck disable=SC2034
IO="python3 $HERE/wfioctl.py"
# The guest's devtmpfs has no /dev/fd (no udev): bash's <(...) needs it.
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd

say() { echo "  [$T] $*"; }
fail() { echo "  [$T] FAIL: $*"; echo "$*" > "$REASON"; exit 1; }
skip() { echo "  [$T] SKIP: $*"; echo "$*" > "$REASON"; exit 77; }
# figure <name> <value>: a measured number for the summary.
figure() { echo "$WASMFW_GUEST $T $1 $2" >> "$FIG"; say "figure: $1 = $2"; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# Long loops run until a time budget, not a count a slow host cannot finish:
#   cycles_start <at most> <budget secs> <at least>
#   while cycle_next; do ... "$CYC_I" ...; done
#   cycles_done <figure name> [what a cycle is]
# cycles_done prints how many cycles ran in how long (a figure) and fails if
# fewer than <at least> (or <at most>, if smaller) fitted in the budget.
# The first cycle always runs.
cycles_start() { CYC_MAX=$1 CYC_BUDGET=$2 CYC_MIN=$(($3 < $1 ? $3 : $1)) CYC_I=0 CYC_T0=$(now); }
cycle_next() {
  ((CYC_I < CYC_MAX)) || return 1
  ((CYC_I == 0)) || [[ $(echo "$(elapsed "$CYC_T0") < $CYC_BUDGET" | bc) == 1 ]] || return 1
  CYC_I=$((CYC_I + 1))
}
cycles_done() {
  CYC_SECS=$(elapsed "$CYC_T0")
  figure "$1" "$CYC_I in ${CYC_SECS}s (budget ${CYC_BUDGET}s, at most $CYC_MAX, at least $CYC_MIN)${2:+; $2}"
  ((CYC_I >= CYC_MIN)) || fail "$1: only $CYC_I cycle(s) fitted in the ${CYC_BUDGET}s budget (at least $CYC_MIN)"
}

ensure_module() { grep -q '^wasmfw ' /proc/modules || insmod "$KO"; }

# The kernel log, captured (`dmesg | grep -q` trips pipefail with SIGPIPE).
klog() { dmesg; }

# Two namespaces joined by veth: wfa (sender: va, 10.0.0.1, fd00::1) and
# wfb (receiver: vb, 10.0.0.2, fd00::2). Filters go on vb, inside wfb.
A() { ip netns exec wfa "$@"; }
B() { ip netns exec wfb "$@"; }
pair_down() { ip netns del wfa 2>/dev/null || true; ip netns del wfb 2>/dev/null || true; }
pair_up() {
  pair_down
  ip netns add wfa
  ip netns add wfb
  veth_link wfa va 10.0.0.1/24,fd00::1/64 wfb vb 10.0.0.2/24,fd00::2/64
  local ns
  for ns in wfa wfb; do ip -n $ns link set lo up; done
  # First contact resolves ARP/ND, so later counts see only the test's packets.
  A ping -c 1 -W 2 10.0.0.2 >/dev/null || fail "no IPv4 connectivity over the fresh veth pair"
  A ping -6 -c 1 -W 2 fd00::2 >/dev/null || fail "no IPv6 connectivity over the fresh veth pair"
}
# veth_link <ns> <if> <addrs> <peer ns> <peer if> <peer addrs>: a veth pair
# between two existing namespaces, both ends up; addrs comma-separated
# (IPv6 ones without duplicate address detection).
veth_link() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  link_addrs "$1" "$2" "$3"
  link_addrs "$4" "$5" "$6"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}
link_addrs() { # link_addrs <ns> <if> <addr,addr...>
  local a
  for a in ${3//,/ }; do
    if [[ $a == *:* ]]; then ip -n "$1" addr add "$a" dev "$2" nodad; else ip -n "$1" addr add "$a" dev "$2"; fi
  done
}

# wasmfw in the receiver's namespace; stdout+stderr shown indented.
wf() { B "$W" "$@"; }

# load <policy> [extra args]: loads on vb with the netfilter hook, records
# the kernel stack the load used (from the CLI's message).
load() {
  local out
  out=$(wf load "$@" --iface vb --hook netfilter 2>&1) || { echo "$out" | sed 's/^/    /'; fail "wasmfw load $* failed"; }
  echo "$out" | sed 's/^/    /'
  local stack
  stack=$(sed -n 's/.*load used \([0-9]*\) bytes of kernel stack.*/\1/p' <<< "$out" | head -1)
  [[ -n $stack ]] && figure "stack_used_by_load[$(basename "$1")]" "$stack"
  return 0
}
unload() { wf unload --iface vb | sed 's/^/    /'; }

# counter <name>: a counter of the filter on vb (wasmfw stats --json).
counter() {
  local js
  js=$(wf stats --iface vb --json) || fail "wasmfw stats --iface vb --json failed"
  jq -r --arg n "$1" '.[0].counters[$n] // "missing"' <<< "$js"
}
# snapshot: all counters of the filter on vb at one instant (into SNAP);
# snap <name> reads one of them (separate stats calls would race traffic).
snapshot() { SNAP=$(wf stats --iface vb --json) || fail "wasmfw stats --iface vb --json failed"; }
snap() { jq -r --arg n "$1" '.[0].counters[$n] // "missing"' <<< "$SNAP"; }
show_stats() { wf stats --iface vb 2>&1 | sed 's/^/    /'; }

# ping4/ping6 <count> [ping args]: from wfa to wfb; prints "<sent> <received>".
_ping() {
  local out
  out=$(A ping "$@" 2>&1 || true)
  local line; line=$(grep -E 'packets transmitted' <<< "$out" || true)
  [[ -n $line ]] || { echo "$out" | sed 's/^/    /' >&2; fail "ping printed no statistics"; }
  echo "    ping $*: $line" >&2
  sed -E 's/^([0-9]+) packets transmitted, ([0-9]+) (packets )?received.*/\1 \2/' <<< "$line"
}
ping4() { local c=$1; shift; _ping -c "$c" -i 0.2 -W 1 "$@" 10.0.0.2; }
ping6() { local c=$1; shift; _ping -6 -c "$c" -i 0.2 -W 1 "$@" fd00::2; }

expect_eq() { [[ $1 == "$2" ]] || fail "$3: got $1, want $2"; say "$3 = $1"; }
expect_ge() { [[ $1 =~ ^[0-9]+$ && $1 -ge $2 ]] || fail "$3: got $1, want >= $2"; say "$3 = $1 (>= $2)"; }
# check <label> <cmd...>: the command must succeed.
check() { local label=$1; shift; "$@" || fail "$label"; say "ok: $label"; }

# A TCP listener in wfb that answers "hello" to every connection, in the
# background; tcp_connect <dst> <port> [src] from wfa prints what it got.
tcp_listen() { # tcp_listen <addr> <port>
  ip netns exec wfb python3 -c '
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(512)
while True:
    c, _ = s.accept(); c.sendall(b"hello\n"); c.close()
' "$1" "$2" >/dev/null &
  LISTENER_PIDS+=("$!")
  wait_listening "$2" || fail "listener on $1:$2 did not come up"
}
# wait_listening <port>: until something in wfb listens on TCP <port> (a
# fixed sleep loses the race when an exec takes seconds, as under TCG).
wait_listening() {
  local i
  for i in $(seq 50); do
    B ss -ltn 2>/dev/null | grep -q ":$1 " && return 0
    sleep 0.1
  done
  return 1
}
LISTENER_PIDS=()
stop_listeners() { local p; for p in "${LISTENER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; LISTENER_PIDS=(); }
tcp_connect() { # tcp_connect <dst> <port> [src] [timeout]: prints the reply or an error
  A python3 -c '
import socket, sys
dst, port, src, to = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(to)
if src: s.bind((src, 0))
try:
    s.connect((dst, port)); print(s.recv(16).decode().strip())
except Exception as e:
    print("error:", type(e).__name__, e)
' "$1" "$2" "${3:-}" "${4:-3}"
}

cleanup() { stop_listeners; pair_down; }
trap cleanup EXIT

# ---- the runner's part (guest.sh): what a test declares, set up and torn down

loaded() { grep -q '^wasmfw ' /proc/modules; }
# require_kmemleak: a kmemleak that scans (debug kernels; not UML's, which
# boots with kmemleak=off).
require_kmemleak() {
  local k=/sys/kernel/debug/kmemleak
  [[ -e $k ]] || skip "kmemleak NOT checked: this kernel has no kmemleak (use a --debug kernel)"
  if ! (echo scan > $k) 2>/dev/null; then
    skip "kmemleak NOT checked: kmemleak is disabled on this kernel ($(grep -o 'kmemleak=[a-z]*' /proc/cmdline || echo "writes to $k fail"))"
  fi
}

# run_test: in the test's own process (under guest.sh's timeout): reads
# t_$T.sh's declarations, sets them up, runs test_$T.
run_test() {
  local f=$HERE/t_$T.sh r
  [[ -r $f ]] || fail "no test $f"
  # shellcheck source=/dev/null
  . "$f"
  declare -F "test_$T" >/dev/null || fail "t_$T.sh defines no function test_$T"
  for r in ${TEST_REQUIRES:-}; do "require_$r"; done
  if loaded; then rmmod wasmfw || fail "setup: rmmod wasmfw (still loaded from before)"; fi
  case ${TEST_MODULE:-fresh} in
    fresh) insmod "$KO" || fail "setup: insmod $KO" ;;
    none) ;;
    *) fail "TEST_MODULE=$TEST_MODULE: fresh or none" ;;
  esac
  case ${TEST_NET:-pair} in
    pair) pair_up; link_addrs wfa va "${TEST_SENDER_ADDRS:-}" ;;
    none) ;;
    *) fail "TEST_NET=$TEST_NET: pair or none" ;;
  esac
  if declare -F setup_extra >/dev/null; then setup_extra; fi
  "test_$T"
}

# teardown: after each test, whatever it left (guest.sh has killed its
# processes): every namespace, XDP programs, the module.
teardown() {
  ip -all netns delete 2>/dev/null
  loaded || return 0
  if [[ -n $("$W" status --json 2>/dev/null | jq -r '.[]?.iface' 2>/dev/null) ]]; then say "filters left loaded"; fi
  # An attached xdp-bridge keeps the module (its kfunc) in use.
  local i
  for i in $(ip -o link show | sed -n 's/^[0-9]*: \([^:@]*\).* xdp.*/\1/p'); do ip link set dev "$i" xdp off; done
  # A deleted namespace goes away asynchronously, its devices' bridges with it.
  for i in $(seq 50); do rmmod wasmfw 2>/dev/null && return 0; sleep 0.1; done
  say "teardown: rmmod wasmfw failed: $(rmmod wasmfw 2>&1)"
}
