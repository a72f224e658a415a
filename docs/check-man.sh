#!/bin/sh
# check-man.sh PAGE|DIR... [-- NAME...]: every man page given (a DIR: each *.[0-9] in it)
# renders with groff without a warning, every link page (".so man3/x.3") names a page that
# exists, and each NAME has a page in the DIRs given. Run by meson test (docs/man-pages).
set -eu
status=0
pages= dirs=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    if [ -d "$1" ]; then
        dirs="$dirs $1"
        pages="$pages $(ls "$1"/*.[0-9] 2>/dev/null | tr '\n' ' ')"
    else
        pages="$pages $1"
    fi
    shift
done
[ $# -gt 0 ] && shift
for page in $pages; do
    first=$(head -n 1 "$page")
    case "$first" in
    ".so "*)
        target="$(dirname "$page")/../${first#.so }"
        [ -f "$target" ] || { echo "$page: links to ${first#.so }, which is missing"; status=1; }
        continue ;;
    esac
    out=$(groff -man -ww -z "$page" 2>&1) || { echo "$page: groff failed"; status=1; }
    [ -z "$out" ] || { echo "$out"; status=1; }
done
for name; do
    found=no
    for d in $dirs; do [ -f "$d/$name" ] && found=yes; done
    [ $found = yes ] || { echo "no man page $name in$dirs"; status=1; }
done
[ -n "$pages" ] || { echo "no man pages given"; status=1; }
exit $status
