// Cairn vs etcd: the same load against the reference etcd and against Cairn,
// one server after the other, each on a fresh data dir on the same disk with
// default settings. Prints two tables and writes bench-results.json in the cwd.
// A benchmark, not a test: it asserts nothing about speed, and a row that fails
// shows its error and the run goes on.
//
// Workloads (run in this order on each server):
//   put, range-lin, range-ser, txn-put   etcd's own `benchmark` tool, at each in-flight count
//   watch          our driver watchload.ts: 1,000 watchers on the prefix /bench/ over 10 Watch
//                  streams; puts at 200/s and 1,000/s (5 s each), then as fast as acked with 16
//                  in flight (3 s); events/s delivered over all watchers, put-sent -> event latency
//   watch-latency  etcd's `benchmark watch-latency`: 10 streams x 100 watchers on ONE key (its
//                  only shape), 100 puts/s x 500, latency put-acked -> event (Go clientv3 client)
//   lease          our driver leaseload.ts: grant 10,000 leases, then keep them all alive over 4
//                  LeaseKeepAlive streams, 64 requests in flight each, for 10 s
// The drivers run as their own node process; the machine has 2 CPUs, so driver and server compete
// for them (the driver table shows both processes' CPU, in cores, to tell who was saturated).
// watch + watch-latency + lease take about 70 s for both servers.
//
// Run only some workloads (without the npm script's installs):
//   npx tsc -p tsconfig.json && node dist/test/bench/run.js --only watch,lease
//
// Environment (all optional):
//   CAIRN_BENCH_TARGET            cairn (default) | etcd: what the "cairn" column runs
//                                 (etcd against etcd checks the bench itself)
//   CAIRN_BENCH_WORKLOADS         comma list of the workloads above (default all); --only wins
//   CAIRN_BENCH_IN_FLIGHT         comma list of requests in flight (default 1,256)
//   CAIRN_BENCH_TOTAL_SERIAL      requests per row at 1 in flight (default 5000)
//   CAIRN_BENCH_TOTAL_CONCURRENT  requests per row at >1 in flight (default 50000)
//   CAIRN_BENCH_VALUE_BYTES       value size (default 256)
//   CAIRN_BENCH_ROW_TIMEOUT_S     a row's time limit (default 300)
//   CAIRN_BENCH_DIR               where the data dirs go (default the OS temp dir)
//   CAIRN_BENCH_OUT               results file (default ./bench-results.json)
//   CAIRN_BENCH_TOOL              path of etcd's benchmark binary (default: built by
//                                 hack/install-bench-tools.sh into ~/.cache/cairn/bin)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ETCDCTL_BIN, REPO_ROOT, startCairn, startEtcd } from '../harness/procs.js';
import type { ServerOpts, ServerProc } from '../harness/procs.js';
import { formatDriverTable, formatTable, parseDriverOutput, parseToolOutput, parseWatchLatencyOutput, ratio } from './report.js';
import type { RowResult, SideResult, ToolReport } from './report.js';

// ---- limits and defaults ----

const TOTAL_SERIAL_DEFAULT = 5000;
const TOTAL_CONCURRENT_DEFAULT = 50_000;
const VALUE_BYTES_DEFAULT = 256;
const ROW_TIMEOUT_S_DEFAULT = 300;
const IN_FLIGHT_DEFAULT = [1, 256];
/** gRPC connections the tool opens: min(clients, this). */
const CONNS_MAX = 16;
const KEY_BYTES = 8;
const KEY_SPACE_SIZE = 100_000;
const DIAL_TIMEOUT = '5s';
const STDERR_TAIL_CHARS_MAX = 4000;
const STDOUT_CHARS_MAX = 1_000_000;
const ETCDCTL_TIMEOUT_MS = 30_000;
const READY_TIMEOUT_MS = 60_000;
const KIB_PER_MIB = 1024;
const RANGE_KEY = 'cairn-bench-range-key';
const HERE = dirname(fileURLToPath(import.meta.url));

