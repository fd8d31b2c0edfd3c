// /metrics against etcd 3.6.8 after the same calls on a fresh single member of each: every family
// etcd exports is Cairn's too, with etcd's type and HELP text (EXCLUDED lists the few that have no
// honest meaning in Cairn, each with why), and the series etcd 3.6 added move on Cairn as on etcd
// under the same calls: the same deltas where both count the same things (puts' sizes, applies by
// op, ranges, lease TTL buckets, expired leases, client requests by type and version, request bytes,
// watch events, hashes, compaction, scrapes), growth where the amounts are each server's own (WAL
// bytes and writes, response bytes).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { refBinOrSkip } from '../harness/bins.js';
import { EtcdClient, openWatch, type Msg } from '../harness/client.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { parseMetrics, sumOf, type Family } from './promtext.js';

type Families = Map<string, Family>;

/** etcd 3.6.8's families Cairn does not export, and why (server/api/metrics.ts says the same). */
const EXCLUDED: readonly (readonly [RegExp, string])[] = [
  [/^go_/, "Go's runtime (goroutines, GC, memstats): Cairn is not a Go program"],
  [/^etcd_server_go_version$/, 'the Go version etcd was built with'],
  [/^etcd_debugging_store_(reads|writes)_total$/, "etcd's v2 store, which holds its members; Cairn has no v2 store"],
  [/^etcd_debugging_disk_backend_commit_(rebalance|spill)_duration_seconds$/, 'bbolt rebalances and spills its B+tree at commit; LMDB does that inline with each change'],
];

const excluded = (name: string): boolean => EXCLUDED.some(([re]) => re.test(name));

async function scrape(s: ServerProc): Promise<Families> {
  const res = await fetch(`${s.clientUrl}/metrics`);
  assert.equal(res.status, 200);
  return parseMetrics(await res.text());
}

function ok(r: { ok: true; value: Msg } | { ok: false; code: number; details: string }, what: string): Msg {
  if (!r.ok) assert.fail(`${what}: ${r.details}`);
  return r.value;
}

const b = (s: string): Buffer => Buffer.from(s);

/** sumOf, 0 for a family not exported yet (a labelled family appears with its first series). */
const sum = (m: Families, family: string, labels: Readonly<Record<string, string>> = {}, sample = family): number => (m.has(family) ? sumOf(m, family, labels, sample) : 0);

type Labels = Readonly<Record<string, string>>;
type Reading = (m: Families) => number;
/** A counter's or gauge's value (summed over the series with `labels`). */
const value = (family: string, labels: Labels = {}): Reading => (m) => sum(m, family, labels);
/** A histogram's observation count (summed over the series with `labels`). */
const count = (family: string, labels: Labels = {}): Reading => (m) => sum(m, family, labels, `${family}_count`);
const applies = (op: string): Reading => count('etcd_server_apply_duration_seconds', { op, success: 'true', version: 'v3' });
const calls = (type: string, version: string): Reading => value('etcd_server_client_requests_total', { type, client_api_version: version });

/** Readings compared between the two scrapes, by name. */
const READINGS: Record<string, Reading> = {
  putBytes: value('etcd_debugging_mvcc_total_put_size_in_bytes'),
  putApplies: applies('Put'),
  txnApplies: applies('Txn'),
  leaseGrantApplies: applies('LeaseGrant'),
  ranges: count('etcd_server_range_duration_seconds', { success: 'true' }),
  failedRanges: count('etcd_server_range_duration_seconds', { success: 'false' }),
  ttlsUpTo64: (m) => sum(m, 'etcd_debugging_lease_ttl_total', { le: '64' }, 'etcd_debugging_lease_ttl_total_bucket'),
  ttlSum: (m) => sum(m, 'etcd_debugging_lease_ttl_total', {}, 'etcd_debugging_lease_ttl_total_sum'),
  unaryCalls: calls('unary', 'unknown'),
  streamCalls: calls('stream', 'unknown'),
  versionedCalls: calls('unary', '3.6'),
  requestBytes: value('etcd_network_client_grpc_received_bytes_total'),
  events: value('etcd_debugging_mvcc_events_total'),
  hashes: count('etcd_mvcc_hash_duration_seconds'),
  hashKVs: count('etcd_mvcc_hash_rev_duration_seconds'),
  compactedKeys: value('etcd_debugging_mvcc_db_compaction_keys_total'),
  compactions: count('etcd_debugging_mvcc_db_compaction_total_duration_milliseconds'),
  expiredLeases: value('etcd_debugging_server_lease_expired_total'),
  scrapes: value('promhttp_metric_handler_requests_total', { code: '200' }),
  readIndexesFailed: value('etcd_server_read_indexes_failed_total'),
  slowReadIndexes: value('etcd_server_slow_read_indexes_total'),
};

