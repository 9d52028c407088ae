#!/usr/bin/env bash
# sdk/js/build.sh — builds a JavaScript weir plugin folder into a WebAssembly component.
#
# Usage: sdk/js/build.sh <plugin-dir> <out.wasm> [--engine quickjs|spidermonkey]
#
# <plugin-dir>/weir-plugin.toml (top-level keys, before any [table]):
#   name  = "my-op"        required
#   lang  = "js"           required
#   world = "transform"    required: transform | aggregate | process
#   main  = "app.js"       optional, the module to build (default app.js)
#
# Toolchain: componentize-qjs (the default QuickJS engine: ~1.6 MB components), from
# $COMPONENTIZE_QJS, the plugin's node_modules (`npm install` there), `npm ci --prefix sdk/js`
# or PATH. The SpiderMonkey engine (~12 MB components, slower per event) is optional:
# `npm ci --prefix sdk/js/spidermonkey`.
#
# What it runs, step by step (the recipe to port into `weir plugin build`):
#   1. stage=$(mktemp -d)
#      copy <plugin-dir> (without *.wasm) to $stage/plugin/
#      copy sdk/js/weir.js (and its lib/) to $stage/node_modules/weir/ with a package.json
#        {"name":"weir","type":"module","exports":"./weir.js"}, so that `import ... from "weir"` resolves
#   2. write $stage/entry.js: imports the world's host interfaces (log, and keyed for `process`),
#      passes them to weir.js's bindHost, and re-exports the world functions of plugin/<main>
#   3. QuickJS:
#        cd $stage && sdk/js/node_modules/.bin/componentize-qjs --wit <repo>/wit --js entry.js \
#          -n <world> --sync -o <out.wasm>
#      SpiderMonkey (resolves relative imports only, so `from "weir"` in the staged .js files is
#      first rewritten to a relative path to $stage/node_modules/weir/weir.js):
#        cd $stage && sdk/js/spidermonkey/node_modules/.bin/componentize-js entry.js --wit <repo>/wit \
#          -n <world> -d http fetch-event -o <out.wasm>
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit_dir="$(cd "$sdk/../../wit" && pwd)"

die() {
  echo "sdk/js/build.sh: $*" >&2
  exit 1
}

