#!/usr/bin/env bash
# Builds the weir container image with one command on a fresh machine:
#   bash deploy/build-image.sh [TAG]        (default: weir:<version>, also tagged weir:latest)
# 1. installs what is missing (deploy/setup.sh);
# 2. builds a static weir for x86_64-unknown-linux-musl with the lean `container` profile;
# 3. prepares the build context (the binary, /etc/passwd with the non-root user 65532, CA
#    certificates, an empty compile-cache folder) with fixed file times;
# 4. assembles the image FROM scratch with buildah (chroot isolation, vfs storage under
#    target/containers, the storage deploy/podman.sh runs it from), created-time 0 and fixed
#    file times — the same inputs give the same layer digest (the image digest differs: the
#    Docker-format config, needed for HEALTHCHECK, records the id of buildah's build container);
# and prints the image's size and digest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p target/containers
# One build at a time (tests running in parallel processes may each ask for the image).
exec 9>target/containers/build.lock
flock 9
bash deploy/setup.sh
target=x86_64-unknown-linux-musl
echo "building a static weir ($target, profile container)…" >&2
cargo build --quiet --profile container --target "$target" -p weir-host --bin weir
binary="target/$target/container/weir"
version="$("$binary" --version | awk '{print $2}')"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision="$revision-modified"; fi
tag="${1:-weir:$version}"

context="$(mktemp -d target/containers/context.XXXXXX)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/etc/ssl/certs" "$context/cache"
cp "$binary" "$context/weir"
printf 'root:x:0:0:root:/root:/sbin/nologin\nweir:x:65532:65532:weir:/var/cache/weir:/sbin/nologin\n' \
  > "$context/rootfs/etc/passwd"
printf 'root:x:0:\nweir:x:65532:\n' > "$context/rootfs/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$context/rootfs/etc/ssl/certs/ca-certificates.crt"
find "$context" -exec touch -h -d @0 {} +

storage=(--root "$root/target/containers/storage" --runroot "$root/target/containers/run"
  --storage-driver vfs)
echo "assembling $tag (revision $revision)…" >&2
buildah "${storage[@]}" build --quiet --isolation chroot --format docker --timestamp 0 \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  -f deploy/Containerfile -t "$tag" -t weir:latest "$context" >/dev/null
digest=$(buildah "${storage[@]}" inspect --type image --format '{{.FromImageDigest}}' "$tag")
size=$(bash deploy/podman.sh image inspect --format '{{.Size}}' "$tag")
layer=$(bash deploy/podman.sh image inspect --format '{{index .RootFS.Layers 0}}' "$tag")
echo "image $tag: $size bytes ($((size / 1000 / 1000)) MB), digest $digest, layer $layer"
