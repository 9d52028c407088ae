#!/usr/bin/env bash
# The demo: installs what is missing (tests/setup.sh), builds the example plugins and weir,
# then runs host/examples/demo.rs, which starts a local nats-server (free port, temp store),
# creates the streams, publishes sample orders, runs `weir run plugins/pipelines/orders.toml`,
# prints the results and dead letters, and stops everything cleanly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tests/setup.sh
bash plugins/build.sh >/dev/null
cargo build --quiet -p weir-host --bin weir --example demo
exec cargo run --quiet -p weir-host --example demo
