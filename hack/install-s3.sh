#!/usr/bin/env bash
# Builds the S3-compatible server the backup tests (test/backup/, through test/harness/s3.ts) run
# against: SeaweedFS (github.com/seaweedfs/seaweedfs, Apache-2.0; its `weed` binary has an S3 gateway),
# from Go modules with the machine's Go toolchain, into a cache outside the repo (reused when present).
# SeaweedFS tags are not Go semver, so the module is pinned by a pseudo-version (CAIRN_S3_VERSION).
# A small wrapper module requires it and repeats its replace directives (a dependency's replaces are
# ignored by the go command).
# Every Go build on this machine takes /tmp/cairn-go.lock, so that two of them never share the 2 cores;
# a second caller of this script waits on the cache's own lock and then finds the binary built.
# Prints the path of the `weed` binary as the last line of stdout.
#   CAIRN_CACHE       cache root (default ~/.cache/cairn)
#   CAIRN_S3_VERSION  SeaweedFS module version (default below)
set -euo pipefail
ver="${CAIRN_S3_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
out="$cache/seaweedfs-$ver"
src="$cache/src/seaweedfs-$ver"
bin="$out/bin/weed"
log() { echo "install-s3: $*" >&2; }

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; else log "no Go toolchain on PATH (install Go >= 1.26 from go.dev or Debian's golang-go)"; exit 1; fi
fi
command -v flock >/dev/null 2>&1 || { log "flock missing (Debian: util-linux)"; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
: "${GOPROXY:=https://proxy.golang.org}"; export GOPROXY

mkdir -p "$cache"
exec 9>"$cache/.install-s3.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

mkdir -p "$src" "$out/bin"
cd "$src"
if [ ! -f go.mod ] || ! grep -q "github.com/seaweedfs/seaweedfs $ver" go.mod; then
  rm -f go.mod go.sum
  printf 'module cairn.local/seaweedfs\n\ngo 1.26\n' > go.mod
  log "resolving github.com/seaweedfs/seaweedfs@$ver with $(go version)"
  mod="$(go mod download -json "github.com/seaweedfs/seaweedfs@$ver" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
  [ -f "$mod" ] || { log "no go.mod for github.com/seaweedfs/seaweedfs@$ver"; exit 1; }
  args=(-require="github.com/seaweedfs/seaweedfs@$ver")
  # single-line replace directives: replace a => b vX
  while read -r from to tover; do args+=(-replace="$from=$to@$tover"); done \
    < <(sed -n 's/^replace \([^ ]*\) => \([^ ]*\) \([^ ]*\)$/\1 \2 \3/p' "$mod")
  # replace blocks: lines "a => b vX" between "replace (" and ")"
  while read -r from to tover; do args+=(-replace="$from=$to@$tover"); done \
    < <(sed -n '/^replace (/,/^)/s/^\s*\([^ ]*\) => \([^ ]*\) \(v[^ ]*\)$/\1 \2 \3/p' "$mod")
  go mod edit "${args[@]}"
fi
t0=$SECONDS
log "waiting for /tmp/cairn-go.lock (one Go build at a time on this machine)"
(
  flock 8
  log "building github.com/seaweedfs/seaweedfs/weed (several minutes; cached in $out)"
  go get "github.com/seaweedfs/seaweedfs/weed@$ver" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" github.com/seaweedfs/seaweedfs/weed
) 8>/tmp/cairn-go.lock
mv "$bin.tmp" "$bin"
log "built in $((SECONDS - t0)) s: $("$bin" version 2>/dev/null | head -1)"
echo "$bin"
