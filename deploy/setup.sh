#!/usr/bin/env bash
# What building and running the container image needs, installed if missing (idempotent): the
# Rust target x86_64-unknown-linux-musl, and Debian's musl-tools (a C compiler for musl:
# mimalloc), buildah, podman and runc (and PyYAML, with which the tests read the compose file
# and the Kubernetes example).
set -euo pipefail
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi
missing=()
for tool in musl-gcc:musl-tools buildah:buildah podman:podman runc:runc; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
