# corral: the two commands of the README, and a few conveniences.
#   make run    install what is missing, build, run corral-httpd on 127.0.0.1:8080
#   make test   install what is missing, build and run every test stage (scripts/test.sh)
.PHONY: all deps build run test bench clean

all: build

deps:
	scripts/install-deps.sh --cross

build: deps
	[ -f build/build.ninja ] || meson setup build --buildtype=release
	ninja -C build

run: build
	./build/corral-httpd --addr 127.0.0.1:8080 --root www

test: deps
	scripts/test.sh

bench: build
	./build/bench/bench-core

clean:
	rm -rf build build-asan build-tsan build-aarch64 build-fuzz
