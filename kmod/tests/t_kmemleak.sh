#!/bin/bash
# After the other tests (the stress cycles above all): kmemleak must report
# nothing. Needs a --debug kernel; elsewhere this is SKIPPED, not passed.
# shellcheck disable=SC2034 # declarations, read by the runner (lib.sh)
TEST_REQUIRES=kmemleak TEST_MODULE=none TEST_NET=none
test_kmemleak() {
  local k=/sys/kernel/debug/kmemleak rep
  sleep 6 # kmemleak ignores objects younger than 5 s
  echo scan > $k
  echo scan > $k
  rep=$(cat $k)
  if [[ -n $rep ]]; then
    echo "$rep" | head -80 | sed 's/^/    /'
    fail "kmemleak reports $(grep -c unreferenced <<< "$rep") unreferenced object(s)"
  fi
  say "kmemleak: no unreferenced objects after two scans"
}
