#!/usr/bin/env bash
# corral-httpd beside its peers (../shared/peers/bench-http.sh: Tokio + hyper, the two
# parser-less limit servers, and the others ONLY selects), then issue 6's bars checked
# against the median table of that same run.
#   bench/http.sh [ROUNDS]     (default 5; nothing else may run on the machine meanwhile)
# Environment: ONLY [^(tokio-ct|limit-|corral)], DUR, WARMUP, SUITES as bench-http.sh
# reads them; BARS_ONLY=DIR checks the bars of an earlier run's DIR/median.tsv, and
# BARS_ONLY='DIR DIR ...' the medians of every round of those runs pooled.
# ../shared/peers/setup.sh must have run once (it builds the peers). A run (not BARS_ONLY)
# appends its medians to bench/history/http.jsonl as http_SUITE_cCONNS_SERVER_{rps,p99,
# cpu_per_req,wrk_cpu}.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
PEERS="${PEERS:-../shared/peers}"
if [[ -z "${BARS_ONLY:-}" ]]; then
    [[ -f build/build.ninja ]] || meson setup build --buildtype=release >/dev/null
    ninja -C build corral-httpd >/dev/null
    log=$(mktemp)
    ROUNDS="${1:-5}" ONLY="${ONLY:-^(tokio-ct|limit-|corral)}" "$PEERS/bench-http.sh" \
        --sut 'corral=./build/corral-httpd --addr 127.0.0.1:{PORT} --cores 1' \
        --sut-work 'corral=./build/corral-httpd --addr 127.0.0.1:{PORT} --cores 1 --work' |
        tee "$log"
    dir=$(grep -o '/tmp/corral-bench-http-[0-9-]*' "$log" | tail -1)
    rm -f "$log"
elif [[ "$BARS_ONLY" == *" "* ]]; then
    runs="$BARS_ONLY"
    dir=$(mktemp -d /tmp/corral-bench-http-pooled-XXXXXX)
    # shellcheck disable=SC2086 # one argument per run directory
    python3 - "$dir/median.tsv" $runs <<'EOF'
import collections, statistics, sys
out, runs = sys.argv[1], sys.argv[2:]
rounds = collections.defaultdict(list)
for run in runs:
    with open(f"{run}/raw.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for line in f:
            v = line.rstrip("\n").split("\t")
            key = (v[col["suite"]], v[col["conns"]], v[col["server"]])
            rounds[key].append([float(v[col[c]]) for c in ("rps", "p99_us", "srv_cpu_us_per_req")])
with open(out, "w") as f:
    f.write("suite\tconns\tserver\trounds\trps\tp99_us\tsrv_cpu_us_per_req\n")
    for (suite, conns, server), rows in sorted(rounds.items()):
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        f.write(f"{suite}\t{conns}\t{server}\t{len(rows)}\t{med[0]:.0f}\t{med[1]:.0f}\t{med[2]:.2f}\n")
EOF
    echo "Pooled medians of every round of: $runs"
    column -t -s $'\t' "$dir/median.tsv"
else
    dir="$BARS_ONLY"
fi
[[ -f "$dir/median.tsv" ]] || { echo "bench/http.sh: no $dir/median.tsv" >&2; exit 1; }

echo
echo "Issue 6's bars, medians of $dir:"
awk -F'\t' '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { k = $col["suite"] "/" $col["conns"] "/" $col["server"]
      rps[k] = $col["rps"]; p99[k] = $col["p99_us"]; cpu[k] = $col["srv_cpu_us_per_req"] }
    function lim(s, c,    e, u) {   # the better limit server: its CPU per request
        e = cpu[s "/" c "/limit-epoll"]; u = cpu[s "/" c "/limit-uring"]
        return e == "" ? u : u == "" ? e : (e < u ? e : u)
    }
    function bar(what, value, ok, text) {
        printf "| %s | %s | %s |\n", what, text, value == "" ? "n/a" : ok ? "met" : "NOT met"
    }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
    END {
        print "| bar | measured | |"
        print "|---|---|---|"
        for (c = 100; c <= 800; c += 700) {
            k = "hello/" c "/corral"; t = "hello/" c "/tokio-ct"
            r = ratio(rps[k], rps[t])
            bar("hello c" c ": req/s >= tokio-ct", r, r >= 1, sprintf("%.2fx", r))
            l = lim("hello", c); r = ratio(cpu[k], l)
            bar("hello c" c ": CPU/req <= 1.2x the better limit server", r, r <= 1.2,
                sprintf("%.2f us = %.2fx limit (%.2f us)", cpu[k], r, l))
            r = ratio(cpu[k], cpu[t])
            bar("hello c" c ": CPU/req below tokio-ct", r, r < 1,
                sprintf("%.2f vs %.2f us = %.2fx", cpu[k], cpu[t], r))
            want = c == 100 ? 1 : 0.8; r = ratio(p99[k], p99[t])
            bar("hello c" c ": p99 <= " want "x tokio-ct", r, r <= want,
                sprintf("%.2f vs %.2f ms = %.2fx", p99[k] / 1000, p99[t] / 1000, r))
        }
        k = "pipe/100/corral"; t = "pipe/100/tokio-ct"
        r = ratio(cpu[k], cpu[t])
        bar("pipe: CPU/req <= 0.8x tokio-ct", r, r <= 0.8, sprintf("%.2f vs %.2f us = %.2fx", cpu[k], cpu[t], r))
        r = ratio(rps[k], rps[t])
        bar("pipe: req/s >= tokio-ct", r, r >= 1, sprintf("%.2fx", r))
        k = "work/100/corral"; t = "work/100/tokio-ct+work-spin"
        r = ratio(rps[k], rps[t])
        bar("work: req/s >= tokio-ct+work-spin", r, r >= 1, sprintf("%.2fx", r))
        r = ratio(p99[k], p99[t])
        bar("work: p99 <= tokio-ct+work-spin", r, r <= 1, sprintf("%.2f vs %.2f ms = %.2fx", p99[k] / 1000, p99[t] / 1000, r))
    }' "$dir/median.tsv" | tee "$dir/bars.md"

# The run's medians, one figure per server and measure, into the history.
if [[ -z "${BARS_ONLY:-}" ]]; then
    awk -F'\t' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { k = "http_" $col["suite"] "_c" $col["conns"] "_" $col["server"]
          print k "_rps", $col["rps"], "req/s"; print k "_p99", $col["p99_us"], "us"
          print k "_cpu_per_req", $col["srv_cpu_us_per_req"], "us"
          print k "_wrk_cpu", $col["wrk_cpu_pct"], "%" }' "$dir/median.tsv" >"$dir/figures.txt"
    BENCH_NOTE="${BENCH_NOTE:-${1:-5} rounds, $dir}" bench_history http "$dir/figures.txt"
fi
