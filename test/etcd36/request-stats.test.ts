// etcd's "request stats" warning for a unary request slower than --warning-unary-request-duration
// (and its 3.5 spelling --experimental-warning-unary-request-duration), against etcd 3.6.8: the same
// calls on both, each logged with etcd's fields and the same values (method, request and response
// counts and sizes, the request printed as etcd prints it, values redacted), and none logged under
// the default threshold. Plus the Go formats of the fields (server/api/request-stats.ts) as units.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goDuration, goTimestamp, quoteBytes } from '../../server/api/request-stats.js';
import { onEtcd36AndCairn } from '../harness/differential.js';
import type { EtcdClient } from '../harness/client.js';
import type { ServerProc } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';

interface Stats {
  readonly level: string;
  readonly [field: string]: unknown;
}

/** The server's "request stats" lines so far, parsed. */
function statsLines(s: ServerProc): Stats[] {
  return s
    .stderrLines()
    .filter((l) => l.includes('"msg":"request stats"'))
    .map((l) => JSON.parse(l) as Stats);
}

const b = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

/** Calls of every kind etcd's log tells apart, in order; every one must succeed or fail as on etcd. */
async function calls(c: EtcdClient): Promise<string[]> {
  const out: string[] = [];
  const note = (what: string, r: { ok: boolean }): void => void out.push(`${what}: ${r.ok ? 'ok' : 'failed'}`);
  note('put', await c.put({ key: b('foo'), value: b('bar') }));
  note('put escaped', await c.put({ key: Buffer.from([0x61, 0x22, 0x62, 0x5c, 0x09, 0x0a, 0x0d, 0x27, 0x00, 0xc3, 0xa9, 0x7f]), value: b('vvvv'), prev_kv: true, lease: '0' }));
  note('range', await c.range({ key: b('foo'), range_end: b('fop'), limit: 5, sort_order: 'DESCEND', sort_target: 'MOD', serializable: true }));
  note('range all flags', await c.range({ key: b('a'), range_end: Buffer.from([0]), keys_only: true, min_mod_revision: 1, max_mod_revision: 9, min_create_revision: 1, max_create_revision: 8 }));
  note('range none', await c.range({ key: b('nokey'), count_only: true }));
  note('range future', await c.range({ key: b('foo'), revision: 100 }));
  note('delete', await c.deleteRange({ key: b('foo'), prev_kv: true }));
  note(
    'txn failure branch',
    await c.txn({
      compare: [
        { key: b('foo'), target: 'VALUE', result: 'EQUAL', value: b('bar') },
        { key: b('x'), range_end: b('y'), target: 'MOD', result: 'GREATER', mod_revision: 3 },
        { key: b('v'), target: 'VERSION', result: 'EQUAL', version: 0 },
      ],
      success: [{ request_put: { key: b('s'), value: b('vvv') } }, { request_range: { key: b('s') } }],
      failure: [{ request_delete_range: { key: b('f') } }, { request_txn: { success: [{ request_put: { key: b('n'), value: b('vv') } }] } }],
    }),
  );
  note('txn success branch', await c.txn({ compare: [], success: [{ request_put: { key: b('t'), value: b('1'), lease: '0' } }, { request_range: { key: b('t'), count_only: true } }], failure: [] }));
  note('txn empty', await c.txn({}));
  note('lease grant', await c.unary('Lease', 'LeaseGrant', { TTL: 60 }));
  note('status', await c.unary('Maintenance', 'Status', {}));
  return out;
}

/**
 * What must match etcd's line, and the formats of what varies (times, the client's port). A response
 * size is taken less `headerBytes`, the size of an empty response (its header alone): member and
 * cluster ids are random and their varints differ in length from one server to another.
 */
