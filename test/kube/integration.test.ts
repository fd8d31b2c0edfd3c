// Kubernetes' own integration tests (k8s.io/kubernetes/test/integration/<pkg>, compiled by
// hack/install-kube.sh from the packages listed in hack/kube-integration.txt) run against the
// reference etcd 3.6 first and then against Cairn, and compared test by test: every test (top-level
// or subtest) that passes on etcd must pass on Cairn, except those listed with their cause in
// itest-exceptions.ts, and each listed one must still fail on Cairn.
//
// How a test binary finds its store (test/integration/framework/etcd.go): EtcdMain dials
// KUBE_INTEGRATION_ETCD_URL and uses it as-is when the dial succeeds; each package gets a fresh
// 1-member backend (startBackend) and that URL. Tests that start their own store
// (framework.RunCustomEtcd: apiserver's TestWatchCacheUpdatedByEtcd, apimachinery's watch-list
// test, ...) exec `etcd` from PATH with etcd's flags and a unix:// client URL: PATH starts with a
// directory whose `etcd` is etcd 3.6 for the etcd run and `node dist/server/main.js` for Cairn's.
//
// A test binary runs in a shadow of the kubernetes source tree (real directories along the
// package's path, symlinks to the module cache for everything else, staging/src/k8s.io/<m> linked
// to the published staging modules), so that testdata/ and the ../../../staging/... paths some
// tests read resolve as in a kubernetes checkout. TMPDIR is a directory of ours per package run,
// and so is TEST_SRCDIR (the test servers' certificate fixtures, see runPackage).
//
// Results are compared per test name from `-test.v` (`--- PASS/FAIL/SKIP: Name (Ns)`); a binary's
// exit status is not: EtcdMain's goroutine-leak check after the last test can fail a package whose
// tests all passed: an apiserver stopped with a list in flight leaves its etcd client retrying on
// "client connection is closing" for ~2.5 s (client-side, on both backends); once on Cairn the last
// such loop was still running at the check. That says nothing about the store.
//
// A test that passed on etcd and did not pass on Cairn fails this suite unless it is listed in
// itest-exceptions.ts with its cause. There is no retry: a flaky test found this way is a bug to fix
// or an exception to list (with the cause), never a silent pass.
//
// Full logs (test output, klog, backend log) go to a directory printed at the start; a failure
// message carries the failing tests' own output (error lines and tail).
//
// Knobs for local runs: CAIRN_ITEST_PKGS (regexp: only the matching packages; the size check then
// only needs one passing test), CAIRN_ITEST_PARALLEL (packages run at once per backend, default 2),
// CAIRN_ITEST_CAIRN_ARGS (extra flags for the Cairn backend, blank-separated; not for the shim that
// RunCustomEtcd execs).
//
// Time (hack/run-tests.sh reads the next line): a full run takes ~13.5 min; each of the two tests is limited to 20 min.
// test-file-timeout: 42 min
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import { etcd36Bin } from '../harness/bins.js';
import { kubeBins, startBackend } from '../harness/kube.js';
import { pool } from '../harness/poll.js';
import { CAIRN_MAIN, REPO_ROOT, trackChild, type TargetKind } from '../harness/procs.js';
import { ITEST_EXCEPTIONS, type ItestException } from './itest-exceptions.js';

const KUBE_PREFIX = 'k8s.io/kubernetes/';
/** -test.timeout of one package run; the runner kills the binary a minute after. */
const PKG_TIMEOUT_S = 480;
/** Check (1): at least this many tests (top-level and subtests) pass on etcd in a full run. */
const MIN_ETCD_PASSED = 850;
const MIN_ETCD_PASSED_TOP = 55;
const TAIL_LINES = 40;
const ERROR_LINES = 30;

// ---- the package list ----

interface PkgSpec {
  readonly pkg: string;
  /** -test.run (top-level tests only: no '/'), -test.skip (Go's flags, not node:test's). */
  readonly run: string | undefined;
  readonly skip: string | undefined;
}

/**
 * hack/kube-integration.txt: `<go package> [-run=RE] [-skip=RE]` a line, blanks between fields,
 * '#' comments. -run selects top-level tests (no '/').
 */
