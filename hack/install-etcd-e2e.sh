#!/usr/bin/env bash
# Builds etcd's own end-to-end tests (go.etcd.io/etcd/tests/v3/e2e at v3.6.8, `go test -c`) into
# $CAIRN_CACHE/bin/etcd-e2e-<version>.test, under `flock /tmp/cairn-go.lock` (one Go build at a time).
# Idempotent. Prints the test binary's path, then the e2e package's source directory (the tests run
# from there: they find ../fixtures), as the last two lines of stdout.
#   CAIRN_CACHE              cache root (default ~/.cache/cairn)
#   CAIRN_ETCD36_VERSION     etcd module version (default v3.6.8)
set -euo pipefail
ever="${CAIRN_ETCD36_VERSION:-v3.6.8}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
out="$cache/bin/etcd-e2e-$ever.test"
log() { echo "install-etcd-e2e: $*" >&2; }
# shellcheck source=hack/go-module.sh
. "$(dirname "$0")/go-module.sh"
go_module_env
src="$cache/src/etcd-e2e-$ever"
mkdir -p "$src" "$cache/bin"
cd "$src"
[ -f go.mod ] || printf 'module cairn.local/etcd-e2e\n\ngo 1.24.0\n' > go.mod
if [ ! -x "$out" ]; then
  exec 9>/tmp/cairn-go.lock
  log "waiting for the build lock /tmp/cairn-go.lock"
  flock 9
  if [ ! -x "$out" ]; then
    t0=$SECONDS
    log "building go.etcd.io/etcd/tests/v3/e2e@$ever"
    go get "go.etcd.io/etcd/tests/v3@$ever" >&2
    nice -n 10 go test -c -trimpath -o "$out.tmp" go.etcd.io/etcd/tests/v3/e2e >&2
    mv "$out.tmp" "$out"
    log "built in $((SECONDS - t0)) s"
  fi
fi
echo "$out"
echo "$(go env GOMODCACHE)/go.etcd.io/etcd/tests/v3@$ever/e2e"
