# corral: the two commands of the README, and a few conveniences.
#   make run    install what is missing, build, run corral-httpd on 127.0.0.1:8080
#   make test   install what is missing, build and run every test stage (scripts/test.sh)
#   make install  build, then install into PREFIX (/usr/local; DESTDIR honoured): libcorral.so.0,
#               libcorral.a, corral.h, corral.pc, corral-httpd
#   make deb    the Debian packages libcorral0, libcorral-dev, corral-httpd in build-deb/
#               (scripts/deb.sh; DEB_BUILD_OPTIONS=nocheck unless given: make test tests)
#   make sim    every simulator scenario (build/corral-sim) over SIM_SEEDS [1-2000]
#   make diff-long  the differential framing test against h11 (tests/http/diff_h11.py) on
#               DIFF_SEEDS x DIFF_COUNT streams (meson test runs it on 20 000)
.PHONY: all deps build run test bench clean diff-long install deb sim

all: build

deps:
	scripts/install-deps.sh --cross

build: deps
	[ -f build/build.ninja ] || meson setup build --buildtype=release
	ninja -C build

PREFIX ?= /usr/local
install: build
	meson configure build -Dprefix=$(PREFIX)
	DESTDIR="$(DESTDIR)" meson install -C build

DEB_BUILD_OPTIONS ?= nocheck
deb: deps
	DEB_BUILD_OPTIONS="$(DEB_BUILD_OPTIONS)" scripts/deb.sh

run: build
	./build/corral-httpd --addr 127.0.0.1:8080 --root www

test: deps
	scripts/test.sh

DIFF_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
DIFF_COUNT ?= 100000
diff-long: build
	for s in $(DIFF_SEEDS); do /usr/bin/python3 tests/http/diff_h11.py \
	    --oracle build/tests/http/frame_oracle --seed $$s --count $(DIFF_COUNT) || exit 1; done

# Every scenario of corral-sim (tools/sim/) over SIM_SEEDS; stops at the first failing seed.
SIM_SEEDS ?= 1-2000
sim: build
	for s in $$(./build/corral-sim --list); do ./build/corral-sim $$s --seeds $(SIM_SEEDS) || exit 1; done

bench: build
	./build/bench/bench-core

clean:
	rm -rf build build-asan build-tsan build-aarch64 build-fuzz build-deb
