#!/usr/bin/env bash
# Runs every compiled test file (dist/test/**/*.test.js) with node's test runner, one file at a time
# (tests start real server processes), then the end-to-end suites once more with the server in its
# multi-process mode (--client-processes 2). Extra arguments go to `node --test`.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "no compiled tests under dist/test (run: npx tsc -p tsconfig.json)" >&2
  exit 1
fi
export CAIRN_VERIFY=1
node --test --test-concurrency=1 "$@" "${files[@]}"
echo "# again with --client-processes 2: differential, etcdctl, crash, bad input and damage suites"
mapfile -t e2e < <(find dist/test/diff dist/test/etcdctl dist/test/crash dist/test/badinput dist/test/storage -name '*.test.js' | sort)
CAIRN_CLIENT_PROCESSES=2 exec node --test --test-concurrency=1 "$@" "${e2e[@]}"
