#!/bin/bash
# Inside a guest (booted by `cargo xtask bench`, xtask/src/bench.rs): the
# guest half of the benchmark, written as machine-readable files into
# $WASMFW_SCRATCH for the host to merge (`wasmfw-bench report`):
#   guest-<guest>.json        ns/packet of every benchmark packet through the
#                             module's test-run, xdp-bridge + Wasm, xdp-bridge +
#                             native kfunc, the eBPF twin, an empty XDP program
#   throughput-<guest>.jsonl  packets/s over a veth pair (va -> vb) with no
#                             filter, the eBPF twin, bridge + Wasm, bridge +
#                             native, netfilter + Wasm (one JSON line each)
# Not a test: fails only if something cannot run or the paths disagree.
# WASMFW_BENCH_RUNS (runs per figure and round), WASMFW_BENCH_ROUNDS (5),
# WASMFW_BENCH_SECS (seconds per flood), WASMFW_BENCH_TP_ROUNDS (3 floods each).
WASMFW_TEST=bench
# boot.sh runs a copy of this script from the scratch dir: source lib.sh from the repo.
. "$WASMFW_REPO/kmod/tests/lib.sh"
BENCH=$REPO/target/release/wasmfw-bench
RUNS=${WASMFW_BENCH_RUNS:-100000}
SECS=${WASMFW_BENCH_SECS:-5}
G=$WASMFW_GUEST
ensure_module
ip link set lo up

say "kernel paths: $RUNS runs per packet and path"
"$BENCH" guest --runs "$RUNS" --rounds "${WASMFW_BENCH_ROUNDS:-5}" --work "$WASMFW_SCRATCH/bench-work" > "$WASMFW_SCRATCH/guest-$G.json.part" \
  || fail "wasmfw-bench guest failed"
mv "$WASMFW_SCRATCH/guest-$G.json.part" "$WASMFW_SCRATCH/guest-$G.json"

say "throughput: $SECS s of 64-byte ICMP echo requests va -> vb per configuration"
pair_up
# With no filter the stack drops the echo requests itself (no replies to
# send back over the same CPU); with a filter they never reach it.
B sysctl -qw net.ipv4.icmp_echo_ignore_all=1
vb_mac=$(B cat /sys/class/net/vb/address)
va_mac=$(A cat /sys/class/net/va/address)
TP=$WASMFW_SCRATCH/throughput-$G.jsonl
: > "$TP"
rx() { B cat /sys/class/net/vb/statistics/rx_packets; }
# measure <configuration>: one flood; received = vb's rx_packets delta
# (veth counts every frame that reached vb, XDP drops included).
measure() {
  local before after line
  before=$(rx)
  line=$(A "$BENCH" flood --iface va --dst-mac "$vb_mac" --src-mac "$va_mac" --secs "$SECS") || fail "flood failed ($1)"
  after=$(rx)
  # The filter's own drop counter, where wasmfw reports one: proof that
  # the frames took the filter's drop path (null otherwise).
  local drops
  drops=$(wf stats --iface vb --json 2>/dev/null | jq '.[0].counters.drop // null' 2>/dev/null || echo null)
  jq -c --arg c "$1" --argjson r "$((after - before))" --argjson d "${drops:-null}" \
    --argjson round "${ROUND:-1}" \
    '{config: $c, round: $round, received: $r, sent: .sent, send_errors: .send_errors, secs: .secs, filter_drops: $d}' <<< "$line" >> "$TP"
  say "$1: $(tail -1 "$TP")"
}
P=$REPO/policies/icmp.toml
# Every XDP row in native (driver) mode on veth, so they compare like with
# like; plus the Wasm filter in generic (skb) mode, wasmfw's default.
CONFIGS=(none ebpf wasm wasm_skb native netfilter)
label() {
  case $1 in
    none) echo "no filter" ;;
    ebpf) echo "eBPF twin, XDP (interpreted)" ;;
    wasm) echo "xdp-bridge + Wasm, XDP" ;;
    wasm_skb) echo "xdp-bridge + Wasm, XDP skb mode" ;;
    native) echo "xdp-bridge + native kfunc, XDP" ;;
    netfilter) echo "netfilter + Wasm" ;;
  esac
}
setup() {
  case $1 in
    none) ;;
    ebpf) wf load "$P" --iface vb --engine ebpf --mode native >/dev/null ;;
    wasm) wf load "$P" --iface vb --mode native >/dev/null ;;
    wasm_skb) wf load "$P" --iface vb --mode skb >/dev/null ;;
    native) B "$BENCH" attach-native --iface vb >/dev/null ;;
    netfilter) wf load "$P" --iface vb --hook netfilter >/dev/null ;;
  esac || fail "setting up '$(label "$1")'"
}
teardown() {
  case $1 in
    none) ;;
    native) ip -n wfb link set vb xdp off ;;
    *) wf unload --iface vb >/dev/null ;;
  esac
}
# Round-robin over the configurations, so that load from other programs on
# the host spreads over all of them; the report takes each one's best round.
for round in $(seq "${WASMFW_BENCH_TP_ROUNDS:-3}"); do
  for c in "${CONFIGS[@]}"; do
    setup "$c"
    ROUND=$round measure "$(label "$c")"
    teardown "$c"
  done
done
say "done"
