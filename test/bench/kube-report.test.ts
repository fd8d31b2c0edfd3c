// The kube bench's pure parts: histograms from Prometheus text, PromQL-style quantiles, raw
// percentiles, watch-stream lines and the comparison table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  KUBE_TABLE_HEADER,
  LineSplitter,
  betterRatio,
  formatKubeTable,
  histogramCount,
  histogramDelta,
  histogramQuantile,
  parseHistogram,
  parseWatchLine,
  percentile,
} from './kube-report.js';
import type { Bucket, FigureSpec } from './kube-report.js';

const INF = Number.POSITIVE_INFINITY;

function series(verb: string, scope: string, counts: readonly (readonly [string, number])[]): string[] {
  return counts.map(
    ([le, n]) =>
      `apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="configmaps",scope="${scope}",subresource="",verb="${verb}",version="v1",le="${le}"} ${n}`,
  );
}

const EXPOSITION = [
  '# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds.',
  '# TYPE apiserver_request_duration_seconds histogram',
  ...series('POST', 'resource', [
    ['0.005', 10],
    ['0.025', 60],
    ['0.05', 100],
    ['+Inf', 100],
  ]),
  ...series('LIST', 'namespace', [
    ['0.005', 1],
    ['0.025', 2],
    ['0.05', 3],
    ['+Inf', 4],
  ]),
  ...series('LIST', 'cluster', [
    ['0.005', 0],
    ['0.025', 1],
    ['0.05', 1],
    ['+Inf', 1],
  ]),
  'apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 1.5',
  'apiserver_request_duration_seconds_bucket_extra{verb="POST",le="+Inf"} 999',
  'etcd_request_duration_seconds_bucket{group="",operation="create",resource="configmaps",le="0.005"} 7',
  'etcd_request_duration_seconds_bucket{group="",operation="create",resource="configmaps",le="+Inf"} 8',
].join('\n');

test('parseHistogram picks the matching series and sums over the other labels', () => {
  assert.deepEqual(parseHistogram(EXPOSITION, 'apiserver_request_duration_seconds', { verb: 'POST', resource: 'configmaps' }), [
    { le: 0.005, count: 10 },
    { le: 0.025, count: 60 },
    { le: 0.05, count: 100 },
    { le: INF, count: 100 },
  ]);
  assert.deepEqual(parseHistogram(EXPOSITION, 'apiserver_request_duration_seconds', { verb: 'LIST' }), [
    { le: 0.005, count: 1 },
    { le: 0.025, count: 3 },
    { le: 0.05, count: 4 },
    { le: INF, count: 5 },
  ]);
  assert.deepEqual(parseHistogram(EXPOSITION, 'etcd_request_duration_seconds', { operation: 'create' }), [
    { le: 0.005, count: 7 },
    { le: INF, count: 8 },
  ]);
  assert.deepEqual(parseHistogram(EXPOSITION, 'apiserver_request_duration_seconds', { verb: 'DELETE' }), []);
});

test('label values may hold quotes, braces and escapes', () => {
  const text = 'm_bucket{path="a}\\"b",le="1"} 3\nm_bucket{path="a}\\"b",le="+Inf"} 4\n';
  assert.deepEqual(parseHistogram(text, 'm', { path: 'a}"b' }), [
    { le: 1, count: 3 },
    { le: INF, count: 4 },
  ]);
});

test('histogramQuantile interpolates inside the bucket as PromQL does', () => {
  const b: Bucket[] = [
    { le: 0.005, count: 10 },
    { le: 0.025, count: 60 },
    { le: 0.05, count: 100 },
    { le: INF, count: 100 },
  ];
  // rank 99 is in (0.025, 0.05]: 0.025 + 0.025 * (99 - 60) / 40
  assert.ok(Math.abs(histogramQuantile(0.99, b) - (0.025 + (0.025 * 39) / 40)) < 1e-12);
  // rank 5 in the first bucket: interpolated from 0
  assert.ok(Math.abs(histogramQuantile(0.05, b) - 0.0025) < 1e-12);
  assert.equal(histogramCount(b), 100);
});

test('histogramQuantile: rank in +Inf gives the highest finite bound; empty or malformed gives NaN', () => {
  const b: Bucket[] = [
    { le: 0.1, count: 1 },
    { le: 1, count: 2 },
    { le: INF, count: 10 },
  ];
  assert.equal(histogramQuantile(0.99, b), 1);
  assert.ok(Number.isNaN(histogramQuantile(0.99, [{ le: 1, count: 0 }, { le: INF, count: 0 }])));
  assert.ok(Number.isNaN(histogramQuantile(0.99, [{ le: 1, count: 3 }, { le: 2, count: 3 }])));
  assert.ok(Number.isNaN(histogramQuantile(0.99, [{ le: INF, count: 3 }])));
  assert.equal(histogramQuantile(-1, b), Number.NEGATIVE_INFINITY);
  assert.equal(histogramQuantile(2, b), INF);
});

