// Pure parts of the bench: parsing etcd's `benchmark` output and our load drivers' output
// (watchload.ts, leaseload.ts), and laying out the comparison tables. No I/O here.

/** What one run of `benchmark` reported. */
export interface ToolReport {
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Requests that failed, summed over the tool's "Error distribution". */
  readonly errorCount: number;
  /** The most frequent error message, when errorCount > 0. */
  readonly firstError: string | undefined;
}

/** One side (one server) of one row. */
export interface SideResult {
  readonly report: ToolReport | undefined;
  /** Set when the row could not be measured on this side. */
  readonly error: string | undefined;
  /** VmHWM of the server after this row, MiB. */
  readonly peakRssMiB: number | undefined;
  /** Driver rows: further figures (CPU cores of server and driver, puts/s, ...). */
  readonly notes?: Readonly<Record<string, number>>;
}

export interface RowResult {
  readonly workload: string;
  readonly inFlight: number;
  readonly total: number;
  readonly etcd: SideResult;
  readonly cairn: SideResult;
  /** Driver rows (their own table): what the load was, e.g. "1000 watchers / 10 streams, 200 puts/s x 5 s". */
  readonly load?: string;
  /** Driver rows: what the rate counts, e.g. "events/s". */
  readonly unit?: string;
  /**
   * Cluster rows (their own table, workload names like "put-3m"): members per cluster, the tool
   * given every member's endpoint; peakRssMiB is then the sum over members. Absent: 1 member.
   */
  readonly members?: number;
  /**
   * Repeated rows (the tool rows): every run of each side, in the order run; `etcd` and `cairn`
   * above are then combineRuns() of these. Absent: a single run.
   */
  readonly runs?: { readonly etcd: readonly SideResult[]; readonly cairn: readonly SideResult[] };
}

const SECS_TO_MS = 1000;
const KIB_PER_MIB = 1024;

