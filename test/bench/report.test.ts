// The bench's parsers (etcd's `benchmark` output, our load drivers' JSON line) and its table layouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TABLE_HEADER,
  combineRuns,
  cpuUsPerOp,
  electionsDuring,
  formatDriverTable,
  formatLoad,
  formatTable,
  insideNoise,
  loadLine,
  median,
  parseDriverOutput,
  parseToolOutput,
  parseWatchLatencyOutput,
  ratio,
  repeatedRow,
  rowName,
  sideOrder,
  sideSpread,
  spread,
  sumPeakMiB,
  toolTableLegend,
} from './report.js';
import type { DriverReport, RowResult, SideResult, ToolReport } from './report.js';

const SAMPLE = [
  '',
  'Summary:',
  '  Total:\t0.4472 secs.',
  '  Slowest:\t0.0200 secs.',
  '  Fastest:\t0.0003 secs.',
  '  Average:\t0.0035 secs.',
  '  Stddev:\t0.0035 secs.',
  '  Requests/sec:\t4472.5331',
  '',
  'Response time histogram:',
  '  0.0003 [1]\t|',
  '  0.0023 [1134]\t|∎∎∎∎',
  '',
  'Latency distribution:',
  '  10% in 0.0010 secs.',
  '  50% in 0.0019 secs.',
  '  99% in 0.0157 secs.',
  '  99.9% in 0.0193 secs.',
  '',
].join('\n');

function report(v: ToolReport | string): ToolReport {
  if (typeof v === 'string') assert.fail(v);
  return v;
}

test('parses requests/sec and p50/p99 in ms', () => {
  const r = report(parseToolOutput(SAMPLE));
  assert.equal(r.reqPerSec, 4472.5331);
  assert.ok(Math.abs(r.p50Ms - 1.9) < 1e-9);
  assert.ok(Math.abs(r.p99Ms - 15.7) < 1e-9);
  assert.equal(r.errorCount, 0);
});

test('sums the error distribution and keeps the most frequent message', () => {
  const out = `${SAMPLE}\nError distribution:\n  [3]\trpc error: code = Unavailable\n  [7]\tetcdserver: too many requests\n`;
  const r = report(parseToolOutput(out));
  assert.equal(r.errorCount, 10);
  assert.equal(r.firstError, 'etcdserver: too many requests');
});

test('output without a summary is an error string', () => {
  assert.equal(typeof parseToolOutput('Error: context deadline exceeded\n'), 'string');
});

test('table has one line per row plus header and rule, and a ratio', () => {
  const rep = report(parseToolOutput(SAMPLE));
  const row: RowResult = {
    workload: 'put',
    inFlight: 256,
    total: 10,
    etcd: { report: rep, error: undefined, peakRssMiB: 30 },
    cairn: { report: undefined, error: 'cairn did not start', peakRssMiB: undefined },
  };
  const ok: RowResult = { ...row, cairn: { report: { ...rep, reqPerSec: rep.reqPerSec / 2 }, error: undefined, peakRssMiB: 50 } };
  assert.equal(ratio(row), undefined);
  assert.equal(ratio(ok), 0.5);
  const lines = formatTable([row, ok]).split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[2] ?? '', /ERROR: cairn did not start/);
  assert.match(lines[3] ?? '', /\| 0\.50 +\|/);
});

// ---- cluster rows (put-3m, ...): their own table in the same format ----

test('cluster rows are named <workload>-<members>m; one member keeps the plain name', () => {
  assert.equal(rowName('put', 3), 'put-3m');
  assert.equal(rowName('range-lin', 5), 'range-lin-5m');
  assert.equal(rowName('txn-put', 1), 'txn-put');
});

test('peak RSS of a cluster side is the members\' VmHWM summed, in MiB; a member without a reading leaves it unknown', () => {
  assert.equal(sumPeakMiB([1024, 2048, 3072]), 6);
  assert.equal(sumPeakMiB([1024, 0, 3072]), undefined);
  assert.equal(sumPeakMiB([]), undefined);
});

test('elections during a row come from the raft terms noted before and after it', () => {
  const rep = report(parseToolOutput(SAMPLE));
  assert.equal(electionsDuring({ report: rep, error: undefined, peakRssMiB: 1, notes: { termBefore: 2, termAfter: 5 } }), 3);
  assert.equal(electionsDuring({ report: rep, error: undefined, peakRssMiB: 1, notes: { termBefore: 2, termAfter: 2 } }), 0);
  assert.equal(electionsDuring({ report: rep, error: undefined, peakRssMiB: 1 }), undefined);
  assert.equal(electionsDuring({ report: rep, error: undefined, peakRssMiB: 1, notes: { termBefore: Number.NaN, termAfter: 2 } }), undefined);
});

