#!/usr/bin/env bash
# Builds every Rust example operator in plugins/ into a WebAssembly component.
# Output: target/plugins/wasm32-wasip2/release/weir_plugin_<name>.wasm
# A separate target directory keeps plugin builds from contending with host builds (and lets
# tests call this while `cargo test` holds the host's build directory).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$'; then
  rustup target add wasm32-wasip2 >&2
fi
pkgs=()
for dir in plugins/rust/*/; do
  name=$(basename "$dir")
  pkgs+=(-p "weir-plugin-$name")
done
# Components carry no debug info: smaller files, faster compiles.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
  CARGO_TARGET_DIR="$root/target/plugins" cargo build --quiet --release --target wasm32-wasip2 "${pkgs[@]}" >&2
echo "$root/target/plugins/wasm32-wasip2/release"