function numberAfter(re: RegExp, text: string): number | undefined {
  const m = re.exec(text);
  const s = m?.[1];
  if (s === undefined) return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

/** Parses the "Error distribution" block: lines "  [count]\tmessage". */
function parseErrors(text: string): { count: number; first: string | undefined } {
  const at = text.indexOf('Error distribution:');
  if (at < 0) return { count: 0, first: undefined };
  let count = 0;
  let best = 0;
  let first: string | undefined;
  for (const line of text.slice(at).split('\n').slice(1)) {
    const m = /^\s*\[(\d+)\]\s*(.*)$/.exec(line);
    const n = m?.[1];
    if (m === null || n === undefined) break;
    const k = Number(n);
    count += k;
    if (k > best) {
      best = k;
      first = m[2] ?? '';
    }
  }
  return { count, first };
}

/**
 * Parses the summary `benchmark` prints on stdout. Returns an error string
 * when the numbers are missing (the tool failed before reporting).
 */
export function parseToolOutput(stdout: string): ToolReport | string {
  const reqPerSec = numberAfter(/^\s*Requests\/sec:\s*([0-9.eE+-]+)/m, stdout);
  const p50 = numberAfter(/^\s*50% in ([0-9.eE+-]+) secs/m, stdout);
  const p99 = numberAfter(/^\s*99% in ([0-9.eE+-]+) secs/m, stdout);
  const errors = parseErrors(stdout);
  if (reqPerSec === undefined || p50 === undefined || p99 === undefined) {
    if (errors.count > 0) return `all requests failed? ${errors.count} errors: ${errors.first ?? ''}`;
    return 'no Requests/sec or latency distribution in the tool output';
  }
  return {
    reqPerSec,
    p50Ms: p50 * SECS_TO_MS,
    p99Ms: p99 * SECS_TO_MS,
    errorCount: errors.count,
    firstError: errors.first,
  };
}

// ---- table ----

const ERROR_CELL_CHARS_MAX = 40;

function fixed(v: number, digits: number): string {
  return v.toFixed(digits);
}

function short(msg: string): string {
  const oneLine = msg.replace(/\s+/g, ' ').trim();
  return oneLine.length <= ERROR_CELL_CHARS_MAX ? oneLine : `${oneLine.slice(0, ERROR_CELL_CHARS_MAX - 1)}…`;
}

function rateCell(side: SideResult): string {
  if (side.error !== undefined) return `ERROR: ${short(side.error)}`;
  if (side.report === undefined) return '-';
  const errs = side.report.errorCount > 0 ? ` (${side.report.errorCount} errs)` : '';
  return `${fixed(side.report.reqPerSec, 0)}${errs}`;
}

function latencyCell(side: SideResult): string {
  if (side.report === undefined) return '-';
  const ms = (v: number): string => (Number.isNaN(v) ? '-' : fixed(v, 2));
  return `${ms(side.report.p50Ms)} / ${ms(side.report.p99Ms)}`;
}

function rssCell(side: SideResult): string {
  return side.peakRssMiB === undefined ? '-' : fixed(side.peakRssMiB, 1);
}

/**
 * The peak RSS of a cluster side, MiB: the members' VmHWM summed (each member's own peak, not a
 * simultaneous one). Undefined when a member has no reading (KiB <= 0) or there are none.
 */
export function sumPeakMiB(memberPeaksKb: readonly number[]): number | undefined {
  if (memberPeaksKb.length === 0 || memberPeaksKb.some((kb) => !(kb > 0))) return undefined;
  return memberPeaksKb.reduce((a, kb) => a + kb, 0) / KIB_PER_MIB;
}

/** The workload column of a tool row: "put" for one member, "put-3m" for a 3-member cluster. */
export function rowName(workload: string, members: number): string {
  return members > 1 ? `${workload}-${members}m` : workload;
}

/**
 * Leader elections seen during a cluster row on one side (Raft term after minus before, from
 * Maintenance.Status; notes termBefore/termAfter), or undefined when not measured.
 */
export function electionsDuring(side: SideResult): number | undefined {
  const before = side.notes?.['termBefore'];
  const after = side.notes?.['termAfter'];
  if (before === undefined || after === undefined || Number.isNaN(before) || Number.isNaN(after)) return undefined;
  return after - before;
}

/** cairn req/s over etcd req/s, when both sides measured. */
export function ratio(row: RowResult): number | undefined {
  const e = row.etcd.report;
  const c = row.cairn.report;
  if (e === undefined || c === undefined || e.reqPerSec <= 0) return undefined;
  return c.reqPerSec / e.reqPerSec;
}

// ---- repeated runs: order, medians, the etcd-vs-etcd noise, CPU per operation ----

export type SideName = 'etcd' | 'cairn';

/**
 * Which side runs first in repeat `i` (0-based) of a row: ABBA order, etcd-cairn, cairn-etcd,
 * etcd-cairn, ... A drift of the machine during a row (other tenants' load, writeback of the
 * previous run's pages) then lands on both sides alike instead of always on the second one.
 */
export function sideOrder(i: number): readonly [SideName, SideName] {
  return i % 2 === 0 ? ['etcd', 'cairn'] : ['cairn', 'etcd'];
}

function finite(xs: readonly number[]): number[] {
  return xs.filter((x) => Number.isFinite(x));
}

/** The median of the finite values (the mean of the middle two for an even count); undefined when none. */
export function median(xs: readonly number[]): number | undefined {
  const v = finite(xs).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  const hi = v[mid] ?? Number.NaN;
  return v.length % 2 === 1 ? hi : ((v[mid - 1] ?? Number.NaN) + hi) / 2;
}

/**
 * How far a side's own runs disagree: (max - min) / median of the finite values. Undefined with
 * fewer than two values or a median <= 0.
 */
export function spread(xs: readonly number[]): number | undefined {
  const v = finite(xs);
  const m = median(v);
  if (v.length < 2 || m === undefined || m <= 0) return undefined;
  return (Math.max(...v) - Math.min(...v)) / m;
}

/** Server CPU (user + system) per completed request, µs; undefined when unknown or nothing completed. */
export function cpuUsPerOp(cpuSeconds: number | undefined, completed: number): number | undefined {
  if (cpuSeconds === undefined || !Number.isFinite(cpuSeconds) || cpuSeconds < 0 || !(completed > 0)) return undefined;
  return (cpuSeconds * 1e6) / completed;
}

function maxOf(xs: readonly (number | undefined)[]): number | undefined {
  const v = finite(xs.filter((x): x is number => x !== undefined));
  return v.length === 0 ? undefined : Math.max(...v);
}

/**
 * One side of a repeated row, from its runs: req/s, p50, p99 and CPU µs/op are each the median
 * over the runs that measured; errors are summed; peak RSS is the highest (VmHWM only grows).
 * notes.runs and notes.runsMeasured say how many runs there were and how many measured; with none
 * measured, the side carries the first run's error.
 */
export function combineRuns(runs: readonly SideResult[]): SideResult {
  const measured = runs.flatMap((r) => (r.report === undefined ? [] : [{ report: r.report, cpu: r.notes?.['cpuUsPerOp'] }]));
  const peakRssMiB = maxOf(runs.map((r) => r.peakRssMiB));
  const counts = { runs: runs.length, runsMeasured: measured.length };
  if (measured.length === 0) {
    return { report: undefined, error: runs.find((r) => r.error !== undefined)?.error ?? 'no runs', peakRssMiB, notes: counts };
  }
  const med = (f: (r: ToolReport) => number): number => median(measured.map((m) => f(m.report))) ?? Number.NaN;
  const cpu = median(measured.flatMap((m) => (m.cpu === undefined ? [] : [m.cpu])));
  return {
    report: {
      reqPerSec: med((r) => r.reqPerSec),
      p50Ms: med((r) => r.p50Ms),
      p99Ms: med((r) => r.p99Ms),
      errorCount: measured.reduce((n, m) => n + m.report.errorCount, 0),
      firstError: measured.find((m) => m.report.firstError !== undefined)?.report.firstError,
    },
    error: undefined,
    peakRssMiB,
    notes: cpu === undefined ? counts : { ...counts, cpuUsPerOp: cpu },
  };
}

/** A repeated row: the sides are the combined runs, the runs kept beside them. */
export function repeatedRow(
  base: Omit<RowResult, 'etcd' | 'cairn' | 'runs'>,
  etcdRuns: readonly SideResult[],
  cairnRuns: readonly SideResult[],
): RowResult {
  return { ...base, etcd: combineRuns(etcdRuns), cairn: combineRuns(cairnRuns), runs: { etcd: etcdRuns, cairn: cairnRuns } };
}

/** The req/s spread of one side's runs of a row (for etcd: the etcd-vs-etcd noise); undefined for a single run. */
export function sideSpread(row: RowResult, side: SideName): number | undefined {
  const runs = row.runs?.[side] ?? [];
  return spread(runs.flatMap((r) => (r.report === undefined ? [] : [r.report.reqPerSec])));
}

/**
 * Whether the cairn/etcd ratio is inside the noise: |ratio - 1| no larger than the spread of etcd's
 * own runs (etcd against etcd). Undefined when either is unknown.
 */
export function insideNoise(row: RowResult): boolean | undefined {
  const r = ratio(row);
  const noise = sideSpread(row, 'etcd');
  if (r === undefined || noise === undefined) return undefined;
  return Math.abs(r - 1) <= noise;
}

/** The load averages (1/5/15 min) as "1.23 0.98 0.80". */
export function formatLoad(load: readonly number[]): string {
  return load.map((l) => fixed(l, 2)).join(' ');
}

/** One line for a table's (or the run's) load averages at its start and its end. */
export function loadLine(what: string, start: readonly number[], end: readonly number[]): string {
  return `load average (1/5/15 min) ${what}: start ${formatLoad(start)}, end ${formatLoad(end)}`;
}

function percentCell(v: number | undefined): string {
  return v === undefined ? '-' : `${fixed(v * 100, 1)}%`;
}

function ratioCell(row: RowResult): string {
  const r = ratio(row);
  if (r === undefined) return '-';
  return insideNoise(row) === true ? `${fixed(r, 2)} ~` : fixed(r, 2);
}

/** CPU µs/op from this figure up print without decimals (/proc counts in 10 ms ticks: they would be noise). */
const CPU_US_WHOLE_FROM = 10;

function cpuUsCell(side: SideResult): string {
  const v = side.notes?.['cpuUsPerOp'];
  if (v === undefined || Number.isNaN(v)) return '-';
  return fixed(v, v < CPU_US_WHOLE_FROM ? 1 : 0);
}

/** The rate cell of a combined side: the median, and how many runs measured when some did not. */
function medianRateCell(side: SideResult): string {
  const runs = side.notes?.['runs'];
  const measured = side.notes?.['runsMeasured'];
  const partial = side.report !== undefined && runs !== undefined && measured !== undefined && measured < runs;
  return partial ? `${rateCell(side)} (${measured} of ${runs} runs)` : rateCell(side);
}

export const TABLE_HEADER = [
  'workload',
  'in-flight',
  'etcd req/s',
  'cairn req/s',
  'ratio cairn/etcd',
  'etcd spread',
  'cairn spread',
  'etcd p50/p99 ms',
  'cairn p50/p99 ms',
  'etcd CPU µs/op',
  'cairn CPU µs/op',
  'etcd peak RSS MiB',
  'cairn peak RSS MiB',
] as const;

export function tableCells(row: RowResult): string[] {
  return [
    row.workload,
    String(row.inFlight),
    medianRateCell(row.etcd),
    medianRateCell(row.cairn),
    ratioCell(row),
    percentCell(sideSpread(row, 'etcd')),
    percentCell(sideSpread(row, 'cairn')),
    latencyCell(row.etcd),
    latencyCell(row.cairn),
    cpuUsCell(row.etcd),
    cpuUsCell(row.cairn),
    rssCell(row.etcd),
    rssCell(row.cairn),
  ];
}

/** What the tool tables' columns mean, printed under them. */
export function toolTableLegend(repeats: number): string {
  const runs =
    repeats === 1
      ? 'each figure: one run per side (CAIRN_BENCH_REPEATS=1: no medians, no spread, so no "~" marks).'
      : `each figure: the median of ${repeats} runs per side, alternated ABBA (etcd, cairn, cairn, etcd, ...); p50/p99 and CPU µs/op are medians too, peak RSS the highest.`;
  return [
    runs,
    'spread: (max - min) / median of that side\'s own req/s over its runs; etcd\'s is the etcd-vs-etcd noise.',
    'ratio marked ~: |ratio - 1| is within etcd\'s spread, i.e. not a difference this run can tell from noise.',
    'CPU µs/op: the server process(es)\' user + system CPU over the run (/proc/<pid>/stat), summed over members, per completed request;',
    '  /proc counts CPU in 10 ms ticks, so a row of N requests measures it in steps of 10,000/N µs (2 µs at 5,000).',
  ].join('\n');
}

/** A markdown-style table, columns padded to their widest cell. */
export function formatTable(rows: readonly RowResult[]): string {
  return layout(TABLE_HEADER, rows.map(tableCells));
}

function layout(header: readonly string[], rows: readonly string[][]): string {
  const all: string[][] = [[...header], ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((cells) => (cells[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const [head, ...body] = all;
  return [line(head ?? []), rule, ...body.map(line)].join('\n');
}

// ---- the load drivers' output (watchload.ts, leaseload.ts, via loadlib.ts printOutput) ----

/** One phase of a driver run, as a table row's side. */
export interface DriverPhaseReport {
  readonly name: string;
  readonly report: ToolReport;
  readonly notes: Readonly<Record<string, number>>;
}

export interface DriverReport {
  readonly phases: readonly DriverPhaseReport[];
  /** Set when the driver stopped early: phases not in `phases` failed with this. */
  readonly error: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A number field; JSON null (an empty histogram's NaN) reads as NaN. */
function num(o: Record<string, unknown>, k: string): number | undefined {
  const v = o[k];
  if (v === null) return Number.NaN;
  return typeof v === 'number' ? v : undefined;
}

function parsePhase(v: unknown): DriverPhaseReport | string {
  if (!isRecord(v)) return 'a phase is not an object';
  const name = v['name'];
  const rate = num(v, 'rate');
  const p50 = num(v, 'p50Ms');
  const p99 = num(v, 'p99Ms');
  const count = num(v, 'count');
  const expected = num(v, 'expected');
  const errors = num(v, 'errorCount');
  if (typeof name !== 'string' || rate === undefined || p50 === undefined || p99 === undefined) return 'a phase lacks name, rate, p50Ms or p99Ms';
  if (count === undefined || expected === undefined || errors === undefined) return `phase ${name} lacks count, expected or errorCount`;
  const missing = Math.max(0, expected - count);
  const firstError = v['firstError'];
  const notes: Record<string, number> = { count, expected, seconds: num(v, 'seconds') ?? Number.NaN };
  const driverCores = num(v, 'driverCores');
  const serverCores = num(v, 'serverCores');
  if (driverCores !== undefined) notes['driverCores'] = driverCores;
  if (serverCores !== undefined) notes['serverCores'] = serverCores;
  const extra = v['extra'];
  if (isRecord(extra)) {
    for (const [k, x] of Object.entries(extra)) if (typeof x === 'number') notes[k] = x;
  }
  return {
    name,
    report: {
      reqPerSec: rate,
      p50Ms: p50,
      p99Ms: p99,
      errorCount: errors + missing,
      firstError: typeof firstError === 'string' ? firstError : undefined,
    },
    notes,
  };
}

/**
 * Parses a driver's stdout: its last line is one JSON object {phases: [...], error?}. Returns an
 * error string when there is no such line.
 */
export function parseDriverOutput(stdout: string): DriverReport | string {
  const last = stdout.trim().split('\n').pop() ?? '';
  let v: unknown;
  try {
    v = JSON.parse(last);
  } catch {
    return `driver printed no result line: ${JSON.stringify(last.slice(-200))}`;
  }
  if (!isRecord(v) || !Array.isArray(v['phases'])) return 'driver result has no phases list';
  const phases: DriverPhaseReport[] = [];
  for (const ph of v['phases'] as unknown[]) {
    const p = parsePhase(ph);
    if (typeof p === 'string') return `driver result: ${p}`;
    phases.push(p);
  }
  const error = v['error'];
  return { phases, error: typeof error === 'string' ? error : undefined };
}

/**
 * Parses `benchmark watch-latency` output: a "Put summary" then a "Watch events summary", each
 * in the usual format. The row is the watch events' (events/s over the whole run, latency from put
 * acknowledged to event received); the put rate goes into notes.
 */
export function parseWatchLatencyOutput(stdout: string): { report: ToolReport; notes: Record<string, number> } | string {
  const at = stdout.indexOf('Watch events summary:');
  if (at < 0) return 'no "Watch events summary" in the tool output';
  const events = parseToolOutput(stdout.slice(at));
  if (typeof events === 'string') return events;
  const puts = parseToolOutput(stdout.slice(0, at));
  return { report: events, notes: typeof puts === 'string' ? {} : { putsPerSec: puts.reqPerSec, putP50Ms: puts.p50Ms, putP99Ms: puts.p99Ms } };
}

function cpuCell(side: SideResult): string {
  const s = side.notes?.['serverCores'];
  const d = side.notes?.['driverCores'];
  if (s === undefined && d === undefined) return '-';
  const f = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '?' : fixed(v, 2));
  return `${f(s)} / ${f(d)}`;
}

export const DRIVER_TABLE_HEADER = [
  'workload',
  'load',
  'unit',
  'etcd',
  'cairn',
  'ratio cairn/etcd',
  'etcd p50/p99 ms',
  'cairn p50/p99 ms',
  'etcd CPU srv/drv',
  'cairn CPU srv/drv',
  'etcd peak RSS MiB',
  'cairn peak RSS MiB',
] as const;

export function driverTableCells(row: RowResult): string[] {
  const r = ratio(row);
  return [
    row.workload,
    row.load ?? '',
    row.unit ?? '',
    rateCell(row.etcd),
    rateCell(row.cairn),
    r === undefined ? '-' : fixed(r, 2),
    latencyCell(row.etcd),
    latencyCell(row.cairn),
    cpuCell(row.etcd),
    cpuCell(row.cairn),
    rssCell(row.etcd),
    rssCell(row.cairn),
  ];
}

/** The table of the driver rows (watch, lease): rate in the row's unit, CPU cores of server and driver. */
export function formatDriverTable(rows: readonly RowResult[]): string {
  return layout(DRIVER_TABLE_HEADER, rows.map(driverTableCells));
}
