#!/usr/bin/env bash
# Interleaved A/B of HTTP servers at one connection count, in short turns: every server is up
# at once (pinned to SERVER_CPU, idle while the others are measured) and wrk runs DUR against
# each in turn, ROUNDS times. Phases of this machine's speed last seconds; short alternating
# turns put every server through the same phases, where bench-http.sh's 10 s slots do not.
#   bench/pair.sh ROUNDS DUR 'NAME=COMMAND with {PORT}' ...
#   e.g. bench/pair.sh 16 2s \
#     "tokio=/tmp/corral-peers-build/release/tokio-hyper-peer --addr 127.0.0.1:{PORT} --mode ct" \
#     "corral=build/corral-httpd --addr 127.0.0.1:{PORT} --cores 1"
# Environment: CONNS [100], SERVER_CPU [0], CLIENT_CPU [1], PORT_BASE [18600], WRK_SCRIPT.
# Prints, per server, the median req/s, the median of its per-round ratio to the first
# server and in how many rounds it was ahead, then the 75th percentile and the best round
# (slowdowns here are one-sided: another tenant takes the CPU, never gives extra). The same
# figures go to bench/history/pair.jsonl as pair_cCONNS_NAME_{rps,ratio,p75,best}.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
(($# >= 3)) || { sed -n '2,13p' "$0" >&2; exit 2; }
ROUNDS=$1 DUR=$2
shift 2
CONNS="${CONNS:-100}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
command -v wrk >/dev/null || { echo "pair.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

out=$(mktemp -d)
pids=()
stop_servers() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$out"
}
trap stop_servers EXIT

names=() ports=()
port="${PORT_BASE:-18600}"
for spec in "$@"; do
    name=${spec%%=*} cmd=${spec#*=}
    cmd=${cmd//\{PORT\}/$port}
    setsid taskset -c "$SERVER_CPU" bash -c "exec $cmd" >"$out/$name.log" 2>&1 </dev/null &
    pids+=($!) names+=("$name") ports+=("$port")
    port=$((port + 1))
done

# WRK_SCRIPT: a wrk Lua script, e.g. ../shared/peers/pipeline.lua (16 requests a write): the
# server's core then saturates, and req/s is the inverse of its CPU per request.
bench() {
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$2" ${WRK_SCRIPT:+-s "$WRK_SCRIPT"} \
        "http://127.0.0.1:$1/"
}
for i in "${!names[@]}"; do # up, and warm
    for _ in $(seq 50); do bench "${ports[$i]}" 1s >/dev/null 2>&1 && break; sleep 0.1; done
done
for round in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        rps=$(bench "${ports[$i]}" "$DUR" | awk '/Requests\/sec/ {print $2}')
        printf '%s\t%s\t%s\n' "$round" "${names[$i]}" "${rps:-0}" >>"$out/rounds.tsv"
    done
done

python3 - "$out/rounds.tsv" "$out/figures.txt" "c$CONNS" "${names[@]}" <<'EOF'
import collections, statistics, sys
rounds = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, name, rps = line.rstrip("\n").split("\t")
    rounds[int(r)][name] = float(rps)
figures, conns = open(sys.argv[2], "w"), sys.argv[3]
names, first = sys.argv[4:], sys.argv[4]
print(f"{'server':12} {'median':>9} {'ratio':>6} {'ahead':>6} {'p75':>9} {'best':>9}")
for name in names:
    rps = sorted(r[name] for r in rounds.values())
    ratios = [r[name] / r[first] for r in rounds.values() if r[first] > 0]
    ahead = sum(x > 1 for x in ratios)
    print(f"{name:12} {statistics.median(rps):9.0f} {statistics.median(ratios):6.3f} "
          f"{ahead:>3}/{len(ratios):<2} {rps[int(len(rps) * 0.75)]:9.0f} {rps[-1]:9.0f}")
    for what, value, unit in (("rps", statistics.median(rps), "req/s"),
                              ("ratio", statistics.median(ratios), f"x_{first}"),
                              ("p75", rps[int(len(rps) * 0.75)], "req/s"), ("best", rps[-1], "req/s")):
        print(f"pair_{conns}_{name}_{what} {value:.4f} {unit}", file=figures)
EOF
BENCH_NOTE="${BENCH_NOTE:-$ROUNDS rounds of $DUR at c$CONNS: $*}" bench_history pair "$out/figures.txt"