test('cluster table: same columns as the single-member table, rows named put-3m, ratio and summed RSS', () => {
  const rep = report(parseToolOutput(SAMPLE));
  const etcd = { report: rep, error: undefined, peakRssMiB: sumPeakMiB([40_960, 40_960, 40_960]), notes: { termBefore: 2, termAfter: 2 } };
  const rows: RowResult[] = [
    {
      workload: rowName('put', 3),
      inFlight: 256,
      total: 50_000,
      members: 3,
      etcd,
      cairn: { report: { ...rep, reqPerSec: rep.reqPerSec * 1.5 }, error: undefined, peakRssMiB: 300, notes: { termBefore: 2, termAfter: 3 } },
    },
    {
      workload: rowName('range-lin', 3),
      inFlight: 1,
      total: 5000,
      members: 3,
      etcd,
      cairn: { report: undefined, error: 'member(s) m2 not running', peakRssMiB: 200 },
    },
  ];
  const single = formatTable([{ workload: 'put', inFlight: 1, total: 1, etcd, cairn: etcd }]).split('\n');
  const lines = formatTable(rows).split('\n');
  assert.equal(lines.length, 4);
  // The same header cells as the single-member table.
  const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim());
  assert.deepEqual(cells(lines[0] ?? ''), [...TABLE_HEADER]);
  assert.deepEqual(cells(lines[0] ?? ''), cells(single[0] ?? ''));
  const put = cells(lines[2] ?? '');
  assert.equal(put[0], 'put-3m');
  assert.equal(put[4], '1.50');
  assert.equal(put[11], '120.0');
  assert.equal(put[12], '300.0');
  assert.match(lines[3] ?? '', /range-lin-3m .*ERROR: member\(s\) m2 not running/);
  assert.equal(new Set(lines.map((l) => l.length)).size, 1);
});

// ---- the load drivers' output and the watch/lease table ----

const DRIVER_LINE = JSON.stringify({
  phases: [
    {
      name: 'watch-steady-200',
      rate: 200071.4,
      p50Ms: 2.87,
      p99Ms: 138.4,
      count: 999_000,
      expected: 1_000_000,
      errorCount: 0,
      firstError: '1000 of 1000000 events never arrived',
      seconds: 5,
      driverCores: 0.42,
      serverCores: 0.62,
      extra: { putsPerSec: 200.1, targetPutsPerSec: 200 },
    },
    {
      name: 'watch-max',
      rate: 0,
      p50Ms: null,
      p99Ms: null,
      count: 0,
      expected: 0,
      errorCount: 2,
      seconds: 3,
      driverCores: 0.1,
      extra: {},
    },
  ],
});

function driver(stdout: string): DriverReport {
  const r = parseDriverOutput(stdout);
  if (typeof r === 'string') assert.fail(r);
  return r;
}

test('driver output: the last line is read; missing events count as errors; notes keep CPU and extras', () => {
  const r = driver(`watchload: 1000 watchers ready\n${DRIVER_LINE}\n`);
  assert.equal(r.error, undefined);
  assert.equal(r.phases.length, 2);
  const [steady, max] = r.phases;
  assert.equal(steady?.name, 'watch-steady-200');
  assert.equal(steady?.report.reqPerSec, 200071.4);
  assert.equal(steady?.report.errorCount, 1000);
  assert.equal(steady?.report.firstError, '1000 of 1000000 events never arrived');
  assert.equal(steady?.notes['serverCores'], 0.62);
  assert.equal(steady?.notes['putsPerSec'], 200.1);
  // null latencies (an empty histogram) read as NaN; an absent serverCores stays absent.
  assert.ok(Number.isNaN(max?.report.p50Ms));
  assert.equal(max?.notes['serverCores'], undefined);
  assert.equal(max?.report.errorCount, 2);
});

test('driver output: an early error keeps the phases measured before it', () => {
  const r = driver('{"error":"grpc-status 12: unknown service etcdserverpb.Watch","phases":[]}');
  assert.equal(r.error, 'grpc-status 12: unknown service etcdserverpb.Watch');
  assert.equal(r.phases.length, 0);
});

test('driver output without a JSON line, or with a malformed phase, is an error string', () => {
  assert.equal(typeof parseDriverOutput(''), 'string');
  assert.equal(typeof parseDriverOutput('Segmentation fault\n'), 'string');
  assert.equal(typeof parseDriverOutput('{"phases":[{"name":"x"}]}'), 'string');
  assert.equal(typeof parseDriverOutput('{"nophases":1}'), 'string');
});

