#!/usr/bin/env bash
# Cross-core figures beside the peers, in one invocation: ROUNDS interleaved rounds of
# build/bench/bench-smp on io_uring and on epoll, then one round of
# ../shared/peers/micro/run.sh with ONLY='pingpong|tokio'. Prints medians and ratios.
#   bench/smp.sh [ROUNDS]        (default 3; nothing else may run on the machine meanwhile)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${1:-3}"
PEERS="${PEERS:-../shared/peers}"
OUT="${OUT:-/tmp/corral-bench-smp-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
: >"$OUT/all.txt"
[[ -f build/build.ninja ]] || meson setup build --buildtype=release >/dev/null
ninja -C build bench/bench-smp >/dev/null
for ((r = 1; r <= ROUNDS; r++)); do
    echo "[smp] round $r/$ROUNDS" >&2
    for b in uring epoll; do CORRAL_BACKEND=$b ./build/bench/bench-smp >>"$OUT/all.txt"; done
    peers_round 'pingpong|tokio' "$OUT"
done
awk "$AWK_MEDIAN"'
    function row(what, ours, peer, bar,    o, p) {
        o = med(ours); p = med(peer)
        if (o < 0 || p <= 0) { printf "| %s | n/a | n/a | n/a | %s |\n", what, bar; return }
        printf "| %s | %.0f %s | %s %.0f %s | %.2fx | %s |\n", what, o, unit[ours], peer, p, unit[peer], o / p, bar
    }
    END {
        print "| measure | corral (median) | peer (median, same run) | corral/peer | must reach |"
        print "|---|---:|---|---:|---|"
        row("call round trip, awake core, io_uring", "corral_io_uring_xcore_call_rtt_awake", "pingpong_cacheline_rtt", "<= 3x")
        row("call round trip, awake core, epoll", "corral_epoll_xcore_call_rtt_awake", "pingpong_cacheline_rtt", "<= 3x")
        row("call round trip, sleeping core, io_uring", "corral_io_uring_xcore_call_rtt_asleep", "tokio_xcore_call_rtt", "<= 1x")
        row("call round trip, sleeping core, epoll", "corral_epoll_xcore_call_rtt_asleep", "tokio_xcore_call_rtt", "<= 1x")
        row("sleeping core vs the eventfd wake floor, io_uring", "corral_io_uring_xcore_call_rtt_asleep", "pingpong_eventfd_rtt", "(info)")
        printf "\nCPU of both cores per sleeping-core call (includes the idle and reply polls): io_uring %.0f ns, epoll %.0f ns\n",
            med("corral_io_uring_xcore_cpu_per_asleep_call"), med("corral_epoll_xcore_cpu_per_asleep_call")
        u = med("corral_io_uring_xchan_msgs_per_sec"); e = med("corral_epoll_xchan_msgs_per_sec")
        printf "Cross-core channel, core 0 -> core 1, 8-byte values, capacity 1024: io_uring %.1f M msg/s (%.0f ns/msg), epoll %.1f M msg/s (%.0f ns/msg); for scale, tokio_mpsc_bounded_2task (one thread) %.1f ns/msg\n",
            u / 1e6, 1e9 / u, e / 1e6, 1e9 / e, med("tokio_mpsc_bounded_2task")
    }' "$OUT/all.txt" | tee "$OUT/table.md"
BENCH_NOTE="${BENCH_NOTE:-$ROUNDS rounds, raw $OUT/all.txt}" bench_history smp "$OUT/all.txt"
echo "[smp] raw: $OUT/all.txt" >&2
