// A strict parser of the Prometheus text exposition format (version 0.0.4), for the /metrics tests:
// HELP and TYPE lines, samples with labels, and the rules a scraper relies on. It throws on
// anything malformed instead of skipping it:
// - names and label names well formed; label values with only \\, \" and \n escapes;
// - at most one HELP and one TYPE per family, both before its first sample; a family's samples
//   contiguous; no series twice;
// - sample names fit the family's type (histogram: _bucket with le, _sum, _count; summary:
//   quantile samples, _sum, _count; counter and gauge: the family name);
// - histograms consistent per label set: le values ascending, counts cumulative (non-decreasing),
//   an le="+Inf" bucket equal to _count, and _sum and _count present.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (e.g. `x_bucket` for histogram `x`). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  help: string | undefined;
  type: MetricType;
  /** Whether a TYPE line named it (untyped otherwise). */
  typed: boolean;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

export class ParseError extends Error {
  constructor(line: number, what: string, text: string) {
    super(`metrics text line ${line}: ${what}: ${JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text)}`);
  }
}

/** A sample value: a Go/JS float, or +Inf, -Inf, NaN. */
export function parseValue(s: string): number | undefined {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(name: string, families: ReadonlyMap<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const f = families.get(base);
    if (f !== undefined && (f.type === 'histogram' || f.type === 'summary')) return base;
  }
  return name;
}

/** Parses `{a="x",b="y"}` starting at text[i] === '{'; returns the labels and the index after '}'. */
function parseLabels(text: string, start: number, fail: (what: string) => never): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    while (text[i] === ' ') i++;
    if (text[i] === '}') return { labels, end: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (m === null) fail('bad label name');
    const name = m[0];
    i += name.length;
    if (text[i] !== '=' || text[i + 1] !== '"') fail(`label ${name} not followed by ="`);
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) fail(`unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else fail(`bad escape \\${e ?? ''} in label ${name}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++;
    if (Object.prototype.hasOwnProperty.call(labels, name)) fail(`label ${name} twice`);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) fail(`reserved or bad label name ${name}`);
    labels[name] = value;
    while (text[i] === ' ') i++;
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') return { labels, end: i + 1 };
    fail('expected , or } after a label');
  }
}

function unescapeHelp(s: string, fail: (what: string) => never): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] ?? '';
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = s[i + 1];
    if (e === '\\') out += '\\';
    else if (e === 'n') out += '\n';
    else fail(`bad escape \\${e ?? ''} in HELP`);
    i++;
  }
  return out;
}

function seriesKey(name: string, labels: Readonly<Record<string, string>>, skip?: string): string {
  const parts = Object.keys(labels)
    .filter((k) => k !== skip)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${parts.join(',')}}`;
}

/** Checks that a sample's name and labels fit its family's type. */
function checkSampleShape(f: Family, s: Sample, fail: (what: string) => never): void {
  if (f.type === 'histogram') {
    if (s.name === `${f.name}_bucket`) {
      const le = s.labels['le'];
      if (le === undefined || parseValue(le) === undefined || Number.isNaN(parseValue(le))) fail('histogram bucket without a numeric le label');
    } else if (s.name !== `${f.name}_sum` && s.name !== `${f.name}_count`) fail(`sample ${s.name} in histogram ${f.name}`);
    else if ('le' in s.labels) fail('le label outside a bucket');
    return;
  }
  if (f.type === 'summary') {
    if (s.name === f.name) {
      if (s.labels['quantile'] === undefined) fail('summary sample without quantile');
    } else if (s.name !== `${f.name}_sum` && s.name !== `${f.name}_count`) fail(`sample ${s.name} in summary ${f.name}`);
    return;
  }
  if (s.name !== f.name) fail(`sample ${s.name} in ${f.type} ${f.name}`);
  if (f.type === 'counter' && (s.value < 0 || Number.isNaN(s.value))) fail('counter with a negative or NaN value');
}

/** Histogram rules, per label set: ascending le, cumulative counts, +Inf = _count, _sum and _count present. */
function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: { le: number; v: number }[]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const key = seriesKey(f.name, s.labels, 'le');
    let g = groups.get(key);
    if (g === undefined) {
      g = { buckets: [] };
      groups.set(key, g);
    }
    if (s.name.endsWith('_bucket')) g.buckets.push({ le: parseValue(s.labels['le'] ?? '') ?? NaN, v: s.value });
    else if (s.name.endsWith('_sum')) g.sum = s.value;
    else g.count = s.value;
  }
  for (const [key, g] of groups) {
    if (g.count === undefined || g.sum === undefined) throw new Error(`histogram ${key}: _sum or _count missing`);
    if (g.buckets.length === 0) throw new Error(`histogram ${key}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      const a = g.buckets[i - 1];
      const b = g.buckets[i];
      if (a === undefined || b === undefined) continue;
      if (!(a.le < b.le)) throw new Error(`histogram ${key}: le ${a.le} then ${b.le} (not ascending)`);
      if (b.v < a.v) throw new Error(`histogram ${key}: bucket le=${b.le} holds ${b.v} < ${a.v} (not cumulative)`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (last === undefined || last.le !== Infinity) throw new Error(`histogram ${key}: no le="+Inf" bucket`);
    if (last.v !== g.count) throw new Error(`histogram ${key}: +Inf bucket ${last.v} != _count ${g.count}`);
  }
}

