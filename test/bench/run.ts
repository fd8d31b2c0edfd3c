// Cairn vs etcd: the same load against the reference etcd and against Cairn, each on a fresh
// data dir on the same disk with default settings. Prints up to four tables and writes
// bench-results.json in the cwd. A benchmark, not a test: it asserts nothing about speed, and a
// row that fails shows its error and the run goes on.
//
// Repeats and alternation (the tool rows and the -3m cluster rows): both servers (or both
// clusters) are started once, fresh, etcd's first, and stay up for the whole table; each row runs
// CAIRN_BENCH_REPEATS times per side (default 3), the sides alternating in ABBA order: etcd, cairn,
// then cairn, etcd, then etcd, cairn, ... ABBA rather than ABAB because with ABAB etcd always runs
// first in each pair, so a drift of the shared machine during a row (other tenants' load, the
// writeback of the previous run's pages) would always land on the same side; ABBA spreads it over
// both. Not fresh data dirs per repeat: a later run of a row sees what the earlier runs and rows
// wrote (up to the 100,000-key space), but so does the other side at the same point, and
// restarting per run would add a start (a cluster's ~5 s) to every run. The idle side's heartbeats
// and trailing background work overlap the other's runs, alike for both.
// Every figure printed is the median over the runs (req/s, p50, p99 and CPU µs/op each on its own;
// peak RSS is the highest, VmHWM only grows); the results file keeps every run under rows[].runs
// (each with notes.load1m, the 1-minute load average when it began).
// Noise control: the "etcd spread" column is (max - min) / median of etcd's own req/s over its
// runs: the etcd-vs-etcd noise of this run; a ratio within it is marked "~" (not a difference this
// run can tell from noise). The cairn spread is printed beside it. The load average (os.loadavg)
// is printed at the start and the end of the run and under each table.
// CPU µs/op: the server process(es)' user + system CPU (/proc/<pid>/stat, with threads and live
// child processes; summed over members) over the tool's run, per completed request.
// The watch, watch-latency and lease rows and the admin rows stay single-run per side (their
// tables say so): repeating them 3 times would add ~2.5 min (drivers) and ~7 min (admin: a 1 GiB
// fill per run), and each lease run leaves 10,000 live leases (TTL 600 s) behind, so a repeat on
// the same server would not be the same load. Time: the tool rows take R times what one run took.
//
// Workloads (in this order; the drivers' after all tool rows, etcd's then the other side's):
//   put, range-lin, range-ser, txn-put   etcd's own `benchmark` tool, at each in-flight count
//                  (range-lin: linearizable range of one key, range-ser: serializable;
//                  txn-put: a txn holding one put)
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
// Cluster rows (their own table, run last): put-3m, range-lin-3m, range-ser-3m, txn-put-3m are the
// four tool workloads above against a fresh 3-member cluster (test/harness/cluster.ts: loopback,
// default settings, data dirs on the same disk, started only once a leader is agreed by all
// members), a 3-member reference etcd and a 3-member Cairn, with the same in-flight counts and
// totals; the tool is given all three endpoints and opens its connections on them
// round-robin: followers first, the leader last (so at 1 in flight the one connection is always
// on a follower, which forwards writes; at 256, 16 connections go 6/5/5). Both clusters are up
// together (6 processes) while their rows alternate. Peak RSS and CPU are summed
// over the members; a Raft term that moved during a row is listed under the table as leader
// elections, and each member's warn/error log lines are summarised on stderr and kept in the
// results file (memberLogs).
// Admin rows (`--only admin`, test/bench/adminload.ts, run after everything else): a single member
// of each filled with 1 GiB (CAIRN_BENCH_ADMIN_BYTES), then etcdctl snapshot save (MB/s) and defrag
// (full, and after deleting half) timed; about 3-4 min for both servers.
// `--only cluster` names the four; one run of each took 2 min 20 s - 2 min 30 s for both clusters
// (8 rows each; starting a cluster ~5 s) with the 2 CPUs shared (load average 8-17); the rows'
// part of that is multiplied by CAIRN_BENCH_REPEATS.
//
// Run only some workloads (without the npm script's installs):
//   npx tsc -p tsconfig.json && node dist/test/bench/run.js --only watch,lease
//   npx tsc -p tsconfig.json && node dist/test/bench/run.js --only cluster     (or put-3m,range-lin-3m)
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
//   CAIRN_BENCH_REPEATS           runs per side of each tool and cluster row (default 3, at least 1)
//   CAIRN_BENCH_DIR               where the data dirs go (default the OS temp dir; for the
//                                 cluster rows through TMPDIR, which cluster.ts honours)
//   CAIRN_BENCH_LOG_DIR           if set, every cluster member's whole stderr is written there
//                                 as <side>-<member>.log
//   CAIRN_BENCH_OUT               results file (default ./bench-results.json)
//   CAIRN_BENCH_TOOL              path of etcd's benchmark binary (default: built by
//                                 hack/install-bench-tools.sh into ~/.cache/cairn/bin)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster } from '../harness/cluster.js';
import { formatAdminTable, runAdmin, type AdminFigures } from './adminload.js';
import type { Cluster } from '../harness/cluster.js';
import { etcdBin, etcdctlBin, refBin } from '../harness/bins.js';
import { childPids, REPO_ROOT, startCairn, startEtcd } from '../harness/procs.js';
import type { ServerOpts, ServerProc, TargetKind } from '../harness/procs.js';
import {
  cpuUsPerOp,
  electionsDuring,
  formatDriverTable,
  formatLoad,
  formatTable,
  insideNoise,
  loadLine,
  parseDriverOutput,
  parseToolOutput,
  parseWatchLatencyOutput,
  ratio,
  repeatedRow,
  rowName,
  sideOrder,
  sideSpread,
  sumPeakMiB,
  toolTableLegend,
} from './report.js';
import type { RowResult, SideName, SideResult, ToolReport } from './report.js';
import { envPositiveInt, envString, processCpuSeconds } from './loadlib.js';

