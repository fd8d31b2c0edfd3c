// The bench's parsers (etcd's `benchmark` output, our load drivers' JSON line) and its table layouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TABLE_HEADER,
  electionsDuring,
  formatDriverTable,
  formatTable,
  parseDriverOutput,
  parseToolOutput,
  parseWatchLatencyOutput,
  ratio,
  rowName,
  sumPeakMiB,
} from './report.js';
import type { DriverReport, RowResult, ToolReport } from './report.js';

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
  assert.equal(put[7], '120.0');
  assert.equal(put[8], '300.0');
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
