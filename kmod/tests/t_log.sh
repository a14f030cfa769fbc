#!/bin/bash
# `wasmfw log` on the kernel engine: log.wasm logs every IPv4 echo request
# it sees ("echo seq=NNNNN"). N pings give N lines in order with rising
# timestamps, and none in the kernel log; a flood overwrites the ring (lost
# lines reported, log_dropped counted exactly, no splat); -f follows new
# lines (and a replacement filter's); log_to_kernel=1 copies lines to the
# kernel log; XDP logs too; a LOG_READ that cannot copy out (EFAULT)
# consumes nothing and a cursor beyond the head is refused, log_dropped
# staying exact; a run nested in a run of the same filter (nest_test) is
# refused with on_fault and counted; the cost of a line (test-run).
test_log() {
  P=/sys/module/wasmfw/parameters
  RING=256 # WASMFW_LOG_RING_RECORDS
  echo 0 > $P/log_to_kernel

  # seqs <wasmfw log text>: the logged sequence numbers, one line.
  seqs() { sed -n 's/.* echo seq=0*\([0-9][0-9]*\)$/\1/p' <<< "$1" | tr '\n' ' '; }

  load "$TF/log.wasm"
  N=20
  read -r s _ < <(ping4 $N)
  expect_eq "$s" $N "pings sent"
  out=$(wf log --iface vb 2>&1) || fail "wasmfw log failed: $out"
  head -3 <<< "$out" | sed 's/^/    /'
  expect_eq "$(grep -c ' info  log echo seq=' <<< "$out" || true)" $N "log lines for $N pings (level info, filter log)"
  expect_eq "$(seqs "$out")" "$(seq -s ' ' 1 $N) " "sequence numbers, in order"
  js=$(wf log --iface vb --json) || fail "wasmfw log --json failed: $js"
  jq -s -e --argjson n $N 'length == $n and all(.[]; .level == "info" and (.cpu | type) == "number")
  and ([.[].ts_ns] as $t | all(range(1; $n); $t[.] > $t[. - 1]))
  and ([.[].seq] == [range(0; $n)])' <<< "$js" >/dev/null \
    || fail "--json: want $N records, seq 0..$((N - 1)), rising ts_ns: $(head -c 600 <<< "$js")"
  say "--json: $N records, seq 0..$((N - 1)), timestamps rising"
  expect_eq "$(klog | grep -c 'echo seq=' || true)" 0 "filter lines in the kernel log (log_to_kernel=0)"
  expect_eq "$(counter log_dropped)" 0 "log_dropped before the flood"

  # Flood: far more lines than the ring holds, nobody reading meanwhile.
  out=$(A ping -f -c 3000 -W 1 10.0.0.2 2>&1 || true)
  sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' <<< "$out")
  say "flood: $sent echo requests"
  expect_ge "$sent" $((RING + 1)) "flood pings"
  # Every line of the flood past the ring's size was overwritten unread
  # (the reader above had got everything before it).
  expect_eq "$(counter log_dropped)" $((sent - RING)) "log_dropped after $sent lines into a $RING-record ring"
  js=$(wf log --iface vb --json) || fail "wasmfw log --json after the flood: $js"
  expect_eq "$(jq -s '[.[] | select(has("lost"))][0].lost' <<< "$js")" $((N + sent - RING)) "lost lines reported to a new reader"
  expect_eq "$(jq -s '[.[] | select(has("msg"))] | length' <<< "$js")" $RING "lines still held"
  expect_eq "$(jq -s -r '[.[] | select(has("msg"))][-1].msg' <<< "$js")" "$(printf 'echo seq=%05d' $((sent % 65536)))" "last line"

  # -f: shows what is held, then follows new lines as they come.
  fl=$WASMFW_SCRATCH/log-follow.txt
  B "$W" log --iface vb -f > "$fl" 2>&1 &
  fpid=$!
  sleep 1
  read -r s _ < <(ping4 5)
  sleep 1
  # A replacement filter (new id, new ring) is followed from its start.
  out=$(wf load "$TF/log.wasm" --iface vb --hook netfilter --replace 2>&1) || fail "load --replace: $out"
  read -r s _ < <(ping4 2)
  sleep 1
  kill "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true
  tail -8 "$fl" | sed 's/^/    /'
  expect_eq "$(seqs "$(tail -n 7 "$fl")")" "1 2 3 4 5 1 2 " "-f: the 5 new lines, then the replacement's 2, in order, after the $RING held"
  expect_eq "$(grep -c 'echo seq=' "$fl" || true)" $((RING + 7)) "-f: lines printed"

  # log_to_kernel=1: lines go to the kernel log as well (rate limited).
  echo 1 > $P/log_to_kernel
  read -r s _ < <(ping4 2)
  echo 0 > $P/log_to_kernel
  expect_ge "$(klog | grep -c 'filter [0-9]*: echo seq=' || true)" 1 "filter lines in the kernel log (log_to_kernel=1)"
  unload
  if out=$(wf log --iface vb 2>&1); then fail "log after unload succeeded: $out"; fi
  say "log after unload: $out"

  # XDP (xdp-bridge + kfunc): the same lines, Ethernet framing.
  out=$(wf load "$TF/log.wasm" --iface vb --hook xdp 2>&1) || { echo "$out" | sed 's/^/    /'; fail "load log.wasm at XDP"; }
  read -r s _ < <(ping4 3)
  out=$(wf log --iface vb 2>&1) || fail "wasmfw log (XDP) failed: $out"
  expect_eq "$(seqs "$out")" "1 2 3 " "XDP: sequence numbers, in order"
  unload

  # Raw LOG_READs (wfioctl.py): one whose records (unmapped buffer) or
  # reply (read-only request) cannot be copied out fails with EFAULT and
  # consumes nothing: the next read from the same cursor gets the same
  # records, and records nobody got still count in log_dropped when
  # overwritten. A cursor beyond the head is refused (EINVAL) and changes
  # nothing either. And the nesting guard: with nest_test=1 each log line
  # runs the filter again inside its own run, on the same CPU.
  printf 'filter = "%s"\nhook = "netfilter"\nfuel = 20000\nmemory_limit = 131072\non_fault = "drop"\n' "$TF/log.wasm" \
    > "$WASMFW_SCRATCH/log-drop.toml"
  load "$WASMFW_SCRATCH/log-drop.toml"
  id=$($IO list | awk '{print $2}' | tail -1)
  read -r s _ < <(ping4 5)
  expect_eq "$s" 5 "pings sent"
  expect_eq "$($IO logread "$id" 0 64 badbuf)" "errno 14" "LOG_READ into an unmapped buffer"
  expect_eq "$($IO logread "$id" 0 64 roreq)" "errno 14" "LOG_READ whose reply cannot be written"
  expect_eq "$($IO logread "$id" 0 64 good)" "count 5 cursor 5 lost 0 dropped 0 seqs 0-4" "the next LOG_READ from 0"
  read -r s2 _ < <(ping4 3)
  expect_eq "$s2" 3 "pings sent"
  expect_eq "$($IO logread "$id" 5 64 badbuf)" "errno 14" "LOG_READ from 5 into an unmapped buffer"
  expect_eq "$($IO logread "$id" 5 64 roreq)" "errno 14" "LOG_READ from 5, reply not writable"
  expect_eq "$($IO logread "$id" 9 64 good)" "errno 22" "LOG_READ from 9, beyond the head (8)"
  expect_eq "$($IO logread "$id" 1000000 64 good)" "errno 22" "LOG_READ from 1000000"
  out=$(A ping -f -c 400 -W 1 10.0.0.2 2>&1 || true)
  sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' <<< "$out")
  expect_ge "$sent" $((RING + 8)) "flood pings (enough to overwrite seq 0-7)"
  # Lines written: the ring's head, which the next read returns as its
  # cursor (under a loaded host a flood ping can be lost before the hook,
  # so `sent` is only an upper bound).
  dropped=$(counter log_dropped)
  out=$($IO logread "$id" 5 $RING good)
  total=$(sed -nE 's/.* cursor ([0-9]+) .*/\1/p' <<< "$out")
  expect_ge "$total" $((RING + 8)) "lines logged by the flood's end (the flood overwrote seq 0-7)"
  [[ $total -le $((8 + sent)) ]] || fail "$total lines logged for $((8 + sent)) echo requests"
  # Overwritten: total - RING records; a reader got seq 0-4 only (the
  # failed and refused reads count for nothing).
  expect_eq "$dropped" $((total - RING - 5)) "log_dropped after $total lines (5 read, 3 only by failed reads)"
  expect_eq "$out" \
    "count $RING cursor $total lost $((total - RING - 5)) dropped $((total - RING - 5)) seqs $((total - RING))-$((total - 1))" \
    "LOG_READ from 5 after the flood"
  expect_eq "$($IO logread "$id" $total 64 good)" "count 0 cursor $total lost 0 dropped $((total - RING - 5)) seqs none" "LOG_READ from the head"

  echo 1 > $P/nest_test
  snapshot
  p0=$(snap packets)
  read -r s r < <(ping4 3)
  echo 0 > $P/nest_test
  snapshot
  say "nest_test: $(cat $P/nest_test)"
  expect_eq "$r" "$s" "echo replies (the outer runs pass them)"
  expect_eq "$(cat $P/nest_test)" "runs $s last 3" "nested runs made, and what the last returned (drop|fault: on_fault=drop)"
  expect_eq "$(snap nested_runs)" "$s" "nested_runs (refused by the guard)"
  # The pings' echo requests, perhaps an IPv6 neighbour message: fewer than
  # twice the pings, which counting the nested runs would have given.
  dp=$(($(snap packets) - p0))
  expect_ge "$dp" "$s" "packets counted"
  [[ $dp -lt $((2 * s)) ]] || fail "packets counted: $dp, the nested runs reached the instance"
  expect_eq "$(snap fault_trap)" 0 "fault_trap"
  unload

  # Cost of a logged line in the kernel (TEST_RUN, process context with
  # bottom halves off: the ring write path there too): log.wasm on packet 0
  # of mixed.pcap (an IPv4 echo request: formats and logs a line) against
  # packet 1 (an IPv4 echo reply of the same size: returns before logging).
  out=$("$W" test-run "$TF/log.wasm" --pcap "$TF/mixed.pcap" --repeat 20000 --json) || fail "test-run log.wasm: $out"
  ns0=$(jq -s -r '.[] | select(.index == 0) | .ns_per_run | floor' <<< "$out")
  ns1=$(jq -s -r '.[] | select(.index == 1) | .ns_per_run | floor' <<< "$out")
  say "test-run log.wasm: echo request (logged) $ns0 ns/run, echo reply (not logged) $ns1 ns/run"
  figure "log_line_ns[test-run, logged - not logged]" $((ns0 - ns1))
}
