#!/usr/bin/env bash
# Builds the Cairn image from the repo's Dockerfile without a Docker engine (buildah, rootful), on a
# base assembled from this machine's own Node runtime (no registry is reachable here), saves it as a
# docker-archive and imports it into the local Kubernetes' containerd when one is up.
#   npm run image                                   localhost/cairn:dev
#   npm run image -- --tag localhost/cairn:v2       a second tag (upgrade tests)
#   npm run image -- --tag localhost/cairn:broken --broken
#                                                   the same image whose entrypoint exits 1 at once
#   --dir D        the localkube state dir to import into (default ./.localkube, or $CAIRN_LOCALKUBE_DIR)
#   --no-import    build and save only
#   --base-only    only the base image (node runtime + busybox; also the helper image of
#                  local-path-provisioner): prints its name, then its archive
#   --pause BIN    only the pod sandbox image (localhost/cairn/pause:3.10, BIN as its entrypoint):
#                  prints its archive
# Prints the docker-archive path as the last line of stdout. Everything buildah keeps lives under
# $CAIRN_CACHE/buildah (default ~/.cache/cairn): layers are cached, so a rebuild after a source
# change recompiles the TypeScript and nothing else.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
tag="localhost/cairn:dev"
broken=0
do_import=1
base_only=0
pause_bin=""
dir="${CAIRN_LOCALKUBE_DIR:-$repo/.localkube}"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --tag=*) tag="${1#--tag=}"; shift ;;
    --broken) broken=1; shift ;;
    --dir) dir="$2"; shift 2 ;;
    --dir=*) dir="${1#--dir=}"; shift ;;
    --no-import) do_import=0; shift ;;
    --base-only) base_only=1; shift ;;
    --pause) pause_bin="$2"; shift 2 ;;
    *) echo "image: unknown argument $1 (usage: image.sh [--tag T] [--broken] [--dir D] [--no-import] [--base-only])" >&2; exit 2 ;;
  esac
done
log() { echo "image: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "needs root (rootful buildah)"; exit 1; }
command -v buildah >/dev/null 2>&1 || { log "buildah missing: run hack/install-localkube.sh (or apt-get install buildah)"; exit 1; }
mkdir -p "$cache/buildah" "$cache/localkube-images"
# Storage under the cache: layers survive localkube down; /run holds only buildah's locks.
B=(buildah --root "$cache/buildah/storage" --runroot /run/cairn-buildah --storage-driver overlay)
t0=$SECONDS
# Saves an image as a docker-archive under the cache (what ctr imports), replaced atomically.
save() { # $1 image, $2 archive
  rm -f "$2.tmp"
  "${B[@]}" push "$1" "docker-archive:$2.tmp:$1" >&2
  mv "$2.tmp" "$2"
}

if [ -n "$pause_bin" ]; then
  pause_img="localhost/cairn/pause:3.10"
  archive="$cache/localkube-images/pause-$(sha256sum "$pause_bin" | cut -c1-12).tar"
  if [ ! -f "$archive" ]; then
    c="$("${B[@]}" from scratch)"
    "${B[@]}" copy "$c" "$pause_bin" /pause >/dev/null
    "${B[@]}" config --entrypoint '["/pause"]' --cmd '[]' "$c"
    "${B[@]}" commit --rm "$c" "$pause_img" >/dev/null
    save "$pause_img" "$archive"
  fi
  echo "$archive"
  exit 0
fi

# ---- the base: node + its shared libraries + npm + busybox (sh and the usual tools) + CA certs ----
node_ver="$(node --version)"
recipe_sum="$( { sed -n '/^# ---- the base/,/^# ---- end of base/p' "$0"; sha256sum /usr/bin/node /bin/busybox; } | sha256sum | cut -c1-12)"
base="localhost/cairn-node-base:${node_ver#v}-$recipe_sum"
if ! "${B[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  log "assembling $base from this machine's node $node_ver"
  root="$(mktemp -d /tmp/cairn-base.XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,usr/bin,usr/lib/node_modules,etc/ssl/certs,tmp,root,home/node,app}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  ln -s ../../bin/busybox "$root/usr/bin/env"
  cp /usr/bin/node "$root/usr/bin/node"
  for lib in $(ldd /usr/bin/node | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp -a /usr/lib/node_modules/npm "$root/usr/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  chown 1000:1000 "$root/home/node"
  c="$("${B[@]}" from scratch)"
  "${B[@]}" copy "$c" "$root/" / >/dev/null
  "${B[@]}" config --env PATH=/usr/local/bin:/usr/bin:/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    --cmd '["node"]' --label org.opencontainers.image.description="node $node_ver from the build machine, busybox" "$c"
  "${B[@]}" commit --rm "$c" "$base" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi
# ---- end of base ----
if [ "$base_only" -eq 1 ]; then
  archive="$cache/localkube-images/base-${base##*:}.tar"
  [ -f "$archive" ] || save "$base" "$archive"
  echo "$base"
  echo "$archive"
  exit 0
fi

safe="$(echo "$tag" | tr '/:' '__')"
archive="$cache/localkube-images/$safe.tar"
if [ "$broken" -eq 1 ]; then
  built="localhost/cairn-build:$safe"
else
  built="$tag"
fi
log "building $built from Dockerfile on $base"
cd "$repo"
"${B[@]}" bud --layers --network host --build-arg "BASE=$base" -f Dockerfile -t "$built" . >&2
if [ "$broken" -eq 1 ]; then
  c="$("${B[@]}" from "$built")"
  "${B[@]}" config --entrypoint '["node", "-e", "console.error(\"cairn: this image is deliberately broken (npm run image -- --broken)\"); process.exit(1)"]' --cmd '[]' "$c"
  "${B[@]}" commit --rm "$c" "$tag" >/dev/null
fi
# The archive is rewritten only when the image changed (pushing 200 MiB takes seconds).
id="$("${B[@]}" inspect --type image --format '{{.FromImageID}}' "$tag")"
if [ ! -f "$archive" ] || [ "$(cat "$archive.id" 2>/dev/null)" != "$id" ]; then
  save "$tag" "$archive"
  echo "$id" > "$archive.id"
fi
log "built $tag in $((SECONDS - t0)) s ($(du -m "$archive" | cut -f1) MiB archive)"
sock="$dir/run/containerd.sock"
if [ "$do_import" -eq 1 ] && [ -S "$sock" ]; then
  ctr --address "$sock" -n k8s.io images import "$archive" >&2
  log "imported $tag into $sock"
fi
echo "$archive"
