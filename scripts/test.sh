#!/usr/bin/env bash
# Every test stage of corral, each capped in time. Used by `make test` and CI.
#   format       every C file as .clang-format says (clang-format --dry-run --Werror)
#   release      meson test in build/ (release), with the fault-mode driver over 8 seeds (suite faults)
#   asan         meson test in build-asan/ (ASan + UBSan, debug), the fault-mode driver too
#   tsan         meson test in build-tsan/ (ThreadSanitizer, fibers annotated)
#   valgrind     the release build's tests again under valgrind (memcheck, errors fail)
#   aarch64      the core tests cross-compiled for aarch64 and run under qemu-user
#   deb          the Debian packages built in build-deb/ (scripts/deb.sh --check, no tests
#                run in it): their files, the packages unpacked checked as an install
#                (tests/install/check.sh), lintian (errors fail)
#   fuzz         each libFuzzer target of FUZZ_TARGETS (clang, ASan+UBSan) for FUZZ_SECONDS
#                (40) on its seed corpus: tests/http/fuzz_conn, fuzz_client, tests/core/fuzz_sched
# STAGES="release asan" picks stages. Prints "N passed, N failed" over all stages at the end.
set -uo pipefail
cd "$(dirname "$0")/.."

STAGES="${STAGES:-format release asan tsan valgrind aarch64 deb fuzz}"
JOBS="${JOBS:-2}"
passed=0 failed=0 status=0
# Logs of this run, apart from those of any other run at the same time.
LOGS=$(mktemp -d /tmp/corral-test.XXXXXX)

# meson test's summary: add its Ok/Fail counts to ours.
count() {
    local log="$1" ok fail
    ok=$(awk '/^Ok:/ {print $2}' "$log" | tail -1)
    fail=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {s += $NF} END {print s + 0}' "$log")
    passed=$((passed + ${ok:-0}))
    failed=$((failed + ${fail:-0}))
    # the failed tests' lines, told again at the end (CI shows a run's last lines only)
    awk -v stage="$2" '/^Summary of Failures:/ {on = 1; next} on && /^ *[0-9]+\/[0-9]+ / {print stage ": " $0}' \
        "$log" >>"$LOGS/failures"
}

# A stage's failure other than its tests' (build, setup, a non-meson check), for the end.
failed_stage() { echo "$1: $2" >>"$LOGS/failures"; }

stage() { # name builddir timeout-seconds meson-setup-args...
    local name="$1" dir="$2" limit="$3"
    shift 3
    echo "== stage $name ($dir, at most ${limit}s)"
    if [[ ! -f "$dir/build.ninja" ]]; then
        meson setup "$dir" "$@" >"$LOGS/setup-$name.log" 2>&1 ||
            { cat "$LOGS/setup-$name.log"; failed=$((failed + 1)); status=1; failed_stage "$name" "meson setup"; return; }
    fi
    if ! timeout "$limit" ninja -C "$dir" >"$LOGS/build-$name.log" 2>&1; then
        tail -40 "$LOGS/build-$name.log"
        failed=$((failed + 1)) status=1
        failed_stage "$name" "the build"
        return
    fi
    local log="$LOGS/test-$name.log"
    # shellcheck disable=SC2086 # NOSUITE: meson's suite options, split
    timeout "$limit" meson test -C "$dir" ${NOSUITE:-} --num-processes "$JOBS" --print-errorlogs 2>&1 | tee "$log"
    [[ ${PIPESTATUS[0]} == 0 ]] || status=1
    count "$log" "$name"
}

# The libFuzzer targets of the fuzz stage: tests/AREA/fuzz_NAME with seeds in CORPUS.
FUZZ_TARGETS="${FUZZ_TARGETS:-http/fuzz_conn:tests/http/corpus http/fuzz_client:tests/http/corpus_client
    core/fuzz_sched:tests/core/corpus_sched}"
FUZZ_SECONDS="${FUZZ_SECONDS:-40}"

