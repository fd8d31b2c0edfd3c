// /metrics against real processes: scraped on --listen-metrics-urls, parsed strictly
// (promtext.ts), every series dashboards and alerts use present with etcd's type, label names and
// help text, and moving under a load of puts, ranges, txns, deletes, watches, leases, a defrag and a
// snapshot. The same load runs against the reference etcd 3.4.23: whatever moves there must move
// here, and the families must match. A 3-member cluster of each adds leadership and peer series.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EtcdClient, openKeepAlive, openWatch, type Msg } from '../harness/client.js';
import { freePort, runEtcdctl, startCairn, startEtcd, tempDir, type ServerProc, type TargetKind } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { labelNames, parseMetrics, sumOf, valueOf, type Family, type MetricType } from './promtext.js';

type Families = Map<string, Family>;

interface Listed {
  readonly name: string;
  readonly type: MetricType;
  /** Label names (without le); checked whenever the family has samples. */
  readonly labels: readonly string[];
  /** Only where members have peers. */
  readonly peers?: boolean;
}

const GRPC_LABELS = ['grpc_method', 'grpc_service', 'grpc_type'];

/** The series of etcd-compat-spec §4.2 and the metrics task, with etcd 3.4.23's types. */
const LISTED: readonly Listed[] = [
  ...['has_leader', 'is_leader', 'is_learner', 'proposals_pending', 'proposals_committed_total', 'proposals_applied_total', 'quota_backend_bytes', 'snapshot_apply_in_progress_total'].map(
    (n): Listed => ({ name: `etcd_server_${n}`, type: 'gauge', labels: [] }),
  ),
  ...['leader_changes_seen_total', 'proposals_failed_total', 'heartbeat_send_failures_total', 'slow_apply_total', 'health_success', 'health_failures'].map(
    (n): Listed => ({ name: `etcd_server_${n}`, type: 'counter', labels: [] }),
  ),
  { name: 'etcd_server_version', type: 'gauge', labels: ['server_version'] },
  { name: 'etcd_cluster_version', type: 'gauge', labels: ['cluster_version'] },
  { name: 'etcd_server_id', type: 'gauge', labels: ['server_id'] },
  { name: 'etcd_mvcc_db_total_size_in_bytes', type: 'gauge', labels: [] },
  { name: 'etcd_mvcc_db_total_size_in_use_in_bytes', type: 'gauge', labels: [] },
  ...['range', 'put', 'delete', 'txn'].map((n): Listed => ({ name: `etcd_mvcc_${n}_total`, type: 'counter', labels: [] })),
  ...['keys_total', 'current_revision', 'compact_revision', 'watcher_total', 'slow_watcher_total', 'watch_stream_total', 'db_total_size_in_bytes'].map(
    (n): Listed => ({ name: `etcd_debugging_mvcc_${n}`, type: 'gauge', labels: [] }),
  ),
  ...['granted', 'revoked', 'renewed'].map((n): Listed => ({ name: `etcd_debugging_lease_${n}_total`, type: 'counter', labels: [] })),
  ...['wal_fsync', 'backend_commit', 'backend_snapshot', 'backend_defrag'].map((n): Listed => ({ name: `etcd_disk_${n}_duration_seconds`, type: 'histogram', labels: [] })),
  { name: 'etcd_network_peer_round_trip_time_seconds', type: 'histogram', labels: ['To'], peers: true },
  { name: 'etcd_network_peer_sent_bytes_total', type: 'counter', labels: ['To'], peers: true },
  { name: 'etcd_network_peer_received_bytes_total', type: 'counter', labels: ['From'], peers: true },
  { name: 'etcd_network_peer_sent_failures_total', type: 'counter', labels: ['To'], peers: true },
  { name: 'grpc_server_started_total', type: 'counter', labels: GRPC_LABELS },
  { name: 'grpc_server_handled_total', type: 'counter', labels: ['grpc_code', ...GRPC_LABELS] },
  { name: 'grpc_server_msg_received_total', type: 'counter', labels: GRPC_LABELS },
  { name: 'grpc_server_msg_sent_total', type: 'counter', labels: GRPC_LABELS },
  { name: 'process_cpu_seconds_total', type: 'counter', labels: [] },
  { name: 'process_resident_memory_bytes', type: 'gauge', labels: [] },
  { name: 'process_open_fds', type: 'gauge', labels: [] },
];

const KV = { grpc_service: 'etcdserverpb.KV', grpc_type: 'unary' };

