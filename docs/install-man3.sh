#!/bin/sh
# install-man3.sh SRC DEST: run by "meson install"; copies the man3 pages Doxygen made in SRC
# for corral's own names (corral.h.3, crl_*.3, CRL_*.3) to DESTDIR/DEST. A link page
# (".so man3/corral.h.3") is installed as a symlink to its target, as dh_installman does, so
# that "man -l" on it works from any directory as well as "man 3 crl_spawn".
set -eu
src=$1 dest=${DESTDIR:-}$2
mkdir -p "$dest"
for page in "$src"/corral.h.3 "$src"/crl_*.3 "$src"/CRL_*.3; do
    [ -e "$page" ] || continue
    name=${page##*/}
    first=$(head -n 1 "$page")
    case "$first" in
    ".so man3/"*)
        rm -f "$dest/$name"
        ln -s "${first#.so man3/}" "$dest/$name" ;;
    *) install -m 644 "$page" "$dest/$name" ;;
    esac
done
