#!/bin/bash
# Builds and runs the C SDK's native tests with address and UB sanitizers; with `--fuzz SECONDS`
# also fuzzes the JSON reader/writer and batch views (libFuzzer). Needs clang (clang-19 on Debian).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sdk=$(dirname "$here")
cc=$(command -v clang-19 || command -v clang)
out=${TMPDIR:-/tmp}/weir-c-sdk-tests
mkdir -p "$out"
flags=(-g -O1 -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=all -I "$sdk")
"$cc" "${flags[@]}" "$here/weir_test.c" "$sdk"/*.c -lm -o "$out/weir_test"
"$out/weir_test"
if [ "${1:-}" = "--fuzz" ]; then
    "$cc" "${flags[@]}" -fsanitize=fuzzer "$here/fuzz_json.c" "$sdk"/*.c -lm -o "$out/fuzz_json"
    mkdir -p "$out/corpus"
    "$out/fuzz_json" -max_total_time="${2:-60}" -max_len=4096 "$out/corpus"
fi
