#!/bin/bash
# After the other tests (the stress cycles above all): kmemleak must report
# nothing. Needs a --debug kernel; elsewhere this is SKIPPED, not passed.
. "$(dirname "$0")/lib.sh"
K=/sys/kernel/debug/kmemleak
[[ -e $K ]] || skip "kmemleak NOT checked: this kernel has no kmemleak (use a --debug kernel)"
# The UML debug guest boots with kmemleak=off (kmod/guest): writes fail.
if ! (echo scan > $K) 2>/dev/null; then
  skip "kmemleak NOT checked: kmemleak is disabled on this kernel ($(grep -o 'kmemleak=[a-z]*' /proc/cmdline || echo 'writes to '$K' fail'))"
fi
sleep 6   # kmemleak ignores objects younger than 5 s
echo scan > $K
echo scan > $K
rep=$(cat $K)
if [[ -n $rep ]]; then
  echo "$rep" | head -80 | sed 's/^/    /'
  fail "kmemleak reports $(grep -c unreferenced <<< "$rep") unreferenced object(s)"
fi
say "kmemleak: no unreferenced objects after two scans"