test('watch-latency output: the row is the watch events summary, the put rate a note', () => {
  const putPart = SAMPLE.replace('4472.5331', '99.5');
  const watchPart = SAMPLE.replace('4472.5331', '116943.79').replace('50% in 0.0019', '50% in 0.0034');
  const r = parseWatchLatencyOutput(`\nPut summary:\n${putPart}\nWatch events summary:\n${watchPart}`);
  if (typeof r === 'string') assert.fail(r);
  assert.equal(r.report.reqPerSec, 116943.79);
  assert.ok(Math.abs(r.report.p50Ms - 3.4) < 1e-9);
  assert.equal(r.notes['putsPerSec'], 99.5);
  assert.ok(Math.abs((r.notes['putP50Ms'] ?? 0) - 1.9) < 1e-9);
  assert.equal(typeof parseWatchLatencyOutput(putPart), 'string');
});

test('driver table: load and unit columns, an error cell, ratio, CPU server / driver, "-" for NaN latency', () => {
  const steady = driver(DRIVER_LINE).phases[0];
  if (steady === undefined) assert.fail('no phase');
  const base = {
    workload: 'watch-steady-200',
    inFlight: 0,
    total: 1_000_000,
    load: '1000 watchers / 10 streams, 200 puts/s x 5 s',
    unit: 'events/s',
  };
  const etcdSide = { report: steady.report, error: undefined, peakRssMiB: 40, notes: steady.notes };
  const failed: RowResult = {
    ...base,
    etcd: etcdSide,
    cairn: { report: undefined, error: 'watch driver: grpc-status 12: unknown service', peakRssMiB: 60 },
  };
  const half: RowResult = {
    ...base,
    etcd: etcdSide,
    cairn: { report: { ...steady.report, reqPerSec: steady.report.reqPerSec / 4, p50Ms: Number.NaN }, error: undefined, peakRssMiB: 60 },
  };
  assert.equal(ratio(failed), undefined);
  assert.equal(ratio(half), 0.25);
  const lines = formatDriverTable([failed, half]).split('\n');
  assert.equal(lines.length, 4);
  const header = lines[0] ?? '';
  for (const h of ['load', 'unit', 'etcd CPU srv/drv', 'cairn CPU srv/drv']) assert.ok(header.includes(h), h);
  assert.match(lines[2] ?? '', /1000 watchers \/ 10 streams, 200 puts\/s x 5 s +\| events\/s/);
  assert.match(lines[2] ?? '', /200071 \(1000 errs\)/);
  assert.match(lines[2] ?? '', /ERROR: watch driver: grpc-status 12: unknown s…/);
  assert.match(lines[2] ?? '', /\| 0\.62 \/ 0\.42 +\|/);
  assert.match(lines[3] ?? '', /\| 0\.25 +\|/);
  assert.match(lines[3] ?? '', /\| - \/ 138\.40 +\|/);
  // Every line has the same width (a well-formed table).
  assert.equal(new Set(lines.map((l) => l.length)).size, 1);
});

// ---- repeated runs: ABBA order, medians, the etcd-vs-etcd spread, CPU per operation ----

test('sides alternate ABBA: etcd first in even repeats, cairn first in odd ones', () => {
  assert.deepEqual([0, 1, 2, 3].map(sideOrder), [
    ['etcd', 'cairn'],
    ['cairn', 'etcd'],
    ['etcd', 'cairn'],
    ['cairn', 'etcd'],
  ]);
});

test('median: middle value, mean of the middle two, NaN ignored, undefined when empty', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([5]), 5);
  assert.equal(median([Number.NaN, 7, 1, Number.NaN, 4]), 4);
  assert.equal(median([]), undefined);
  assert.equal(median([Number.NaN]), undefined);
});

test('spread is (max - min) / median; undefined for one run or a zero median', () => {
  assert.ok(Math.abs((spread([90, 110, 100]) ?? 0) - 0.2) < 1e-12);
  assert.equal(spread([100, 100]), 0);
  assert.equal(spread([100]), undefined);
  assert.equal(spread([]), undefined);
  assert.equal(spread([0, 0, 5]), undefined);
});

test('CPU µs per op: CPU seconds over completed requests; unknown CPU or nothing completed is undefined', () => {
  assert.equal(cpuUsPerOp(0.5, 1000), 500);
  assert.equal(cpuUsPerOp(0, 10), 0);
  assert.equal(cpuUsPerOp(undefined, 10), undefined);
  assert.equal(cpuUsPerOp(1, 0), undefined);
  assert.equal(cpuUsPerOp(-0.01, 10), undefined);
});

function run(reqPerSec: number, cpu: number, rss: number, errorCount = 0): SideResult {
  return {
    report: { reqPerSec, p50Ms: reqPerSec / 1000, p99Ms: reqPerSec / 100, errorCount, firstError: errorCount > 0 ? 'too many requests' : undefined },
    error: undefined,
    peakRssMiB: rss,
    notes: { cpuUsPerOp: cpu },
  };
}

const failedRun: SideResult = { report: undefined, error: 'benchmark: timed out after 300 s', peakRssMiB: 70 };