// ---- limits and defaults ----

const TOTAL_SERIAL_DEFAULT = 5000;
const TOTAL_CONCURRENT_DEFAULT = 50_000;
const VALUE_BYTES_DEFAULT = 256;
const ROW_TIMEOUT_S_DEFAULT = 300;
const REPEATS_DEFAULT = 3;
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
// cluster rows
const CLUSTER_SIZE = 3;
const CLUSTER_STATUS_TIMEOUT_MS = 5_000;
/** Distinct warn/error messages per member kept in the results file and printed on stderr. */
const LOG_MESSAGES_MAX = 12;
const LOG_EXAMPLE_CHARS_MAX = 400;

// ---- configuration (checked once here) ----

type Target = 'cairn' | 'etcd';
type ToolWorkload = 'put' | 'range-lin' | 'range-ser' | 'txn-put';
type DriverWorkload = 'watch' | 'watch-latency' | 'lease';
type ClusterWorkload = `${ToolWorkload}-3m`;
type WorkloadName = ToolWorkload | DriverWorkload | ClusterWorkload | 'admin';
const TOOL_WORKLOADS: readonly ToolWorkload[] = ['put', 'range-lin', 'range-ser', 'txn-put'];
const DRIVER_WORKLOADS: readonly DriverWorkload[] = ['watch', 'watch-latency', 'lease'];
/** Each cluster workload's tool workload (the name is rowName(base, CLUSTER_SIZE)). */
const CLUSTER_BASE: Readonly<Record<ClusterWorkload, ToolWorkload>> = {
  'put-3m': 'put',
  'range-lin-3m': 'range-lin',
  'range-ser-3m': 'range-ser',
  'txn-put-3m': 'txn-put',
};
const CLUSTER_WORKLOADS = Object.keys(CLUSTER_BASE).filter(isClusterWorkload);
const WORKLOAD_NAMES: readonly WorkloadName[] = [...TOOL_WORKLOADS, ...DRIVER_WORKLOADS, ...CLUSTER_WORKLOADS, 'admin'];
/** Names for groups of workloads on --only. */
const WORKLOAD_GROUPS: Readonly<Record<string, readonly WorkloadName[]>> = { cluster: CLUSTER_WORKLOADS };

