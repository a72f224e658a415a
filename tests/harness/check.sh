#!/bin/sh
# check.sh CASES - run the harness's own test file (cases.c) and check its report: every bad
# case named (failed, crashed, timed out), every good case after them run, exit status 1.
exe="$1"
unset CORRAL_TEST_NOFORK # the valgrind stage sets it for the other tests
bad=0
expect() { # what-the-output-must-contain
    grep -qF -- "$1" "$out" || { echo "missing from the output: $1"; bad=1; }
}
status_is() { # want got what
    [ "$1" = "$2" ] || { echo "$3: exit status $2, not $1"; bad=1; }
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Through a pipe: a process of the hanging case left behind would hold it open (and time out).
{ CORRAL_TEST_TIMEOUT=1 "$exe" 2>&1; echo "exit status $?"; } | cat >"$out"
cat "$out"
expect "exit status 1"
expect "ok passes_first"
expect "FAIL fails_a_check"
expect "ok passes_after_a_failure"
expect "FAIL crashes: killed by signal 6"
expect "ok passes_after_a_crash"
expect "TIMEOUT hangs after 1 s"
expect "ok passes_after_a_hang"
expect "ok outlives_the_default_with_its_own_timeout"
expect "skip skips: on purpose"
expect "5 passed, 3 failed, 1 skipped"

"$exe" passes_first >"$out" 2>&1
status_is 0 $? "one passing case by name"
CORRAL_TEST_NOFORK=1 "$exe" passes_after_a_hang >"$out" 2>&1
status_is 0 $? "one passing case in-process"
expect "ok passes_after_a_hang"
"$exe" fails_a_check >"$out" 2>&1
status_is 1 $? "one failing case by name"
"$exe" skips >"$out" 2>&1
status_is 77 $? "one skipped case by name"
"$exe" no_such_case >"$out" 2>&1
status_is 1 $? "a name that is no case"
exit $bad
