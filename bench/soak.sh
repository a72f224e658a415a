#!/usr/bin/env bash
# Soak: corral-httpd under sustained, mixed load, with its resident memory and open file
# descriptors sampled after every cycle. MISSION.md asks for both to stay flat.
#   bench/soak.sh [CYCLES]      (default 12; each cycle is ~4 x PHASE_DUR of load)
# Environment: PHASE_DUR [5s], BACKEND [uring], CORES [1], BALANCE [reuseport], SERVER_CPU [0],
# CLIENT_CPU [1] (with CORES=2, e.g. SERVER_CPU=0,1: the client then shares a CPU),
# IDLE_AFTER [0]: seconds of idle after the cycles, RSS read every 10 s (stacks go back).
# One cycle, every phase bounded in time or count, all on 127.0.0.1:
#   hello   wrk -c800, keep-alive GET / (connections stay open for the whole phase)
#   mixed   wrk -c200 cycling GET /, POST /echo (1 KiB), GET /files/ (whole, ranged),
#           a 404, GET /work and a GET / with `Connection: close` (a reconnect each round)
#   churn   wrk -c50, every request `Connection: close`: one connection per request
#   bad     wrk -c50, every request ambiguous (two Host headers): a 400 and a close each
#   cut     400 connections that send half a request head and go away, every other one
#           with a reset (SO_LINGER 0) instead of a FIN
# After each cycle the script waits until the server's fd count stops falling (up to 3 s),
# then reads VmRSS and the fd count from /proc. Prints one line per cycle and a summary, and
# appends the summary's figures (soak_*) to bench/history/soak.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CYCLES="${1:-12}"
PHASE_DUR="${PHASE_DUR:-5s}"
BACKEND="${BACKEND:-uring}"
CORES="${CORES:-1}"
BALANCE="${BALANCE:-reuseport}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
command -v wrk >/dev/null || { echo "soak.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

[[ -f build/build.ninja ]] || meson setup build --buildtype=release >/dev/null
ninja -C build corral-httpd >/dev/null

work=$(mktemp -d /tmp/corral-soak-XXXXXX)
server_pid=
cleanup() {
    [[ -z $server_pid ]] || kill -TERM "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/mixed.lua" <<'EOF'
local reqs, i = {}, 0
init = function(args)
    reqs = {
        wrk.format("GET", "/"),
        wrk.format("POST", "/echo", {["Content-Type"] = "application/octet-stream"},
                   string.rep("x", 1024)),
        wrk.format("GET", "/files/index.html"),
        wrk.format("GET", "/files/style.css", {["Range"] = "bytes=0-99"}),
        wrk.format("GET", "/missing"),
        wrk.format("GET", "/work"),
        wrk.format("GET", "/", {["Connection"] = "close"}),
    }
end
request = function() i = i % #reqs + 1; return reqs[i] end
EOF
cat >"$work/churn.lua" <<'EOF'
request = function() return wrk.format("GET", "/", {["Connection"] = "close"}) end
EOF
cat >"$work/bad.lua" <<'EOF'
request = function()
    return "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
end
EOF
cat >"$work/cut.py" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
for i in range(400):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /files/index.html HTTP/1.1\r\nHost: x\r\nUser-Ag")
    if i % 2:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
EOF

# The server, pinned, on a port the kernel picks (read back from its ready line).
taskset -c "$SERVER_CPU" ./build/corral-httpd --addr 127.0.0.1:0 --cores "$CORES" \
    --balance "$BALANCE" --backend "$BACKEND" --root www >"$work/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log")
    [[ -z $port ]] || break
    sleep 0.05
done
[[ -n $port ]] || { echo "soak.sh: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
url="http://127.0.0.1:$port"

fds() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
settle() { # until the fd count stops falling, at most 3 s
    local last now
    last=$(fds)
    for _ in $(seq 30); do
        sleep 0.1
        now=$(fds)
        ((now < last)) || break
        last=$now
    done
}
load() { # $1 phase, then wrk's arguments; appends "phase requests non2xx sockerr"
    local phase=$1 out
    shift
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -d"$PHASE_DUR" "$@" "$url/" 2>&1)
    local req non2xx err
    req=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    err=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    echo "$phase ${req:-0} ${non2xx:-0} ${err:-0}" >>"$work/cycle.txt"
}

settle
base_fds=$(fds)
base_rss=$(rss_kib)
echo "corral-httpd (pid $server_pid, $BACKEND, $CORES core(s), $BALANCE) on $url: start RSS $base_rss KiB, $base_fds fds"
echo
echo "| cycle | requests | non-2xx | socket errors | cut connections | RSS KiB | fds |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
declare -a rss_at fds_at
for ((cy = 1; cy <= CYCLES; cy++)); do
    : >"$work/cycle.txt"
    load hello -c800
    load mixed -c200 -s "$work/mixed.lua"
    load churn -c50 -s "$work/churn.lua"
    load bad -c50 -s "$work/bad.lua"
    taskset -c "$CLIENT_CPU" python3 "$work/cut.py" "$port"
    settle
    rss_at[cy]=$(rss_kib)
    fds_at[cy]=$(fds)
    awk -v cy="$cy" -v rss="${rss_at[cy]}" -v fds="${fds_at[cy]}" -v totals="$work/totals.txt" '
        { req += $2; non += $3; err += $4 }
        END { printf "| %d | %d | %d | %d | 400 | %d | %d |\n", cy, req, non, err, rss, fds
              print req, non, err >>totals }' \
        "$work/cycle.txt"
done

for ((t = 10; t <= ${IDLE_AFTER:-0}; t += 10)); do
    sleep 10
    echo "idle ${t} s: RSS $(rss_kib) KiB, $(fds) fds"
done

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
echo
echo "fds: $base_fds at the start, $(printf '%s\n' "${fds_at[@]}" | sort -n | head -1)..$(printf '%s\n' "${fds_at[@]}" | sort -n | tail -1) after the cycles"
if ((CYCLES >= 2)); then
    awk -v a="${rss_at[2]}" -v b="${rss_at[CYCLES]}" -v n="$CYCLES" 'BEGIN {
        printf "RSS: %d KiB after cycle 2, %d KiB after cycle %d (%+.1f%%)\n", a, b, n, 100 * (b - a) / a }'