/** A reading that must grow under the load, on etcd and Cairn alike. */
interface Mover {
  readonly what: string;
  read(m: Families): number;
}

const count = (family: string): Mover => ({ what: `${family}_count`, read: (m) => sumOf(m, family, {}, `${family}_count`) });
const plain = (family: string, labels: Record<string, string> = {}): Mover => ({ what: `${family}${JSON.stringify(labels)}`, read: (m) => sumOf(m, family, labels) });

const MOVERS: readonly Mover[] = [
  plain('etcd_server_proposals_committed_total'),
  plain('etcd_server_proposals_applied_total'),
  plain('etcd_mvcc_put_total'),
  plain('etcd_mvcc_range_total'),
  plain('etcd_mvcc_delete_total'),
  plain('etcd_mvcc_txn_total'),
  plain('etcd_debugging_mvcc_current_revision'),
  plain('etcd_debugging_lease_granted_total'),
  plain('etcd_debugging_lease_revoked_total'),
  plain('etcd_debugging_lease_renewed_total'),
  count('etcd_disk_wal_fsync_duration_seconds'),
  count('etcd_disk_backend_commit_duration_seconds'),
  count('etcd_disk_backend_defrag_duration_seconds'),
  count('etcd_disk_backend_snapshot_duration_seconds'),
  plain('grpc_server_started_total', { ...KV, grpc_method: 'Put' }),
  plain('grpc_server_handled_total', { ...KV, grpc_method: 'Put', grpc_code: 'OK' }),
  plain('grpc_server_handled_total', { ...KV, grpc_method: 'Txn', grpc_code: 'OK' }),
  plain('grpc_server_handled_total', { grpc_method: 'Watch', grpc_code: 'Canceled' }),
  plain('grpc_server_msg_received_total', { ...KV, grpc_method: 'Range' }),
  plain('grpc_server_msg_sent_total', { ...KV, grpc_method: 'DeleteRange' }),
  plain('grpc_server_msg_received_total', { grpc_method: 'LeaseKeepAlive' }),
  plain('grpc_server_msg_sent_total', { grpc_method: 'Watch' }),
  plain('process_cpu_seconds_total'),
  plain('etcd_server_health_success'),
];

async function scrape(url: string): Promise<Families> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200, `GET ${url}/metrics`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; ?version=0\.0\.4/);
  return parseMetrics(await res.text());
}

function ok(r: { ok: true; value: Msg } | { ok: false; code: number; details: string }, what: string): Msg {
  if (!r.ok) assert.fail(`${what}: code ${r.code} ${r.details}`);
  return r.value;
}

/** Every listed series present with its type and label names (peer series only when `peers`). */
function checkListed(m: Families, who: string, peers: boolean): void {
  for (const l of LISTED) {
    if (l.peers === true && !peers) continue;
    const f = m.get(l.name);
    // etcd's (Go client's) labelled vectors appear once they have a child (sent failures: after one).
    if (f === undefined && who.startsWith('etcd') && l.peers === true) continue;
    assert.ok(f !== undefined, `${who}: ${l.name} missing`);
    assert.equal(f.type, l.type, `${who}: ${l.name} type`);
    assert.ok(f.help !== undefined && f.help !== '', `${who}: ${l.name} has no HELP`);
    if (f.samples.length > 0) assert.deepEqual(labelNames(f), [...l.labels].sort(), `${who}: ${l.name} labels`);
  }
}

/** Cairn's families of the listed series are etcd's: type, HELP text, label names. */
function compareWithEtcd(etcd: Families, cairn: Families, names: readonly string[]): void {
  for (const name of names) {
    const e = etcd.get(name);
    const c = cairn.get(name);
    assert.ok(e !== undefined, `etcd has no ${name}`);
    assert.ok(c !== undefined, `cairn has no ${name}`);
    assert.equal(c.type, e.type, `${name}: type`);
    assert.equal(c.help, e.help, `${name}: HELP`);
    if (e.samples.length > 0 && c.samples.length > 0) assert.deepEqual(labelNames(c), labelNames(e), `${name}: label names`);
  }
}