interface Config {
  readonly target: Target;
  readonly workloads: readonly WorkloadName[];
  readonly inFlight: readonly number[];
  readonly totalSerial: number;
  readonly totalConcurrent: number;
  readonly valueBytes: number;
  readonly rowTimeoutMs: number;
  /** Runs of each side per tool row (CAIRN_BENCH_REPEATS), alternated; the table prints their median. */
  readonly repeats: number;
  readonly dir: string;
  readonly out: string;
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

function isClusterWorkload(w: string): w is ClusterWorkload {
  return Object.hasOwn(CLUSTER_BASE, w);
}

/** The value of `--only a,b` (or `--only=a,b`) on the command line; the only argument accepted. */
function onlyArg(argv: readonly string[]): string | undefined {
  let only: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--only' && argv[i + 1] !== undefined) only = argv[++i];
    else if (a.startsWith('--only=')) only = a.slice('--only='.length);
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: run.js [--only ${[...WORKLOAD_NAMES, ...Object.keys(WORKLOAD_GROUPS)].join(',')}]`);
  }
  return only;
}

function readConfig(): Config {
  const target = envString('CAIRN_BENCH_TARGET') ?? 'cairn';
  if (target !== 'cairn' && target !== 'etcd') {
    throw new Error(`CAIRN_BENCH_TARGET must be "cairn" or "etcd", got ${JSON.stringify(target)}`);
  }
  const chosen = onlyArg(process.argv.slice(2)) ?? envString('CAIRN_BENCH_WORKLOADS');
  const workloads = (chosen?.split(',') ?? [...WORKLOAD_NAMES]).map((s) => s.trim()).flatMap((w): string[] => [...(WORKLOAD_GROUPS[w] ?? [w])]);
  const bad = workloads.filter((w) => !isWorkloadName(w));
  if (bad.length > 0) {
    throw new Error(`workloads: unknown ${bad.join(',')}; known: ${[...WORKLOAD_NAMES, ...Object.keys(WORKLOAD_GROUPS)].join(',')}`);
  }
  const inFlightRaw = envString('CAIRN_BENCH_IN_FLIGHT');
  const inFlight = inFlightRaw === undefined ? IN_FLIGHT_DEFAULT : inFlightRaw.split(',').map((s) => Number(s.trim()));
  if (inFlight.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
    throw new Error(`CAIRN_BENCH_IN_FLIGHT must list positive integers, got ${JSON.stringify(inFlightRaw)}`);
  }
  return {
    target,
    workloads: [...new Set(workloads.filter(isWorkloadName))],
    inFlight,
    totalSerial: envPositiveInt('CAIRN_BENCH_TOTAL_SERIAL', TOTAL_SERIAL_DEFAULT),
    totalConcurrent: envPositiveInt('CAIRN_BENCH_TOTAL_CONCURRENT', TOTAL_CONCURRENT_DEFAULT),
    valueBytes: envPositiveInt('CAIRN_BENCH_VALUE_BYTES', VALUE_BYTES_DEFAULT),
    rowTimeoutMs: envPositiveInt('CAIRN_BENCH_ROW_TIMEOUT_S', ROW_TIMEOUT_S_DEFAULT) * 1000,
    repeats: envPositiveInt('CAIRN_BENCH_REPEATS', REPEATS_DEFAULT),
    dir: envString('CAIRN_BENCH_DIR') ?? tmpdir(),
    out: resolve(envString('CAIRN_BENCH_OUT') ?? 'bench-results.json'),
  };
}

// ---- rows ----

interface RowSpec {
  readonly workload: ToolWorkload;
  /** The row's name: the workload, or e.g. "put-3m" on a cluster. */
  readonly name: string;
  readonly members: number;
  readonly inFlight: number;
  readonly total: number;
}

function specsFor(cfg: Config, workloads: readonly ToolWorkload[], members: number): RowSpec[] {
  return workloads.flatMap((workload) =>
    cfg.inFlight.map((inFlight) => ({
      workload,
      name: rowName(workload, members),
      members,
      inFlight,
      total: inFlight === 1 ? cfg.totalSerial : cfg.totalConcurrent,
    })),
  );
}

/** The single-member tool rows. */
function rowSpecs(cfg: Config): RowSpec[] {
  return specsFor(cfg, cfg.workloads.filter(isToolWorkload), 1);
}

/** The cluster rows (in the order of CLUSTER_WORKLOADS). */
function clusterRowSpecs(cfg: Config): RowSpec[] {
  const chosen = CLUSTER_WORKLOADS.filter((w) => cfg.workloads.includes(w)).map((w) => CLUSTER_BASE[w]);
  return specsFor(cfg, chosen, CLUSTER_SIZE);
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

/** The tool's command line for one row against the given endpoints. */
function toolArgs(row: RowSpec, endpoints: readonly string[], valueBytes: number): string[] {
  const global = [
    `--endpoints=${endpoints.join(',')}`,
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

// ---- the system under load: one server or a cluster ----

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

/** CPU seconds of the processes (each with its threads and live child processes, as peakRssKb counts them). */
function sumCpuSeconds(pids: readonly number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const own = pid > 0 ? processCpuSeconds(pid) : undefined;
    if (own === undefined) return undefined;
    sum += own + (sumCpuSeconds(childPids(pid)) ?? 0);
  }
  return sum;
}

function peakMiB(p: ServerProc): number | undefined {
  const kb = p.peakRssKb();
  return kb > 0 ? kb / KIB_PER_MIB : undefined;
}

/** What a row runs against: one server, or every member of a cluster. */
interface LoadTarget {
  /** "host:port" of each member, in member order. */
  readonly endpoints: readonly string[];
  /** The (first) server's pid, for the drivers' CPU figures. */
  readonly pid: number;
  /** Undefined when every process runs, else what is wrong. */
  down(): string | undefined;
  /** VmHWM, MiB (summed over members). */
  peakRssMiB(): number | undefined;
  /** CPU seconds (user + system) used so far, summed over members; undefined if one is unreadable. */
  cpuSeconds(): number | undefined;
  /**
   * Clusters: the highest Raft term any member reports (NaN if none answers), and the endpoints
   * ordered followers first, the leader last (all members agreeing on it; else member order).
   */
  raft?(): Promise<{ term: number; endpoints: readonly string[]; leader: string | undefined }>;
}

function serverTarget(proc: ServerProc): LoadTarget {
  return {
    endpoints: [proc.endpoint],
    pid: proc.pid,
    down: () => (isAlive(proc.pid) ? undefined : 'server is not running'),
    peakRssMiB: () => peakMiB(proc),
    cpuSeconds: () => sumCpuSeconds([proc.pid]),
  };
}

function clusterTarget(c: Cluster): LoadTarget {
  const members = c.members;
  return {
    endpoints: members.map((m) => m.endpoint),
    pid: members[0]?.proc?.pid ?? 0,
    down: () => {
      const gone = members.filter((m) => m.proc === undefined || !isAlive(m.proc.pid)).map((m) => m.name);
      return gone.length === 0 ? undefined : `member(s) ${gone.join(', ')} not running`;
    },
    peakRssMiB: () => sumPeakMiB(members.map((m) => m.proc?.peakRssKb() ?? 0)),
    cpuSeconds: () => sumCpuSeconds(members.map((m) => m.proc?.pid ?? -1)),
    raft: async () => {
      const sts = await Promise.all(members.map((m) => c.status(m.name, CLUSTER_STATUS_TIMEOUT_MS)));
      const terms = sts.flatMap((s) => (s === undefined ? [] : [s.raftTerm]));
      const leaders = new Set(sts.map((s) => s?.leader));
      const leaderId = leaders.size === 1 ? sts[0]?.leader : undefined;
      const leader = sts.find((s) => s !== undefined && s.id === leaderId)?.name;
      const ordered = [...members.filter((m) => m.name !== leader), ...members.filter((m) => m.name === leader)];
      return { term: terms.length === 0 ? Number.NaN : Math.max(...terms), endpoints: ordered.map((m) => m.endpoint), leader };
    },
  };
}

/** Runs one etcdctl command against the target (all its endpoints); an error string if it failed. */
async function etcdctl(t: LoadTarget, what: string, args: readonly string[]): Promise<string | undefined> {
  const o = await runChild(
    etcdctlBin(),
    [`--endpoints=${t.endpoints.join(',')}`, `--dial-timeout=${DIAL_TIMEOUT}`, `--command-timeout=${DIAL_TIMEOUT}`, ...args],
    ETCDCTL_TIMEOUT_MS,
    { ...process.env, ETCDCTL_API: '3' },
  );
  return o.code === 0 ? undefined : describeFailure(what, o, ETCDCTL_TIMEOUT_MS);
}

/** A quick get, so a server that stopped answering fails its rows at once (the tool would retry until the row's time limit). */
function probe(t: LoadTarget): Promise<string | undefined> {
  return etcdctl(t, 'server not answering (etcdctl get)', ['get', RANGE_KEY]);
}

function populate(t: LoadTarget, valueBytes: number): Promise<string | undefined> {
  return etcdctl(t, 'pre-populating the range key', ['put', RANGE_KEY, '--', 'v'.repeat(valueBytes)]);
}

interface RowContext {
  readonly cfg: Config;
  readonly tool: string;
  readonly target: LoadTarget;
  populated: boolean;
}

async function runRow(ctx: RowContext, row: RowSpec): Promise<SideResult> {
  const { target, cfg } = ctx;
  const fail = (error: string): SideResult => ({ report: undefined, error, peakRssMiB: target.peakRssMiB() });
  const gone = target.down();
  if (gone !== undefined) return fail(gone);
  const down = await probe(target);
  if (down !== undefined) return fail(down);
  if (needsRangeKey(row.workload) && !ctx.populated) {
    const err = await populate(target, cfg.valueBytes);
    if (err !== undefined) return fail(err);
    ctx.populated = true;
  }
  // The tool opens its connections on the endpoints round-robin, the first on the first endpoint:
  // clusters list a follower first (so one in flight always goes through a follower, as most
  // clients' requests do), the leader last.
  const before = await target.raft?.();
  const endpoints = before?.endpoints ?? target.endpoints;
  if (before !== undefined) {
    const name = (ep: string | undefined): string => `m${target.endpoints.indexOf(ep ?? '') + 1}`;
    process.stderr.write(`bench: ${row.name} x${row.inFlight}: endpoints ${endpoints.join(',')}, first ${name(endpoints[0])}, leader ${before.leader ?? 'unknown'}\n`);
  }
  const cpu0 = target.cpuSeconds();
  const o = await runChild(ctx.tool, toolArgs(row, endpoints, cfg.valueBytes), cfg.rowTimeoutMs, toolEnv);
  const cpu1 = target.cpuSeconds();
  const after = await target.raft?.();
  const terms = before === undefined || after === undefined ? {} : { termBefore: before.term, termAfter: after.term };
  const parsed: ToolReport | string =
    o.code === 0 && !o.timedOut ? parseToolOutput(o.stdout) : describeFailure('benchmark', o, cfg.rowTimeoutMs);
  if (typeof parsed === 'string') return { ...fail(parsed), notes: terms };
  const cpu = cpuUsPerOp(cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0, row.total - parsed.errorCount);
  const notes = cpu === undefined ? terms : { ...terms, cpuUsPerOp: cpu };
  return { report: parsed, error: undefined, peakRssMiB: target.peakRssMiB(), notes };
}

/** The command line of a driver workload against one server. */
function driverCommand(w: DriverWorkload, tool: string, target: LoadTarget): { cmd: string; args: string[] } {
  const endpoint = target.endpoints[0] ?? '';
  const node = (script: string, args: readonly (string | number)[]): { cmd: string; args: string[] } => ({
    cmd: process.execPath,
    args: [join(HERE, script), '--endpoint', endpoint, '--server-pid', String(target.pid), ...args.map(String)],
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
          `--endpoints=${endpoint}`,
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
  const { target } = ctx;
  const all = (error: string): SideResult[] => spec.phases.map(() => ({ report: undefined, error, peakRssMiB: target.peakRssMiB() }));
  const gone = target.down();
  if (gone !== undefined) return all(gone);
  const down = await probe(target);
  if (down !== undefined) return all(down);
  const { cmd, args } = driverCommand(spec.workload, ctx.tool, target);
  const cpu0 = target.cpuSeconds();
  const t0 = performance.now();
  const o = await runChild(cmd, args, DRIVER_TIMEOUT_MS, toolEnv);
  const what = spec.workload === 'watch-latency' ? 'benchmark watch-latency' : spec.workload;
  if (spec.workload === 'watch-latency') {
    const parsed = o.code === 0 && !o.timedOut ? parseWatchLatencyOutput(o.stdout) : describeFailure(what, o, DRIVER_TIMEOUT_MS);
    if (typeof parsed === 'string') return all(parsed);
    // Our drivers measure the server's cores themselves; for the Go tool it is measured here (its own CPU is not).
    const cpu1 = target.cpuSeconds();
    const wallS = (performance.now() - t0) / 1000;
    const serverCores = cpu0 === undefined || cpu1 === undefined || wallS <= 0 ? {} : { serverCores: (cpu1 - cpu0) / wallS };
    return [{ report: parsed.report, error: undefined, peakRssMiB: target.peakRssMiB(), notes: { ...parsed.notes, ...serverCores } }];
  }
  const parsed = o.timedOut || o.spawnError !== undefined ? describeFailure(what, o, DRIVER_TIMEOUT_MS) : parseDriverOutput(o.stdout);
  if (typeof parsed === 'string') return all(o.code === 0 ? parsed : describeFailure(what, o, DRIVER_TIMEOUT_MS));
  return spec.phases.map((ph) => {
    const got = parsed.phases.find((p) => p.name === ph.name);
    if (got === undefined) {
      return { report: undefined, error: `${what}: ${parsed.error ?? `no phase ${ph.name} in its output`}`, peakRssMiB: target.peakRssMiB() };
    }
    return { report: got.report, error: undefined, peakRssMiB: target.peakRssMiB(), notes: got.notes };
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

function progress(label: string, row: RowSpec, r: SideResult, run: number, repeats: number): void {
  const what = `${label} ${row.name} x${row.inFlight} (${row.total} req) run ${run + 1}/${repeats}`;
  const rep = r.report;
  const elections = electionsDuring(r);
  const terms = elections === undefined ? '' : `, raft term ${r.notes?.['termBefore'] ?? '?'} -> ${r.notes?.['termAfter'] ?? '?'}`;
  const msg =
    rep === undefined
      ? `ERROR ${r.error ?? ''}`
      : `${rep.reqPerSec.toFixed(0)} req/s, p50 ${rep.p50Ms.toFixed(2)} ms, p99 ${rep.p99Ms.toFixed(2)} ms, ` +
        `cpu ${(r.notes?.['cpuUsPerOp'] ?? Number.NaN).toFixed(1)} µs/op` +
        (rep.errorCount > 0 ? `, ${rep.errorCount} errors (${rep.firstError ?? ''})` : '');
  process.stderr.write(`bench: ${what}: ${msg}${terms}\n`);
}

/** A started system under load and how to take it down. */
interface Running {
  readonly target: LoadTarget;
  readonly describe: string;
  /** Stops everything and removes the data; returns the members' warn/error log summary (clusters). */
  stop(): Promise<MemberLogSummary[]>;
}

type Launcher = () => Promise<Running>;

/** A single server on a fresh data dir under cfg.dir. */
function serverLauncher(label: string, start: (opts: ServerOpts) => Promise<ServerProc>, cfg: Config): Launcher {
  return async () => {
    const dataDir = mkdtempSync(join(cfg.dir, `cairn-bench-${label}-`));
    let proc: ServerProc;
    try {
      proc = await start({ dataDir, readyTimeoutMs: READY_TIMEOUT_MS });
    } catch (e) {
      rmSync(dataDir, { recursive: true, force: true });
      throw e;
    }
    return {
      target: serverTarget(proc),
      describe: `pid ${proc.pid} on ${proc.endpoint}, data dir ${dataDir}`,
      stop: async () => {
        await proc.stop();
        rmSync(dataDir, { recursive: true, force: true });
        return [];
      },
    };
  };
}

/** What one cluster member logged at warn level or above (or outside the JSON log format: crash traces). */
interface MemberLogSummary {
  readonly member: string;
  readonly pid: number;
  /** The process was gone before the side was stopped. */
  readonly exitedEarly: boolean;
  readonly lines: number;
  readonly warnOrWorse: number;
  /** Distinct "level: msg", most frequent first, with a count and the first such line. */
  readonly messages: readonly { readonly key: string; readonly count: number; readonly example: string }[];
}

const NOISY_LEVELS = new Set(['warn', 'error', 'dpanic', 'panic', 'fatal']);

/** The "level: msg" of a log line at warn or above (non-JSON lines count as "raw"); undefined below warn. */
function warnKey(line: string): string | undefined {
  if (line.trim() === '') return undefined;
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return `raw: ${line.trim().slice(0, 120)}`;
  }
  if (typeof rec !== 'object' || rec === null) return `raw: ${line.trim().slice(0, 120)}`;
  const level = 'level' in rec && typeof rec.level === 'string' ? rec.level : '?';
  const msg = 'msg' in rec && typeof rec.msg === 'string' ? rec.msg : '?';
  return NOISY_LEVELS.has(level) ? `${level}: ${msg}` : undefined;
}

function summariseLog(member: string, proc: ServerProc, exitedEarly: boolean): MemberLogSummary {
  const lines = proc.stderrLines();
  const byKey = new Map<string, { count: number; example: string }>();
  let warnOrWorse = 0;
  for (const l of lines) {
    const key = warnKey(l);
    if (key === undefined) continue;
    warnOrWorse += 1;
    const hit = byKey.get(key);
    if (hit === undefined) byKey.set(key, { count: 1, example: l.slice(0, LOG_EXAMPLE_CHARS_MAX) });
    else hit.count += 1;
  }
  const messages = [...byKey]
    .map(([key, v]) => ({ key, count: v.count, example: v.example }))
    .sort((a, b) => b.count - a.count)
    .slice(0, LOG_MESSAGES_MAX);
  return { member, pid: proc.pid, exitedEarly, lines: lines.length, warnOrWorse, messages };
}

/** A fresh cluster of CLUSTER_SIZE members (test/harness/cluster.ts), data dirs under cfg.dir. */
function clusterLauncher(label: string, kind: TargetKind, cfg: Config): Launcher {
  return async () => {
    // cluster.ts makes its data dirs under os.tmpdir(), which reads TMPDIR.
    if (envString('CAIRN_BENCH_DIR') !== undefined) process.env['TMPDIR'] = cfg.dir;
    const c = await startCluster(kind, { size: CLUSTER_SIZE, readyTimeoutMs: READY_TIMEOUT_MS });
    const leader = await c.leader();
    const members = c.members;
    return {
      target: clusterTarget(c),
      describe: `${members.map((m) => `${m.name} pid ${m.proc?.pid ?? '?'} on ${m.endpoint}`).join(', ')}; leader ${leader.name}; data under ${dirname(dirname(members[0]?.dataDir ?? ''))}`,
      stop: async () => {
        const logDir = envString('CAIRN_BENCH_LOG_DIR');
        if (logDir !== undefined) mkdirSync(logDir, { recursive: true });
        const summaries: MemberLogSummary[] = [];
        for (const m of members) {
          const p = m.proc;
          if (p === undefined) continue;
          summaries.push(summariseLog(m.name, p, !isAlive(p.pid)));
          if (logDir !== undefined) writeFileSync(join(logDir, `${label}-${m.name}.log`), `${p.stderrLines().join('\n')}\n`);
        }
        await c.close();
        return summaries;
      },
    };
  };
}

function printLogSummaries(label: string, logs: readonly MemberLogSummary[]): void {
  for (const s of logs) {
    const state = s.exitedEarly ? 'EXITED during the run' : 'ran to the end';
    process.stderr.write(`bench: ${label} member ${s.member} (pid ${s.pid}, ${state}): ${s.lines} log lines, ${s.warnOrWorse} at warn or above\n`);
    for (const m of s.messages) process.stderr.write(`bench:   [${m.count}] ${m.key}\n`);
    if (s.exitedEarly) {
      // The end of a crashed member's log is where the reason is.
      process.stderr.write(`bench:   (see CAIRN_BENCH_LOG_DIR for its whole log; last warn/error example: ${s.messages[0]?.example ?? 'none'})\n`);
    }
  }
}

/** One side of a paired run: which column it fills, its label in logs, how to start it. */
interface SideSpec {
  readonly label: string;
  readonly launch: Launcher;
}

interface Started {
  readonly spec: SideSpec;
  readonly running: Running | undefined;
  /** With no running system: why it did not start; every row of the side fails with it. */
  readonly startError: string;
  readonly ctx: RowContext | undefined;
}

/** The load averages (1/5/15 min) at the start and the end of a table's runs. */
interface LoadSpan {
  readonly start: readonly number[];
  readonly end: readonly number[];
}

interface PairedOutcome {
  /** Per tool row: each side's runs, in the order run. */
  readonly rows: readonly Readonly<Record<SideName, SideResult[]>>[];
  /** Per side: one result per driver phase, in order. */
  readonly drivers: Readonly<Record<SideName, SideResult[]>>;
  readonly logs: Readonly<Record<SideName, MemberLogSummary[]>>;
  readonly rowsLoad: LoadSpan;
  readonly driversLoad: LoadSpan;
}

const SIDES: readonly SideName[] = ['etcd', 'cairn'];

async function startSide(spec: SideSpec, cfg: Config, tool: string): Promise<Started> {
  try {
    const running = await spec.launch();
    process.stderr.write(`bench: ${spec.label}: ${running.describe}\n`);
    return { spec, running, startError: '', ctx: { cfg, tool, target: running.target, populated: false } };
  } catch (e) {
    const error = `${spec.label} did not start: ${errorText(e)}`;
    process.stderr.write(`bench: ${error}\n`);
    return { spec, running: undefined, startError: error.split('\n')[0] ?? error, ctx: undefined };
  }
}

function notStarted(s: Started): SideResult {
  return { report: undefined, error: s.startError, peakRssMiB: undefined };
}

/** Runs every tool row cfg.repeats times on each side, the sides alternating in sideOrder(). */
async function alternateRows(started: Readonly<Record<SideName, Started>>, cfg: Config, rows: readonly RowSpec[]): Promise<Record<SideName, SideResult[]>[]> {
  const out: Record<SideName, SideResult[]>[] = [];
  for (const row of rows) {
    const runs: Record<SideName, SideResult[]> = { etcd: [], cairn: [] };
    for (let i = 0; i < cfg.repeats; i++) {
      for (const name of sideOrder(i)) {
        const s = started[name];
        const load1m = loadavg()[0] ?? Number.NaN;
        const measured = s.ctx === undefined ? notStarted(s) : await runRow(s.ctx, row);
        const r = { ...measured, notes: { ...measured.notes, load1m } };
        progress(s.spec.label, row, r, i, cfg.repeats);
        runs[name].push(r);
      }
    }
    out.push(runs);
  }
  return out;
}

/** Each side's driver workloads, once (etcd's, then the other side's). */
async function driversOnce(started: Readonly<Record<SideName, Started>>, drivers: readonly DriverSpec[]): Promise<Record<SideName, SideResult[]>> {
  const out: Record<SideName, SideResult[]> = { etcd: [], cairn: [] };
  for (const name of SIDES) {
    const s = started[name];
    for (const spec of drivers) {
      const r = s.ctx === undefined ? spec.phases.map(() => notStarted(s)) : await runDriver(s.ctx, spec);
      driverProgress(s.spec.label, spec, r);
      out[name].push(...r);
    }
  }
  return out;
}

/**
 * Starts both systems (etcd's first), both fresh and both up for the whole of it; runs the tool
 * rows alternated and repeated, then each side's driver workloads once; stops both.
 */
async function runPaired(
  sides: Readonly<Record<SideName, SideSpec>>,
  cfg: Config,
  tool: string,
  rows: readonly RowSpec[],
  drivers: readonly DriverSpec[],
): Promise<PairedOutcome> {
  const started = { etcd: await startSide(sides.etcd, cfg, tool), cairn: await startSide(sides.cairn, cfg, tool) };
  const logs: Record<SideName, MemberLogSummary[]> = { etcd: [], cairn: [] };
  let measured: Omit<PairedOutcome, 'logs'>;
  try {
    const rowsStart = loadavg();
    const rowRuns = await alternateRows(started, cfg, rows);
    const rowsEnd = loadavg();
    const driverResults = await driversOnce(started, drivers);
    measured = { rows: rowRuns, drivers: driverResults, rowsLoad: { start: rowsStart, end: rowsEnd }, driversLoad: { start: rowsEnd, end: loadavg() } };
  } finally {
    for (const name of SIDES) {
      const s = started[name];
      if (s.running === undefined) continue;
      logs[name] = await s.running.stop();
      printLogSummaries(s.spec.label, logs[name]);
    }
  }
  return { ...measured, logs };
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
  // Repeated rows: each run on its own ("run 2" of 3), so one bad run is not hidden by the median.
  const measured = (r: RowResult, side: SideName): { s: SideResult; run: string }[] => {
    const runs = r.runs?.[side];
    return runs === undefined ? [{ s: r[side], run: '' }] : runs.map((s, i) => ({ s, run: ` run ${i + 1}` }));
  };
  for (const r of rows) {
    for (const [side, { s, run }] of SIDES.flatMap((side) => measured(r, side).map((m) => [side, m] as const))) {
      const where = `${r.workload}${r.load === undefined ? ` x${r.inFlight}` : ''} ${side}${run}`;
      const elections = electionsDuring(s);
      if (elections !== undefined && elections > 0) {
        add(`leader election(s) during the row: raft term ${s.notes?.['termBefore'] ?? '?'} -> ${s.notes?.['termAfter'] ?? '?'}`, where);
      }
      if (s.error !== undefined) add(s.error, where);
      else if (s.report !== undefined && s.report.errorCount > 0) {
        add(`${s.report.errorCount} failed requests, most often: ${s.report.firstError ?? ''}`, where);
      }
    }
  }
  return [...byText].map(([text, where]) => `${where.join(', ')}: ${text}`);
}

const SINGLE_RUN_FOOTER =
  'single run per side, not repeated (at 3 repeats they would add ~2.5 min, and each lease run leaves 10,000 live leases ' +
  'behind, so a repeat would not be the same load): no median and no spread; read the ratios against the tool rows\' etcd spread';

function printToolTable(title: string, rows: readonly RowResult[], repeats: number, load: LoadSpan): void {
  console.log(`\n${title}\n`);
  console.log(formatTable(rows));
  console.log(`\n${toolTableLegend(repeats)}\n${loadLine('during this table', load.start, load.end)}`);
}

async function main(): Promise<void> {
  const cfg = readConfig();
  const loadStart = loadavg();
  const tool = resolveTool();
  const rows = rowSpecs(cfg);
  const drivers = driverSpecs(cfg);
  const phases = drivers.flatMap((d) => d.phases);
  const clusterRows = clusterRowSpecs(cfg);
  const meta = {
    date: new Date().toISOString(),
    tool,
    toolVersion: toolVersion(tool),
    etcdVersion: `etcd Version: ${refBin('etcd').version} (${etcdBin()})`,
    cairnColumn: cfg.target === 'cairn' ? 'cairn' : 'etcd (CAIRN_BENCH_TARGET=etcd: etcd against itself)',
    node: process.version,
    valueBytes: cfg.valueBytes,
    connsMax: CONNS_MAX,
    keySpaceSize: KEY_SPACE_SIZE,
    dataDirParent: cfg.dir,
    clusterSize: CLUSTER_SIZE,
    repeats: cfg.repeats,
    order: 'ABBA: etcd, cairn, then cairn, etcd, per pair of runs of a row (tool rows); drivers and admin once per side',
    cpus: cpus().length,
  };
  process.stderr.write(`bench: ${JSON.stringify(meta)}\n`);

  const targetLabel = cfg.target === 'cairn' ? 'cairn' : 'etcd-as-target';
  const targetStart = cfg.target === 'cairn' ? startCairn : startEtcd;
  const idle: LoadSpan = { start: loadStart, end: loadStart };
  const none: PairedOutcome = { rows: [], drivers: { etcd: [], cairn: [] }, logs: { etcd: [], cairn: [] }, rowsLoad: idle, driversLoad: idle };
  const single =
    rows.length + phases.length > 0
      ? await runPaired(
          { etcd: { label: 'etcd', launch: serverLauncher('etcd', startEtcd, cfg) }, cairn: { label: targetLabel, launch: serverLauncher(targetLabel, targetStart, cfg) } },
          cfg,
          tool,
          rows,
          drivers,
        )
      : none;
  const clustered = clusterRows.length > 0;
  const etcdLabel3 = `etcd-${CLUSTER_SIZE}m`;
  const cairnLabel3 = `${targetLabel}-${CLUSTER_SIZE}m`;
  const three = clustered
    ? await runPaired(
        {
          etcd: { label: etcdLabel3, launch: clusterLauncher(etcdLabel3, 'etcd', cfg) },
          cairn: { label: cairnLabel3, launch: clusterLauncher(cairnLabel3, cfg.target === 'cairn' ? 'cairn' : 'etcd', cfg) },
        },
        cfg,
        tool,
        clusterRows,
        [],
      )
    : none;

  const missing: SideResult = { report: undefined, error: 'missing', peakRssMiB: undefined };
  const repeated = (spec: RowSpec, runs: Readonly<Record<SideName, SideResult[]>> | undefined): RowResult =>
    repeatedRow(
      { workload: spec.name, inFlight: spec.inFlight, total: spec.total, ...(spec.members > 1 ? { members: spec.members } : {}) },
      runs?.etcd ?? [missing],
      runs?.cairn ?? [missing],
    );
  const toolResults: RowResult[] = rows.map((spec, i) => repeated(spec, single.rows[i]));
  const driverResults: RowResult[] = phases.map((ph, j) => ({
    workload: ph.name,
    inFlight: ph.inFlight,
    total: ph.total,
    load: ph.load,
    unit: ph.unit,
    etcd: single.drivers.etcd[j] ?? missing,
    cairn: single.drivers.cairn[j] ?? missing,
  }));
  const clusterResults: RowResult[] = clusterRows.map((spec, i) => repeated(spec, three.rows[i]));
  const results = [...toolResults, ...driverResults, ...clusterResults];

  console.log(`\nCairn vs etcd (${meta.etcdVersion}); cairn column: ${meta.cairnColumn}`);
  console.log(`${cpus().length} CPUs; load average (1/5/15 min) at the start: ${formatLoad(loadStart)}`);
  if (toolResults.length > 0) {
    printToolTable(`Load: etcd benchmark ${meta.toolVersion}, ${cfg.valueBytes}-byte values`, toolResults, cfg.repeats, single.rowsLoad);
  }
  if (driverResults.length > 0) {
    console.log(
      '\nWatch and lease (drivers test/bench/watchload.ts and leaseload.ts, except watch-latency); ' +
        'latency: put sent (watch-latency: put acked) -> event, request -> answer; CPU in cores, server / driver\n',
    );
    console.log(formatDriverTable(driverResults));
    console.log(`\n${SINGLE_RUN_FOOTER}\n${loadLine('during this table', single.driversLoad.start, single.driversLoad.end)}`);
  }
  if (clusterResults.length > 0) {
    const title =
      `${CLUSTER_SIZE}-member clusters: etcd benchmark ${meta.toolVersion} given all ${CLUSTER_SIZE} endpoints, ` +
      `${cfg.valueBytes}-byte values; peak RSS and CPU summed over the members`;
    printToolTable(title, clusterResults, cfg.repeats, three.rowsLoad);
  }
  let admin: { etcd: AdminFigures | string; cairn: AdminFigures | string; load: LoadSpan } | undefined;
  if (cfg.workloads.includes('admin')) {
    const fillBytes = envPositiveInt('CAIRN_BENCH_ADMIN_BYTES', 2 ** 30);
    const side = (label: string, start: (o: ServerOpts) => Promise<ServerProc>): Promise<AdminFigures | string> =>
      runAdmin(label, start, cfg.dir, fillBytes).catch((e: unknown) => {
        process.stderr.write(`bench: admin ${label} failed: ${errorText(e)}\n`);
        return `failed: ${errorText(e).split('\n')[0] ?? ''}`;
      });
    const adminStart = loadavg();
    const etcdAdmin = await side('etcd', startEtcd);
    const cairnAdmin = await side(targetLabel, targetStart);
    admin = { etcd: etcdAdmin, cairn: cairnAdmin, load: { start: adminStart, end: loadavg() } };
    console.log(`\nAdmin: a single member filled with ${(fillBytes / 2 ** 30).toFixed(2)} GiB (64 KiB values), then etcdctl snapshot save and defrag, timed\n`);
    console.log(formatAdminTable(etcdAdmin, cairnAdmin));
    console.log(`\nsingle run per side, not repeated (each is a 1 GiB fill and ~1.5-2 min): no spread\n${loadLine('during this table', admin.load.start, admin.load.end)}`);
  }
  const notes = footnotes(results);
  if (notes.length > 0) console.log(`\nErrors and elections:\n${notes.map((n) => `  - ${n}`).join('\n')}`);
  const loadEnd = loadavg();
  console.log(`\n${loadLine('over the whole run', loadStart, loadEnd)}`);

  const memberLogs = clustered ? { [etcdLabel3]: three.logs.etcd, [cairnLabel3]: three.logs.cairn } : undefined;
  const load = {
    run: { start: loadStart, end: loadEnd },
    ...(toolResults.length > 0 ? { tool: single.rowsLoad } : {}),
    ...(driverResults.length > 0 ? { drivers: single.driversLoad } : {}),
    ...(clustered ? { cluster: three.rowsLoad } : {}),
    ...(admin === undefined ? {} : { admin: admin.load }),
  };
  const jsonRows = results.map((r) => ({
    ...r,
    ratioCairnToEtcd: ratio(r) ?? null,
    spreadEtcd: sideSpread(r, 'etcd') ?? null,
    spreadCairn: sideSpread(r, 'cairn') ?? null,
    ratioInsideNoise: insideNoise(r) ?? null,
  }));
  const json = { meta: { ...meta, loadavg: load }, rows: jsonRows, memberLogs, admin };
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
