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

export const TABLE_HEADER = [
  'workload',
  'in-flight',
  'etcd req/s',
  'cairn req/s',
  'ratio cairn/etcd',
  'etcd p50/p99 ms',
  'cairn p50/p99 ms',
  'etcd peak RSS MiB',
  'cairn peak RSS MiB',
] as const;

export function tableCells(row: RowResult): string[] {
  const r = ratio(row);
  return [
    row.workload,
    String(row.inFlight),
    rateCell(row.etcd),
    rateCell(row.cairn),
    r === undefined ? '-' : fixed(r, 2),
    latencyCell(row.etcd),
    latencyCell(row.cairn),
    rssCell(row.etcd),
    rssCell(row.cairn),
  ];
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
