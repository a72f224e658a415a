#!/usr/bin/env bash
# The simulator finds a bug put back on purpose (corral-sim --bug shield: shields ignored)
# within 1000 seeds, and the failing seed, run again, fails the same way with the same trace
# hash. Also: the scenario passes those seeds without the bug, and a seed replays its hash.
set -euo pipefail
# A cross build's test runs through meson's wrapper (qemu-user), which meson names here.
read -ra wrapper <<<"${MESON_EXE_WRAPPER:-}"
sim() { "${wrapper[@]}" "$SIM_BIN" "$@"; }
SIM_BIN="$1"
out=$(sim scopes --seeds 1-1000 --bug shield) && { echo "the bug was not found in 1000 seeds"; exit 1; }
fail=$(grep ' FAIL trace ' <<<"$out")
seed=$(awk '{print $2}' <<<"$fail")
echo "found: $fail"
grep -q "replay: corral-sim scopes --seed $seed --bug shield" <<<"$out"
again=$(sim scopes --seed "$seed" --bug shield) && { echo "seed $seed passed on replay"; exit 1; }
[[ "$(head -n1 <<<"$again")" == "$fail" ]] || { echo "replay differs: $again"; exit 1; }
[[ "$(sed -n 2p <<<"$again")" == "$(grep -A1 ' FAIL trace ' <<<"$out" | sed -n 2p)" ]] ||
    { echo "replay's failure differs"; exit 1; }
echo "replayed: $(head -n1 <<<"$again")"
ok=$(sim scopes --seed "$seed")
[[ "$ok" == "seed $seed ok trace "* ]] || { echo "without the bug: $ok"; exit 1; }
[[ "$(sim scopes --seed "$seed")" == "$ok" ]] || { echo "two runs of seed $seed differ"; exit 1; }
echo "without the bug: $ok"
