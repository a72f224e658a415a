# lib.sh - shared by the bench/*.sh scripts (sourced, not run).
# shellcheck shell=bash

# peers_round ONLY OUT: one round of ../shared/peers/micro/run.sh restricted to ONLY, its raw
# `name value unit` lines appended to $OUT/all.txt.
peers_round() {
    local only="$1" out="$2" n
    n=$(date +%s%N)
    ONLY="$only" MICRO_BUILD="${MICRO_BUILD:-/tmp/corral-micro-build}" \
        "${PEERS:-../shared/peers}/micro/run.sh" 1 >"$out/peers-$n.md" 2>"$out/peers-$n.log"
    cat "$(sed -n 's/.*raw lines: \([^ ]*\).*/\1/p' "$out/peers-$n.log" | tail -1)" >>"$out/all.txt"
}

# An awk prelude: reads `name value unit` lines into v/n/unit; med(name) is their median.
AWK_MEDIAN='
    NF == 3 { v[$1, ++n[$1]] = $2; unit[$1] = $3 }
    function med(name,    m, i, j, t, a) {
        m = n[name]
        if (!m) return -1
        for (i = 1; i <= m; i++) a[i] = v[name, i]
        for (i = 2; i <= m; i++)
            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }'

# bench_history SCRIPT [FILE...]: append one JSON line for this run to
# ${BENCH_HISTORY_DIR:-bench/history}/SCRIPT.jsonl, made from the `name value unit` lines of
# FILEs (stdin if none) that have a numeric value; other lines are left out. A name printed
# more than once (once a round) is recorded as the median of its values.
#   {"commit": "f045af0a1b2c" (+ if the tree has other changes), "date": "2026-12-01T22:30:00Z",
#    "machine": {"cpu": ..., "kernel": ..., "cpus": N}, "note": $BENCH_NOTE (if set),
#    "figures": {name: value, ...}, "units": {name: unit, ...}}
bench_history() {
    local script="$1" dir="${BENCH_HISTORY_DIR:-bench/history}" commit
    shift
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    # "+": the tree has changes, other than to the history files (which every run changes)
    [[ -z $(git status --porcelain --untracked-files=no -- . ':!bench/history' 2>/dev/null) ]] ||
        commit+=+
    mkdir -p "$dir"
    cat "$@" | awk -v commit="$commit" -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        -v cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
        -v kernel="$(uname -r)" -v cpus="$(nproc)" -v note="${BENCH_NOTE:-}" '
        function str(s,    i, c, o) { # a JSON string (control characters become spaces)
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                o = o (c == "\\" || c == "\"" ? "\\" c : c < " " ? " " : c)
            }
            return "\"" o "\""
        }
        function median(name,    m, i, j, t, a) {
            m = count[name]
            for (i = 1; i <= m; i++) a[i] = val[name, i]
            for (i = 2; i <= m; i++)
                for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        NF == 3 && $2 ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ {
            if (!count[$1]++) order[++names] = $1
            val[$1, count[$1]] = $2 + 0
            unit[$1] = $3
        }
        END {
            printf "{\"commit\": %s, \"date\": %s, \"machine\": {\"cpu\": %s, \"kernel\": %s, \"cpus\": %d}",
                str(commit), str(date), str(cpu), str(kernel), cpus
            if (note != "") printf ", \"note\": %s", str(note)
            printf ", \"figures\": {"
            for (i = 1; i <= names; i++) {
                v = sprintf("%.10g", median(order[i]))
                printf "%s%s: %s", (i > 1 ? ", " : ""), str(order[i]), v ~ /n/ ? "null" : v # inf, nan
            }
            printf "}, \"units\": {"
            for (i = 1; i <= names; i++)
                printf "%s%s: %s", (i > 1 ? ", " : ""), str(order[i]), str(unit[order[i]])
            print "}}"
        }' >>"$dir/$script.jsonl"
}