export function parsePackageList(text: string): PkgSpec[] {
  const out: PkgSpec[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [pkg, ...rest] = line.split(/\s+/);
    const where = `hack/kube-integration.txt:${String(i + 1)}`;
    if (pkg === undefined || !pkg.startsWith(KUBE_PREFIX + 'test/integration/')) throw new Error(`${where}: not a k8s.io/kubernetes/test/integration package: ${line}`);
    let run: string | undefined;
    let skip: string | undefined;
    for (const f of rest) {
      const m = /^-(run|skip)=(.+)$/.exec(f);
      if (m === null) throw new Error(`${where}: unknown field ${JSON.stringify(f)} (want -run=RE or -skip=RE)`);
      const re = m[2] ?? '';
      new RegExp(re); // a syntax check (Go's RE2 is close enough for the patterns used here)
      if (m[1] === 'run') {
        if (re.includes('/')) throw new Error(`${where}: -run selects top-level tests only (use -skip for subtests): ${re}`);
        run = re;
      } else skip = re;
    }
    if (out.some((s) => s.pkg === pkg)) throw new Error(`${where}: ${pkg} listed twice`);
    out.push({ pkg, run, skip });
  });
  return out;
}

// ---- go test -v output ----

type Status = 'PASS' | 'FAIL' | 'SKIP';

interface TestResult {
  readonly status: Status;
  readonly secs: number;
}

/** Output of one test while it runs: its last lines and its error lines (t.Error, panics). */
class TestOutput {
  readonly tail: string[] = [];
  readonly errors: string[] = [];
  add(line: string): void {
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    if (this.errors.length < ERROR_LINES && /_test\.go:\d+:|^\s*(panic:|Error Trace:|Error:)|\btimed out\b/.test(line)) this.errors.push(line);
  }
  text(): string {
    const tail = this.tail.filter((l) => !this.errors.includes(l));
    return [...this.errors, ...(tail.length > 0 ? ['  ... last lines:', ...tail] : [])].join('\n');
  }
}

const RESULT_RE = /^\s*--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+)s\)/;
const RUN_RE = /^=== (RUN|CONT)\s+(\S+)/;

/** Parses `go test -v` stdout line by line. */
export class GoTestParser {
  readonly results = new Map<string, TestResult>();
  /** Output of failed tests. */
  readonly failOutput = new Map<string, string>();
  private readonly open = new Map<string, TestOutput>();
  /** The last lines of stdout (for a crash: panic, timeout). */
  readonly tail: string[] = [];
  started = 0;

  line(l: string): void {
    this.tail.push(l);
    if (this.tail.length > TAIL_LINES * 2) this.tail.shift();
    const run = RUN_RE.exec(l);
    if (run !== null) {
      const name = run[2] ?? '';
      if (run[1] === 'RUN') this.started += 1;
      if (!this.open.has(name)) this.open.set(name, new TestOutput());
      return;
    }
    const res = RESULT_RE.exec(l);
    if (res !== null) {
      const name = res[2] ?? '';
      const status = res[1] as Status;
      this.results.set(name, { status, secs: Number(res[3]) });
      const o = this.open.get(name);
      this.open.delete(name);
      if (status === 'FAIL' && o !== undefined) this.failOutput.set(name, o.text());
      return;
    }
    for (const o of this.open.values()) o.add(l);
  }

  /** Tests that started and never reported (the binary died under them). */
  unfinished(): string[] {
    return [...this.open.keys()];
  }
}

// ---- the source tree the binaries run in ----

function modCache(): string {
  const env = process.env['GOMODCACHE'];
  if (env !== undefined && env !== '') return env;
  const gopath = (process.env['GOPATH'] ?? '').split(':')[0];
  return join(gopath !== undefined && gopath !== '' ? gopath : join(homedir(), 'go'), 'pkg', 'mod');
}

/**
 * Builds under `root` a tree that looks like a kubernetes checkout for the given packages (see the
 * header); returns package -> directory to run its binary in.
 */
