#!/usr/bin/env bash
# Builds a Python weir plugin into a WebAssembly component (offline).
#
#   usage: sdk/python/build.sh <plugin-dir> <out.wasm>
#
# <plugin-dir>/weir-plugin.toml holds `name`, `lang = "python"`, `world` ("transform",
# "aggregate" or "process") and optionally `module` (default "app": <plugin-dir>/app.py), each
# as `key = "value"` on one line. The command it runs, for `weir plugin build` to port:
#
#   componentize-py -q -d <repo>/wit -w <world> componentize \
#       -p <repo>/sdk/python -p <plugin-dir> <module> -o <out.wasm>
#
# componentize-py's runtime imports all of WASI, wasi:sockets included; the host links it and
# denies every socket unless the pipeline grants `network` to the plugin. The SDK sends print()
# to the host log.
#
# componentize-py 0.25.1 is taken from $COMPONENTIZE_PY, else <repo>/.tools/bin, else PATH.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <plugin-dir> <out.wasm>" >&2
  exit 2
fi
plugin_dir=$1
out=$2
sdk_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit_dir="$sdk_dir/../../wit"
manifest="$plugin_dir/weir-plugin.toml"
[ -f "$manifest" ] || { echo "error: $manifest not found" >&2; exit 1; }

# The value of `key = "value"` in the manifest (empty when absent).
manifest_value() {
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\"[[:space:]]*\(#.*\)\{0,1\}$/\1/p" "$manifest" | head -n 1
}
lang=$(manifest_value lang)
world=$(manifest_value world)
module=$(manifest_value module)
module=${module:-app}
if [ "$lang" != "python" ]; then
  echo "error: $manifest: \`lang\` is \"$lang\", expected \"python\"" >&2
  exit 1
fi
case "$world" in
  transform | aggregate | process) ;;
  *) echo "error: $manifest: \`world\` is \"$world\", expected \"transform\", \"aggregate\" or \"process\"" >&2; exit 1 ;;
esac
if [ ! -f "$plugin_dir/$module.py" ] && [ ! -f "$plugin_dir/$module/__init__.py" ]; then
  echo "error: $manifest: \`module\` is \"$module\" but $plugin_dir/$module.py does not exist" >&2
  exit 1
fi

cpy=${COMPONENTIZE_PY:-}
if [ -z "$cpy" ]; then
  if [ -x "$sdk_dir/../../.tools/bin/componentize-py" ]; then
    cpy="$sdk_dir/../../.tools/bin/componentize-py"
  else
    cpy=$(command -v componentize-py || true)
  fi
fi
if [ -z "$cpy" ] || [ ! -x "$cpy" ]; then
  echo "error: componentize-py not found. Install it with:" >&2
  echo "  python3 -m venv .tools && .tools/bin/pip install componentize-py==0.25.1" >&2
  echo "(or pip install componentize-py==0.25.1 anywhere on PATH, or set COMPONENTIZE_PY)" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
"$cpy" -q -d "$wit_dir" -w "$world" componentize \
  -p "$sdk_dir" -p "$plugin_dir" "$module" -o "$out"
echo "$out"
