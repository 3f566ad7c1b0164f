# The two commands a newcomer needs: `make dev` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# worker-build uses these instead of downloading its tools (works offline).
export WASM_BINDGEN_BIN := $(HOME)/.cargo/bin/wasm-bindgen
export WASM_OPT_BIN := $(CURDIR)/node_modules/binaryen/bin/wasm-opt
export ESBUILD_BIN := $(CURDIR)/node_modules/esbuild/bin/esbuild
export WRANGLER_SEND_METRICS := false

.PHONY: help setup build dev test test-native test-worker bench soak fuzz

help:
	@echo "make dev    build, start redis + upstash-local + fakes + the demo shop origin + wrangler dev on http://127.0.0.1:8787"
	@echo "make test   native cargo tests, wasm build, integration suites under workerd"
	@echo "make bench  wasm size, /collect load, store round trips, proxy overhead, native intake cost, against a JS baseline"
	@echo "make soak   50,000 events through issue 17's failures at once (redis restart, refused queue, revoked Meta token, full DLQ, store outages); checks nothing is lost"
	@echo "make fuzz   cargo fuzz on the intake and the cache-rule parser (FUZZ_SECONDS each)"

setup:
	@bash tools/setup.sh

# The worker (build/) and the local store binary the tests and dev loop run.
build: setup
	bash tools/build-worker.sh
	node tools/build-www.mjs
	cargo build -p upstash-local

dev: build
	node tools/dev.mjs

test-native: setup
	cargo build -p upstash-local
	cargo test --workspace 2>&1 | tee target/native-test.log

test-worker: build
	node tests/run.mjs | tee target/worker-test.log

test: test-native test-worker
	@native_passed=$$(grep -Eo '[0-9]+ passed' target/native-test.log | awk '{s+=$$1} END {print s+0}'); \
	native_failed=$$(grep -Eo '[0-9]+ failed' target/native-test.log | awk '{s+=$$1} END {print s+0}'); \
	worker_line=$$(tail -n 1 target/worker-test.log); \
	w_passed=$$(echo "$$worker_line" | awk '{print $$1}'); w_failed=$$(echo "$$worker_line" | awk '{print $$3}'); \
	echo "native: $$native_passed passed, $$native_failed failed; worker: $$w_passed passed, $$w_failed failed"; \
	echo "$$((native_passed + w_passed)) passed, $$((native_failed + w_failed)) failed"

bench: build
	node benches/run.mjs

soak: build
	node benches/soak.mjs

# Fuzz each target for FUZZ_SECONDS (cargo-fuzz on stable: RUSTC_BOOTSTRAP lets it pass its -Z flags).
# New inputs go to fuzz/generated/; copy a crash from fuzz/artifacts/ into fuzz/corpus/ to keep it
# replayed by `make test`.
FUZZ_SECONDS ?= 60
fuzz: setup
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
	cd fuzz && for t in intake cache_rules; do mkdir -p generated/$$t && \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t --sanitizer none generated/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done
