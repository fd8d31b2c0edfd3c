#!/usr/bin/env bash
# Runs the compiled test files (dist/test/**/*.test.js; build first: npx tsc -p tsconfig.json), one
# file at a time, each in its own node process (tests start real server processes), with bounded time:
#   - each file has a limit: `// test-file-timeout: <N> min` on a line of its source (test/**.ts),
#     else DEFAULT_FILE_MIN; a file over its limit gets SIGTERM (the harness kills its servers),
#     SIGKILL 20 s later (`timeout` signals the file's whole process group), and fails by name;
#   - the whole run has a limit, CAIRN_TEST_TIMEOUT_S (default 4800 s; CI stops a whole .ci/run at
#     90 min, and the tests take about 70 since the operator e2e files grew): a file running when it is
#     reached is stopped the same way, and files it leaves no time for fail as "not run".
# Tiers:
#   --tier all   (default; `npm test`, what CI runs) every file
#   --tier unit  (`npm run test:unit`) pure tests: no server processes, no root, no reference
#                binaries needed: test/unit, test/raft, test/transport, the files listed in UNIT_FILES
#                below, and any file with a line `// test-tier: unit`
# Other arguments: files to run (dist/test/....test.js or test/....test.ts); anything starting with
# "--" goes to node (e.g. --test-name-pattern=...).
# Prints each file's result and duration, then the slowest files and every failure by name.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_FILE_MIN=15
GLOBAL_S="${CAIRN_TEST_TIMEOUT_S:-4800}"
KILL_AFTER_S=20
UNIT_DIRS=(dist/test/unit/ dist/test/raft/ dist/test/transport/)
UNIT_FILES=(dist/test/lin/checker.test.js dist/test/bench/report.test.js dist/test/bench/kube-report.test.js dist/test/metrics/promtext.test.js)

tier=all
node_args=()
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tier) tier="${2:-}"; shift 2 ;;
    --tier=*) tier="${1#--tier=}"; shift ;;
    --*) node_args+=("$1"); shift ;;
    *) f="$1"; shift
       case "$f" in test/*.ts) f="dist/${f%.ts}.js" ;; esac
       files+=("$f") ;;
  esac
done
case "$tier" in all|unit) ;; *) echo "run-tests: --tier must be all or unit, got '$tier'" >&2; exit 2 ;; esac

src_of() { local s="${1#dist/}"; echo "${s%.js}.ts"; }

in_unit_tier() {
  local f="$1" d
  for d in "${UNIT_DIRS[@]}"; do [[ "$f" == "$d"* ]] && return 0; done
  for d in "${UNIT_FILES[@]}"; do [[ "$f" == "$d" ]] && return 0; done
  grep -qE '^// test-tier: unit$' "$(src_of "$f")" 2>/dev/null
}

if [ "${#files[@]}" -eq 0 ]; then
  mapfile -t all < <(find dist/test -name '*.test.js' | sort)
  for f in "${all[@]}"; do
    # A compiled test whose source is gone (renamed or deleted) is not run.
    [ -f "$(src_of "$f")" ] || continue
    if [ "$tier" = all ] || in_unit_tier "$f"; then files+=("$f"); fi
  done
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "run-tests: no compiled tests under dist/test (run: npx tsc -p tsconfig.json)" >&2
  exit 1
fi

file_limit_min() {
  local m
  m="$(grep -m1 -oE '^// test-file-timeout: [0-9]+ min$' "$(src_of "$1")" 2>/dev/null | grep -oE '[0-9]+' || true)"
  echo "${m:-$DEFAULT_FILE_MIN}"
}

export CAIRN_VERIFY=1
# Test files that need a local Kubernetes share one (test/harness/localkube.ts starts it when none is
# up, and reuses it across files); whatever state the run ends in, it is taken down here, so a run
# never leaves kubelet, containerd, cni0 or iptables chains behind.
lk_dir="${CAIRN_LOCALKUBE_DIR:-$PWD/.localkube}"
# One that was already up when the run began is someone else's (shared on this machine): left up.
lk_was_up=0
[ -e "$lk_dir/state.json" ] && lk_was_up=1
localkube_down() {
  if [ "$lk_was_up" = 0 ] && [ -e "$lk_dir/state.json" ] && [ -f dist/hack/localkube.js ]; then
    echo "run-tests: taking the local Kubernetes in $lk_dir down"
    node dist/hack/localkube.js down --dir "$lk_dir" || echo "run-tests: localkube down failed (see above)" >&2
  fi
}
trap localkube_down EXIT
start=$SECONDS
failed=()
times=()
echo "run-tests: tier $tier, ${#files[@]} files, one at a time; CI=${CI:-} ; whole run limited to $GLOBAL_S s (CAIRN_TEST_TIMEOUT_S)"
for f in "${files[@]}"; do
  left_s=$((GLOBAL_S - (SECONDS - start)))
  if [ "$left_s" -le 0 ]; then
    failed+=("$f: NOT RUN: the whole run reached its limit (CAIRN_TEST_TIMEOUT_S=$GLOBAL_S)")
    continue
  fi
  limit_s=$(($(file_limit_min "$f") * 60))
  why="its limit ($((limit_s / 60)) min)"
  if [ "$left_s" -lt "$limit_s" ]; then limit_s=$left_s; why="the whole run's limit (CAIRN_TEST_TIMEOUT_S=$GLOBAL_S)"; fi
  echo "=== $f (limit $((limit_s / 60)) min $((limit_s % 60)) s)"
  t0=$SECONDS
  rc=0
  timeout -k "$KILL_AFTER_S" "$limit_s" node --test-reporter=spec "${node_args[@]}" "$f" </dev/null || rc=$?
  took=$((SECONDS - t0))
  times+=("$took $f")
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "=== TIMEOUT $f: still running after $took s, stopped at $why"
    failed+=("$f: TIMEOUT after $took s ($why)")
  elif [ "$rc" -ne 0 ]; then
    echo "=== FAIL $f ($took s, exit $rc)"
    failed+=("$f: FAIL (exit $rc, $took s)")
  else
    echo "=== ok $f ($took s)"
  fi
done

total=$((SECONDS - start))
echo
echo "run-tests: ${#files[@]} files in $((total / 60)) min $((total % 60)) s; slowest:"
printf '%s\n' "${times[@]}" | sort -rn | head -n 12 | awk '{printf "  %5d s  %s\n", $1, $2}'
if [ "${#failed[@]}" -gt 0 ]; then
  echo "run-tests: ${#failed[@]} of ${#files[@]} files failed:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "run-tests: all ${#files[@]} files passed"