[[ $# -eq 2 || $# -eq 4 ]] || die "usage: build.sh <plugin-dir> <out.wasm> [--engine quickjs|spidermonkey]"
plugin_dir="$1"
out="$2"
engine="quickjs"
if [[ $# -eq 4 ]]; then
  [[ "$3" == "--engine" ]] || die "unknown option $3 (expected --engine quickjs|spidermonkey)"
  engine="$4"
fi
[[ "$engine" == quickjs || "$engine" == spidermonkey ]] || die "unknown engine '$engine' (expected quickjs or spidermonkey)"

[[ -d "$plugin_dir" ]] || die "$plugin_dir: no such plugin folder"
plugin_dir="$(cd "$plugin_dir" && pwd)"
manifest="$plugin_dir/weir-plugin.toml"
[[ -f "$manifest" ]] || die "$manifest: missing (a plugin folder needs a weir-plugin.toml)"

# The value of top-level string key $1 of the manifest, or $2 when absent. Only `key = "value"`
# lines before the first [table] are read; anything else there is an error naming the line.
toml_get() {
  awk -v want="$1" -v file="$manifest" '
    /^[[:space:]]*(#.*)?$/ { next }
    /^[[:space:]]*\[/ { exit }
    {
      line = $0
      sub(/[[:space:]]+#[^"]*$/, "", line)
      if (match(line, /^[[:space:]]*[A-Za-z0-9_-]+[[:space:]]*=[[:space:]]*"[^"]*"[[:space:]]*$/) == 0) {
        printf "%s:%d: expected key = \"value\", got: %s\n", file, NR, $0 > "/dev/stderr"
        bad = 1
        exit
      }
      key = line; sub(/^[[:space:]]*/, "", key); sub(/[[:space:]]*=.*/, "", key)
      val = line; sub(/^[^"]*"/, "", val); sub(/"[[:space:]]*$/, "", val)
      if (key == want) { print val; found = 1; exit }
    }
    END { if (bad) exit 2 }
  ' "$manifest"
}

read_key() {
  local v
  v="$(toml_get "$1")" || die "$manifest is not valid for this build"
  if [[ -z "$v" ]]; then
    [[ $# -eq 2 ]] || die "$manifest: missing key '$1'"
    v="$2"
  fi
  printf '%s' "$v"
}

name="$(read_key name)"
lang="$(read_key lang)"
world="$(read_key world)"
main="$(read_key main app.js)"
[[ "$lang" == "js" ]] || die "$manifest: lang = \"$lang\", this builder handles lang = \"js\""
case "$world" in
  transform | aggregate | process) ;;
  *) die "$manifest: world = \"$world\" (expected transform, aggregate or process)" ;;
esac
[[ "$main" =~ ^[A-Za-z0-9_./-]+$ && "$main" != /* && "$main" != *..* ]] ||
  die "$manifest: main = \"$main\" must be a relative path inside the plugin folder"
[[ -f "$plugin_dir/$main" ]] || die "$manifest: main = \"$main\" but $plugin_dir/$main does not exist"

command -v node >/dev/null || die "node is not installed: install Node.js 18 or newer (e.g. apt-get install nodejs npm)"
if [[ "$engine" == quickjs ]]; then
  # componentize-qjs: $COMPONENTIZE_QJS, else the plugin's node_modules (`npm install` in the
  # plugin folder; the template's package.json pins it), else the SDK's (`npm ci --prefix sdk/js`
  # in a weir checkout), else PATH (`npm install -g componentize-qjs@0.4.5`).
  tool="${COMPONENTIZE_QJS:-}"
  for candidate in "$plugin_dir/node_modules/.bin/componentize-qjs" "$sdk/node_modules/.bin/componentize-qjs"; do
    if [[ -z "$tool" && -x "$candidate" ]]; then tool="$candidate"; fi
  done
  [[ -n "$tool" ]] || tool="$(command -v componentize-qjs || true)"
  [[ -n "$tool" && -x "$tool" ]] || die "componentize-qjs is not installed: run \`npm install\` in $plugin_dir (its package.json pins componentize-qjs), or \`npm install -g componentize-qjs@0.4.5\`, or set COMPONENTIZE_QJS to its path"
else
  tool="$sdk/spidermonkey/node_modules/.bin/componentize-js"
  [[ -x "$tool" ]] || die "componentize-js is not installed: run \`npm ci --prefix sdk/js/spidermonkey\` from the repository root"
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/weir-js-build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

# 1. The plugin and the SDK, where the entry module's imports find them.
mkdir -p "$stage/plugin" "$stage/node_modules/weir"
tar -C "$plugin_dir" --exclude='*.wasm' -cf - . | tar -C "$stage/plugin" -xf -
cp "$sdk/weir.js" "$stage/node_modules/weir/weir.js"
cp -r "$sdk/lib" "$stage/node_modules/weir/lib"
printf '{"name":"weir","type":"module","exports":"./weir.js"}\n' >"$stage/node_modules/weir/package.json"

# 2. The entry module.
case "$world" in
  transform) exports=(configure process) ;;
  aggregate) exports=(configure create add merge finish stateVersion migrate) ;;
  process) exports=(configure onEvents onTimer) ;;
esac
{
  echo "// Generated by sdk/js/build.sh for plugin \"$name\": binds the host imports to the SDK and"
  echo "// exports the \`$world\` world of $main."
  if [[ "$engine" == quickjs ]]; then
    echo 'import log from "weir:operator/log@0.1.0";'
    [[ "$world" == process ]] && echo 'import keyed from "weir:operator/keyed@0.1.0";'
    s64=number
  else
    echo 'import { log as hostLog } from "weir:operator/log@0.1.0";'
    echo 'const log = { log: hostLog };'
    [[ "$world" == process ]] && echo 'import * as keyed from "weir:operator/keyed@0.1.0";'
    s64=bigint
  fi
  echo 'import { bindHost, worldExports } from "weir";'
  echo "import * as plugin from \"./plugin/$main\";"
  if [[ "$world" == process ]]; then keyed_arg=keyed; else keyed_arg=null; fi
  echo "bindHost({ log: (level, message) => log.log(level, message), keyed: $keyed_arg, s64: \"$s64\" });"
  echo "const impl = worldExports(plugin, \"$world\", \"$main\");"
  for f in "${exports[@]}"; do
    echo "export const $f = impl.$f;"
  done
} >"$stage/entry.js"

# 3. The component.
mkdir -p "$(dirname "$out")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
if [[ "$engine" == quickjs ]]; then
  (cd "$stage" && "$tool" --wit "$wit_dir" --js entry.js -n "$world" --sync -o "$out_abs" >build.log 2>&1) || {
    grep -v '^ \{2,\}[0-9]*:\|^ \{6\}at \|^stack backtrace\|RUST_BACKTRACE' "$stage/build.log" >&2 || true
    die "componentize-qjs failed for $plugin_dir/$main (world $world)"
  }
else
  # componentize-js resolves relative imports only: point the staged copies' `from "weir"` at the SDK.
  sed -i 's#from "weir"#from "./node_modules/weir/weir.js"#' "$stage/entry.js"
  while IFS= read -r -d '' f; do
    rel="$(realpath --relative-to="$(dirname "$f")" "$stage/node_modules/weir/weir.js")"
    [[ "$rel" == .* ]] || rel="./$rel"
    sed -i -E "s#(from[[:space:]]*|import[[:space:]]*)([\"'])weir([\"'])#\\1\\2$rel\\3#g" "$f"
  done < <(find "$stage/plugin" -path '*/node_modules' -prune -o \( -name '*.js' -o -name '*.mjs' \) -print0)
  (cd "$stage" && "$tool" entry.js --wit "$wit_dir" -n "$world" -d http fetch-event -o "$out_abs" >build.log 2>&1) || {
    cat "$stage/build.log" >&2
    die "componentize-js failed for $plugin_dir/$main (world $world)"
  }
fi
echo "built $out ($(wc -c <"$out_abs") bytes, $engine, world $world)" >&2
