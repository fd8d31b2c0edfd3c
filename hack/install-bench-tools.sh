#!/usr/bin/env bash
# Builds etcd's own load generator, `benchmark` (package
# go.etcd.io/etcd/v3/tools/benchmark), into a cache outside the repo and
# reuses it when present. Uses only the Go module proxy (checksums are
# verified through the proxy's sumdb endpoint).
# Prints the binary's path as the last line of stdout.
#   CAIRN_CACHE                 cache root (default ~/.cache/cairn)
#   CAIRN_BENCH_TOOL_VERSION    etcd release to build (default v3.6.8)
set -euo pipefail

version="${CAIRN_BENCH_TOOL_VERSION:-v3.6.8}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
bin="$cache/bin/etcd-benchmark-$version"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
  else
    echo "install-bench-tools: no Go toolchain on PATH" >&2
    exit 1
  fi
fi

export GOPROXY=https://proxy.golang.org
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

src="$cache/src/etcd-benchmark-$version"
rm -rf "$src"
mkdir -p "$src" "$cache/bin"
cd "$src"
printf 'module cairn.local/bench-tools\n\ngo 1.23\n' > go.mod
echo "install-bench-tools: building go.etcd.io/etcd/v3/tools/benchmark@$version with $(go version)" >&2
go get "go.etcd.io/etcd/v3/tools/benchmark@$version" >&2
go build -trimpath -o "$bin.tmp" go.etcd.io/etcd/v3/tools/benchmark >&2
mv "$bin.tmp" "$bin"
echo "$bin"