/** Parses a whole exposition; throws ParseError (or Error for a family-level rule) on anything malformed. */
export function parseMetrics(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const closed = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  if (text.length > 0 && !text.endsWith('\n')) throw new ParseError(lines.length, 'no newline at the end', lines[lines.length - 1] ?? '');
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) {
      f = { name, help: undefined, type: 'untyped', typed: false, samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const switchTo = (f: Family): void => {
    if (current === f) return;
    if (current !== undefined) closed.add(current.name);
    if (closed.has(f.name)) throw new Error(`metrics: samples of ${f.name} are not contiguous`);
    current = f;
  };
  lines.forEach((line, idx) => {
    const n = idx + 1;
    const fail: (what: string) => never = (what) => {
      throw new ParseError(n, what, line);
    };
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (m === null) return; // a plain comment
      const [, kind, name = '', rest = ''] = m;
      if (!METRIC_NAME.test(name)) fail('bad metric name');
      const f = family(name);
      if (f.samples.length > 0) fail(`${kind ?? ''} after samples of ${name}`);
      if (kind === 'HELP') {
        if (f.help !== undefined) fail('second HELP');
        f.help = unescapeHelp(rest, fail);
      } else {
        if (f.typed) fail('second TYPE');
        const t = rest.trim();
        if (!(TYPES as readonly string[]).includes(t)) fail(`unknown type ${t}`);
        f.type = t as MetricType;
        f.typed = true;
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (nm === null) fail('bad sample name');
    const name = nm[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, fail));
    const rest = line.slice(i).trim().split(/\s+/);
    if (line[i] !== ' ' && line[i] !== '\t') fail('no space before the value');
    if (rest.length < 1 || rest.length > 2) fail('expected a value and an optional timestamp');
    const value = parseValue(rest[0] ?? '');
    if (value === undefined) fail('bad value');
    if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) fail('bad timestamp');
    const f = family(familyOf(name, families));
    switchTo(f);
    const s: Sample = { name, labels, value: value ?? NaN };
    checkSampleShape(f, s, fail);
    const key = seriesKey(name, labels);
    if (series.has(key)) fail(`series ${key} twice`);
    series.add(key);
    f.samples.push(s);
  });
  for (const f of families.values()) if (f.type === 'histogram' && f.samples.length > 0) checkHistogram(f);
  return families;
}

// ---------- reading values ----------

function matches(s: Sample, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(labels).every(([k, v]) => s.labels[k] === v);
}

/** The one sample named `sample` (default: the family name) with these labels; throws if none or several. */
export function valueOf(families: ReadonlyMap<string, Family>, family: string, labels: Readonly<Record<string, string>> = {}, sample = family): number {
  const f = families.get(family);
  if (f === undefined) throw new Error(`metrics: no family ${family}`);
  const hits = f.samples.filter((s) => s.name === sample && matches(s, labels));
  if (hits.length !== 1) throw new Error(`metrics: ${hits.length} samples ${sample}${JSON.stringify(labels)} (want 1)`);
  return (hits[0] as Sample).value;
}

/** The sum of samples named `sample` (default: the family name) whose labels include `labels`; 0 if none. */
export function sumOf(families: ReadonlyMap<string, Family>, family: string, labels: Readonly<Record<string, string>> = {}, sample = family): number {
  const f = families.get(family);
  if (f === undefined) throw new Error(`metrics: no family ${family}`);
  return f.samples.filter((s) => s.name === sample && matches(s, labels)).reduce((a, s) => a + s.value, 0);
}

/** The label names a family's samples carry (without le and quantile), sorted. */
export function labelNames(f: Family): string[] {
  const names = new Set<string>();
  for (const s of f.samples) for (const k of Object.keys(s.labels)) if (k !== 'le' && k !== 'quantile') names.add(k);
  return [...names].sort();
}