/** Readings compared as they are at the second scrape. */
const LEVELS: Record<string, Reading> = {
  scrapesInFlight: value('promhttp_metric_handler_requests_in_flight'),
  authRevision: value('etcd_debugging_auth_revision'),
  defragInflight: value('etcd_disk_defrag_inflight'),
  pendingEvents: value('etcd_debugging_mvcc_pending_events_total'),
  openReadTxns: value('etcd_mvcc_db_open_read_transactions'),
};

/** Readings that must grow on both, by amounts of each server's own. */
const GROWING: Record<string, Reading> = {
  walBytes: value('etcd_disk_wal_write_bytes_total'),
  walWrites: count('etcd_disk_wal_write_duration_seconds'),
  commitWrites: count('etcd_debugging_disk_backend_commit_write_duration_seconds'),
  responseBytes: value('etcd_network_client_grpc_sent_bytes_total'),
  compactionPauses: count('etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds'),
  lastCompaction: value('etcd_debugging_mvcc_db_compaction_last'),
};

interface Seen {
  readonly first: Families;
  readonly deltas: Record<string, number>;
  readonly levels: Record<string, number>;
  readonly grew: Record<string, boolean>;
}

/** The calls of etcd's TestNoMetricsMissing and more, between two scrapes. */
async function observe(s: ServerProc): Promise<Seen> {
  const c = new EtcdClient(s.endpoint);
  let scrapes = 0;
  const counted = (): Promise<Families> => {
    scrapes++;
    return scrape(s);
  };
  try {
    const first = await counted();
    for (let i = 0; i < 3; i++) ok(await c.put({ key: b(`key_${i}`), value: b(`value_${i}`) }), 'put');
    ok(await c.range({ key: b('k') }), 'range');
    assert.equal((await c.range({ key: b('k'), revision: 1000 })).ok, false, 'a future revision fails');
    ok(await c.unary('Lease', 'LeaseGrant', { TTL: 60 }), 'lease grant');
    ok(await c.txn({ compare: [], success: [{ request_put: { key: b('t'), value: b('tv') } }], failure: [] }), 'txn');
    ok(await c.put({ key: b('v'), value: b('x') }, { metadata: { 'client-api-version': '3.6' } }), 'put naming its API version');
    const watch = openWatch(c);
    watch.send({ create_request: { key: b('w') } });
    await watch.next();
    ok(await c.put({ key: b('w'), value: b('event') }), 'watched put');
    assert.ok(((await watch.next())['events'] as unknown[]).length === 1, 'one event');
    watch.end();
    ok(await c.put({ key: b('c'), value: b('1') }), 'put c');
    const last = ok(await c.put({ key: b('c'), value: b('2') }), 'put c again');
    ok(await c.compact({ revision: String((last['header'] as Msg)['revision']), physical: true }), 'compact');
    ok(await c.unary('Maintenance', 'Hash', {}), 'hash');
    ok(await c.unary('Maintenance', 'HashKV', { revision: '0' }), 'hashkv');
    // After the compaction, so that its revisions stay out of what the compaction removed.
    // An ID of the test's own: the same request bytes on both servers.
    const short = ok(await c.unary('Lease', 'LeaseGrant', { TTL: 1, ID: '4660' }), 'short lease');
    ok(await c.put({ key: b('leased'), value: b('x'), lease: String(short['ID']) }), 'put with the short lease');
    const expired = READINGS['expiredLeases'] ?? ((): number => 0);
    await pollUntil('the short lease to expire', async () => expired(await counted()) === expired(first) + 1, 15_000, 200);
    const second = await scrape(s);
    const deltas: Record<string, number> = {};
    for (const [k, read] of Object.entries(READINGS)) deltas[k] = read(second) - read(first);
    // A scrape is counted once served: the second sees every earlier one, itself not.
    deltas['scrapes'] = (deltas['scrapes'] ?? 0) - scrapes;
    const levels: Record<string, number> = {};
    for (const [k, read] of Object.entries(LEVELS)) levels[k] = read(second);
    const grew: Record<string, boolean> = {};
    for (const [k, read] of Object.entries(GROWING)) grew[k] = read(second) > read(first);
    return { first, deltas, levels, grew };
  } finally {
    c.close();
  }
}

