// Pure parts of the kube-apiserver bench (test/bench/kube.ts): reading histograms out of the
// apiserver's /metrics (Prometheus text format), their deltas and quantiles (as PromQL's
// histogram_quantile computes them), exact percentiles of client-side samples, and the comparison
// table. No I/O here.

/** One bucket of a cumulative histogram: observations <= le (le may be +Infinity). */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

/** Label values of one exposition line, or undefined when the line is no sample of `name`. */
interface Sample {
  readonly labels: ReadonlyMap<string, string>;
  readonly value: number;
}

const LABEL_RE = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(s: string): string {
  return s.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** A sample value: a float, or +Inf / -Inf / NaN spelt as Prometheus does. */
function parseValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  if (s === 'NaN') return Number.NaN;
  return s.trim() === '' ? Number.NaN : Number(s);
}

/** The samples of metric `name` (exact name, e.g. "foo_bucket") in a text exposition. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    let labels = new Map<string, string>();
    let tail: string;
    if (rest.startsWith('{')) {
      const close = closingBrace(rest);
      if (close < 0) continue;
      labels = new Map([...rest.slice(1, close).matchAll(LABEL_RE)].map((m) => [m[1] ?? '', unescapeLabel(m[2] ?? '')]));
      tail = rest.slice(close + 1);
    } else if (rest.startsWith(' ')) {
      tail = rest;
    } else {
      continue; // a longer metric name sharing the prefix
    }
    const value = parseValue(tail.trim().split(/\s+/)[0] ?? '');
    out.push({ labels, value });
  }
  return out;
}

/** Index of the "}" closing the label set that starts at s[0] (quoted values may hold "}"). */
function closingBrace(s: string): number {
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '}') return i;
  }
  return -1;
}

/**
 * The cumulative buckets of histogram `name` (without "_bucket"), summed over every series whose
 * labels include all of `match` (other labels, e.g. scope or component, are summed over), sorted
 * by le. Empty when no series matches.
 */
