// The strict Prometheus text parser used by the /metrics tests: what it accepts, and that each
// rule it enforces does fail on a text that breaks it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { labelNames, parseMetrics, parseValue, sumOf, valueOf } from './promtext.js';

const GOOD = `# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
# HELP etcd_server_quota_backend_bytes Current backend storage quota size in bytes.
# TYPE etcd_server_quota_backend_bytes gauge
etcd_server_quota_backend_bytes 2.147483648e+09
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3
grpc_server_handled_total{grpc_code="Canceled",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0
# HELP x_seconds A histogram with a \\\\ and a \\n in its help.
# TYPE x_seconds histogram
x_seconds_bucket{To="a",le="0.001"} 1
x_seconds_bucket{To="a",le="0.002"} 2
x_seconds_bucket{To="a",le="+Inf"} 3
x_seconds_sum{To="a"} 0.5
x_seconds_count{To="a"} 3
x_seconds_bucket{To="b",le="0.001"} 0
x_seconds_bucket{To="b",le="+Inf"} 0
x_seconds_sum{To="b"} 0
x_seconds_count{To="b"} 0
# a plain comment
# HELP s A summary.
# TYPE s summary
s{quantile="0.5"} 1
s_sum 4
s_count 2
y{v="quote \\" backslash \\\\ newline \\n",} 7 1700000000000
`;

test('parses families, types, help, labels, values and histograms', () => {
  const m = parseMetrics(GOOD);
  assert.equal(m.get('etcd_server_has_leader')?.type, 'gauge');
  assert.equal(m.get('etcd_server_has_leader')?.help, 'Whether or not a leader exists. 1 is existence, 0 is not.');
  assert.equal(valueOf(m, 'etcd_server_quota_backend_bytes'), 2147483648);
  assert.equal(valueOf(m, 'grpc_server_handled_total', { grpc_method: 'Range', grpc_code: 'OK' }), 3);
  assert.equal(sumOf(m, 'grpc_server_handled_total', { grpc_method: 'Range' }), 3);
  assert.deepEqual(labelNames(m.get('grpc_server_handled_total') ?? assert.fail()), ['grpc_code', 'grpc_method', 'grpc_service', 'grpc_type']);
  const h = m.get('x_seconds') ?? assert.fail('no histogram');
  assert.equal(h.type, 'histogram');
  assert.equal(h.help, 'A histogram with a \\ and a \n in its help.');
  assert.equal(h.samples.length, 9);
  assert.deepEqual(labelNames(h), ['To']);
  assert.equal(valueOf(m, 'x_seconds', { To: 'a' }, 'x_seconds_count'), 3);
  assert.equal(valueOf(m, 'x_seconds', { To: 'a', le: '+Inf' }, 'x_seconds_bucket'), 3);
  assert.equal(valueOf(m, 's', {}, 's_count'), 2);
  const y = m.get('y') ?? assert.fail('no untyped family');
  assert.equal(y.type, 'untyped');
  assert.equal(y.samples[0]?.labels['v'], 'quote " backslash \\ newline \n');
  assert.throws(() => valueOf(m, 'grpc_server_handled_total', { grpc_method: 'Range' }), /2 samples/);
  assert.throws(() => valueOf(m, 'nope'), /no family/);
});

test('values: Go and JS float spellings, infinities, NaN; junk refused', () => {
  assert.equal(parseValue('2.147483648e+09'), 2147483648);
  assert.equal(parseValue('1e-05'), 0.00001);
  assert.equal(parseValue('-3'), -3);
  assert.equal(parseValue('+Inf'), Infinity);
  assert.equal(parseValue('-Inf'), -Infinity);
  assert.ok(Number.isNaN(parseValue('NaN')));
  for (const bad of ['', '1,5', '0x10', 'one', '1e', '--1']) assert.equal(parseValue(bad), undefined, bad);
  fc.assert(
    fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => {
      assert.ok(parseValue(String(v)) === v, String(v));
    }),
  );
});

