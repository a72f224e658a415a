#!/usr/bin/env bash
# Build the Debian packages libcorral0, libcorral-dev and corral-httpd with
# `dpkg-buildpackage -us -uc -b` in a copy of the working tree (build-deb/src),
# so that the source tree stays clean: the .debs and the .changes land in build-deb/.
#   scripts/deb.sh           build (DEB_BUILD_OPTIONS as given: nocheck skips the tests)
#   scripts/deb.sh --check   build, then check each package's files, the packages unpacked
#                            as tests/install/check.sh checks an install, and lintian (errors
#                            fail, warnings are printed): the deb stage of scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-deb
rm -rf "$out"
mkdir -p "$out/src"
# The working tree as `git add -A` would commit it: tracked files with their edits, new
# files that .gitignore does not exclude.
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - | tar -xf - -C "$out/src"
(cd "$out/src" && dpkg-buildpackage -us -uc -b)
[[ "${1:-}" == --check ]] || exit 0

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
multiarch=$(dpkg-architecture -q DEB_HOST_MULTIARCH)
bad=0
has() { # package path-regex: the package's .deb holds a file matching it
    local deb="$out/${1}_${version}_$arch.deb"
    local files # listed first: grep -q ending the pipe early would fail dpkg-deb (SIGPIPE)
    files=$(dpkg-deb -c "$deb" | awk '{print $6}')
    if grep -Eq "^\./$2\$" <<<"$files"; then
        echo "ok: $1 has ${2//\\/}"
    else
        echo "FAIL: $1 lacks $2"
        bad=1
    fi
}
lib="usr/lib/$multiarch"
has libcorral0 "$lib/libcorral\.so\.0"
has libcorral0 "$lib/libcorral\.so\.0\.1\.0"
has libcorral-dev "usr/include/corral\.h"
has libcorral-dev "$lib/pkgconfig/corral\.pc"
has libcorral-dev "$lib/libcorral\.a"
has libcorral-dev "$lib/libcorral\.so"
has corral-httpd "usr/bin/corral-httpd"
has libcorral-dev "usr/share/man/man3/crl_spawn\.3(\.gz)?" # dh_compress gzips man pages
has corral-httpd "usr/share/man/man1/corral-httpd\.1(\.gz)?"
# The packages unpacked, checked as an install: exports, header, programs built against them.
for p in libcorral0 libcorral-dev corral-httpd; do
    dpkg-deb -x "$out/${p}_${version}_$arch.deb" "$out/root"
done
CHECK_ROOT="$out/root" tests/install/check.sh "$out" . /usr "/$lib" /usr/include || bad=1
changes="$out/corral_${version}_$arch.changes"
lintian --fail-on error --display-info "$changes" || { echo "FAIL: lintian errors"; bad=1; }
exit $bad
