# corral: the two commands of the README, and a few conveniences.
#   make run    install what is missing, build, run the server (for now: the Context example)
#   make test   install what is missing, build and run every test stage (scripts/test.sh)
.PHONY: all deps build run test bench clean

all: build

deps:
	scripts/install-deps.sh --cross

build: deps
	[ -f build/build.ninja ] || meson setup build --buildtype=release
	ninja -C build

run: build
	./build/examples/context

test: deps
	scripts/test.sh

bench: build
	./build/bench/bench-core

clean:
	rm -rf build build-asan build-aarch64
