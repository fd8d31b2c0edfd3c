#!/usr/bin/env bash
# Builds etcdutl and etcdctl 3.6.8 (the snapshot tests' oracles: `etcdutl snapshot status|restore` on
# Cairn's bbolt export, `etcdctl snapshot save` against etcd 3.6) from Go modules, into the same cache
# as hack/install-kube.sh's etcd 3.6.8: $CAIRN_CACHE/kube-$CAIRN_KUBE_VERSION/bin/{etcdutl,etcdctl}.
# Idempotent (nothing to do when both exist); builds run under `flock /tmp/cairn-go.lock` (one Go
# build at a time on the machine). Prints the bin directory as the last line of stdout.
#   CAIRN_CACHE              cache root (default ~/.cache/cairn)
#   CAIRN_KUBE_VERSION       names the cache directory (default v1.34.4, as install-kube.sh)
#   CAIRN_ETCD36_VERSION     etcd module version (default v3.6.8)
set -euo pipefail
kver="${CAIRN_KUBE_VERSION:-v1.34.4}"
ever="${CAIRN_ETCD36_VERSION:-v3.6.8}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
out="$cache/kube-$kver/bin"
log() { echo "install-etcd36-tools: $*" >&2; }

if [ -x "$out/etcdutl" ] && [ -x "$out/etcdctl" ]; then echo "$out"; exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; else log "no Go toolchain on PATH"; exit 1; fi
fi
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
: "${GOPROXY:=https://proxy.golang.org}"; export GOPROXY

build() { # <name> <module>
  local name="$1" mod="$2"
  [ -x "$out/$name" ] && return 0
  local src="$cache/src/$name-$ever"
  mkdir -p "$src" "$out"
  cd "$src"
  [ -f go.mod ] || printf 'module cairn.local/%s\n\ngo 1.24.0\n' "$name" > go.mod
  log "building $mod@$ever"
  go get "$mod@$ever" >&2
  go build -trimpath -ldflags "-s -w" -o "$out/$name.tmp" "$mod"
  mv "$out/$name.tmp" "$out/$name"
}

t0=$SECONDS
exec 9>/tmp/cairn-go.lock
log "waiting for the build lock /tmp/cairn-go.lock"
flock 9
build etcdutl go.etcd.io/etcd/etcdutl/v3
build etcdctl go.etcd.io/etcd/etcdctl/v3
log "done in $((SECONDS - t0)) s"
echo "$out"