/** Each case breaks one rule of GOOD-like text; the parser must refuse it with the given message. */
const BAD: readonly { why: string; text: string; error: RegExp }[] = [
  { why: 'no final newline', text: 'a 1', error: /no newline/ },
  { why: 'bad metric name', text: '1a 1\n', error: /bad sample name/ },
  { why: 'no value', text: 'a\n', error: /no space before the value|expected a value/ },
  { why: 'bad value', text: 'a one\n', error: /bad value/ },
  { why: 'bad timestamp', text: 'a 1 soon\n', error: /bad timestamp/ },
  { why: 'three fields', text: 'a 1 2 3\n', error: /expected a value/ },
  { why: 'unterminated labels', text: 'a{b="c" 1\n', error: /expected , or }/ },
  { why: 'label without quotes', text: 'a{b=c} 1\n', error: /not followed by ="/ },
  { why: 'bad escape', text: 'a{b="\\t"} 1\n', error: /bad escape/ },
  { why: 'label twice', text: 'a{b="1",b="2"} 1\n', error: /label b twice/ },
  { why: 'reserved label', text: 'a{__name__="x"} 1\n', error: /reserved/ },
  { why: 'series twice', text: 'a{b="1"} 1\na{b="1"} 2\n', error: /twice/ },
  { why: 'second TYPE', text: '# TYPE a gauge\n# TYPE a gauge\na 1\n', error: /second TYPE/ },
  { why: 'second HELP', text: '# HELP a x\n# HELP a y\na 1\n', error: /second HELP/ },
  { why: 'unknown type', text: '# TYPE a meter\na 1\n', error: /unknown type/ },
  { why: 'TYPE after samples', text: 'a 1\n# TYPE a gauge\n', error: /after samples/ },
  { why: 'not contiguous', text: 'a{x="1"} 1\nb 1\na{x="2"} 1\n', error: /not contiguous/ },
  { why: 'le outside a bucket', text: '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count{le="1"} 1\n', error: /le label outside a bucket/ },
  { why: 'negative counter', text: '# TYPE a counter\na -1\n', error: /negative/ },
  { why: 'bucket without le', text: '# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n', error: /without a numeric le/ },
  { why: 'plain sample in a histogram', text: '# TYPE h histogram\nh 1\n', error: /sample h in histogram/ },
  { why: 'no +Inf bucket', text: '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', error: /no le="\+Inf"/ },
  { why: '+Inf != count', text: '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', error: /!= _count/ },
  { why: 'not cumulative', text: '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n', error: /not cumulative/ },
  { why: 'le not ascending', text: '# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', error: /not ascending/ },
  { why: 'no _sum', text: '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n', error: /_sum or _count missing/ },
  { why: 'summary without quantile', text: '# TYPE s summary\ns 1\ns_sum 1\ns_count 1\n', error: /without quantile/ },
];

test('each rule refuses a text that breaks it', () => {
  for (const c of BAD) assert.throws(() => parseMetrics(c.text), c.error, c.why);
});

test('a line cut anywhere in a valid exposition is refused or still parses consistently (never a silent partial sample)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: GOOD.length - 1 }), (cut) => {
      const text = GOOD.slice(0, cut);
      let parsed: ReturnType<typeof parseMetrics> | undefined;
      try {
        parsed = parseMetrics(text.endsWith('\n') ? text : `${text}\n`);
      } catch {
        return;
      }
      // Whatever parsed is a prefix: every sample in it is in the full parse with the same value
      // (a value cut short, e.g. "0.5" -> "0.", parses to a different number: allowed only as the
      // last sample of the cut text).
      const full = parseMetrics(GOOD);
      const samples = [...parsed.values()].flatMap((f) => f.samples);
      samples.slice(0, -1).forEach((s) => {
        const f = [...full.values()].find((ff) => ff.samples.some((x) => x.name === s.name));
        assert.ok(f?.samples.some((x) => x.name === s.name && JSON.stringify(x.labels) === JSON.stringify(s.labels) && Object.is(x.value, s.value)), `${s.name} ${JSON.stringify(s.labels)}`);
      });
    }),
  );
});
