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
# Two lanes run side by side (the machine has 2 cores; most files wait on processes, not CPU): the
# files that need the local Kubernetes (they import test/harness/localkube, or say
# `// test-lane: localkube`) one after another in the "kube" lane, every other file one after another in
# the "main" lane. Each file's output is kept in a file and printed whole when it ends, so the two
# lanes' outputs never interleave. CAIRN_TEST_LANES=1 runs everything in one lane.
LANES="${CAIRN_TEST_LANES:-2}"
case "$LANES" in 1|2) ;; *) echo "run-tests: CAIRN_TEST_LANES must be 1 or 2, got '$LANES'" >&2; exit 2 ;; esac
run_dir="$(mktemp -d)"
in_kube_lane() {
  local src
  src="$(src_of "$1")"
  grep -qE "^// test-lane: localkube$|from '[./]*harness/localkube\.js'" "$src" 2>/dev/null
}
main_files=()
kube_files=()
for f in "${files[@]}"; do
  if [ "$LANES" = 2 ] && in_kube_lane "$f"; then kube_files+=("$f"); else main_files+=("$f"); fi
done

# run_lane NAME FILE...: runs the files in order; appends "took<TAB>file" to $run_dir/NAME.times and
# one line per failure to $run_dir/NAME.failed.
run_lane() {
  local lane="$1" f left_s limit_s why t0 rc took log
  shift
  : >"$run_dir/$lane.times"
  : >"$run_dir/$lane.failed"
  for f in "$@"; do
    left_s=$((GLOBAL_S - (SECONDS - start)))
    if [ "$left_s" -le 0 ]; then
      echo "$f: NOT RUN: the whole run reached its limit (CAIRN_TEST_TIMEOUT_S=$GLOBAL_S)" >>"$run_dir/$lane.failed"
      continue
    fi
    limit_s=$(($(file_limit_min "$f") * 60))
    why="its limit ($((limit_s / 60)) min)"
    if [ "$left_s" -lt "$limit_s" ]; then limit_s=$left_s; why="the whole run's limit (CAIRN_TEST_TIMEOUT_S=$GLOBAL_S)"; fi
    log="$run_dir/$lane.current"
    echo "=== $f (lane $lane, limit $((limit_s / 60)) min $((limit_s % 60)) s)" >"$log"
    t0=$SECONDS
    rc=0
    timeout -k "$KILL_AFTER_S" "$limit_s" node --test-reporter=spec "${node_args[@]}" "$f" </dev/null >>"$log" 2>&1 || rc=$?
    took=$((SECONDS - t0))
    printf '%s\t%s\n' "$took" "$f" >>"$run_dir/$lane.times"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "=== TIMEOUT $f: still running after $took s, stopped at $why" >>"$log"
      echo "$f: TIMEOUT after $took s ($why)" >>"$run_dir/$lane.failed"
    elif [ "$rc" -ne 0 ]; then
      echo "=== FAIL $f ($took s, exit $rc)" >>"$log"
      echo "$f: FAIL (exit $rc, $took s)" >>"$run_dir/$lane.failed"
    else
      echo "=== ok $f ($took s, lane $lane)" >>"$log"
    fi
    flock "$run_dir/.print" cat "$log"
  done
}

echo "run-tests: tier $tier, ${#files[@]} files in $LANES lane(s) (main ${#main_files[@]}, kube ${#kube_files[@]}); CI=${CI:-} ; whole run limited to $GLOBAL_S s (CAIRN_TEST_TIMEOUT_S)"
kube_pid=""
if [ "${#kube_files[@]}" -gt 0 ]; then
  # localkube goes down as soon as its lane ends: its daemons would otherwise idle beside the main lane.
  { run_lane kube "${kube_files[@]}"; localkube_down >"$run_dir/kube.down" 2>&1; flock "$run_dir/.print" cat "$run_dir/kube.down"; } &
  kube_pid=$!
fi
if [ "${#main_files[@]}" -gt 0 ]; then run_lane main "${main_files[@]}"; else : >"$run_dir/main.times"; : >"$run_dir/main.failed"; fi
if [ -n "$kube_pid" ]; then wait "$kube_pid" || true; else : >"$run_dir/kube.times"; : >"$run_dir/kube.failed"; fi
mapfile -t times < <(cat "$run_dir/main.times" "$run_dir/kube.times")
mapfile -t failed < <(cat "$run_dir/main.failed" "$run_dir/kube.failed")
rm -rf "$run_dir"

total=$((SECONDS - start))
echo
echo "run-tests: ${#files[@]} files in $((total / 60)) min $((total % 60)) s; slowest:"
printf '%s\n' "${times[@]}" | sort -rn | head -n 12 | awk -F'\t' '{printf "  %5d s  %s\n", $1, $2}'
if [ "${#failed[@]}" -gt 0 ]; then
  echo "run-tests: ${#failed[@]} of ${#files[@]} files failed:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "run-tests: all ${#files[@]} files passed"
