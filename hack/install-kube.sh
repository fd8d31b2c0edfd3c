#!/usr/bin/env bash
# Builds the Kubernetes pieces the kube tests and `npm run bench:kube` run against, from Go modules
# with the machine's Go toolchain, into a cache outside the repo (reused when present):
#   kube-apiserver, kubectl            k8s.io/kubernetes@$CAIRN_KUBE_VERSION (default v1.34.4)
#   etcd (reference for the kube tests) go.etcd.io/etcd/server/v3@$CAIRN_KUBE_ETCD_VERSION (v3.6.8):
#                                       Kubernetes 1.34 is developed against etcd 3.6; Debian's is 3.4
#   integration test binaries          k8s.io/kubernetes/test/integration/<pkg> (list: hack/kube-integration.txt)
# k8s.io/kubernetes's go.mod points its staging modules (k8s.io/api, …) at ./staging, which a module
# download does not carry; a small wrapper module requires k8s.io/kubernetes and replaces each staging
# module by its published release (v0.X.Y for v1.X.Y).
# Prints the cache directory (bin/ and itest/ under it) as the last line of stdout.
#   CAIRN_CACHE   cache root (default ~/.cache/cairn)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kver="${CAIRN_KUBE_VERSION:-v1.34.4}"
ever="${CAIRN_KUBE_ETCD_VERSION:-v3.6.8}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
out="$cache/kube-$kver"
src="$cache/src/kube-$kver"
log() { echo "install-kube: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; else log "no Go toolchain on PATH"; exit 1; fi
fi
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
: "${GOPROXY:=https://proxy.golang.org}"; export GOPROXY

mapfile -t itests < <(grep -v -E '^\s*(#|$)' "$here/kube-integration.txt" | awk '{print $1}')
want=("$out/bin/kube-apiserver" "$out/bin/kubectl" "$out/bin/etcd")
for p in "${itests[@]}"; do want+=("$out/itest/$(echo "$p" | tr / _).test"); done
missing=0
for f in "${want[@]}"; do [ -x "$f" ] || missing=1; done
if [ "$missing" -eq 0 ]; then echo "$out"; exit 0; fi

# One build at a time: a second caller (a test harness, another terminal) waits for the first and then
# finds the binaries built; two concurrent builds would race on the same .tmp outputs.
mkdir -p "$cache"
exec 9>"$cache/.install-kube.lock"
log "waiting for the build lock $cache/.install-kube.lock"
flock 9
missing=0
for f in "${want[@]}"; do [ -x "$f" ] || missing=1; done
if [ "$missing" -eq 0 ]; then echo "$out"; exit 0; fi

mkdir -p "$src" "$out/bin" "$out/itest"
cd "$src"
if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes $kver" go.mod; then
  rm -f go.mod go.sum
  staging_ver="v0.${kver#v1.}"
  printf 'module cairn.local/kube\n\ngo 1.24.0\n' > go.mod
  log "resolving k8s.io/kubernetes@$kver (staging modules at $staging_ver) with $(go version)"
  mods="$(go mod download -json "k8s.io/kubernetes@$kver" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
  [ -f "$mods" ] || { log "no go.mod for k8s.io/kubernetes@$kver"; exit 1; }
  args=(-require="k8s.io/kubernetes@$kver")
  while read -r m; do args+=(-replace="$m=$m@$staging_ver"); done \
    < <(sed -n 's/^\s*\(k8s\.io\/[^ ]*\) => \.\/staging\/.*$/\1/p' "$mods")
  go mod edit "${args[@]}"
fi
t0=$SECONDS
build() { # $1 out path, $2 package
  [ -x "$1" ] && return 0
  log "building $2 (can take minutes; cached in $cache)"
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$kver" | cut -d. -f2)" -o "$1.tmp" "$2"
  mv "$1.tmp" "$1"
}
build "$out/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
build "$out/bin/kubectl" k8s.io/kubernetes/cmd/kubectl
for p in "${itests[@]}"; do
  f="$out/itest/$(echo "$p" | tr / _).test"
  [ -x "$f" ] && continue
  log "compiling the integration tests of $p"
  go test -c -trimpath -o "$f.tmp" "$p"
  mv "$f.tmp" "$f"
done
if [ ! -x "$out/bin/etcd" ]; then
  esrc="$cache/src/etcd-$ever"
  mkdir -p "$esrc"; cd "$esrc"
  [ -f go.mod ] || printf 'module cairn.local/etcd\n\ngo 1.24.0\n' > go.mod
  log "building go.etcd.io/etcd/server/v3@$ever"
  go get "go.etcd.io/etcd/server/v3@$ever" >&2
  go build -trimpath -o "$out/bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$out/bin/etcd.tmp" "$out/bin/etcd"
fi
log "done in $((SECONDS - t0)) s"
echo "$out"