/** The single-member load; returns what a client saw, for cross-checks. */
async function load(client: EtcdClient, endpoint: string, url: string, dir: string): Promise<{ during: Families }> {
  const k = (i: number): Buffer => Buffer.from(`metrics/${i}`);
  for (let i = 0; i < 40; i++) ok(await client.put({ key: k(i), value: Buffer.from(`v${i}`) }), 'put');
  for (let i = 0; i < 20; i++) ok(await client.range({ key: k(i) }), 'range');
  for (let i = 0; i < 10; i++) {
    const cmp = { key: k(i), target: 'VERSION', result: 'GREATER', version: 0 };
    const ops = [{ request_put: { key: k(100 + i), value: Buffer.from('t') } }, { request_put: { key: k(200 + i), value: Buffer.from('t') } }];
    ok(await client.txn({ compare: [cmp], success: ops, failure: [] }), 'txn');
  }
  for (let i = 0; i < 5; i++) ok(await client.deleteRange({ key: k(i) }), 'delete');
  // A watch open while writes flow, scraped while open.
  const watch = openWatch(client);
  watch.send({ create_request: { key: Buffer.from('metrics/'), range_end: Buffer.from('metrics0') } });
  const created = await watch.next();
  assert.equal(created['created'], true);
  ok(await client.put({ key: k(500), value: Buffer.from('w') }), 'put under watch');
  await watch.next();
  const during = await scrape(url);
  watch.cancel();
  // Leases: granted, renewed by a keepalive, revoked.
  const grants = [];
  for (let i = 0; i < 3; i++) grants.push(ok(await client.unary('Lease', 'LeaseGrant', { TTL: 60 }), 'grant'));
  const ka = openKeepAlive(client);
  ka.send({ ID: grants[0]?.['ID'] });
  const kr = await ka.next();
  assert.ok(Number(kr['TTL']) > 0, 'keepalive renewed');
  ka.end();
  ok(await client.unary('Lease', 'LeaseRevoke', { ID: grants[1]?.['ID'] }), 'revoke');
  // A defragmentation and a snapshot (backend defrag and snapshot durations).
  const defrag = await runEtcdctl(['--endpoints', endpoint, 'defrag']);
  assert.equal(defrag.exit, 0, defrag.stderr);
  const snap = await runEtcdctl(['--endpoints', endpoint, 'snapshot', 'save', join(dir, 'snap.db')]);
  assert.equal(snap.exit, 0, snap.stderr);
  const health = await fetch(`http://${endpoint}/health`);
  assert.equal(health.status, 200, 'GET /health');
  return { during };
}

/** Scrapes until the watch is gone (the stream closes after the client cancels). */
async function afterWatchClosed(url: string): Promise<Families> {
  let m: Families = new Map();
  await pollUntil(
    'the watch stream closed in /metrics',
    async () => {
      m = await scrape(url);
      return valueOf(m, 'etcd_debugging_mvcc_watch_stream_total') === 0 && valueOf(m, 'etcd_debugging_mvcc_watcher_total') === 0;
    },
    10_000,
    100,
  );
  return m;
}

interface Target {
  readonly kind: TargetKind;
  readonly proc: ServerProc;
  readonly url: string;
}

async function startSingle(kind: TargetKind): Promise<Target> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const start = kind === 'etcd' ? startEtcd : startCairn;
  const proc = await start({ extraArgs: ['--listen-metrics-urls', url] });
  return { kind, proc, url };
}