// watch (watchload.ts)
const WATCHERS = 1000;
const WATCH_STREAMS = 10;
const WATCH_RATES = [200, 1000];
const WATCH_SECONDS = 5;
const WATCH_MAX_IN_FLIGHT = 16;
const WATCH_MAX_SECONDS = 3;
const WATCH_VALUE_BYTES = 32;
const WATCH_DRAIN_MS = 20_000;
// watch-latency (etcd's benchmark)
const WLAT_STREAMS = 10;
const WLAT_WATCHERS_PER_STREAM = 100;
const WLAT_PUT_RATE = 100;
const WLAT_PUT_TOTAL = 500;
// lease (leaseload.ts)
const LEASES = 10_000;
const LEASE_TTL_S = 600;
const LEASE_GRANT_IN_FLIGHT = 64;
const LEASE_STREAMS = 4;
const LEASE_IN_FLIGHT = 64;
const LEASE_SECONDS = 10;
/** A driver run's time limit (its phases' own limits are well inside it). */
const DRIVER_TIMEOUT_MS = 240_000;

// ---- configuration (checked once here) ----

type Target = 'cairn' | 'etcd';
type ToolWorkload = 'put' | 'range-lin' | 'range-ser' | 'txn-put';
type DriverWorkload = 'watch' | 'watch-latency' | 'lease';
type WorkloadName = ToolWorkload | DriverWorkload;
const TOOL_WORKLOADS: readonly ToolWorkload[] = ['put', 'range-lin', 'range-ser', 'txn-put'];
const DRIVER_WORKLOADS: readonly DriverWorkload[] = ['watch', 'watch-latency', 'lease'];
const WORKLOAD_NAMES: readonly WorkloadName[] = [...TOOL_WORKLOADS, ...DRIVER_WORKLOADS];

interface Config {
  readonly target: Target;
  readonly workloads: readonly WorkloadName[];
  readonly inFlight: readonly number[];
  readonly totalSerial: number;
  readonly totalConcurrent: number;
  readonly valueBytes: number;
  readonly rowTimeoutMs: number;
  readonly dir: string;
  readonly out: string;
}