function shadowTree(root: string, kubeSrc: string, stagingMods: ReadonlyMap<string, string>, pkgs: readonly string[]): Map<string, string> {
  // Real directories: every prefix of every package path and staging/src/k8s.io.
  const realDirs = new Set<string>(['']);
  const addPath = (rel: string): void => {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) realDirs.add(parts.slice(0, i).join('/'));
  };
  for (const p of pkgs) addPath(p.slice(KUBE_PREFIX.length));
  addPath('staging/src/k8s.io');
  for (const rel of [...realDirs].sort()) {
    const dst = rel === '' ? root : join(root, rel);
    mkdirSync(dst, { recursive: true });
    const src = rel === '' ? kubeSrc : join(kubeSrc, rel);
    const entries = existsSync(src) ? readdirSync(src) : [];
    for (const e of entries) {
      const child = rel === '' ? e : `${rel}/${e}`;
      if (realDirs.has(child)) continue;
      symlinkSync(join(src, e), join(dst, e));
    }
  }
  for (const [name, dir] of stagingMods) {
    const dst = join(root, 'staging', 'src', 'k8s.io', name);
    if (!existsSync(dst)) symlinkSync(dir, dst);
  }
  return new Map(pkgs.map((p) => [p, join(root, p.slice(KUBE_PREFIX.length))]));
}

// ---- running one package on one backend ----

interface PkgRun {
  readonly spec: PkgSpec;
  readonly backend: TargetKind;
  readonly results: Map<string, TestResult>;
  readonly failOutput: Map<string, string>;
  readonly unfinished: string[];
  readonly exit: string;
  readonly wallS: number;
  readonly logFile: string;
  /** stdout tail when the binary ended abnormally (no final ok/FAIL line, a panic, a timeout). */
  readonly crash: string | undefined;
}

interface RunEnv {
  readonly logDir: string;
  readonly itestDir: string;
  readonly cwdOf: ReadonlyMap<string, string>;
  /** Directory with the `etcd` RunCustomEtcd execs, per backend. */
  readonly shimDir: Record<TargetKind, string>;
  /** Extra flags of the backend's members (CAIRN_ITEST_CAIRN_ARGS for Cairn's). */
  readonly backendArgs: Record<TargetKind, string[]>;
  /** Source dirs (module@version/path) of the test servers, as the binaries name them (see runPackage). */
  readonly fixtureDirs: readonly string[];
}

function slug(pkg: string): string {
  return pkg.slice(KUBE_PREFIX.length + 'test/integration/'.length).replaceAll('/', '_');
}