function comparable(s: Stats, headerBytes: number): string {
  assert.equal(s.level, 'warn');
  assert.match(String(s['start time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d{4})$/, 'start time as etcd writes times');
  assert.match(String(s['time spent']), /^(\d+(\.\d+)?(ns|µs|ms|s)|\d+m\d+(\.\d+)?s)$/, 'time spent as Go prints a duration');
  assert.match(String(s['remote']), /^127\.0\.0\.1:\d+$/);
  const size = Number(s['response size']);
  const fields: Record<string, unknown> = { ...s, 'response size': size > 0 ? size - headerBytes : size };
  return ['response type', 'request count', 'request size', 'response count', 'response size', 'request content'].map((f) => `${f}=${JSON.stringify(fields[f])}`).join(' ');
}

/** The size of a response that is its header alone (a Range of nothing, as raw bytes; logged too). */
async function headerBytes(c: EtcdClient): Promise<number> {
  const r = await c.unaryRaw('KV', 'Range', Buffer.from([0x0a, 0x01, 0x7a])); // key "z"
  assert.ok(r.ok);
  return r.value.length;
}

async function loggedCalls(c: EtcdClient, s: ServerProc): Promise<string[]> {
  const header = await headerBytes(c);
  const results = await calls(c);
  await pollUntil('a request stats line for every call', () => Promise.resolve(statsLines(s).length >= results.length + 1));
  return [...results, ...statsLines(s).map((l) => comparable(l, header))];
}

test('--warning-unary-request-duration: every slower call logged as etcd 3.6.8 logs it, with the same values', async (t) => {
  const seen = await onEtcd36AndCairn(t, loggedCalls, { extraArgs: ['--warning-unary-request-duration=1us'] });
  if (seen === undefined) return;
  t.diagnostic(`etcd 3.6.8:\n${seen.etcd.join('\n')}`);
  assert.deepEqual(seen.cairn, seen.etcd);
});

test('--experimental-warning-unary-request-duration (etcd 3.5 spelling) does the same', async (t) => {
  const steps = async (c: EtcdClient, s: ServerProc): Promise<string[]> => {
    const r = await c.put({ key: b('k'), value: b('value') });
    await pollUntil('a request stats line', () => Promise.resolve(statsLines(s).length >= 1));
    return [String(r.ok), ...statsLines(s).map((l) => comparable(l, 0))];
  };
  const seen = await onEtcd36AndCairn(t, steps, { extraArgs: ['--experimental-warning-unary-request-duration=1us'] });
  if (seen === undefined) return;
  const sansSize = (l: string): string => l.replace(/response size=\d+/, 'response size=N');
  assert.deepEqual(seen.cairn.map(sansSize), seen.etcd.map(sansSize));
  assert.equal(seen.cairn.length, 2);
  assert.match(seen.cairn[1] ?? '', /^response type="\/etcdserverpb\.KV\/Put" request count=1 request size=10 response count=0 response size=\d+ request content="key:\\"k\\" value_size:5 "$/);
});

test('under the default threshold (300ms) fast calls are not logged', async (t) => {
  const steps = async (c: EtcdClient, s: ServerProc): Promise<string[]> => {
    for (let i = 0; i < 20; i++) assert.ok((await c.put({ key: b(`k${i}`), value: b('v') })).ok);
    assert.ok((await c.range({ key: b('k'), range_end: b('l') })).ok);
    // A line logged after every call above returned: the calls' own lines, if any, came before it.
    assert.ok((await c.unary('Maintenance', 'Defragment', {})).ok);
    await pollUntil('the end of the defragmentation in the log', () => Promise.resolve(s.stderrLines().some((l) => l.includes('finished defragmenting'))));
    const upTo = s.stderrLines().findIndex((l) => l.includes('finished defragmenting'));
    return s.stderrLines().slice(0, upTo).filter((l) => l.includes('request stats'));
  };
  const seen = await onEtcd36AndCairn(t, steps);
  if (seen === undefined) return;
  assert.deepEqual(seen.etcd, []);
  assert.deepEqual(seen.cairn, []);
});

test("the fields' Go formats: durations, times, quoted bytes", () => {
  assert.equal(goDuration(0), '0s');
  assert.equal(goDuration(999), '999ns');
  assert.equal(goDuration(70_292), '70.292µs');
  assert.equal(goDuration(1_000), '1µs');
  assert.equal(goDuration(1_544_817), '1.544817ms');
  assert.equal(goDuration(300_000_000), '300ms');
  assert.equal(goDuration(1_500_000_000), '1.5s');
  assert.equal(goDuration(62_500_000_000), '1m2.5s');
  assert.equal(goDuration(3_600_000_000_000), '1h0m0s');
  assert.equal(goDuration(-2_000), '-2µs');
  const at = Date.UTC(2026, 11, 7, 14, 24, 49, 22) + 0.951;
  const ts = goTimestamp(at);
  assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:49\.022951(Z|[+-]\d{4})$/);
  if (new Date(at).getTimezoneOffset() === 0) assert.equal(ts, '2026-12-07T14:24:49.022951Z');
  assert.equal(quoteBytes(Buffer.from('a"b\\c\t\n\r\'\u0000é\u007f', 'utf8')), '"a\\"b\\\\c\\t\\n\\r\'\\000\\303\\251\\177"');
});
