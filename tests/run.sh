#!/usr/bin/env bash
# The test command: installs what the tests need (tests/setup.sh), builds the example plugins,
# runs the language SDKs' tests, then every test of the workspace (unit tests beside the code,
# end-to-end tests in tests/ against a real nats-server). The last line printed is the test
# runner's summary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tests/setup.sh
bash plugins/build.sh >/dev/null
# The language SDKs' own tests (fast; fake host bindings, and the C SDK under ASan/UBSan).
echo "Python SDK:" && (cd sdk/python && python3 -m unittest discover -q -s tests -t .)
echo "JavaScript SDK:" && node --test --test-reporter=dot sdk/js/tests/
bash sdk/c/tests/run.sh
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --no-fail-fast --test-threads 2 "$@"
else
  exec cargo test --no-fail-fast "$@" -- --test-threads 2
fi
