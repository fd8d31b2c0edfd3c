#!/usr/bin/env bash
# Installs and builds what `npm run localkube` runs (a one-node Kubernetes of real processes, no Docker
# engine), reusing what is already there:
#   Debian packages      containerd, runc, containernetworking-plugins (CNI bridge, host-local,
#                        loopback, portmap in /usr/lib/cni), iptables, nftables, conntrack, buildah
#                        (builds the Dockerfile without a Docker engine), busybox-static (the shell of
#                        the locally assembled base image), gcc (the pause binary)
#   kube-apiserver, kubectl, etcd 3.6   hack/install-kube.sh (run if they are missing)
#   kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#                        k8s.io/kubernetes@$CAIRN_KUBE_VERSION through the same wrapper module as
#                        hack/install-kube.sh ($cache/src/kube-<version>)
#   coredns              github.com/coredns/coredns@$CAIRN_COREDNS_VERSION with only the plugins used
#   local-path-provisioner  github.com/rancher/local-path-provisioner@$CAIRN_LPP_VERSION
#   pause                hack/localkube/pause.c, static (the pod sandbox image's process)
# Go builds hold /tmp/cairn-go.lock (one big build at a time on a small machine).
# Prints the cache directory (bin/ under it) as the last line of stdout.
#   CAIRN_CACHE   cache root (default ~/.cache/cairn)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kver="${CAIRN_KUBE_VERSION:-v1.34.4}"
dnsver="${CAIRN_COREDNS_VERSION:-v1.12.4}"
lppver="${CAIRN_LPP_VERSION:-v0.0.30}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
out="$cache/localkube-$kver"
log() { echo "install-localkube: $*" >&2; }

# ---- Debian packages ----
declare -A pkg_of=(
  [containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables [nft]=nftables [conntrack]=conntrack [buildah]=buildah
  [/bin/busybox]=busybox-static [gcc]=gcc [openssl]=openssl
)
need=()
for cmd in "${!pkg_of[@]}"; do
  if [[ "$cmd" == /* ]]; then [ -e "$cmd" ] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  need+=("${pkg_of[$cmd]}")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then log "missing Debian packages (${need[*]}) and not root: apt-get install ${need[*]}"; exit 1; fi
  log "installing ${need[*]}"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" libc6-dev >&2
fi

# ---- kube-apiserver, kubectl, etcd 3.6 ----
kube="$cache/kube-$kver"
if [ ! -x "$kube/bin/kube-apiserver" ] || [ ! -x "$kube/bin/kubectl" ] || [ ! -x "$kube/bin/etcd" ]; then
  bash "$here/install-kube.sh" >/dev/null
fi

mkdir -p "$out/bin"
# ---- pause (rebuilt when its source changes) ----
pause_sum="$(sha256sum "$here/localkube/pause.c" | cut -c1-16)"
if [ ! -x "$out/bin/pause" ] || [ "$(cat "$out/bin/pause.sum" 2>/dev/null)" != "$pause_sum" ]; then
  log "building pause"
  gcc -static -Os -s -o "$out/bin/pause.tmp" "$here/localkube/pause.c"
  mv "$out/bin/pause.tmp" "$out/bin/pause"
  echo "$pause_sum" > "$out/bin/pause.sum"
fi

want=(kube-controller-manager kube-scheduler kubelet kube-proxy coredns local-path-provisioner)
missing=0
for b in "${want[@]}"; do [ -x "$out/bin/$b" ] || missing=1; done
if [ "$missing" -eq 0 ]; then echo "$out"; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; else log "no Go toolchain on PATH"; exit 1; fi
fi
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
: "${GOPROXY:=https://proxy.golang.org}"; export GOPROXY
t0=$SECONDS

# One Go build at a time on this machine (other scripts take the same lock).
exec 9>/tmp/cairn-go.lock
log "waiting for /tmp/cairn-go.lock"
flock 9

# ---- the Kubernetes node and control-plane binaries (wrapper module of hack/install-kube.sh) ----
src="$cache/src/kube-$kver"
mkdir -p "$src"
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
minor="$(echo "$kver" | cut -d. -f2)"
for b in kube-controller-manager kube-scheduler kubelet kube-proxy; do
  [ -x "$out/bin/$b" ] && continue
  log "building $b (minutes the first time; cached in $out)"
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$out/bin/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$out/bin/$b.tmp" "$out/bin/$b"
done

# ---- CoreDNS with the plugins the local cluster uses (the order is the plugin chain's) ----
if [ ! -x "$out/bin/coredns" ]; then
  dsrc="$cache/src/coredns-$dnsver"
  mkdir -p "$dsrc"; cd "$dsrc"
  [ -f go.mod ] || printf 'module cairn.local/coredns\n\ngo 1.24.0\n' > go.mod
  cat > main.go <<'GO'
// CoreDNS with only the plugins localkube's Corefile uses.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}
}

func main() { coremain.Run() }
GO
  log "building github.com/coredns/coredns@$dnsver"
  go get "github.com/coredns/coredns@$dnsver" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$out/bin/coredns.tmp" .
  mv "$out/bin/coredns.tmp" "$out/bin/coredns"
fi

# ---- local-path-provisioner ----
if [ ! -x "$out/bin/local-path-provisioner" ]; then
  lsrc="$cache/src/local-path-provisioner-$lppver"
  mkdir -p "$lsrc"; cd "$lsrc"
  [ -f go.mod ] || printf 'module cairn.local/lpp\n\ngo 1.23.0\n' > go.mod
  log "building github.com/rancher/local-path-provisioner@$lppver"
  go get "github.com/rancher/local-path-provisioner@$lppver" >&2
  go build -trimpath -ldflags "-s -w" -o "$out/bin/local-path-provisioner.tmp" github.com/rancher/local-path-provisioner
  mv "$out/bin/local-path-provisioner.tmp" "$out/bin/local-path-provisioner"
fi
log "done in $((SECONDS - t0)) s"
echo "$out"
