#!/bin/sh
# run-doxygen.sh DOXYGEN DOXYFILE STAMP: run Doxygen (which fails on any warning, see
# Doxyfile.in) and touch STAMP only when it succeeded, so that a failure stays a failure.
# The output (html/ and man/ beside the Doxyfile, its OUTPUT_DIRECTORY) is made afresh: pages
# of names no longer in corral.h must not linger and be installed.
set -eu
doxygen=$1 doxyfile=$2 stamp=$3
out=$(dirname "$doxyfile")
rm -rf "$stamp" "$out/html" "$out/man"
"$doxygen" "$doxyfile"
touch "$stamp"
