# lib.sh - shared by bench/core.sh, io.sh and smp.sh (sourced, not run).

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