async function runPackage(env: RunEnv, backend: TargetKind, spec: PkgSpec): Promise<PkgRun> {
  const bin = join(env.itestDir, `${spec.pkg.replaceAll('/', '_')}.test`);
  if (!existsSync(bin)) throw new Error(`${bin} missing: run hack/install-kube.sh (it compiles what hack/kube-integration.txt lists)`);
  const cwd = env.cwdOf.get(spec.pkg);
  if (cwd === undefined) throw new Error(`no working directory for ${spec.pkg}`);
  // gzip: the klog output of a full run is ~200 MB, ~15 MB compressed.
  const logFile = join(env.logDir, `${backend}-${slug(spec.pkg)}.log.gz`);
  const file = createWriteStream(logFile);
  const log = createGzip({ level: zlibConstants.Z_BEST_SPEED });
  log.pipe(file);
  const logClosed = new Promise<void>((r) => file.on('close', () => r()));
  const tmp = mkdtempSync(join(env.logDir, `tmp-${backend}-${slug(spec.pkg)}-`));
  for (const d of env.fixtureDirs) mkdirSync(join(tmp, 'src', d, 'testdata'), { recursive: true });
  const t0 = Date.now();
  const cluster = await startBackend(backend, 1, env.backendArgs[backend]);
  const url = cluster.members[0]?.clientUrl ?? '';
  const run = spec.run;
  const args = ['-test.v', `-test.timeout=${String(PKG_TIMEOUT_S)}s`, ...(run !== undefined ? [`-test.run=${run}`] : []), ...(spec.skip !== undefined ? [`-test.skip=${spec.skip}`] : [])];
  log.write(`# ${bin} ${args.join(' ')}\n# cwd ${cwd}\n# backend ${backend} at ${url}\n`);
  const parser = new GoTestParser();
  let exit = '';
  try {
    exit = await new Promise<string>((resolve, reject) => {
      const child = spawn(bin, args, {
        cwd,
        env: {
          ...process.env,
          KUBE_INTEGRATION_ETCD_URL: url,
          PATH: `${env.shimDir[backend]}:${process.env['PATH'] ?? ''}`,
          TMPDIR: tmp,
          // The test servers (cmd/kube-apiserver/app/testing, apiextensions' testserver) keep their
          // serving-certificate fixtures in <their source dir>/testdata, a path that -trimpath made
          // relative ("k8s.io/kubernetes@v1.34.4/cmd/..."; apiextensions' even names v0.0.0) and that
          // they then join to these two (the Bazel way): a writable directory of this run, where
          // they write the fixtures on first use (into <dir>/testdata, made above: not by them).
          TEST_SRCDIR: join(tmp, 'src'),
          TEST_WORKSPACE: '.',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      trackChild(child);
      const killer = setTimeout(() => child.kill('SIGKILL'), (PKG_TIMEOUT_S + 60) * 1000);
      let partial = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (c: string) => {
        log.write(c);
        partial += c;
        let nl = partial.indexOf('\n');
        while (nl >= 0) {
          parser.line(partial.slice(0, nl));
          partial = partial.slice(nl + 1);
          nl = partial.indexOf('\n');
        }
      });
      child.stderr.on('data', (c: Buffer) => log.write(c));
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(killer);
        if (partial !== '') parser.line(partial);
        resolve(signal !== null ? `signal ${signal}` : `exit ${String(code)}`);
      });
    });
  } finally {
    const backendLog = cluster.logTails(20_000);
    await cluster.close();
    log.end(`\n# ----- backend (${backend}) log -----\n${backendLog}\n`);
    await logClosed;
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  }
  const ended = parser.tail.some((l) => /^(ok|FAIL|PASS)\b/.test(l));
  const crashed = parser.unfinished().length > 0 || parser.tail.some((l) => /^panic: /.test(l)) || (!ended && exit !== 'exit 0');
  return {
    spec,
    backend,
    results: parser.results,
    failOutput: parser.failOutput,
    unfinished: parser.unfinished(),
    exit,
    wallS: (Date.now() - t0) / 1000,
    logFile,
    crash: crashed ? parser.tail.slice(-TAIL_LINES).join('\n') : undefined,
  };
}

// ---- comparison ----

function counts(r: PkgRun): { pass: number; fail: number; skip: number; top: number; topPass: number } {
  let pass = 0;
  let fail = 0;
  let skip = 0;
  let top = 0;
  let topPass = 0;
  for (const [name, t] of r.results) {
    if (t.status === 'PASS') pass += 1;
    else if (t.status === 'FAIL') fail += 1;
    else skip += 1;
    if (!name.includes('/')) {
      top += 1;
      if (t.status === 'PASS') topPass += 1;
    }
  }
  return { pass, fail, skip, top, topPass };
}