test("etcd 3.6.8's /metrics families are Cairn's too, and the series 3.6 added move alike", async (t: TestContext) => {
  const bin = refBinOrSkip(t, 'etcd-3.6');
  if (bin === undefined) return;
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  const e = await startEtcd({ etcdBin: bin });
  servers.push(e);
  const etcd = await observe(e);
  const c = await startCairn();
  servers.push(c);
  const cairn = await observe(c);

  const missing = [...etcd.first.keys()].filter((n) => !cairn.first.has(n) && !excluded(n));
  assert.deepEqual(missing, [], "etcd 3.6.8's families missing from Cairn's /metrics");
  for (const [name, f] of etcd.first) {
    const mine = cairn.first.get(name);
    if (mine === undefined) continue;
    assert.equal(mine.type, f.type, `${name}: type`);
    if (name.startsWith('etcd_') || name.startsWith('promhttp_')) assert.equal(mine.help, f.help, `${name}: HELP`);
    // Labels in etcd's (client_golang's: sorted) order: tools and etcd's own e2e tests match the text.
    const order = (fam: Family): string[] => [...new Set(fam.samples.map((x) => Object.keys(x.labels).join(',')))];
    const etcdOrders = order(f);
    for (const o of order(mine)) if (!etcdOrders.includes(o) && etcdOrders.length > 0 && o.split(',').length > 1) assert.fail(`${name}: labels in the order ${o}; etcd writes ${etcdOrders.join(' | ')}`);
  }
  const unused = EXCLUDED.filter(([re]) => ![...etcd.first.keys()].some((n) => re.test(n)) || [...cairn.first.keys()].some((n) => re.test(n)));
  assert.deepEqual(unused.map(([re]) => re.source), [], 'an exclusion etcd no longer needs, or one Cairn now exports');

  t.diagnostic(`etcd 3.6.8 deltas: ${JSON.stringify(etcd.deltas)}`);
  assert.deepEqual(cairn.deltas, etcd.deltas);
  t.diagnostic(`etcd 3.6.8 levels: ${JSON.stringify(etcd.levels)}`);
  assert.deepEqual(cairn.levels, etcd.levels);
  assert.equal(cairn.deltas['scrapes'], 0, 'every scrape before the last counted, with code 200');
  assert.equal(cairn.levels['scrapesInFlight'], 1, 'a scrape sees itself in flight');
  assert.deepEqual(etcd.grew, Object.fromEntries(Object.keys(GROWING).map((k) => [k, true])), 'etcd 3.6.8 moved every growing series');
  assert.deepEqual(cairn.grew, etcd.grew);
  // What the calls add up to, so that equal deltas cannot both be wrong the same way.
  assert.equal(cairn.deltas['putBytes'], 3 * 12 + 'leasedx'.length + 'vx'.length + 'wevent'.length + 'c1'.length + 'c2'.length + 'ttv'.length);
  assert.equal(cairn.deltas['ttlsUpTo64'], 2);
  assert.equal(cairn.deltas['streamCalls'], 1);
  assert.equal(cairn.deltas['versionedCalls'], 1);
  assert.equal(cairn.deltas['events'], 1);
  assert.equal(cairn.deltas['compactedKeys'], 1);
});
