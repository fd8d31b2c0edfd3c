// `npm run test:etcd-e2e`: etcd's own end-to-end tests (go.etcd.io/etcd/tests/v3/e2e v3.6.8, built by
// hack/install-etcd-e2e.sh) run on etcd 3.6.8 and then on Cairn (an `etcd` in the bin dir that execs
// server/bin/cairn-server; etcdctl and etcdutl 3.6.8 on both). Every test that passes on etcd must
// pass on Cairn, except those in test/etcd-e2e/exceptions.json, each with its cause; an exception that
// passes on Cairn fails the run too (remove it). Tests run one binary at a time (they use fixed ports
// from 20000).
//   node dist/hack/etcd-e2e.js [--subset | --run REGEX] [--timeout 60m] [--parallel] [--out DIR]
//   --subset    the fixed subset `npm test` runs (SUBSET below)
//   --parallel  both runs at once, each in a network namespace of its own (root; `unshare --net`),
//               so their fixed ports do not meet: half the wall time, twice the load
//   --out DIR   keep each run's whole `go test -v` output in DIR (etcd36.log, cairn.log)
//   --etcd-log FILE  take etcd 3.6.8's outcomes from an earlier run's output (--out's etcd36.log)
//               instead of running etcd again
// An exception marked `notRun` is not started on Cairn (-test.skip), its cause says why: its failure
// would end or spoil the rest of the run (a panic in a goroutine after the test ended, a leaked
// process that etcd's leak check then blames on every later test, a wait with no deadline), or it
// only fails after minutes of retries.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = process.env['CAIRN_CACHE'] ?? join(homedir(), '.cache', 'cairn');

/** The subset `npm test` runs (test/etcd36/etcd-e2e.test.ts): the lock, election, member list, Status, snapshot, CRL, one-port http+https and compaction hash check tests. */
export const SUBSET = [
  'TestCtlV3Elect',
  'TestCtlV3Lock',
  'TestCtlV3LockWithCmd',
  'TestCurlV3ElectionLeader',
  'TestCurlV3LockOperations',
  'TestCtlV3MemberList',
  'TestCtlV3MemberListWithHex',
  'TestCtlV3MemberListSerializable',
  'TestCurlV3MaintenanceStatus',
  'TestCtlV3Snapshot',
  'TestCtlV3SnapshotVersion',
  'TestCtlV3GetRevokedCRL',
  'TestConnectionMultiplexing',
  'TestCompactHashCheckDetectCorruptionInterrupt',
];

export interface Exception {
  readonly test: string;
  readonly cause: string;
  /** Passes on Cairn in some runs and fails in others: reported, never judged (say why in the cause). */
  readonly flaky?: boolean;
  /** Not run on Cairn at all: its failure would end or spoil the run, or takes minutes (say which in the cause). */
  readonly notRun?: boolean;
}

export type Outcome = 'PASS' | 'FAIL' | 'SKIP';

/** `--- PASS: TestX (0.1s)` lines of `go test -v` output (top-level tests only). */
export function outcomes(output: string): Map<string, Outcome> {
  const out = new Map<string, Outcome>();
  for (const m of output.matchAll(/^--- (PASS|FAIL|SKIP): (\S+) /gm)) {
    const [, what, name] = m;
    if (name !== undefined && !name.includes('/')) out.set(name, what as Outcome);
  }
  return out;
}

export interface Verdict {
  readonly regressions: string[];
  readonly nowPassing: string[];
  readonly excepted: string[];
  /** Flaky exceptions and how they went on Cairn this time. */
  readonly flaky: string[];
  readonly passedBoth: number;
}

/** Compares the two runs against the exception list. */
export function judge(etcd: Map<string, Outcome>, cairn: Map<string, Outcome>, exceptions: readonly Exception[]): Verdict {
  const excepted = new Set(exceptions.filter((e) => e.flaky !== true).map((e) => e.test));
  const flaky = new Set(exceptions.filter((e) => e.flaky === true).map((e) => e.test));
  const v = { regressions: [] as string[], nowPassing: [] as string[], excepted: [] as string[], flaky: [] as string[], passedBoth: 0 };
  for (const [name, o] of etcd) {
    if (o !== 'PASS') continue;
    const c = cairn.get(name);
    if (flaky.has(name)) v.flaky.push(`${name} (${c ?? 'not run'})`);
    else if (c === 'PASS') {
      if (excepted.has(name)) v.nowPassing.push(name);
      else v.passedBoth++;
    } else if (excepted.has(name)) v.excepted.push(name);
    else v.regressions.push(`${name} (${c ?? 'not run'})`);
  }
  return v;
}

function binDir(name: string, etcd: string): string {
  const kubeBin = join(cache, `kube-${process.env['CAIRN_KUBE_VERSION'] ?? 'v1.34.4'}`, 'bin');
  const dir = join(cache, 'etcd-e2e', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const tool of ['etcdctl', 'etcdutl']) symlinkSync(join(kubeBin, tool), join(dir, tool));
  if (etcd === 'reference') symlinkSync(join(kubeBin, 'etcd'), join(dir, 'etcd'));
  else {
    writeFileSync(join(dir, 'etcd'), `#!/usr/bin/env bash\nexec ${JSON.stringify(join(repo, 'server', 'bin', 'cairn-server'))} "$@"\n`);
    chmodSync(join(dir, 'etcd'), 0o755);
  }
  return dir;
}

