#!/usr/bin/env bash
# Shared by the hack/install-*.sh scripts that build a tool from Go modules (source it):
#   go_module_env      Go on PATH (or /usr/local/go/bin), GOTOOLCHAIN=local, module mode, no cgo,
#                      GOPROXY defaulted; exits with a message naming the fix when Go is missing.
#   go_wrapper_module DIR MODULE VERSION
#                      a small module in DIR that requires MODULE@VERSION (re-made when the version
#                      changes), so that `go build MODULE/cmd/...` resolves its dependencies.
#   go_locked_build OUT PKG [go build flags...]
#                      builds PKG into OUT (via OUT.tmp, moved into place when done) holding
#                      /tmp/cairn-go.lock: one Go build at a time on this machine (2 cores).
# Each function logs through `log` (define it before sourcing).

go_module_env() {
  if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; else log "no Go toolchain on PATH (install Go >= 1.26 from go.dev or Debian's golang-go)"; exit 1; fi
  fi
  command -v flock >/dev/null 2>&1 || { log "flock missing (Debian: util-linux)"; exit 1; }
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
  : "${GOPROXY:=https://proxy.golang.org}"; export GOPROXY
}

go_wrapper_module() { # DIR MODULE VERSION
  mkdir -p "$1"
  if [ ! -f "$1/go.mod" ] || ! grep -q "$2 $3" "$1/go.mod"; then
    rm -f "$1/go.mod" "$1/go.sum"
    printf 'module cairn.local/%s\n\ngo 1.26\n' "$(basename "$1")" > "$1/go.mod"
    log "resolving $2@$3 with $(go version)"
    (cd "$1" && go get "$2@$3" >&2)
  fi
}

go_locked_build() { # OUT PKG [flags...]
  local out="$1" pkg="$2"; shift 2
  mkdir -p "$(dirname "$out")"
  log "waiting for /tmp/cairn-go.lock (one Go build at a time on this machine)"
  (
    flock 8
    log "building $pkg (minutes the first time; cached in $(dirname "$out"))"
    go build -trimpath "$@" -o "$out.tmp" "$pkg"
  ) 8>/tmp/cairn-go.lock
  mv "$out.tmp" "$out"
}
