#!/usr/bin/env bash
# Install the Debian 12 packages corral needs, only those missing. Idempotent; needs root
# (or sudo) only when something is missing.
#   scripts/install-deps.sh          build + test needs
#   scripts/install-deps.sh --cross  also the aarch64 cross compiler and qemu-user
set -euo pipefail

# node-llhttp is for the HTTP server; libdw-dev (elfutils) names the functions, files and lines
# of backtraces (libbz2-dev: a static link of libdw, as pkg-config --static gives it, needs -lbz2); clang and libclang-rt-14-dev join with its fuzzer;
# python3-h11 is the other parser of the differential framing test (tests/http/diff_h11.py);
# python3-prometheus-client parses the metrics text in tests/runtime/check_metrics.py;
# doxygen makes the API reference and man3 pages (docs/), groff checks the man pages;
# debhelper, dpkg-dev, fakeroot and lintian build and check the Debian packages (make deb).
# Not installed here: nginx, for one end-to-end test of the HTTP client, skipped without it
# (apt-get install nginx would also start the system service, which the test does not use).
pkgs=(build-essential meson ninja-build pkg-config liburing-dev libdw-dev libbz2-dev node-llhttp valgrind clang-format
      clang libclang-rt-14-dev python3-h11 python3-prometheus-client doxygen groff-base debhelper
      dpkg-dev fakeroot lintian)
if [[ "${1:-}" == --cross ]]; then
    pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
((${#missing[@]} == 0)) && exit 0

echo "corral: installing ${missing[*]}" >&2
sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