test('one member: every listed series, etcd types/help/labels, moving under load; leader, version and id as Status says', async () => {
  const [etcd, cairn] = await Promise.all([startSingle('etcd'), startSingle('cairn')]);
  const seen: Partial<Record<TargetKind, { before: Families; during: Families; after: Families }>> = {};
  try {
    for (const t of [etcd, cairn]) {
      const client = new EtcdClient(t.proc.endpoint);
      try {
        await client.waitReady();
        // Status first: it is what the gauges are checked against (and etcd counts the call).
        const before = await scrape(t.url);
        checkListed(before, t.kind, false);
        const { during } = await load(client, t.proc.endpoint, t.url, tempDir(`cairn-metrics-${t.kind}-`));
        const after = await afterWatchClosed(t.url);
        seen[t.kind] = { before, during, after };
        const status = ok(await client.unary('Maintenance', 'Status', {}), 'status');
        const all = ok(await client.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true }), 'count');
        const final = await scrape(t.url);
        checkListed(final, t.kind, false);
        // Also served on the client port (beside gRPC), with the same families.
        const onClientPort = await scrape(t.proc.clientUrl);
        checkListed(onClientPort, `${t.kind} client port`, false);
        assert.deepEqual([...onClientPort.keys()].sort(), [...final.keys()].sort(), `${t.kind}: same families on both ports`);
        const hdr = status['header'] as Msg;
        assert.equal(valueOf(final, 'etcd_server_version', { server_version: String(status['version']) }), 1, `${t.kind}: server_version = Status.version`);
        assert.equal(valueOf(final, 'etcd_server_id', { server_id: BigInt(String(hdr['member_id'])).toString(16) }), 1, `${t.kind}: server_id`);
        assert.equal(valueOf(final, 'etcd_server_has_leader'), 1);
        assert.equal(valueOf(final, 'etcd_server_is_leader'), 1);
        assert.equal(valueOf(final, 'etcd_server_is_learner'), 0);
        assert.ok(valueOf(final, 'etcd_server_leader_changes_seen_total') >= 1);
        assert.equal(valueOf(final, 'etcd_server_proposals_pending'), 0);
        assert.equal(valueOf(final, 'etcd_server_quota_backend_bytes'), 2 * 1024 ** 3);
        assert.equal(valueOf(final, 'etcd_debugging_mvcc_keys_total'), Number(all['count']), `${t.kind}: keys_total = live keys`);
        const revision = Number((all['header'] as Msg)['revision']);
        assert.equal(valueOf(final, 'etcd_debugging_mvcc_current_revision'), revision, `${t.kind}: current_revision`);
        assert.equal(valueOf(final, 'etcd_mvcc_db_total_size_in_bytes'), Number(status['dbSize']), `${t.kind}: db size = Status.dbSize`);
        const inUse = valueOf(final, 'etcd_mvcc_db_total_size_in_use_in_bytes');
        assert.ok(inUse > 0 && inUse <= Number(status['dbSize']), `${t.kind}: size in use ${inUse}`);
        // Open watch while scraped "during"; none after.
        assert.ok(valueOf(during, 'etcd_debugging_mvcc_watcher_total') >= 1, `${t.kind}: watcher_total during a watch`);
        assert.ok(valueOf(during, 'etcd_debugging_mvcc_watch_stream_total') >= 1, `${t.kind}: watch_stream_total during a watch`);
        for (const mv of MOVERS) assert.ok(mv.read(after) > mv.read(before), `${t.kind}: ${mv.what} did not move (${mv.read(before)} -> ${mv.read(after)})`);
      } finally {
        client.close();
      }
    }
    const e = seen.etcd?.after ?? assert.fail('no etcd scrape');
    const c = seen.cairn?.after ?? assert.fail('no cairn scrape');
    compareWithEtcd(e, c, LISTED.filter((l) => l.peers !== true && !l.name.startsWith('process_')).map((l) => l.name));
    // Every KV method's handled series exists for every code (go-grpc-prometheus pre-initialises them).
    for (const method of ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']) {
      for (const m of [e, c]) assert.equal(m.get('grpc_server_handled_total')?.samples.filter((s) => s.labels['grpc_method'] === method).length, 17, `${method}: 17 codes`);
    }
    assert.ok(c.has('nodejs_heap_size_used_bytes'), 'cairn: nodejs_* defaults');
  } finally {
    await Promise.all([etcd.proc.stop(), cairn.proc.stop()]);
  }
});

// ---------- three members ----------

interface Trio {
  readonly procs: ServerProc[];
  readonly urls: string[];
  readonly ids: string[];
}

/** Three members on fresh ports, each with its own --listen-metrics-urls. */
async function startTrio(kind: TargetKind): Promise<Trio> {
  const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const peer = (i: number): string => `http://127.0.0.1:${ports[i] ?? 0}`;
  const urls = [3, 4, 5].map((i) => `http://127.0.0.1:${ports[i] ?? 0}`);
  const token = `metrics-${kind}-${process.pid}`;
  const names = ['a', 'b', 'c'].map((n) => `${n}${process.pid}`);
  const ic = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const start = kind === 'etcd' ? startEtcd : startCairn;
  const procs = await Promise.all(
    names.map((name, i) =>
      start({
        name,
        readyTimeoutMs: 30_000,
        extraArgs: [
          '--listen-peer-urls', peer(i),
          '--initial-advertise-peer-urls', peer(i),
          '--initial-cluster', ic,
          '--initial-cluster-state', 'new',
          '--initial-cluster-token', token,
          '--listen-metrics-urls', urls[i] ?? '',
        ],
      }),
    ),
  );
  const ids = await Promise.all(
    procs.map(async (p) => {
      const c = new EtcdClient(p.endpoint);
      try {
        const s = ok(await c.unary('Maintenance', 'Status', {}), 'status');
        const hdr = s['header'] as Msg;
        return BigInt(String(hdr['member_id'])).toString(16);
      } finally {
        c.close();
      }
    }),
  );
  return { procs, urls, ids };
}

