#!/usr/bin/env bash
# Core micro-benchmarks beside the peers, in one invocation: ROUNDS rounds, each one run of
# build/bench/bench-core (the million-task check in round 1 only) then one round of
# ../shared/peers/micro/run.sh with ONLY='ctxsw|tokio', interleaved so that drift of the
# machine hits both alike; prints medians over rounds with the ratios the issue asks for.
#   bench/core.sh [ROUNDS]        (default 5; nothing else may run on the machine meanwhile)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS="${1:-5}"
PEERS="${PEERS:-../shared/peers}"
OUT="${OUT:-/tmp/corral-bench-core-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

[[ -f build/build.ninja ]] || meson setup build --buildtype=release >/dev/null
ninja -C build bench/bench-core >/dev/null

: >"$OUT/corral.txt"
: >"$OUT/all.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    echo "[core] round $r/$ROUNDS: bench-core, then the peers (ONLY='ctxsw|tokio')" >&2
    if ((r == 1)); then ./build/bench/bench-core; else ./build/bench/bench-core --no-million; fi \
        >>"$OUT/corral.txt"
    peers_round 'ctxsw|tokio' "$OUT"
done
cat "$OUT/corral.txt" >>"$OUT/all.txt"

# Medians per name, then the ratios.
awk "$AWK_MEDIAN"'
    function row(what, ours, peer, how, bar,    o, p, r) {
        o = med(ours); p = med(peer)
        if (o < 0 || p <= 0) { printf "| %s | %s | n/a | %s | n/a | n/a | %s |\n", what, ours, peer, bar; return }
        r = (how == "speedup") ? p / o : o / p
        printf "| %s | %.2f %s | %s %.2f %s | %s %.2fx | %s |\n", what, o, unit[ours], peer, p, unit[peer], how, r, bar
    }
    END {
        print "| measure | corral (median) | peer (median, same run) | ratio | must reach |"
        print "|---|---:|---|---:|---|"
        row("yield, 2 tasks", "corral_yield_2tasks", "ctxsw_asm_fpu", "corral/peer", "<= 1.5x")
        row("yield, 100 tasks", "corral_yield_100tasks", "tokio_yield_now_100tasks", "corral/peer", "(info)")
        row("spawn + join", "corral_spawn_join", "tokio_spawn_await", "speedup", ">= 4x faster")
        row("scope + spawn + join", "corral_scope_spawn_join", "tokio_spawn_await", "speedup", "(info)")
        row("spawn 1000 then join", "corral_spawn_batch1000", "tokio_spawn_batch1000", "speedup", "(info)")
        row("channel msg, 2 tasks", "corral_chan_2task", "tokio_mpsc_bounded_2task", "speedup", ">= 3x faster")
        row("idle task RSS, 100k", "corral_idle_task_rss", "tokio_idle_task_pending", "corral/peer", "<= 8192 B")
        printf "\n"
        printf "1M idle guarded tasks: started %s, spawn errors %s, /proc/self/maps %s lines during, vm.max_map_count %s, start %s ms, RSS %s B/task\n",
            med("corral_million_idle_started"), med("corral_million_idle_spawn_errors"),
            med("corral_million_idle_maps"), med("vm_max_map_count"),
            med("corral_million_idle_start_time"), med("corral_million_idle_rss_per_task")
        printf "raw asm switch floor: ctxsw_asm %.2f ns, ctxsw_asm_fpu_jmp %.2f ns\n", med("ctxsw_asm"), med("ctxsw_asm_fpu_jmp")
    }' "$OUT/all.txt" | tee "$OUT/table.md"
BENCH_NOTE="${BENCH_NOTE:-$ROUNDS rounds, raw $OUT/all.txt}" bench_history core "$OUT/all.txt"
echo "[core] raw: $OUT/all.txt" >&2
