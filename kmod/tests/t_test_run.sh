#!/bin/bash
# `wasmfw test-run` (the filter run in the kernel, unattached, N times per
# packet) gives the same verdict per packet as `wasmfw replay` (userspace
# engine) on the host; prints the in-kernel ns per run.
# test-run needs no interface.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_NET=none
test_test_run() {
  EXP=$TF/expected   # written on the host by run.sh (wasmfw replay --json)
  [[ -d $EXP ]] || fail "no $EXP: run kmod/tests/run.sh (it writes the host's replay verdicts)"
  n=0
  for e in "$EXP"/*.json; do
    name=$(basename "$e" .json)            # <policy>@<capture>@<repeat>
    IFS=@ read -r pol cap rep <<< "$name"
    pcap=$TF/$cap.pcap; [[ -e $pcap ]] || pcap=$REPO/target/demo/$cap.pcap
    out=$("$W" test-run "policies/$pol.toml" --pcap "$pcap" --repeat "$rep" --json) || fail "test-run $pol $cap failed"
    want=$(jq -c 'select(.index != null) | [.index, .verdict]' "$e")
    got=$(jq -c '[.index, .verdict]' <<< "$out")
    if [[ $want != "$got" ]]; then
      diff <(echo "$want") <(echo "$got") | sed 's/^/    /'
      fail "policies/$pol.toml on $cap: kernel verdicts differ from wasmfw replay"
    fi
    stats=$(jq -s -r 'map(.ns_per_run) | sort | "\(length) packets, ns/run min \(.[0]|floor) median \(.[length/2|floor]|floor) max \(.[-1]|floor)"' <<< "$out")
    drops=$(jq -s 'map(select(.verdict=="drop")) | length' <<< "$out")
    say "$pol on $cap.pcap x$rep: same verdicts as replay ($drops drop); $stats"
    figure "test_run_ns_per_run[$pol,$cap,x$rep]" "$(sed 's/.*ns\/run //' <<< "$stats")"
    n=$((n + 1))
  done
  [[ $n -gt 0 ]] || fail "no expected verdicts in $EXP"
}