function summaryTable(runs: readonly PkgRun[]): string {
  const rows = [['package', 'backend', 'top pass/all', 'pass', 'fail', 'skip', 'no result', 'exit', 'wall s']];
  for (const r of runs) {
    const c = counts(r);
    rows.push([slug(r.spec.pkg), r.backend, `${String(c.topPass)}/${String(c.top)}`, String(c.pass), String(c.fail), String(c.skip), String(r.unfinished.length), r.exit, r.wallS.toFixed(1)]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')).join('\n');
}

function excused(pkg: string, test: string): ItestException | undefined {
  return ITEST_EXCEPTIONS.find((e) => e.pkg === pkg && e.tests.includes(test));
}

// ---- the test ----

describe('Kubernetes integration tests (k8s.io/kubernetes/test/integration): etcd 3.6 vs Cairn', () => {
  const specsAll = parsePackageList(readFileSync(join(REPO_ROOT, 'hack', 'kube-integration.txt'), 'utf8'));
  const filter = process.env['CAIRN_ITEST_PKGS'];
  const specs = filter !== undefined && filter !== '' ? specsAll.filter((s) => new RegExp(filter).test(s.pkg)) : specsAll;
  const parallel = Number(process.env['CAIRN_ITEST_PARALLEL'] ?? '2');
  const runs = new Map<TargetKind, Map<string, PkgRun>>([
    ['etcd', new Map()],
    ['cairn', new Map()],
  ]);
  let env: RunEnv | undefined;
  let workDir = '';

  before(() => {
    assert.ok(specs.length > 0, `no package selected (CAIRN_ITEST_PKGS=${String(filter)})`);
    const bins = kubeBins();
    const kver = basename(bins.dir).replace(/^kube-/, '');
    const stagingVer = `v0.${kver.replace(/^v1\./, '')}`;
    const mods = join(modCache(), 'k8s.io');
    const kubeSrc = join(mods, `kubernetes@${kver}`);
    assert.ok(existsSync(kubeSrc), `${kubeSrc} missing (hack/install-kube.sh downloads it)`);
    const staging = new Map<string, string>();
    for (const e of readdirSync(mods)) {
      const m = /^(.+)@(.+)$/.exec(e);
      if (m !== null && m[2] === stagingVer && m[1] !== undefined) staging.set(m[1], join(mods, e));
    }
    workDir = mkdtempSync(join(tmpdir(), 'cairn-kube-itest-'));
    const logDir = join(workDir, 'logs');
    mkdirSync(logDir);
    const cwdOf = shadowTree(join(workDir, 'src'), kubeSrc, staging, specs.map((s) => s.pkg));
    const shimDir: Record<TargetKind, string> = { etcd: join(workDir, 'shim-etcd'), cairn: join(workDir, 'shim-cairn') };
    mkdirSync(shimDir.etcd);
    mkdirSync(shimDir.cairn);
    symlinkSync(etcd36Bin(), join(shimDir.etcd, 'etcd'));
    writeFileSync(join(shimDir.cairn, 'etcd'), `#!/bin/sh\nexec '${process.execPath}' '${CAIRN_MAIN}' "$@"\n`);
    chmodSync(join(shimDir.cairn, 'etcd'), 0o755);
    // Staging modules are required at v0.0.0 by k8s.io/kubernetes (and replaced): their -trimpath
    // paths may say either version.
    const fixtureDirs = [
      `k8s.io/kubernetes@${kver}/cmd/kube-apiserver/app/testing`,
      `k8s.io/kubernetes@${kver}/pkg/controlplane/apiserver/samples/generic/server/testing`,
      ...['v0.0.0', stagingVer].map((v) => `k8s.io/apiextensions-apiserver@${v}/pkg/cmd/server/testing`),
    ];
    const cairnArgs = (process.env['CAIRN_ITEST_CAIRN_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
    env = { logDir, itestDir: bins.itestDir, cwdOf, shimDir, fixtureDirs, backendArgs: { etcd: [], cairn: cairnArgs } };
    console.log(`kube integration: ${String(specs.length)} packages, ${String(parallel)} at a time; logs (gzip: zcat/zless) in ${logDir}`);
  });

  after(() => {
    // The logs stay for reading; the shadow tree and shims go.
    if (workDir !== '') {
      for (const d of ['src', 'shim-etcd', 'shim-cairn']) rmSync(join(workDir, d), { recursive: true, force: true });
    }
  });

  async function runAll(backend: TargetKind): Promise<PkgRun[]> {
    const e = env;
    assert.ok(e !== undefined);
    const t0 = Date.now();
    const mine = runs.get(backend) ?? new Map<string, PkgRun>();
    await pool(specs, parallel, async (s) => {
      const r = await runPackage(e, backend, s);
      mine.set(s.pkg, r);
      const c = counts(r);
      console.log(`  ${backend} ${slug(s.pkg)}: ${String(c.pass)} passed, ${String(c.fail)} failed, ${String(c.skip)} skipped, ${r.exit}, ${r.wallS.toFixed(1)} s`);
    });
    const list = specs.map((s) => mine.get(s.pkg)).filter((r): r is PkgRun => r !== undefined);
    console.log(`kube integration on ${backend}: ${((Date.now() - t0) / 1000).toFixed(1)} s\n${summaryTable(list)}`);
    // Every test's status and duration, for comparing runs by hand.
    const byPkg = Object.fromEntries(list.map((r) => [r.spec.pkg, { exit: r.exit, wallS: r.wallS, tests: Object.fromEntries([...r.results].map(([n, t]) => [n, `${t.status} ${t.secs.toFixed(2)}`])) }]));
    writeFileSync(join(e.logDir, `results-${backend}.json`), JSON.stringify(byPkg, null, 1));
    return list;
  }

  it('runs the listed packages on etcd 3.6: a sizeable number of tests pass', { timeout: 20 * 60_000 }, async () => {
    const list = await runAll('etcd');
    let pass = 0;
    let topPass = 0;
    for (const r of list) {
      const c = counts(r);
      pass += c.pass;
      topPass += c.topPass;
    }
    const full = specs.length === specsAll.length;
    const crashes = list.filter((r) => r.crash !== undefined).map((r) => `${r.spec.pkg} (${r.exit}, log ${r.logFile}):\n${r.crash ?? ''}`);
    assert.ok(pass >= (full ? MIN_ETCD_PASSED : 1) && topPass >= (full ? MIN_ETCD_PASSED_TOP : 1), `only ${String(pass)} tests (${String(topPass)} top-level) passed on etcd\n${crashes.join('\n')}`);
  });

  it('runs them on Cairn: every test that passed on etcd passes, except the listed ones', { timeout: 20 * 60_000 }, async () => {
    const e = env;
    assert.ok(e !== undefined);
    const list = await runAll('cairn');
    const etcdRuns = runs.get('etcd') ?? new Map<string, PkgRun>();
    const problems: string[] = [];
    let compared = 0;
    for (const r of list) {
      const er = etcdRuns.get(r.spec.pkg);
      if (er === undefined) {
        problems.push(`${r.spec.pkg}: no etcd run to compare with`);
        continue;
      }
      for (const [name, t] of er.results) {
        if (t.status !== 'PASS') continue;
        compared += 1;
        const c = r.results.get(name);
        if (c?.status === 'PASS') continue;
        if (excused(r.spec.pkg, name) !== undefined) continue;
        const out = r.failOutput.get(name) ?? (c === undefined ? `no result on Cairn (${r.exit}); stdout tail:\n${r.crash ?? ''}` : '');
        problems.push(`${r.spec.pkg} ${name}: passed on etcd (${t.secs.toFixed(2)} s), ${c?.status ?? 'no result'} on Cairn (log ${r.logFile}); fix it, or list it with its cause in test/kube/itest-exceptions.ts\n${indent(out)}`);
      }
    }
    // (3) the exception list stays honest.
    for (const ex of ITEST_EXCEPTIONS) {
      if (!specs.some((s) => s.pkg === ex.pkg)) {
        if (specs.length === specsAll.length) problems.push(`exception for ${ex.pkg} (${ex.cause}): package not in hack/kube-integration.txt`);
        continue;
      }
      assert.ok(ex.cause.trim() !== '', `exception for ${ex.pkg} ${ex.tests.join(', ')} has no cause`);
      const r = runs.get('cairn')?.get(ex.pkg);
      for (const n of ex.tests) {
        const st = r?.results.get(n)?.status;
        if (ex.flaky === true) {
          console.log(`  listed as flaky (${ex.cause}): ${ex.pkg} ${n}: ${st ?? 'no result'} on Cairn`);
          continue;
        }
        if (st === 'PASS') problems.push(`${ex.pkg} ${n} is listed as failing on Cairn (${ex.cause}) but passed: remove it from test/kube/itest-exceptions.ts`);
        if (st === undefined && r?.crash === undefined) problems.push(`${ex.pkg} ${n} is listed as failing on Cairn (${ex.cause}) but did not run: fix the name or the selection`);
      }
    }
    console.log(`kube integration: ${String(compared)} tests passed on etcd and were compared; ${String(problems.length)} problems`);
    assert.deepEqual(problems, [], `Cairn differs from etcd 3.6 on Kubernetes integration tests (logs in ${e.logDir}):\n${problems.join('\n\n')}`);
  });
});

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
