#!/usr/bin/env bash
# Memory per idle keep-alive connection (issue 20, item 2): corral-httpd on one core beside
# nginx (1 worker), Tokio + hyper (current_thread) and Go net/http (GOMAXPROCS=1) from
# ../shared/peers, in one invocation. For each server, each route: start it pinned to CPU 0,
# run build/bench/bench-idle (CPU 1) with CONNS connections that each make one request and
# stay open, print its figures (RSS per connection 2 s after the last response; RSS after the
# close), stop the server by its PID.
#   bench/idle.sh [CONNS]    (default 10000; nothing else may run on the machine meanwhile)
# Routes: GET / on every server; corral also after a static-file request (GET /files/
# index.html), and with a slow response in flight on every connection (corral-active:
# --debug's GET /debug/slow, IDLE_ACTIVE=1 for bench-idle). ONLY: a regex on the server
# names (corral, corral-file, corral-active, nginx, tokio-ct, go-1p).
# ../shared/peers/setup.sh must have run once (it builds the peers).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CONNS="${1:-10000}"
PEERS="${PEERS:-../shared/peers}"
PEERS_BUILD="${PEERS_BUILD:-/tmp/corral-peers-build}"
ONLY="${ONLY:-}"
OUT="${OUT:-/tmp/corral-bench-idle-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
: >"$OUT/all.txt"

[[ -f build/build.ninja ]] || meson setup build --buildtype=release >/dev/null
ninja -C build corral-httpd bench/bench-idle >/dev/null
ulimit -n "$(ulimit -Hn)" # the servers and the client inherit it
((CONNS + 64 <= $(ulimit -n))) || { echo "idle.sh: $CONNS connections need more open files than $(ulimit -n)" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

SERVER_PID=""
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 -- "-$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

# measure NAME PORT PATH COMMAND...: the server in a process group of its own, on CPU 0.
measure() {
    local name="$1" port="$2" path="$3"
    shift 3
    [[ -z $ONLY || $name =~ $ONLY ]] || return 0
    setsid taskset -c 0 "$@" >"$OUT/$name.log" 2>&1 </dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 100); do port_open "$port" && break; sleep 0.05; done
    port_open "$port" || { echo "idle.sh: $name did not listen on $port" >&2; cat "$OUT/$name.log" >&2; exit 1; }
    echo "[idle] $name: $CONNS connections, GET $path" >&2
    taskset -c 1 ./build/bench/bench-idle "$port" "$SERVER_PID" "$CONNS" "$path" |
        sed "s/^idle_/idle_${name//-/_}_/" | tee -a "$OUT/all.txt"
    stop_server
}

port=18500
measure corral $((port + 1)) / ./build/corral-httpd --addr 127.0.0.1:$((port + 1)) --cores 1 \
    --max-conns $((CONNS + 100))
measure corral-file $((port + 2)) /files/index.html ./build/corral-httpd \
    --addr 127.0.0.1:$((port + 2)) --cores 1 --max-conns $((CONNS + 100))
IDLE_ACTIVE=1 measure corral-active $((port + 6)) /debug/slow ./build/corral-httpd \
    --addr 127.0.0.1:$((port + 6)) --cores 1 --max-conns $((CONNS + 100)) --debug
measure nginx $((port + 3)) / "$PEERS/nginx/nginx-ctl.sh" run $((port + 3)) 1
measure tokio-ct $((port + 4)) / "$PEERS_BUILD/release/tokio-hyper-peer" \
    --addr 127.0.0.1:$((port + 4)) --mode ct
measure go-1p $((port + 5)) / env GOMAXPROCS=1 "$PEERS_BUILD/go-nethttp/go-nethttp-peer" \
    --addr 127.0.0.1:$((port + 5))

echo
echo "Bytes of server RSS per idle connection ($CONNS connections, 2 s after the last response):"
awk '$1 ~ /_bytes_per_conn$/ { sub(/^idle_/, "", $1); sub(/_bytes_per_conn$/, "", $1); printf "  %-12s %8s B\n", $1, $2 }' "$OUT/all.txt"
BENCH_NOTE="${BENCH_NOTE:-$CONNS connections}" bench_history idle "$OUT/all.txt"
echo "raw lines: $OUT/all.txt"
