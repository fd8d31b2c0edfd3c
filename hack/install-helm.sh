#!/usr/bin/env bash
# Builds Helm 4 (helm.sh/helm/v4, Apache-2.0) from Go modules with the machine's Go toolchain, into a
# cache outside the repo (reused when present): the chart tests (test/packaging/) and
# operator/tools/render-chart.ts (deploy/cairn-operator.yaml is `helm template` of the chart) run it.
# The Go build takes /tmp/cairn-go.lock (hack/go-module.sh); a second caller of this script waits on
# the cache's own lock and then finds the binary built.
# Prints the path of the `helm` binary as the last line of stdout.
#   CAIRN_CACHE          cache root (default ~/.cache/cairn)
#   CAIRN_HELM_VERSION   helm.sh/helm/v4 module version (default below)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ver="${CAIRN_HELM_VERSION:-v4.3.2}"
cache="${CAIRN_CACHE:-$HOME/.cache/cairn}"
bin="$cache/helm-$ver/bin/helm"
log() { echo "install-helm: $*" >&2; }
# shellcheck source=hack/go-module.sh
. "$here/go-module.sh"

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
go_module_env
mkdir -p "$cache"
exec 9>"$cache/.install-helm.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

t0=$SECONDS
go_wrapper_module "$cache/src/helm-$ver" helm.sh/helm/v4 "$ver"
cd "$cache/src/helm-$ver"
go_locked_build "$bin" helm.sh/helm/v4/cmd/helm -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$ver"
log "built in $((SECONDS - t0)) s: $("$bin" version --short 2>/dev/null)"
echo "$bin"