test('combined side: each figure the median of the measured runs, errors summed, the highest RSS', () => {
  const c = combineRuns([run(1000, 30, 50), run(3000, 10, 60, 2), run(2000, 20, 55)]);
  assert.equal(c.error, undefined);
  assert.equal(c.report?.reqPerSec, 2000);
  assert.equal(c.report?.p50Ms, 2);
  assert.equal(c.report?.p99Ms, 20);
  assert.equal(c.report?.errorCount, 2);
  assert.equal(c.report?.firstError, 'too many requests');
  assert.equal(c.peakRssMiB, 60);
  assert.deepEqual(c.notes, { runs: 3, runsMeasured: 3, cpuUsPerOp: 20 });
  // A failed run is left out of the medians but counted.
  const partial = combineRuns([run(1000, 30, 50), failedRun, run(2000, 20, 55)]);
  assert.equal(partial.report?.reqPerSec, 1500);
  assert.equal(partial.peakRssMiB, 70);
  assert.deepEqual(partial.notes, { runs: 3, runsMeasured: 2, cpuUsPerOp: 25 });
  // No run measured: the first error.
  const none = combineRuns([failedRun, { ...failedRun, error: 'other' }]);
  assert.equal(none.report, undefined);
  assert.equal(none.error, 'benchmark: timed out after 300 s');
});

test('the ratio is inside the noise when |ratio - 1| is within etcd\'s own spread', () => {
  const base = { workload: 'put', inFlight: 256, total: 5000 };
  // etcd 900/1000/1100: spread 20%, median 1000.
  const etcd = [run(900, 40, 50), run(1000, 40, 50), run(1100, 40, 50)];
  const close = repeatedRow(base, etcd, [run(1150, 30, 80), run(1100, 30, 80), run(1120, 30, 80)]);
  const far = repeatedRow(base, etcd, [run(1500, 30, 80), run(1600, 30, 80), run(1550, 30, 80)]);
  assert.ok(Math.abs((sideSpread(close, 'etcd') ?? 0) - 0.2) < 1e-12);
  assert.equal(ratio(close), 1.12);
  assert.equal(insideNoise(close), true);
  assert.equal(insideNoise(far), false);
  // One run: no spread, so no verdict.
  const once = repeatedRow(base, [run(1000, 40, 50)], [run(1500, 30, 80)]);
  assert.equal(sideSpread(once, 'etcd'), undefined);
  assert.equal(insideNoise(once), undefined);
  assert.equal(close.runs?.etcd.length, 3);
});

test('tool table of repeated rows: medians, spreads, "~" inside the noise, CPU µs/op, partial runs', () => {
  const base = { workload: 'put', inFlight: 256, total: 5000 };
  const etcd = [run(900, 41.5, 50), run(1000, 40, 52), run(1100, 39, 51)];
  const close = repeatedRow(base, etcd, [run(1150, 30, 80), run(1100, 31, 82), run(1120, 29, 81)]);
  const far = repeatedRow({ ...base, workload: 'txn-put' }, etcd, [run(1600, 3.5, 80), failedRun, run(1500, 2.5, 80)]);
  const lines = formatTable([close, far]).split('\n');
  assert.equal(lines.length, 4);
  const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim());
  assert.deepEqual(cells(lines[0] ?? ''), [...TABLE_HEADER]);
  assert.deepEqual(cells(lines[2] ?? ''), ['put', '256', '1000', '1120', '1.12 ~', '20.0%', '4.5%', '1.00 / 10.00', '1.12 / 11.20', '40', '30', '52.0', '82.0']);
  const f = cells(lines[3] ?? '');
  assert.equal(f[3], '1550 (2 of 3 runs)');
  assert.equal(f[4], '1.55');
  assert.equal(f[6], '6.5%');
  // Below 10 µs/op one decimal; from 10 up whole µs (the 10 ms ticks of /proc make decimals noise).
  assert.equal(f[10], '3.0');
  assert.equal(new Set(lines.map((l) => l.length)).size, 1);
});

test('load averages print as 1/5/15-minute figures, start and end', () => {
  assert.equal(formatLoad([1.234, 0.5, 12]), '1.23 0.50 12.00');
  assert.equal(loadLine('during this table', [1, 2, 3], [4, 5, 6]), 'load average (1/5/15 min) during this table: start 1.00 2.00 3.00, end 4.00 5.00 6.00');
});

test('the legend under a tool table says how many runs, and says when there is no spread', () => {
  assert.match(toolTableLegend(3), /median of 3 runs per side, alternated ABBA/);
  assert.match(toolTableLegend(1), /one run per side \(CAIRN_BENCH_REPEATS=1: no medians, no spread/);
  assert.doesNotMatch(toolTableLegend(1), /the median of/);
});