function envString(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function envPositiveInt(name: string, dflt: number): number {
  const v = envString(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function isWorkloadName(s: string): s is WorkloadName {
  return (WORKLOAD_NAMES as readonly string[]).includes(s);
}

function isToolWorkload(w: WorkloadName): w is ToolWorkload {
  return (TOOL_WORKLOADS as readonly string[]).includes(w);
}

function isDriverWorkload(w: WorkloadName): w is DriverWorkload {
  return (DRIVER_WORKLOADS as readonly string[]).includes(w);
}

/** The value of `--only a,b` (or `--only=a,b`) on the command line; the only argument accepted. */
function onlyArg(argv: readonly string[]): string | undefined {
  let only: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--only' && argv[i + 1] !== undefined) only = argv[++i];
    else if (a.startsWith('--only=')) only = a.slice('--only='.length);
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: run.js [--only ${WORKLOAD_NAMES.join(',')}]`);
  }
  return only;
}

function readConfig(): Config {
  const target = envString('CAIRN_BENCH_TARGET') ?? 'cairn';
  if (target !== 'cairn' && target !== 'etcd') {
    throw new Error(`CAIRN_BENCH_TARGET must be "cairn" or "etcd", got ${JSON.stringify(target)}`);
  }
  const chosen = onlyArg(process.argv.slice(2)) ?? envString('CAIRN_BENCH_WORKLOADS');
  const workloads = (chosen?.split(',') ?? [...WORKLOAD_NAMES]).map((s) => s.trim());
  const bad = workloads.filter((w) => !isWorkloadName(w));
  if (bad.length > 0) throw new Error(`workloads: unknown ${bad.join(',')}; known: ${WORKLOAD_NAMES.join(',')}`);
  const inFlightRaw = envString('CAIRN_BENCH_IN_FLIGHT');
  const inFlight = inFlightRaw === undefined ? IN_FLIGHT_DEFAULT : inFlightRaw.split(',').map((s) => Number(s.trim()));
  if (inFlight.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
    throw new Error(`CAIRN_BENCH_IN_FLIGHT must list positive integers, got ${JSON.stringify(inFlightRaw)}`);
  }
  return {
    target,
    workloads: workloads.filter(isWorkloadName),
    inFlight,
    totalSerial: envPositiveInt('CAIRN_BENCH_TOTAL_SERIAL', TOTAL_SERIAL_DEFAULT),
    totalConcurrent: envPositiveInt('CAIRN_BENCH_TOTAL_CONCURRENT', TOTAL_CONCURRENT_DEFAULT),
    valueBytes: envPositiveInt('CAIRN_BENCH_VALUE_BYTES', VALUE_BYTES_DEFAULT),
    rowTimeoutMs: envPositiveInt('CAIRN_BENCH_ROW_TIMEOUT_S', ROW_TIMEOUT_S_DEFAULT) * 1000,
    dir: envString('CAIRN_BENCH_DIR') ?? tmpdir(),
    out: resolve(envString('CAIRN_BENCH_OUT') ?? 'bench-results.json'),
  };
}

// ---- rows ----

interface RowSpec {
  readonly workload: ToolWorkload;
  readonly inFlight: number;
  readonly total: number;
}

function rowSpecs(cfg: Config): RowSpec[] {
  return cfg.workloads.filter(isToolWorkload).flatMap((workload) =>
    cfg.inFlight.map((inFlight) => ({
      workload,
      inFlight,
      total: inFlight === 1 ? cfg.totalSerial : cfg.totalConcurrent,
    })),
  );
}

/** One row of a driver workload: a phase of its run. */
interface PhaseSpec {
  /** The phase name the driver reports, and the row's workload column. */
  readonly name: string;
  readonly load: string;
  readonly unit: string;
  /** In-flight count for the JSON rows. */
  readonly inFlight: number;
  /** Operations planned, for the JSON rows (0: as many as fit the time). */
  readonly total: number;
}

interface DriverSpec {
  readonly workload: DriverWorkload;
  readonly phases: readonly PhaseSpec[];
}

function driverSpec(w: DriverWorkload): DriverSpec {
  const watchers = `${WATCHERS} watchers / ${WATCH_STREAMS} streams`;
  switch (w) {
    case 'watch':
      return {
        workload: w,
        phases: [
          ...WATCH_RATES.map((r) => ({
            name: `watch-steady-${r}`,
            load: `${watchers}, ${r} puts/s x ${WATCH_SECONDS} s`,
            unit: 'events/s',
            inFlight: 0,
            total: r * WATCH_SECONDS * WATCHERS,
          })),
          {
            name: 'watch-max',
            load: `${watchers}, puts ${WATCH_MAX_IN_FLIGHT} in flight x ${WATCH_MAX_SECONDS} s`,
            unit: 'events/s',
            inFlight: WATCH_MAX_IN_FLIGHT,
            total: 0,
          },
        ],
      };
    case 'watch-latency':
      return {
        workload: w,
        phases: [
          {
            name: 'watch-latency',
            load: `go tool: ${WLAT_STREAMS * WLAT_WATCHERS_PER_STREAM} watchers / ${WLAT_STREAMS} streams on 1 key, ${WLAT_PUT_RATE} puts/s x ${WLAT_PUT_TOTAL}`,
            unit: 'events/s',
            inFlight: 1,
            total: WLAT_PUT_TOTAL * WLAT_STREAMS * WLAT_WATCHERS_PER_STREAM,
          },
        ],
      };
    case 'lease':
      return {
        workload: w,
        phases: [
          {
            name: 'lease-grant',
            load: `${LEASES} leases, ${LEASE_GRANT_IN_FLIGHT} in flight`,
            unit: 'grants/s',
            inFlight: LEASE_GRANT_IN_FLIGHT,
            total: LEASES,
          },
          {
            name: 'lease-keepalive',
            load: `${LEASES} leases, ${LEASE_STREAMS} streams x ${LEASE_IN_FLIGHT} in flight, ${LEASE_SECONDS} s`,
            unit: 'keepalives/s',
            inFlight: LEASE_STREAMS * LEASE_IN_FLIGHT,
            total: 0,
          },
        ],
      };
  }
}

function driverSpecs(cfg: Config): DriverSpec[] {
  return cfg.workloads.filter(isDriverWorkload).map(driverSpec);
}

function needsRangeKey(w: ToolWorkload): boolean {
  return w === 'range-lin' || w === 'range-ser';
}

/** The tool's command line for one row against one endpoint. */
function toolArgs(row: RowSpec, endpoint: string, valueBytes: number): string[] {
  const global = [
    `--endpoints=${endpoint}`,
    `--clients=${row.inFlight}`,
    `--conns=${Math.min(row.inFlight, CONNS_MAX)}`,
    `--dial-timeout=${DIAL_TIMEOUT}`,
    '--precise',
  ];
  const total = `--total=${row.total}`;
  const keys = [`--key-size=${KEY_BYTES}`, `--key-space-size=${KEY_SPACE_SIZE}`, `--val-size=${valueBytes}`];
  switch (row.workload) {
    case 'put':
      return [...global, 'put', total, ...keys];
    case 'range-lin':
      return [...global, 'range', RANGE_KEY, '--consistency=l', total];
    case 'range-ser':
      return [...global, 'range', RANGE_KEY, '--consistency=s', total];
    case 'txn-put':
      return [...global, 'txn-put', total, ...keys, '--txn-ops=1'];
  }
}

// ---- child processes ----

interface ChildOutcome {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderrTail: string;
  readonly timedOut: boolean;
  readonly spawnError: string | undefined;
}

/** Runs a command to completion (SIGKILL at timeoutMs), keeping stdout and the end of stderr. */
function runChild(cmd: string, args: readonly string[], timeoutMs: number, env: NodeJS.ProcessEnv): Promise<ChildOutcome> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let spawnError: string | undefined;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      if (stdout.length < STDOUT_CHARS_MAX) stdout += s;
    });
    child.stderr.on('data', (s: string) => {
      stderr = (stderr + s).slice(-STDERR_TAIL_CHARS_MAX);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      spawnError = e.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderrTail: stderr, timedOut, spawnError });
    });
  });
}

/** The last lines of a tool's stderr that are not gRPC's INFO chatter or JSON log records. */
function usefulStderr(tail: string): string {
  return tail
    .split('\n')
    .filter((l) => l.trim() !== '' && !/\bINFO:/.test(l) && !l.trimStart().startsWith('{'))
    .slice(-5)
    .join(' | ');
}

const toolEnv: NodeJS.ProcessEnv = {
  ...process.env,
  GRPC_GO_LOG_SEVERITY_LEVEL: 'error',
  GRPC_GO_LOG_VERBOSITY_LEVEL: '0',
};

function describeFailure(what: string, o: ChildOutcome, timeoutMs: number): string {
  if (o.spawnError !== undefined) return `${what}: cannot run: ${o.spawnError}`;
  if (o.timedOut) return `${what}: timed out after ${timeoutMs / 1000} s`;
  const how = o.signal !== null ? `signal ${o.signal}` : `exit ${String(o.code)}`;
  return `${what}: ${how}: ${usefulStderr(o.stderrTail) || o.stdout.trim().slice(-300)}`;
}

/** Path of etcd's benchmark binary: CAIRN_BENCH_TOOL, or built/reused by hack/install-bench-tools.sh. */
function resolveTool(): string {
  const given = envString('CAIRN_BENCH_TOOL');
  if (given !== undefined) return given;
  const r = spawnSync('bash', [join(REPO_ROOT, 'hack', 'install-bench-tools.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const last = r.stdout.trim().split('\n').pop();
  if (r.status !== 0 || last === undefined || last === '') {
    throw new Error(`hack/install-bench-tools.sh failed (status ${String(r.status)})`);
  }
  return last;
}

function toolVersion(tool: string): string {
  const r = spawnSync('go', ['version', '-m', tool], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const m = /^\s*mod\s+go\.etcd\.io\/etcd\/v3\s+(\S+)/m.exec(r.stdout ?? '');
  return m?.[1] ?? 'unknown';
}

function serverVersion(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return (r.stdout ?? '').split('\n')[0]?.trim() ?? 'unknown';
}

// ---- one server ----

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function peakMiB(p: ServerProc): number | undefined {
  const kb = p.peakRssKb();
  return kb > 0 ? kb / KIB_PER_MIB : undefined;
}

/** Runs one etcdctl command against the server; an error string if it failed. */
async function etcdctl(p: ServerProc, what: string, args: readonly string[]): Promise<string | undefined> {
  const o = await runChild(
    ETCDCTL_BIN,
    [`--endpoints=${p.endpoint}`, `--dial-timeout=${DIAL_TIMEOUT}`, `--command-timeout=${DIAL_TIMEOUT}`, ...args],
    ETCDCTL_TIMEOUT_MS,
    { ...process.env, ETCDCTL_API: '3' },
  );
  return o.code === 0 ? undefined : describeFailure(what, o, ETCDCTL_TIMEOUT_MS);
}

/** A quick get, so a server that stopped answering fails its rows at once (the tool would retry until the row's time limit). */
function probe(p: ServerProc): Promise<string | undefined> {
  return etcdctl(p, 'server not answering (etcdctl get)', ['get', RANGE_KEY]);
}

function populate(p: ServerProc, valueBytes: number): Promise<string | undefined> {
  return etcdctl(p, 'pre-populating the range key', ['put', RANGE_KEY, '--', 'v'.repeat(valueBytes)]);
}

interface RowContext {
  readonly cfg: Config;
  readonly tool: string;
  readonly proc: ServerProc;
  populated: boolean;
}

async function runRow(ctx: RowContext, row: RowSpec): Promise<SideResult> {
  const { proc, cfg } = ctx;
  if (!isAlive(proc.pid)) return { report: undefined, error: 'server is not running', peakRssMiB: peakMiB(proc) };
  const down = await probe(proc);
  if (down !== undefined) return { report: undefined, error: down, peakRssMiB: peakMiB(proc) };
  if (needsRangeKey(row.workload) && !ctx.populated) {
    const err = await populate(proc, cfg.valueBytes);
    if (err !== undefined) return { report: undefined, error: err, peakRssMiB: peakMiB(proc) };
    ctx.populated = true;
  }
  const o = await runChild(ctx.tool, toolArgs(row, proc.endpoint, cfg.valueBytes), cfg.rowTimeoutMs, toolEnv);
  const parsed: ToolReport | string =
    o.code === 0 && !o.timedOut ? parseToolOutput(o.stdout) : describeFailure('benchmark', o, cfg.rowTimeoutMs);
  if (typeof parsed === 'string') return { report: undefined, error: parsed, peakRssMiB: peakMiB(proc) };
  return { report: parsed, error: undefined, peakRssMiB: peakMiB(proc) };
}

/** The command line of a driver workload against one server. */
function driverCommand(w: DriverWorkload, tool: string, proc: ServerProc): { cmd: string; args: string[] } {
  const node = (script: string, args: readonly (string | number)[]): { cmd: string; args: string[] } => ({
    cmd: process.execPath,
    args: [join(HERE, script), '--endpoint', proc.endpoint, '--server-pid', String(proc.pid), ...args.map(String)],
  });
  switch (w) {
    case 'watch':
      return node('watchload.js', [
        '--watchers', WATCHERS,
        '--streams', WATCH_STREAMS,
        '--rates', WATCH_RATES.join(','),
        '--seconds', WATCH_SECONDS,
        '--max-in-flight', WATCH_MAX_IN_FLIGHT,
        '--max-seconds', WATCH_MAX_SECONDS,
        '--value-bytes', WATCH_VALUE_BYTES,
        '--drain-ms', WATCH_DRAIN_MS,
      ]);
    case 'lease':
      return node('leaseload.js', [
        '--leases', LEASES,
        '--ttl', LEASE_TTL_S,
        '--grant-in-flight', LEASE_GRANT_IN_FLIGHT,
        '--streams', LEASE_STREAMS,
        '--in-flight', LEASE_IN_FLIGHT,
        '--seconds', LEASE_SECONDS,
      ]);
    case 'watch-latency':
      return {
        cmd: tool,
        args: [
          `--endpoints=${proc.endpoint}`,
          `--dial-timeout=${DIAL_TIMEOUT}`,
          '--precise',
          'watch-latency',
          `--streams=${WLAT_STREAMS}`,
          `--watchers-per-stream=${WLAT_WATCHERS_PER_STREAM}`,
          `--put-rate=${WLAT_PUT_RATE}`,
          `--put-total=${WLAT_PUT_TOTAL}`,
        ],
      };
  }
}

/** Runs one driver workload against the server: one SideResult per phase of spec, in order. */
async function runDriver(ctx: RowContext, spec: DriverSpec): Promise<SideResult[]> {
  const { proc } = ctx;
  const all = (error: string): SideResult[] => spec.phases.map(() => ({ report: undefined, error, peakRssMiB: peakMiB(proc) }));
  if (!isAlive(proc.pid)) return all('server is not running');
  const down = await probe(proc);
  if (down !== undefined) return all(down);
  const { cmd, args } = driverCommand(spec.workload, ctx.tool, proc);
  const o = await runChild(cmd, args, DRIVER_TIMEOUT_MS, toolEnv);
  const what = spec.workload === 'watch-latency' ? 'benchmark watch-latency' : spec.workload;
  if (spec.workload === 'watch-latency') {
    const parsed = o.code === 0 && !o.timedOut ? parseWatchLatencyOutput(o.stdout) : describeFailure(what, o, DRIVER_TIMEOUT_MS);
    if (typeof parsed === 'string') return all(parsed);
    return [{ report: parsed.report, error: undefined, peakRssMiB: peakMiB(proc), notes: parsed.notes }];
  }
  const parsed = o.timedOut || o.spawnError !== undefined ? describeFailure(what, o, DRIVER_TIMEOUT_MS) : parseDriverOutput(o.stdout);
  if (typeof parsed === 'string') return all(o.code === 0 ? parsed : describeFailure(what, o, DRIVER_TIMEOUT_MS));
  return spec.phases.map((ph) => {
    const got = parsed.phases.find((p) => p.name === ph.name);
    if (got === undefined) {
      return { report: undefined, error: `${what}: ${parsed.error ?? `no phase ${ph.name} in its output`}`, peakRssMiB: peakMiB(proc) };
    }
    return { report: got.report, error: undefined, peakRssMiB: peakMiB(proc), notes: got.notes };
  });
}

function driverProgress(label: string, spec: DriverSpec, results: readonly SideResult[]): void {
  spec.phases.forEach((ph, i) => {
    const r = results[i];
    const rep = r?.report;
    const n = r?.notes ?? {};
    const f = (k: string): string => (n[k] ?? Number.NaN).toFixed(2);
    const cpu = n['driverCores'] === undefined ? '' : `, cpu server ${f('serverCores')} driver ${f('driverCores')}`;
    const puts = n['putsPerSec'] === undefined ? '' : `, puts ${f('putsPerSec')}/s p50 ${f('putP50Ms')} p99 ${f('putP99Ms')} ms`;
    const msg =
      rep === undefined
        ? `ERROR ${r?.error ?? 'missing'}`
        : `${rep.reqPerSec.toFixed(0)} ${ph.unit}, p50 ${rep.p50Ms.toFixed(2)} ms, p99 ${rep.p99Ms.toFixed(2)} ms${cpu}${puts}` +
          (rep.errorCount > 0 ? `, ${rep.errorCount} errors (${rep.firstError ?? ''})` : '');
    process.stderr.write(`bench: ${label} ${ph.name} (${ph.load}): ${msg}\n`);
  });
}

function progress(label: string, row: RowSpec, r: SideResult): void {
  const what = `${label} ${row.workload} x${row.inFlight} (${row.total} req)`;
  const rep = r.report;
  const msg =
    rep === undefined
      ? `ERROR ${r.error ?? ''}`
      : `${rep.reqPerSec.toFixed(0)} req/s, p50 ${rep.p50Ms.toFixed(2)} ms, p99 ${rep.p99Ms.toFixed(2)} ms` +
        (rep.errorCount > 0 ? `, ${rep.errorCount} errors (${rep.firstError ?? ''})` : '');
  process.stderr.write(`bench: ${what}: ${msg}\n`);
}

type Starter = (opts: ServerOpts) => Promise<ServerProc>;

/**
 * Starts one server on a fresh data dir, runs every tool row and then every driver workload
 * against it, stops it. Results: one per tool row, then one per driver phase, in order.
 */
async function runSide(
  label: string,
  start: Starter,
  cfg: Config,
  tool: string,
  rows: readonly RowSpec[],
  drivers: readonly DriverSpec[],
): Promise<SideResult[]> {
  const dataDir = mkdtempSync(join(cfg.dir, `cairn-bench-${label}-`));
  let proc: ServerProc;
  try {
    proc = await start({ dataDir, readyTimeoutMs: READY_TIMEOUT_MS });
  } catch (e) {
    const error = `${label} did not start: ${errorText(e)}`;
    process.stderr.write(`bench: ${error}\n`);
    rmSync(dataDir, { recursive: true, force: true });
    const n = rows.length + drivers.reduce((k, d) => k + d.phases.length, 0);
    return Array.from({ length: n }, () => ({ report: undefined, error, peakRssMiB: undefined }));
  }
  process.stderr.write(`bench: ${label} pid ${proc.pid} on ${proc.endpoint}, data dir ${dataDir}\n`);
  const ctx: RowContext = { cfg, tool, proc, populated: false };
  const results: SideResult[] = [];
  try {
    for (const row of rows) {
      const r = await runRow(ctx, row);
      progress(label, row, r);
      results.push(r);
    }
    for (const spec of drivers) {
      const r = await runDriver(ctx, spec);
      driverProgress(label, spec, r);
      results.push(...r);
    }
  } finally {
    await proc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return results;
}

// ---- main ----

/** Each distinct error once, with the rows it hit. */
function footnotes(rows: readonly RowResult[]): string[] {
  const byText = new Map<string, string[]>();
  const add = (text: string, where: string): void => {
    const list = byText.get(text) ?? [];
    list.push(where);
    byText.set(text, list);
  };
  for (const r of rows) {
    for (const [side, s] of [['etcd', r.etcd], ['cairn', r.cairn]] as const) {
      const where = r.load === undefined ? `${r.workload} x${r.inFlight} ${side}` : `${r.workload} ${side}`;
      if (s.error !== undefined) add(s.error, where);
      else if (s.report !== undefined && s.report.errorCount > 0) {
        add(`${s.report.errorCount} failed requests, most often: ${s.report.firstError ?? ''}`, where);
      }
    }
  }
  return [...byText].map(([text, where]) => `${where.join(', ')}: ${text}`);
}

async function main(): Promise<void> {
  const cfg = readConfig();
  const tool = resolveTool();
  const rows = rowSpecs(cfg);
  const drivers = driverSpecs(cfg);
  const phases = drivers.flatMap((d) => d.phases);
  const meta = {
    date: new Date().toISOString(),
    tool,
    toolVersion: toolVersion(tool),
    etcdVersion: serverVersion(process.env['ETCD_BIN'] ?? '/usr/bin/etcd', ['--version']),
    cairnColumn: cfg.target === 'cairn' ? 'cairn' : 'etcd (CAIRN_BENCH_TARGET=etcd: etcd against itself)',
    node: process.version,
    valueBytes: cfg.valueBytes,
    connsMax: CONNS_MAX,
    keySpaceSize: KEY_SPACE_SIZE,
    dataDirParent: cfg.dir,
  };
  process.stderr.write(`bench: ${JSON.stringify(meta)}\n`);

  const etcd = await runSide('etcd', startEtcd, cfg, tool, rows, drivers);
  const cairn = await runSide(
    cfg.target === 'cairn' ? 'cairn' : 'etcd-as-target',
    cfg.target === 'cairn' ? startCairn : startEtcd,
    cfg,
    tool,
    rows,
    drivers,
  );
  const missing: SideResult = { report: undefined, error: 'missing', peakRssMiB: undefined };
  const toolResults: RowResult[] = rows.map((spec, i) => ({
    workload: spec.workload,
    inFlight: spec.inFlight,
    total: spec.total,
    etcd: etcd[i] ?? missing,
    cairn: cairn[i] ?? missing,
  }));
  const driverResults: RowResult[] = phases.map((ph, j) => ({
    workload: ph.name,
    inFlight: ph.inFlight,
    total: ph.total,
    load: ph.load,
    unit: ph.unit,
    etcd: etcd[rows.length + j] ?? missing,
    cairn: cairn[rows.length + j] ?? missing,
  }));
  const results = [...toolResults, ...driverResults];

  console.log(`\nCairn vs etcd (${meta.etcdVersion}); cairn column: ${meta.cairnColumn}`);
  if (toolResults.length > 0) {
    console.log(`\nLoad: etcd benchmark ${meta.toolVersion}, ${cfg.valueBytes}-byte values\n`);
    console.log(formatTable(toolResults));
  }
  if (driverResults.length > 0) {
    console.log(
      '\nWatch and lease (drivers test/bench/watchload.ts and leaseload.ts, except watch-latency); ' +
        'latency: put sent (watch-latency: put acked) -> event, request -> answer; CPU in cores, server / driver\n',
    );
    console.log(formatDriverTable(driverResults));
  }
  const notes = footnotes(results);
  if (notes.length > 0) console.log(`\nErrors:\n${notes.map((n) => `  - ${n}`).join('\n')}`);

  const json = { meta, rows: results.map((r) => ({ ...r, ratioCairnToEtcd: ratio(r) ?? null })) };
  writeFileSync(cfg.out, `${JSON.stringify(json, (_k, v: unknown) => (v === undefined ? null : v), 2)}\n`);
  console.log(`\nwrote ${cfg.out}`);
}

// `node --test dist/test/` runs every .js file under dist/test as a test file;
// the bench must not run then.
if (process.env['NODE_TEST_CONTEXT'] !== undefined) {
  console.log('bench: skipped under the test runner (run it with npm run bench)');
} else {
  main().catch((e: unknown) => {
    console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
