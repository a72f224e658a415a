#!/usr/bin/env bash
# test_history.sh LIB - bench_history (bench/lib.sh): two runs' `name value unit` lines, as a
# bench script prints them, become two JSON lines in the history file, each with the figures
# (a name printed once a round as the median), units, commit, date and machine.
set -euo pipefail
lib="$1"
# shellcheck source=/dev/null
. "$lib"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# A run of three rounds: one figure per round, a figure once, lines that are not figures.
cat >"$dir/run1.txt" <<'LINES'
[core] round 1/3
corral_spawn_join 25.61 ns
corral_yield_2tasks 8.41 ns
corral_spawn_join 34.26 ns
| a | table | row |
corral_spawn_join 24.28 ns
peer_rate 1.5e6 msg/s
not_a_figure n/a ns
with"quote\back 3 x
out_of_range 1e999 x
LINES
BENCH_HISTORY_DIR="$dir/history" BENCH_NOTE='5 rounds, "quoted"' bench_history core "$dir/run1.txt"
# A second run, read from stdin, with no note; an even count takes the mean of the middle two.
printf 'instr_spawn_join 217.74 instructions\ninstr_spawn_join 217.76 instructions\n' |
    BENCH_HISTORY_DIR="$dir/history" bench_history core

/usr/bin/python3 - "$dir/history/core.jsonl" <<'PY'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 2, lines
runs = [json.loads(line) for line in lines]
for run in runs:
    assert re.fullmatch(r"([0-9a-f]{12}\+?|unknown)", run["commit"]), run["commit"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["date"]), run["date"]
    m = run["machine"]
    assert m["cpu"] and m["kernel"] and m["cpus"] >= 1, m
first, second = runs
assert first["figures"] == {"corral_spawn_join": 25.61, "corral_yield_2tasks": 8.41,
                            "peer_rate": 1.5e6, 'with"quote\\back': 3, "out_of_range": None}, first["figures"]
assert first["units"] == {"corral_spawn_join": "ns", "corral_yield_2tasks": "ns",
                          "peer_rate": "msg/s", 'with"quote\\back': "x", "out_of_range": "x"}, first["units"]
assert first["note"] == '5 rounds, "quoted"', first["note"]
assert "note" not in second, second
assert second["figures"] == {"instr_spawn_join": 217.75}, second["figures"]
print("ok: 2 runs recorded,", len(first["figures"]), "and", len(second["figures"]), "figures")
PY