fi
echo "server exit status after SIGTERM: $status"

fds_sorted=$(printf '%s\n' "${fds_at[@]}" | sort -n)
awk -v cycles="$CYCLES" -v rss0="$base_rss" -v rss2="${rss_at[2]:-0}" -v rssn="${rss_at[CYCLES]}" \
    -v fds0="$base_fds" -v fmin="$(head -1 <<<"$fds_sorted")" -v fmax="$(tail -1 <<<"$fds_sorted")" \
    -v status="$status" '
    { req += $1; non += $2; err += $3 }
    END {
        print "soak_cycles", cycles, "cycles"; print "soak_requests", req, "requests"
        print "soak_non2xx", non, "responses"; print "soak_socket_errors", err, "errors"
        print "soak_rss_start", rss0, "KiB"; print "soak_rss_last", rssn, "KiB"
        if (cycles >= 2) {
            print "soak_rss_after_cycle2", rss2, "KiB"
            printf "soak_rss_growth_from_cycle2 %.2f %%\n", 100 * (rssn - rss2) / rss2
        }
        print "soak_fds_start", fds0, "fds"; print "soak_fds_min", fmin, "fds"
        print "soak_fds_max", fmax, "fds"; print "soak_exit_status", status, "status"
    }' "$work/totals.txt" >"$work/figures.txt"
BENCH_NOTE="${BENCH_NOTE:-$CYCLES cycles of $PHASE_DUR phases, $BACKEND, $CORES core(s), $BALANCE}" \
    bench_history soak "$work/figures.txt"