fuzz_target() { # area/fuzz_name:corpus-dir - build it and fuzz it for FUZZ_SECONDS
    local exe="tests/${1%%:*}" seeds="${1#*:}" corpus ok=0
    if ! timeout 600 ninja -C build-fuzz "$exe" >$LOGS/build-fuzz.log 2>&1; then
        tail -40 $LOGS/build-fuzz.log
        return 1
    fi
    # New inputs go to a scratch copy: the seed corpus in the tree stays small.
    corpus=$(mktemp -d)
    cp "$seeds"/* "$corpus"/
    echo "-- $exe"
    (cd "$corpus" && timeout $((FUZZ_SECONDS + 140)) "$OLDPWD/build-fuzz/$exe" \
        -max_total_time="$FUZZ_SECONDS" -artifact_prefix="/tmp/corral-fuzz-${exe##*/}-" "$corpus" \
        2>&1 | tail -15) && ok=1
    rm -rf "$corpus"
    ((ok))
}

for s in $STAGES; do
    case "$s" in
    format)
        echo "== stage format"
        if git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1)) status=1
            failed_stage format clang-format
        fi
        ;;
    release) stage release build 900 --buildtype=release ;;
    asan) stage asan build-asan 1200 --buildtype=debug -Db_sanitize=address,undefined \
        -Db_lundef=false -Db_lto=false -Dbench=false ;;
    tsan) NOSUITE="--no-suite faults" stage tsan build-tsan 1200 --buildtype=debug -Db_sanitize=thread -Db_lto=false \
        -Dbench=false ;;
    valgrind)
        if command -v valgrind >/dev/null; then
            echo "== stage valgrind (build/, at most 900s)"
            log=$LOGS/test-valgrind.log
            # one core unless a test asks for more: valgrind 3.19 stalls threads while one
            # waits in io_uring_enter. The cases of a file run in one process (a fork per
            # case costs valgrind ~0.5 s: the stage would take 2-3 times as long). Not the
            # docs suite: its tests are scripts (doxygen's output, snippets), not our code; nor
            # uring-pool (tests/meson.build), whose epoll runs stay.
            CORRAL_CORES=1 CORRAL_TEST_NOFORK=1 timeout 900 meson test -C build \
                --num-processes "$JOBS" --print-errorlogs --no-suite diff --no-suite faults --no-suite docs --no-suite install \
                --no-suite uring-pool --no-suite sim \
                --wrapper 'valgrind -q --error-exitcode=9' 2>&1 | tee "$log"
            [[ ${PIPESTATUS[0]} == 0 ]] || status=1
            count "$log" valgrind
        else
            echo "== stage valgrind skipped: valgrind not installed"
        fi
        ;;
    aarch64)
        if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
            NOSUITE="--no-suite faults" stage aarch64 build-aarch64 900 --cross-file scripts/aarch64-cross.ini \
                --buildtype=release -Db_lto=false -Dbench=false
        else
            echo "== stage aarch64 skipped: no cross compiler or qemu-user"
        fi
        ;;
    deb)
        if command -v dpkg-buildpackage >/dev/null && command -v lintian >/dev/null; then
            echo "== stage deb (build-deb/, at most 900s)"
            if DEB_BUILD_OPTIONS=nocheck timeout 900 scripts/deb.sh --check >$LOGS/deb.log 2>&1; then
                grep -E '^(ok|FAIL|[EWI]):' $LOGS/deb.log
                passed=$((passed + 1))
            else
                tail -60 $LOGS/deb.log
                failed=$((failed + 1)) status=1
                failed_stage deb "scripts/deb.sh --check"
            fi
        else
            echo "== stage deb skipped: dpkg-buildpackage or lintian not installed"
        fi
        ;;
    fuzz)
        if command -v clang >/dev/null; then
            echo "== stage fuzz (build-fuzz/, ${FUZZ_SECONDS} s of fuzzing per target)"
            if [[ -f build-fuzz/build.ninja ]] ||
                CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
                    -Db_lundef=false -Db_lto=false -Dbench=false >$LOGS/setup-fuzz.log 2>&1; then
                for t in $FUZZ_TARGETS; do # tests/<area>/fuzz_<name>, seeds in its corpus dir
                    fuzz_target "$t" && passed=$((passed + 1)) ||
                        { failed=$((failed + 1)) status=1; failed_stage fuzz "${t%%:*}"; }
                done
            else
                cat $LOGS/setup-fuzz.log
                failed=$((failed + 1)) status=1
                failed_stage fuzz "meson setup"
            fi
        else
            echo "== stage fuzz skipped: clang not installed"
        fi
        ;;
    *) echo "unknown stage $s"; status=1 ;;
    esac
done

if [[ -s $LOGS/failures ]]; then
    echo "== what failed (logs in $LOGS)"
    cat "$LOGS/failures"
fi
echo "$passed passed, $failed failed"
exit $status