function run(testBin: string, cwd: string, dir: string, pattern: string, timeout: string, side: string, isolate: boolean, skip: readonly string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const testArgs = ['-test.v', '-test.run', pattern, '-test.timeout', timeout, '-bin-dir', dir];
    if (skip.length > 0) testArgs.push('-test.skip', `^(${skip.join('|')})$`);
    // A network namespace of its own: its loopback carries the run's fixed ports and nothing else.
    const [cmd, args] = isolate ? ['unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', testBin, ...testArgs]] : [testBin, testArgs];
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of d.split('\n')) if (/^--- (PASS|FAIL|SKIP)/.test(line)) process.stderr.write(`  ${side}: ${line}\n`);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolvePromise(out));
  });
}

async function main(args: readonly string[]): Promise<number> {
  const at = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const pattern = args.includes('--subset') ? `^(${SUBSET.join('|')})$` : (at('--run') ?? '.*');
  const timeout = at('--timeout') ?? '90m';
  const lines = execFileSync('bash', [join(repo, 'hack', 'install-etcd-e2e.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n');
  const [testBin, cwd] = lines.slice(-2);
  if (testBin === undefined || cwd === undefined) throw new Error('install-etcd-e2e.sh printed no binary');
  // Tests that start a member without --data-dir leave <name>.etcd / <name>.cairn in the tests' working
  // directory; found there by the next run, a stale one keeps that member from starting (e.g.
  // TestSnapshotCatchupEntriesFlag then times out on both servers, and its leaked process makes etcd's
  // leak check skip every later test).
  for (const e of readdirSync(cwd, { withFileTypes: true })) {
    if (e.isDirectory() && /^[\w.-]+\.(etcd|cairn)$/.test(e.name)) rmSync(join(cwd, e.name), { recursive: true, force: true });
  }
  const exceptions = JSON.parse(readFileSync(join(repo, 'test', 'etcd-e2e', 'exceptions.json'), 'utf8')) as Exception[];
  const parallel = args.includes('--parallel');
  const outDir = at('--out');
  const notRun = exceptions.filter((e) => e.notRun === true).map((e) => e.test);
  const etcdLog = at('--etcd-log');
  const side = async (name: string, etcdBin: string, label: string): Promise<Map<string, Outcome>> => {
    if (name === 'etcd36' && etcdLog !== undefined) {
      process.stderr.write(`etcd-e2e: etcd 3.6.8's outcomes from ${etcdLog}\n`);
      return outcomes(readFileSync(etcdLog, 'utf8'));
    }
    process.stderr.write(`etcd-e2e: ${pattern} on ${label}\n`);
    const t0 = Date.now();
    const text = await run(testBin, cwd, binDir(name, etcdBin), pattern, timeout, name, parallel, name === 'cairn' ? notRun : []);
    process.stderr.write(`etcd-e2e: ${label} done in ${Math.round((Date.now() - t0) / 1000)} s\n`);
    if (outDir !== undefined) {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, `${name}.log`), text);
    }
    const spoiledAt = leakSpoiled(text);
    if (spoiledAt !== undefined) {
      spoiled.push(`${label} from ${spoiledAt}`);
      process.stderr.write(`etcd-e2e: ${label}: etcd's leak check found a goroutine leaked before ${spoiledAt}; it and every later test skip their bodies, so their outcomes say nothing\n`);
    }
    return outcomes(text);
  };
  const spoiled: string[] = [];
  const [etcd, cairn] = parallel
    ? await Promise.all([side('etcd36', 'reference', 'etcd 3.6.8'), side('cairn', 'cairn', 'Cairn')])
    : [await side('etcd36', 'reference', 'etcd 3.6.8'), await side('cairn', 'cairn', 'Cairn')];
  const v = judge(etcd, cairn, exceptions.filter((e) => etcd.has(e.test)));
  const passedEtcd = [...etcd.values()].filter((o) => o === 'PASS').length;
  process.stdout.write(`etcd-e2e: ${passedEtcd} passed on etcd 3.6.8; on Cairn ${v.passedBoth} of those passed, ${v.excepted.length} excepted, ${v.flaky.length} flaky (${v.flaky.join(', ')}), ${v.regressions.length} failed, ${v.nowPassing.length} exceptions now pass\n`);
  for (const r of v.regressions) process.stdout.write(`  FAILS ON CAIRN (not an exception): ${r}\n`);
  for (const n of v.nowPassing) process.stdout.write(`  PASSES NOW (remove from test/etcd-e2e/exceptions.json): ${n}\n`);
  for (const s of spoiled) process.stdout.write(`  SPOILED RUN (a leaked goroutine; the outcomes after it are void): ${s}\n`);
  return v.regressions.length === 0 && v.nowPassing.length === 0 && passedEtcd > 0 && spoiled.length === 0 ? 0 : 1;
}

/** The test at which etcd's goroutine leak check (e2e.BeforeTest) first reported a leak, if it did. */
export function leakSpoiled(output: string): string | undefined {
  const at = output.indexOf('Found leaked goroutine');
  if (at < 0) return undefined;
  const runs = [...output.slice(0, at).matchAll(/^=== RUN {3}(\S+)$/gm)];
  return runs[runs.length - 1]?.[1] ?? '(before the first test)';
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`etcd-e2e: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
