#!/usr/bin/env bash
# Runs every compiled test file (dist/test/**/*.test.js) with node's test runner, one file at a time
# (tests start real server processes). Extra arguments go to `node --test`.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "no compiled tests under dist/test (run: npx tsc -p tsconfig.json)" >&2
  exit 1
fi
export CAIRN_VERIFY=1
exec node --test --test-concurrency=1 "$@" "${files[@]}"
