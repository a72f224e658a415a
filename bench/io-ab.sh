#!/usr/bin/env bash
# A/B of the blocking-pool round trip: ROUNDS alternating rounds of bench-io from build A and
# from build B, on io_uring and on epoll, and Tokio's spawn_blocking round trip (tokio-micro,
# built by ../shared/peers/micro/run.sh), all pinned to CPU 0. Prints each figure's median and
# quartiles over the rounds, then per backend the medians of the per-round ratios B/A and
# B/Tokio, with their ranges.
#   bench/io-ab.sh BUILD_A BUILD_B      e.g. bench/io-ab.sh /tmp/base-build build
# Environment: ROUNDS [15], TOKIO_MICRO [/tmp/corral-micro-build/tokio-target/release/tokio-micro].
# The run's figures (B's) go to bench/history/io-ab.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
(($# == 2)) || { echo "usage: bench/io-ab.sh BUILD_A BUILD_B" >&2; exit 2; }
a="$1/bench/bench-io" b="$2/bench/bench-io"
tokio="${TOKIO_MICRO:-/tmp/corral-micro-build/tokio-target/release/tokio-micro}"
for exe in "$a" "$b" "$tokio"; do
    [[ -x $exe ]] || { echo "io-ab.sh: $exe is missing" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((i = 1; i <= ${ROUNDS:-15}; i++)); do
    for backend in io_uring epoll; do
        CORRAL_BACKEND=$backend taskset -c 0 "$a" | sed 's/^corral_/a_/' >>"$out/all.txt"
        CORRAL_BACKEND=$backend taskset -c 0 "$b" | sed 's/^corral_/b_/' >>"$out/all.txt"
    done
    taskset -c 0 "$tokio" | grep spawn_blocking_rtt_samecpu >>"$out/all.txt"
done
/usr/bin/python3 - "$out/all.txt" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 2:
        try:
            d[f[0]].append(float(f[1]))
        except ValueError:
            pass
def quart(v):
    s = sorted(v)
    return statistics.median(s), s[len(s) // 4], s[(3 * len(s)) // 4]
for k, v in sorted(d.items()):
    if 'offload' in k or 'spawn_blocking' in k:
        m, q1, q3 = quart(v)
        print(f"{k} median {m:.2f} q1 {q1:.2f} q3 {q3:.2f} n {len(v)}")
t = d['tokio_spawn_blocking_rtt_samecpu']
for be in ('io_uring', 'epoll'):
    a, b = d[f'a_{be}_offload_rtt_samecpu'], d[f'b_{be}_offload_rtt_samecpu']
    for name, x, y in ((f'{be} B/A', a, b), (f'{be} B/tokio', t, b)):
        r = sorted(q / p for p, q in zip(x, y))
        print(f"{name}: median {statistics.median(r):.3f} range {r[0]:.3f}..{r[-1]:.3f}")
PY
grep '^b_' "$out/all.txt" | sed 's/^b_/corral_/' | bench_history io-ab
