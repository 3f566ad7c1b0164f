#!/usr/bin/env bash
# Installs what `make dev` / `make test` need and is missing, and nothing else: quick when all is there.
# A fresh machine needs only Rust (rustup), Node/npm, Python and apt. Versions are pinned by the lock files.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_pkgs=()
command -v redis-server >/dev/null || apt_pkgs+=(redis-server)
# The browser tests drive Debian's Chromium with playwright-core (no browser download).
command -v chromium >/dev/null || apt_pkgs+=(chromium)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  say "apt install ${apt_pkgs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

[ -f Cargo.lock ] || cargo generate-lockfile
lock_version() { # the version of crate $1 in Cargo.lock
  awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}
bindgen_version=$(lock_version wasm-bindgen)
worker_version=$(lock_version worker)

# worker-build normally downloads wasm-bindgen, wasm-opt and esbuild; we point it at local copies
# (Makefile exports WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN), so it works offline.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$bindgen_version" ]; then
  say "cargo install wasm-bindgen-cli $bindgen_version (matches Cargo.lock)"
  cargo install wasm-bindgen-cli --version "=$bindgen_version" --force
fi
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$worker_version" ]; then
  say "cargo install worker-build $worker_version (matches the worker crate)"
  cargo install worker-build --version "=$worker_version" --locked --force
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi
