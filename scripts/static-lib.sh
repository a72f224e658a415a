#!/usr/bin/env bash
# The installed libcorral.a: every object of the library (llhttp's included) linked into one
# relocatable object in which only the names of the export list stay global, so that a
# program that links libcorral.a and a llhttp of its own (or defines any name corral uses
# inside) links, as it would against libcorral.so.
#   static-lib.sh OUT.a IN.a corral.map WORKDIR     (CC names the compiler: its ld, objcopy)
# The objects are fat LTO objects in an LTO build: `ld -r` without the plugin links their
# machine code, and their LTO sections are dropped, so that any link reads the archive as
# plain code (an LTO link of a program cannot see into libcorral.a; its -O2 code remains).
set -euo pipefail
out="$1" in="$2" map="$3" work="$4"
tool() { local t; t=$(${CC:-cc} -print-prog-name="$1"); command -v "$t" || command -v "$1"; }
ld=$(tool ld) objcopy=$(tool objcopy) ar=$(tool ar)
mkdir -p "$work"
# The names listed after "global:" in the version script's nodes, one a line.
awk '/^ *global:/ {on = 1; next} /^ *local:|^ *}/ {on = 0} on && /^ *[A-Za-z_][A-Za-z0-9_]* *;/' \
    "$map" | tr -d ' \t;' >"$work/keep.txt"
"$ld" -r --whole-archive "$in" -o "$work/all.o"
"$objcopy" --keep-global-symbols="$work/keep.txt" \
    --remove-section='.gnu.lto_*' --remove-section='.gnu.debuglto_*' \
    --strip-symbol=__gnu_lto_v1 --strip-symbol=__gnu_lto_slim \
    "$work/all.o" "$work/corral.o"
rm -f "$out"
"$ar" rcs "$out" "$work/corral.o"
