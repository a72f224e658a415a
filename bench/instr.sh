#!/usr/bin/env bash
# Instructions per operation, counted by valgrind (cachegrind, no cache simulation): exact and
# repeatable where a timing on this shared VM moves by 30%, so it can gate a change that
# must stay "within 2%". Each workload of build/bench/bench-instr runs at two sizes and the
# difference is divided by the difference of the sizes, so start-up and exit cancel out:
#   instr_spawn_join         one crl_spawn(trivial) + crl_scope_join, one core (with
#                            BENCH_INSTR_TRACE=1 the trace is on: instr_spawn_join_traced)
#   instr_http_pipelined     one pipelined GET / (batches of 16, as wrk's pipeline.lua)
#                            parsed and answered by the HTTP connection over memory
#   instr_http_keepalive_in_task  one keep-alive GET / at a time, its task waiting in place
#   instr_http_keepalive_parked   the same, the connection waiting without a task between
#                            requests (a spawn, a fresh state machine, a park, a task exit)
#   bench/instr.sh [BUILD]          one build (default build/, the release LTO build)
#   bench/instr.sh BUILD_A BUILD_B  both, and B/A; exits 1 if a ratio exceeds MAX_RATIO
#                                   [1.02] (a benchmark report: not part of meson test)
# Each build's tree must have bench/bench-instr.c (for an older commit, copy it and its lines
# of bench/meson.build in); bench-instr is (re)built with ninja first. ~10 s a build. One
# JSON line per run goes to bench/history/instr.jsonl (bench/lib.sh, bench_history).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
MAX_RATIO="${MAX_RATIO:-1.02}"
# Sizes: the Date header is formatted again once a second (~460 instructions), so the HTTP
# figure can move by a few hundredths of an instruction between runs; spawn repeats exactly.
SPAWN_N1=1000 SPAWN_N2=101000
HTTP_K1=160 HTTP_K2=16160
command -v valgrind >/dev/null || { echo "instr.sh: valgrind is missing" >&2; exit 1; }

prepare() { # build dir: set up (build/ only) and build bench-instr, warn if not release+LTO
    local dir="$1"
    if [[ ! -f "$dir/build.ninja" ]]; then
        [[ "$dir" == build ]] || { echo "instr.sh: $dir is not a meson build dir" >&2; exit 1; }
        meson setup build --buildtype=release >/dev/null
    fi
    ninja -C "$dir" bench/bench-instr >/dev/null
    meson introspect --buildoptions "$dir" | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
bt, lto = o.get("buildtype"), o.get("b_lto")
if bt != "release" or lto is not True:
    print(f"instr.sh: warning: {sys.argv[1]} is buildtype={bt} b_lto={lto}, not the release"
          " LTO build", file=sys.stderr)' "$dir"
}

irefs() { # program args...: the instructions valgrind counted in the whole run
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 |
        sed -n 's/.*I *refs: *//p' | tr -d ,
}

per_op() { # exe workload n1 n2: instructions per operation between the two sizes
    local a b
    a=$(irefs "$1" "$2" "$3")
    b=$(irefs "$1" "$2" "$4")
    [[ -n $a && -n $b ]] || { echo "instr.sh: $1 $2 failed under valgrind" >&2; exit 1; }
    awk -v a="$a" -v b="$b" -v n1="$3" -v n2="$4" 'BEGIN { printf "%.2f", (b - a) / (n2 - n1) }'
}

measure() { # build dir: the `name value unit` lines of that build
    local exe="$1/bench/bench-instr"
    echo "instr_spawn_join${BENCH_INSTR_TRACE:+_traced} $(per_op "$exe" spawn $SPAWN_N1 $SPAWN_N2) instructions"
    echo "instr_http_pipelined $(per_op "$exe" http $HTTP_K1 $HTTP_K2) instructions"
    if "$exe" http-park 1 >/dev/null 2>&1; then # builds before issue 20's parked connections
        echo "instr_http_keepalive_in_task $(per_op "$exe" http1 $HTTP_K1 $HTTP_K2) instructions"
        echo "instr_http_keepalive_parked $(per_op "$exe" http-park $HTTP_K1 $HTTP_K2) instructions"
    fi
}

build_commit() { # build dir: the commit of its source tree, "+" if that tree has changes
    local src
    src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
        "$1/meson-info/meson-info.json")
    git -C "$src" rev-parse --short=12 HEAD 2>/dev/null | tr -d '\n'
    [[ -z $(git -C "$src" status --porcelain --untracked-files=no -- . ':!bench/history' \
        2>/dev/null) ]] || echo -n +
}

out=$(mktemp)
trap 'rm -f "$out" "$out.ratio"' EXIT
if (($# <= 1)); then
    dir="${1:-build}"
    prepare "$dir"
    measure "$dir" | tee "$out"
    BENCH_NOTE="${BENCH_NOTE:-build $dir at $(build_commit "$dir")}" bench_history instr "$out"
    exit 0
fi
(($# == 2)) || { sed -n '2,14p' "$0" >&2; exit 2; }
A="$1" B="$2"
prepare "$A"
prepare "$B"
echo "A = $A ($(build_commit "$A")), B = $B ($(build_commit "$B"))"
measure "$A" | sed 's/^\([^ ]*\) /\1_a /' >"$out"
measure "$B" | sed 's/^\([^ ]*\) /\1_b /' >>"$out"
awk -v max="$MAX_RATIO" '
    { name = $1; sub(/_[ab]$/, "", name); v[name, substr($1, length($1))] = $2; names[name] = 1 }
    END {
        for (name in names) {
            r = v[name, "b"] / v[name, "a"]
            printf "%s_ratio %.4f b/a\n", name, r
            if (r > max) printf "instr.sh: %s: B/A = %.4f > %s\n", name, r, max > "/dev/stderr"
        }
    }' "$out" | sort >"$out.ratio"
cat "$out.ratio" >>"$out"
sort "$out"
BENCH_NOTE="${BENCH_NOTE:-A = $A at $(build_commit "$A"), B = $B at $(build_commit "$B")}" \
    bench_history instr "$out"
awk -v max="$MAX_RATIO" '$2 > max { bad = 1 } END { exit bad }' "$out.ratio"