export function parseHistogram(text: string, name: string, match: Readonly<Record<string, string>>): Bucket[] {
  const byLe = new Map<number, number>();
  for (const s of samples(text, `${name}_bucket`)) {
    if (!Object.entries(match).every(([k, v]) => s.labels.get(k) === v)) continue;
    const leText = s.labels.get('le');
    if (leText === undefined) continue;
    const le = parseValue(leText);
    if (Number.isNaN(le) || Number.isNaN(s.value)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** after - before, bucket by bucket (a bucket missing from `before` counts 0 there). */
export function histogramDelta(after: readonly Bucket[], before: readonly Bucket[]): Bucket[] {
  const prev = new Map(before.map((b) => [b.le, b.count]));
  return after.map((b) => ({ le: b.le, count: b.count - (prev.get(b.le) ?? 0) }));
}

/** Observations in a cumulative histogram (its +Inf bucket); 0 without one. */
export function histogramCount(buckets: readonly Bucket[]): number {
  const last = buckets[buckets.length - 1];
  return last !== undefined && last.le === Number.POSITIVE_INFINITY ? last.count : 0;
}

/**
 * The q-quantile (0..1) of a cumulative histogram the way PromQL's histogram_quantile() computes
 * it: find the bucket holding rank q*count and interpolate linearly inside it (from 0 for the first
 * bucket). When the rank falls in the +Inf bucket, the highest finite bound is the answer. NaN with
 * no observations, no +Inf bucket, or fewer than two buckets.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number {
  if (Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const bs = [...buckets].sort((a, b) => a.le - b.le);
  // Counts must not fall with le (a scrape mid-update can break this; PromQL evens it out too).
  let high = 0;
  const mono = bs.map((b) => {
    high = Math.max(high, b.count);
    return { le: b.le, count: high };
  });
  const last = mono[mono.length - 1];
  if (mono.length < 2 || last === undefined || last.le !== Number.POSITIVE_INFINITY) return Number.NaN;
  const total = last.count;
  if (total <= 0) return Number.NaN;
  let rank = q * total;
  const i = mono.findIndex((b) => b.count >= rank);
  if (i === mono.length - 1) return mono[mono.length - 2]?.le ?? Number.NaN;
  const b = mono[i];
  if (b === undefined) return Number.NaN;
  if (i === 0 && b.le <= 0) return b.le;
  let start = 0;
  let count = b.count;
  const p = mono[i - 1];
  if (p !== undefined) {
    start = p.le;
    count -= p.count;
    rank -= p.count;
  }
  return count <= 0 ? start : start + (b.le - start) * (rank / count);
}

/** The q-quantile (0..1) of raw samples, nearest rank; NaN when there are none. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

// ---- watch streams ----

/** One event of a JSON watch stream (one JSON object a line): its type and object's name / message. */
export interface WatchEvent {
  readonly type: string;
  /** metadata.name of the object ('' when absent, e.g. an ERROR's Status). */
  readonly name: string;
  /** metadata.resourceVersion of the object ('' when absent). */
  readonly resourceVersion: string;
  /** An ERROR event's Status message ('' otherwise). */
  readonly message: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses one line of a watch stream; undefined for an empty line; throws on malformed JSON. */
export function parseWatchLine(line: string): WatchEvent | undefined {
  if (line.trim() === '') return undefined;
  const v: unknown = JSON.parse(line);
  if (!isRecord(v) || typeof v['type'] !== 'string') throw new Error(`watch: not an event: ${line.slice(0, 200)}`);
  const obj = v['object'];
  const meta = isRecord(obj) ? obj['metadata'] : undefined;
  const str = (o: unknown, k: string): string => (isRecord(o) && typeof o[k] === 'string' ? o[k] : '');
  return { type: v['type'], name: str(meta, 'name'), resourceVersion: str(meta, 'resourceVersion'), message: str(obj, 'message') };
}

/** Splits a byte stream into lines: feed() chunks, get the complete lines back (the rest is kept). */
export class LineSplitter {
  private partial = '';

  feed(chunk: string): string[] {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    return parts;
  }
}

// ---- the comparison table ----

/** higher: throughput-like (ratio cairn/etcd); lower: latency-like (ratio etcd/cairn); info: no ratio. */
export type Better = 'higher' | 'lower' | 'info';

export interface FigureSpec {
  /** Key in a side's figures. */
  readonly key: string;
  readonly phase: string;
  readonly label: string;
  readonly better: Better;
  /** Digits after the point in the table. */
  readonly digits: number;
}

/** A side's measured figures by key; absent or NaN: not measured. */
export type Figures = Readonly<Record<string, number>>;

/**
 * Cairn against etcd so that > 1 always means Cairn did better: cairn/etcd for `higher`,
 * etcd/cairn for `lower`. Undefined for `info` rows, missing values, or a zero/negative divisor.
 */
export function betterRatio(better: Better, etcd: number | undefined, cairn: number | undefined): number | undefined {
  if (better === 'info' || etcd === undefined || cairn === undefined || !Number.isFinite(etcd) || !Number.isFinite(cairn)) return undefined;
  const [num, den] = better === 'higher' ? [cairn, etcd] : [etcd, cairn];
  return den > 0 && num >= 0 ? num / den : undefined;
}

export const KUBE_TABLE_HEADER = ['phase', 'figure', 'etcd', 'cairn', 'cairn vs etcd'] as const;

function cell(v: number | undefined, digits: number): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return v.toFixed(digits);
}

export function kubeTableCells(spec: FigureSpec, etcd: Figures, cairn: Figures): string[] {
  const e = etcd[spec.key];
  const c = cairn[spec.key];
  const r = betterRatio(spec.better, e, c);
  return [spec.phase, spec.label, cell(e, spec.digits), cell(c, spec.digits), r === undefined ? '-' : `${r.toFixed(2)}x`];
}

/** A markdown table, columns padded to their widest cell. */
export function formatKubeTable(specs: readonly FigureSpec[], etcd: Figures, cairn: Figures): string {
  const rows = specs.map((s) => kubeTableCells(s, etcd, cairn));
  const all: string[][] = [[...KUBE_TABLE_HEADER], ...rows];
  const widths = KUBE_TABLE_HEADER.map((_, i) => Math.max(...all.map((cells) => (cells[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const [head, ...body] = all;
  return [line(head ?? []), rule, ...body.map(line)].join('\n');
}
