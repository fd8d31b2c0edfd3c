// Pure parts of the bench: parsing etcd's `benchmark` output and laying out
// the comparison table. No I/O here.

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
}

export interface RowResult {
  readonly workload: string;
  readonly inFlight: number;
  readonly total: number;
  readonly etcd: SideResult;
  readonly cairn: SideResult;
}

const SECS_TO_MS = 1000;

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
  return `${fixed(side.report.p50Ms, 2)} / ${fixed(side.report.p99Ms, 2)}`;
}

function rssCell(side: SideResult): string {
  return side.peakRssMiB === undefined ? '-' : fixed(side.peakRssMiB, 1);
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
  const all: string[][] = [[...TABLE_HEADER], ...rows.map(tableCells)];
  const widths = TABLE_HEADER.map((_, i) => Math.max(...all.map((cells) => (cells[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const [head, ...body] = all;
  return [line(head ?? []), rule, ...body.map(line)].join('\n');
}
