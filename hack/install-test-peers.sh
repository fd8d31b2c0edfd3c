#!/usr/bin/env bash
# Installs the reference peers the tests and the bench compare Cairn against:
# etcd and etcdctl 3.4 from Debian (etcd-server, etcd-client), and iproute2 (`ip`: the partition
# and linearizability tests put members in network namespaces), openssl (the TLS and auth tests make
# their certificates and keys) and curl (the gateway tests run etcd's curl examples).
# etcd and etcdctl are found as the tests find them: by test/harness/bins.ts (ETCD_BIN/ETCDCTL_BIN,
# else PATH; version 3.4.x), run here as a command, which prints the binaries and versions used.
# Idempotent: when everything is there it only prints them.
# The package's own etcd service is never left running: service starts are
# refused during the install, and a package-owned etcd that appeared anyway
# is stopped and disabled.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

have() { command -v "$1" >/dev/null 2>&1; }

# The resolver is TypeScript: compile it when dist/ lacks it or is older than its sources.
resolver="$root/dist/test/harness/bins.js"
if [ ! -f "$resolver" ] || [ "$root/test/harness/bins.ts" -nt "$resolver" ] || [ "$root/test/harness/prereq.ts" -nt "$resolver" ]; then
  (cd "$root" && npx tsc -p tsconfig.json >/dev/null) ||
    echo "install-test-peers: tsc reported errors (npm run lint shows them); using what it emitted" >&2
fi
resolve_bins() { node "$resolver" etcd etcdctl | sed 's/^/install-test-peers: /'; }

if have ip && have openssl && have curl && resolve_bins 2>/dev/null; then
  exit 0
fi
if ! have apt-get; then
  resolve_bins || true
  echo "install-test-peers: missing prerequisites and no apt-get: install etcd 3.4 (etcd-server, etcd-client), iproute2, openssl and curl" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then
    SUDO=(sudo -n)
  else
    echo "install-test-peers: etcd/etcdctl/ip/openssl/curl missing and not root (no sudo): install etcd-server and etcd-client" >&2
    exit 1
  fi
fi

# pids of package-owned etcd daemons (user etcd, /usr/bin/etcd)
package_etcd_pids() {
  pgrep -u etcd -x etcd 2>/dev/null || true
}

before="$(package_etcd_pids)"

# Refuse service starts while installing (Debian's policy-rc.d protocol,
# honoured by invoke-rc.d and deb-systemd-invoke). Keep an existing policy.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# cairn install-test-peers: no service starts during install\nexit 101\n' \
    | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  own_policy=1
fi
cleanup() {
  if [ "$own_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  etcd-server etcd-client iproute2 openssl curl ca-certificates >/dev/null

# Stop a package etcd that the install started despite the policy.
after="$(package_etcd_pids)"
started=""
for pid in $after; do
  case " $(echo $before) " in
    *" $pid "*) ;;
    *) started="$started $pid" ;;
  esac
done
if [ -n "$started" ]; then
  echo "install-test-peers: stopping the etcd service the install started (pids:$started)"
  if have systemctl && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now etcd.service >/dev/null 2>&1 || true
  elif have update-rc.d; then
    "${SUDO[@]}" update-rc.d etcd disable >/dev/null 2>&1 || true
    "${SUDO[@]}" /etc/init.d/etcd stop >/dev/null 2>&1 || true
  fi
  for pid in $started; do "${SUDO[@]}" kill "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=""
    for pid in $started; do if kill -0 "$pid" 2>/dev/null; then alive="$alive $pid"; fi; done
    [ -z "$alive" ] && break
    sleep 0.5
  done
  for pid in ${alive:-}; do "${SUDO[@]}" kill -9 "$pid" 2>/dev/null || true; done
fi

if ! resolve_bins; then
  echo "install-test-peers: the reference etcd/etcdctl 3.4 are still not usable after the install (see above)" >&2
  exit 1
fi
