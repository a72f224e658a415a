#!/usr/bin/env bash
# corral as installed: what libcorral.so exports, corral.h in strict C and C++, and programs
# built out of the tree against a DESTDIR install through pkg-config, shared and static.
#   check.sh BUILD-DIR SOURCE-DIR PREFIX LIBDIR INCLUDEDIR   (CC: the build's C compiler)
# Run by meson test (suite install) in builds without sanitizers: it installs BUILD-DIR with
# DESTDIR=BUILD-DIR/install-check/dest, and writes only under BUILD-DIR/install-check.
# CHECK_ROOT=DIR checks what is installed there instead (the deb stage of scripts/test.sh:
# the Debian packages unpacked).
set -euo pipefail
unset LD_LIBRARY_PATH # meson test points it at the build directory: the install is tested
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) prefix="$3" libdir="$4" includedir="$5"
CC=${CC:-cc}
read -r -a cc <<<"$CC"
cxx=${CXX:-g++}
work="$build/install-check"
dest="$work/dest"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

rm -rf "$work"
mkdir -p "$work"
if [[ -n "${CHECK_ROOT:-}" ]]; then
    dest=$(cd "$CHECK_ROOT" && pwd)
else
    meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$work/install.log" 2>&1 ||
        { cat "$work/install.log"; exit 1; }
fi
[[ "$libdir" == /* ]] || libdir="$prefix/$libdir"
[[ "$includedir" == /* ]] || includedir="$prefix/$includedir"
lib="$dest$libdir" header="$dest$includedir/corral.h"

for f in "$lib/libcorral.so.0" "$lib/libcorral.so" "$lib/libcorral.a" "$lib/pkgconfig/corral.pc" \
    "$header" "$dest$prefix/bin/corral-httpd"; do
    [[ -e "$f" ]] || fail "not installed: ${f#"$dest"}"
done
soname=$(readelf -d "$lib/libcorral.so" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [[ "$soname" == libcorral.so.0 ]]; then pass "soname $soname"; else fail "soname '$soname'"; fi
((failures == 0)) || exit 1

# ---- (d) corral.h alone, as strict ISO C11 and C17 and as C++17 ----
echo '#include <corral.h>' >"$work/header.c"
for std in c11 c17; do
    if "${cc[@]}" -std=$std -pedantic -Wall -Wextra -Werror -I"$dest$includedir" -fsyntax-only \
        "$work/header.c"; then pass "corral.h as -std=$std -pedantic"; else fail "corral.h as -std=$std"; fi
done
if "$cxx" -std=c++17 -pedantic -Wall -Wextra -Werror -I"$dest$includedir" -fsyntax-only -x c++ \
    "$work/header.c"; then pass "corral.h as C++17 -pedantic"; else fail "corral.h as C++17"; fi

# ---- (a) the functions of corral.h = the export list = what the libraries export ----
# The header's functions as gcc sees them (-aux-info lists every function declared, each
# with the file that declares it), independently of src/corral.map.
gcc -I"$dest$includedir" -aux-info "$work/aux.txt" -fsyntax-only "$work/header.c"
grep '/corral\.h:' "$work/aux.txt" | perl -ne 'print "$1\n" if m{\*/ .*?([A-Za-z_]\w*) \(}' |
    sort -u >"$work/header.txt"
awk '/^ *global:/ {on = 1; next} /^ *local:|^ *}/ {on = 0} on && /^ *[A-Za-z_][A-Za-z0-9_]* *;/' \
    "$src/src/corral.map" | tr -d ' \t;' | sort -u >"$work/map.txt"
nm -D --defined-only "$lib/libcorral.so" | awk '$2 != "A" {sub(/@.*/, "", $3); print $3}' |
    sort -u >"$work/so.txt"
nm -g --defined-only "$lib/libcorral.a" | awk 'NF == 3 {print $3}' | sort -u >"$work/a.txt"
same() { # what-a a.txt what-b b.txt
    if cmp -s "$work/$2" "$work/$4"; then
        pass "$1 = $3 ($(wc -l <"$work/$2") names)"
    else
        fail "$1 != $3:"
        comm -3 "$work/$2" "$work/$4" |
            awk -v a="$1" -v b="$3" '/^\t/ {print "    only in " b ": " substr($0, 2); next}
                                     {print "    only in " a ": " $0}'
    fi
}
[[ -s "$work/header.txt" ]] || fail "no function found in corral.h"
same corral.h header.txt src/corral.map map.txt
same corral.h header.txt libcorral.so so.txt
same corral.h header.txt libcorral.a a.txt
if grep -E '^(llhttp|crl__)' "$work/so.txt" "$work/a.txt"; then fail "llhttp or crl__ exported"; fi

# ---- (b) the README's example, built against the install by pkg-config ----
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
run_fetch() { # name exe [env...]
    local name="$1" exe="$2" out
    shift 2
    if out=$(env "$@" "$exe" 2>&1) && grep -q '^fetch 3 -> 6$' <<<"$out"; then
        pass "$name runs"
    else
        fail "$name: $out"
    fi
}
# shellcheck disable=SC2046 # pkg-config's flags, split
if "${cc[@]}" -o "$work/fetch" "$src/examples/fetch.c" $(pkg-config --cflags --libs corral); then
    if readelf -d "$work/fetch" | grep -q 'NEEDED.*libcorral\.so\.0'; then
        pass "fetch linked with libcorral.so.0"
    else
        fail "fetch does not need libcorral.so.0"
    fi
    run_fetch "fetch (shared)" "$work/fetch" LD_LIBRARY_PATH="$lib"
else
    fail "fetch does not build against the install"
fi
# shellcheck disable=SC2046
if "${cc[@]}" -static -o "$work/fetch-static" "$src/examples/fetch.c" \
    $(pkg-config --static --cflags --libs corral); then
    run_fetch "fetch (static)" "$work/fetch-static"
else
    fail "fetch does not link statically (pkg-config --static)"
fi

# ---- (c) a static program with an llhttp (and a crl__ name) of its own ----
# shellcheck disable=SC2046
if "${cc[@]}" -static -o "$work/own_llhttp" "$src/tests/install/own_llhttp.c" \
    $(pkg-config --static --cflags --libs corral) 2>"$work/own_llhttp.log"; then
    if out=$("$work/own_llhttp" 2>&1) && [[ "$out" == "200 corral's" ]]; then
        pass "own_llhttp links statically and corral's parser is corral's"
    else
        fail "own_llhttp: $out"
    fi
else
    cat "$work/own_llhttp.log"
    fail "a static program with its own llhttp_init does not link"
fi

((failures == 0)) || { echo "$failures failed"; exit 1; }
echo "all passed"
