// The bench's parser of etcd's `benchmark` output and its table layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable, parseToolOutput, ratio } from './report.js';
import type { RowResult, ToolReport } from './report.js';

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
