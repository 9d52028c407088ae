#!/usr/bin/env bash
# podman with the settings of deploy/podman/containers.conf and the image storage of this
# checkout (target/containers, vfs — where deploy/build-image.sh puts the image), e.g.
#   bash deploy/podman.sh run --rm weir:latest --version
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="$root/deploy/podman/containers.conf"
exec podman --root "$root/target/containers/storage" --runroot "$root/target/containers/run" \
  --storage-driver vfs "$@"