test('histogramDelta subtracts bucket by bucket', () => {
  const before: Bucket[] = [
    { le: 0.1, count: 5 },
    { le: INF, count: 6 },
  ];
  const after: Bucket[] = [
    { le: 0.1, count: 15 },
    { le: 1, count: 18 },
    { le: INF, count: 20 },
  ];
  assert.deepEqual(histogramDelta(after, before), [
    { le: 0.1, count: 10 },
    { le: 1, count: 18 },
    { le: INF, count: 14 },
  ]);
});

test('histogramQuantile is monotone in q and stays within the finite bounds', () => {
  const bounds = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1];
  fc.assert(
    fc.property(fc.array(fc.nat(50), { minLength: bounds.length + 1, maxLength: bounds.length + 1 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (per, q1, q2) => {
      let cum = 0;
      const b: Bucket[] = [...bounds, INF].map((le, i) => ({ le, count: (cum += per[i] ?? 0) }));
      const lo = histogramQuantile(Math.min(q1, q2), b);
      const hi = histogramQuantile(Math.max(q1, q2), b);
      if (cum === 0) return Number.isNaN(lo) && Number.isNaN(hi);
      return lo <= hi + 1e-12 && lo >= 0 && hi <= 1;
    }),
  );
});

test('percentile is nearest-rank over the samples', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.equal(percentile(xs, 0.5), 50);
  assert.equal(percentile(xs, 0.99), 99);
  assert.equal(percentile(xs, 1), 100);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile([7], 0.99), 7);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test('watch lines: type, object name and an ERROR status message', () => {
  assert.deepEqual(parseWatchLine('{"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"bench-000001","resourceVersion":"1234"}}}'), {
    type: 'ADDED',
    name: 'bench-000001',
    resourceVersion: '1234',
    message: '',
  });
  assert.deepEqual(parseWatchLine('{"type":"ERROR","object":{"kind":"Status","message":"too old resource version: 5 (100)","code":410}}'), {
    type: 'ERROR',
    name: '',
    resourceVersion: '',
    message: 'too old resource version: 5 (100)',
  });
  assert.equal(parseWatchLine('  '), undefined);
  assert.throws(() => parseWatchLine('{"object":{}}'), /not an event/);
  assert.throws(() => parseWatchLine('{"type":'));
});

test('LineSplitter keeps a partial line until its newline arrives', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.feed('{"a":1}\n{"b"'), ['{"a":1}']);
  assert.deepEqual(s.feed(':2}\n'), ['{"b":2}']);
  assert.deepEqual(s.feed('x'), []);
  assert.deepEqual(s.feed('y\nz\n'), ['xy', 'z']);
});

test('betterRatio: > 1 means cairn did better in both directions', () => {
  assert.equal(betterRatio('higher', 100, 150), 1.5);
  assert.equal(betterRatio('lower', 10, 20), 0.5);
  assert.equal(betterRatio('lower', 20, 10), 2);
  assert.equal(betterRatio('info', 1, 2), undefined);
  assert.equal(betterRatio('higher', 0, 5), undefined);
  assert.equal(betterRatio('lower', 5, 0), undefined);
  assert.equal(betterRatio('higher', undefined, 5), undefined);
  assert.equal(betterRatio('higher', Number.NaN, 5), undefined);
});

test('formatKubeTable: one padded markdown row per figure, "-" where unmeasured', () => {
  const specs: FigureSpec[] = [
    { key: 'c', phase: 'create', label: 'creates/s', better: 'higher', digits: 0 },
    { key: 'p', phase: 'create', label: 'p99 ms', better: 'lower', digits: 1 },
    { key: 'n', phase: 'create', label: 'errors', better: 'info', digits: 0 },
  ];
  const out = formatKubeTable(specs, { c: 1000, p: 20, n: 0 }, { c: 1500, n: 3 }).split('\n');
  assert.equal(out.length, 2 + specs.length);
  assert.ok((out[0] ?? '').startsWith(`| ${KUBE_TABLE_HEADER[0]}`));
  assert.match(out[1] ?? '', /^\|-+\|-+\|-+\|-+\|-+\|$/);
  assert.match(out[2] ?? '', /\| 1000 +\| 1500 +\| 1\.50x +\|$/);
  assert.match(out[3] ?? '', /\| 20\.0 +\| - +\| - +\|$/);
  assert.match(out[4] ?? '', /\| 0 +\| 3 +\| - +\|$/);
  const widths = out.map((l) => l.length);
  assert.ok(widths.every((w) => w === widths[0]));
});
