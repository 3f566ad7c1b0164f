#!/usr/bin/env bash
# Builds the worker into build/ (wrangler.toml's build command and `make build`). worker-build
# compiles, runs wasm-bindgen and wasm-opt -Oz, but keeps the wasm name section for readable stack
# traces; we drop it (~45 KB gzip, ~15 % of the module) because module size is cold-start time, and
# run wasm-opt -Oz to a fixed point (--converge: another ~1 %).
set -euo pipefail
cd "$(dirname "$0")/.."
# Local copies of the tools worker-build would otherwise download (works offline; `make setup`
# installs them).
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/binaryen/bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/esbuild/bin/esbuild}"
worker-build --release
wasm_opt="$WASM_OPT_BIN"
features=(--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory
          --enable-multivalue --enable-reference-types --enable-exception-handling)
# --low-memory-unused: rustc's wasm32 layout puts the stack below the data, starting at 1 MiB and
# growing down, so the low 1 KiB is reached only by a stack overflow (already fatal); binaryen may
# then fold constant offsets into loads and stores (~2.5 KB gzip). --gufa: whole-program type flow.
# KEEP_NAMES=1 keeps the name section, for a CPU profile with function names (benches/profile.mjs).
strip=(--strip-debug --strip-producers)
[ "${KEEP_NAMES:-}" = 1 ] && strip=(-g)
"$wasm_opt" build/index_bg.wasm "${features[@]}" --low-memory-unused -Oz --gufa -Oz --converge "${strip[@]}" -o build/index_bg.stripped.wasm
mv build/index_bg.stripped.wasm build/index_bg.wasm
