#!/usr/bin/env bash
# The test command: installs what the tests need (tests/setup.sh), builds the example plugins
# and the container image, runs the language SDKs' tests, then every test of the workspace (unit tests beside the code,
# end-to-end tests in tests/ against a real nats-server). The last line printed is the test
# runner's summary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tests/setup.sh
bash plugins/build.sh >/dev/null
# The container image (a static release build, then buildah), built before the tests so that
# its cost is not inside a test; tests/e2e/container.rs runs it with podman.
bash deploy/build-image.sh weir:test
# The language SDKs' own tests (fast; fake host bindings, and the C SDK under ASan/UBSan).
echo "Python SDK:" && (cd sdk/python && python3 -m unittest discover -q -s tests -t .)
echo "JavaScript SDK:" && node --test --test-reporter=dot sdk/js/tests/
bash sdk/c/tests/run.sh
# The Rust SDK with every world enabled (its README's examples are doctests), and the native unit
# tests (`weir_sdk::testing`) of the example plugins that have some.
echo "Rust SDK and plugin unit tests:"
cargo test --quiet -p weir-sdk --all-features
plugin_tests=()
for dir in plugins/rust/*/; do
  if grep -q '#\[cfg(test)\]' "$dir/src/lib.rs" 2>/dev/null; then
    plugin_tests+=(-p "weir-plugin-$(basename "$dir")")
  fi
done
cargo test --quiet "${plugin_tests[@]}"
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --no-fail-fast --test-threads 2 "$@"
else
  exec cargo test --no-fail-fast "$@" -- --test-threads 2
fi
