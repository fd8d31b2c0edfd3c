// The /metrics series that move only in a cluster: a member whose raft log is trimmed every 50
// entries (snapshot points: etcd saves and fsyncs a .snap file there; Cairn fsyncs LMDB and releases
// the WAL), a learner that can only catch up from the leader's snapshot (the snapshot database it
// receives and fsyncs: etcd's snap_db series), its promotion by the leader, and the peer connection
// between them. Cairn only: etcd 3.6.8 cannot be given --snapshot-catchup-entries through the
// cluster harness's config file (it takes the value as a string and refuses it), and with its
// default of 5000 entries its learner did not become ready within 30 s here ('too many requests'
// while publishing itself). etcd 3.6.8's names, types and help texts for these series are checked in
// etcd36-series.test.ts; what etcd counts for each is in server/api/metrics.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster, type Cluster } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { addAndStart, promoteWhenReady } from '../membership/lib.js';
import { parseMetrics, sumOf, type Family } from './promtext.js';

const TIMEOUT_MS = 240_000;
const KEYS = 300;

type Families = Map<string, Family>;

async function scrape(c: Cluster, name: string): Promise<Families> {
  const res = await fetch(`${c.member(name).clientUrl}/metrics`);
  assert.equal(res.status, 200);
  return parseMetrics(await res.text());
}

const count = (m: Families, family: string): number => (m.has(family) ? sumOf(m, family, {}, `${family}_count`) : 0);

async function steps(c: Cluster): Promise<string[]> {
  const c1 = c.client('m1');
  for (let i = 0; i < KEYS; i++) assert.ok((await c1.put({ key: Buffer.from(`k/${i}`), value: Buffer.from(`v${i}`) })).ok);
  const { id } = await addAndStart(c, 'm1', 'm2', true);
  await pollUntil('m2 to have the keys written before it joined', async () => {
    const r = await c.client('m2').range({ key: Buffer.from('k/'), range_end: Buffer.from('k0'), count_only: true, serializable: true });
    return r.ok && Number(r.value['count']) === KEYS;
  }, 60_000, 100);
  await promoteWhenReady(c, 'm1', 'm2', id);
  const leader = await scrape(c, 'm1');
  const joined = await scrape(c, 'm2');
  const m2 = BigInt(id).toString(16);
  const active = leader.get('etcd_network_active_peers')?.samples.filter((s) => s.labels['Remote'] === m2).map((s) => s.value) ?? [];
  return [
    `leader: snapshot points fsynced: ${count(leader, 'etcd_snap_fsync_duration_seconds') > 0}`,
    `leader: snapshot points saved: ${count(leader, 'etcd_debugging_snap_save_total_duration_seconds') > 0}`,
    `leader: learners promoted: ${sumOf(leader, 'etcd_server_learner_promote_successes')}`,
    `leader: connection to the learner active: ${JSON.stringify(active)}`,
    `learner: snapshot databases received: ${count(joined, 'etcd_snap_db_save_total_duration_seconds')}`,
    `learner: snapshot databases fsynced: ${count(joined, 'etcd_snap_db_fsync_duration_seconds')}`,
    `learner: learners promoted: ${sumOf(joined, 'etcd_server_learner_promote_successes')}`,
  ];
}

test('cairn: snapshot, learner and peer series in a cluster', { timeout: TIMEOUT_MS }, async () => {
  // The leader compacts its log after 50 entries and keeps 10: a new member can only catch up from a snapshot.
  const cairn = await withCluster('cairn', { size: 1, extraArgs: ['--snapshot-count=50', '--snapshot-catchup-entries=10'] }, steps);
  assert.deepEqual(cairn, [
    'leader: snapshot points fsynced: true',
    'leader: snapshot points saved: true',
    'leader: learners promoted: 1',
    'leader: connection to the learner active: [1]',
    'learner: snapshot databases received: 1',
    'learner: snapshot databases fsynced: 1',
    'learner: learners promoted: 0',
  ]);
});