/** etcd (Go client) lists a labelled family only once it has a child: absent = 0 here. */
const peerSum = (m: Families, family: string, labels: Record<string, string>, sample = family): number => (m.has(family) ? sumOf(m, family, labels, sample) : 0);
const rttCount = (m: Families, to: string): number => peerSum(m, 'etcd_network_peer_round_trip_time_seconds', { To: to }, 'etcd_network_peer_round_trip_time_seconds_count');
const sentBytes = (m: Families, to: string): number => peerSum(m, 'etcd_network_peer_sent_bytes_total', { To: to });

test('three members: one leader in the gauges, peer series per peer and moving, send failures to a stopped member; peer families as etcd 3.4.23', async () => {
  const peerNames = LISTED.filter((l) => l.peers === true).map((l) => l.name);
  const families: Partial<Record<TargetKind, Families>> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    const trio = await startTrio(kind);
    try {
      const client = new EtcdClient(trio.procs[0]?.endpoint ?? '');
      try {
        let leader = -1;
        await pollUntil('one leader agreed in the gauges', async () => {
          const ms = await Promise.all(trio.urls.map(scrape));
          const leaders = ms.map((m) => valueOf(m, 'etcd_server_is_leader'));
          leader = leaders.indexOf(1);
          return leaders.filter((v) => v === 1).length === 1 && ms.every((m) => valueOf(m, 'etcd_server_has_leader') === 1);
        }, 15_000, 200);
        const lead = trio.urls[leader] ?? assert.fail('no leader url');
        const before = await scrape(lead);
        for (let i = 0; i < 30; i++) ok(await client.put({ key: Buffer.from(`p${i}`), value: Buffer.alloc(100) }), 'put');
        const others = trio.ids.filter((_, i) => i !== leader);
        // Round trips are measured by pings (Cairn: every second; etcd: its prober); wait for a new one.
        let after = before;
        await pollUntil('new round trips and bytes to every peer', async () => {
          after = await scrape(lead);
          return others.every((id) => rttCount(after, id) > rttCount(before, id) && sentBytes(after, id) > sentBytes(before, id));
        }, 15_000, 250);
        checkListed(after, `${kind} leader`, true);
        for (const id of others) {
          assert.ok(sumOf(after, 'etcd_network_peer_received_bytes_total', { From: id }) > 0, `${kind}: bytes received from ${id}`);
        }
        for (const [i, url] of trio.urls.entries()) {
          if (i === leader) continue;
          const m = await scrape(url);
          checkListed(m, `${kind} follower`, true);
          assert.equal(valueOf(m, 'etcd_server_is_leader'), 0);
          assert.equal(valueOf(m, 'etcd_server_has_leader'), 1);
          assert.ok(valueOf(m, 'etcd_server_leader_changes_seen_total') >= 1);
          assert.ok(valueOf(m, 'etcd_server_proposals_applied_total') >= valueOf(before, 'etcd_server_proposals_applied_total'), `${kind}: follower applies`);
          assert.ok(valueOf(m, 'etcd_mvcc_put_total') >= 30, `${kind}: follower's mvcc puts count applied puts`);
        }
        // A stopped follower: the leader's sends to it fail and are counted.
        const victim = trio.ids.findIndex((_, i) => i !== leader);
        const victimId = trio.ids[victim] ?? '';
        await trio.procs[victim]?.stop();
        await pollUntil('send failures to the stopped member', async () => {
          const leaderClient = new EtcdClient(trio.procs[leader]?.endpoint ?? '');
          try {
            ok(await leaderClient.put({ key: Buffer.from('after-stop'), value: Buffer.from('x') }), 'put after stop');
          } finally {
            leaderClient.close();
          }
          const m = await scrape(lead);
          return peerSum(m, 'etcd_network_peer_sent_failures_total', { To: victimId }) > 0;
        }, 20_000, 250);
        families[kind] = await scrape(lead);
      } finally {
        client.close();
      }
    } finally {
      await Promise.all(trio.procs.map((p) => p.stop()));
    }
  }
  compareWithEtcd(families.etcd ?? assert.fail('no etcd'), families.cairn ?? assert.fail('no cairn'), peerNames);
});
