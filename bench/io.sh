#!/usr/bin/env bash
# I/O micro-benchmarks beside the peers, in one invocation: ROUNDS interleaved rounds of
# build/bench/bench-io on io_uring, then on epoll, then one round of
# ../shared/peers/micro/run.sh with ONLY='uring|fio|tokio' (raw liburing, fio, Tokio's
# spawn_blocking). Prints medians over rounds and the ratios issue 4 asks for.
#   bench/io.sh [ROUNDS]          (default 3; nothing else may run on the machine meanwhile)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${1:-3}"
PEERS="${PEERS:-../shared/peers}"
MICRO_BUILD="${MICRO_BUILD:-/tmp/corral-micro-build}"
OUT="${OUT:-/tmp/corral-bench-io-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
: >"$OUT/all.txt"

[[ -f build/build.ninja ]] || meson setup build --buildtype=release >/dev/null
ninja -C build bench/bench-io >/dev/null

for ((r = 1; r <= ROUNDS; r++)); do
    echo "[io] round $r/$ROUNDS: peers (ONLY='uring|fio|tokio'), then bench-io on both backends" >&2
    # The peers' uring program creates the 256 MiB read file that both sides use.
    peers_round 'uring|fio|tokio' "$OUT"
    for b in uring epoll; do
        CORRAL_BACKEND=$b ./build/bench/bench-io "$MICRO_BUILD/randread.dat" >>"$OUT/all.txt"
    done
done

awk "$AWK_MEDIAN"'
    function pick(a, b) { return n[a] ? a : b }
    function row(what, ours, peer, how, bar,    o, p, r, s) {
        o = med(ours); p = med(peer)
        if (o < 0 || p <= 0) { printf "| %s | %s: n/a | %s: n/a | n/a | %s |\n", what, ours, peer, bar; return }
        if (how == "over") { r = o - p; s = sprintf("+%.1f %s", r, unit[ours]) }
        else if (how == "of") { r = o / p; s = sprintf("%.0f%%", 100 * r) }
        else { r = o / p; s = sprintf("%.2fx", r) }
        printf "| %s | %.1f %s | %s %.1f %s | %s | %s |\n", what, o, unit[ours], peer, p, unit[peer], s, bar
    }
    END {
        d1 = pick("uring_randread4k_qd1_direct", "uring_randread4k_qd1_buffered")
        d32 = pick("uring_randread4k_qd32_direct", "uring_randread4k_qd32_buffered")
        m = (d1 ~ /direct/) ? "direct" : "buffered"
        print "| measure | corral (median) | peer (median, same run) | corral vs peer | must reach |"
        print "|---|---:|---|---:|---|"
        row("no-op op, batch 16, io_uring", "corral_io_uring_nop_batch16", "uring_nop_batch16", "over", "<= +100 ns")
        row("no-op op, epoll (completes inline)", "corral_epoll_nop_batch16", "uring_nop_batch16", "over", "(info)")
        row("4 KiB random reads QD1, io_uring", "corral_io_uring_randread4k_qd1_" m, d1, "of", ">= 90%")
        row("4 KiB random reads QD32, io_uring", "corral_io_uring_randread4k_qd32_" m, d32, "of", ">= 90%")
        row("4 KiB random reads QD1, epoll (pool)", "corral_epoll_randread4k_qd1_" m, d1, "of", "(info)")
        row("4 KiB random reads QD32, epoll (pool)", "corral_epoll_randread4k_qd32_" m, d32, "of", "(info)")
        row("fio QD1 (cross-check)", "fio_randread4k_qd1_" m, d1, "of", "(info)")
        row("fio QD32 (cross-check)", "fio_randread4k_qd32_" m, d32, "of", "(info)")
        row("TCP ping-pong RTT, io_uring", "corral_io_uring_tcp_pingpong_rtt", "corral_epoll_tcp_pingpong_rtt", "ratio", "(info: vs epoll)")
        row("offload round trip, io_uring", "corral_io_uring_offload_rtt_samecpu", "tokio_spawn_blocking_rtt_samecpu", "ratio", "(info)")
        row("offload round trip, epoll", "corral_epoll_offload_rtt_samecpu", "tokio_spawn_blocking_rtt_samecpu", "ratio", "(info)")
    }' "$OUT/all.txt" | tee "$OUT/table.md"
BENCH_NOTE="${BENCH_NOTE:-$ROUNDS rounds, raw $OUT/all.txt}" bench_history io "$OUT/all.txt"
echo "[io] raw: $OUT/all.txt" >&2
