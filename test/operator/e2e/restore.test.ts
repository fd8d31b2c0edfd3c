// test-file-timeout: 10 min
// Restore into a cluster (spec.bootstrap.fromBackup), end to end on localkube with the operator in the
// cluster and a real S3 server (SeaweedFS on the node IP, reachable from the pods and the host):
//   - a 3-member cluster (volumes retained on delete) gets keys; a backup is taken from the host with
//     backup/'s runBackup against a member's pod IP; more writes follow; the cluster is deleted and
//     applied again under the same name with fromBackup.s3: it holds exactly the keys at the backup's
//     revision, its revisions are bumped past it by a billion and older revisions read as compacted;
//     nothing starts on the old data (pod 0 moves it aside, says so, and restores; the others join as
//     new members: new cluster id, no old member id); Restored=True,
//     status.restore names the object; restore time reported;
//   - an on-demand EtcdBackup of the same state (the operator's backup runner) restored into a new
//     1-member cluster through backupRef holds the same keys;
//   - a truncated object and a corrupt one (same size, one byte flipped) are refused before any member
//     exists: no StatefulSet, Restored=False/RestoreRefused naming the reason, one Warning Event, no
//     retry loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { localkube, type LocalKube } from '../../harness/localkube.js';
import { pollUntil } from '../../harness/poll.js';
import { S3_ADMIN, startS3, type S3Server } from '../../harness/s3.js';
import { EtcdClient, unaryOk, type Msg } from '../../harness/client.js';
import { runBackup, SnapshotSource, type BackupRecord } from '../../../operator/backup/index.js';
import { asObj, availableWith, clusterManifest, condOf, eventsOf, needLocalkube, statusOf, waitStatus, type Obj } from './lk-status.js';

const NODE_IP = '10.200.0.1';
const BUCKET = 'restores';
const BUMP = 1_000_000_000;
const KEYS = 300;

function cluster(ns: string, name: string, extra: Obj = {}): string {
  return clusterManifest(ns, name, 'Retain', extra);
}

function fromS3(s3: S3Server, key: string): Obj {
  return { bootstrap: { fromBackup: { s3: { bucket: BUCKET, key, endpoint: s3.endpoint, forcePathStyle: true, credentialsSecretRef: { name: 's3-creds' } } } } };
}

/** Every key under `prefix` with its value, and the header revision. */
async function readAll(endpoint: string, prefix: string): Promise<{ kvs: Map<string, string>; revision: number }> {
  const c = new EtcdClient(endpoint);
  try {
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
    const r = await unaryOk(c, 'KV', 'Range', { key: Buffer.from(prefix), range_end: end });
    const kvs = new Map(((r['kvs'] ?? []) as Msg[]).map((kv) => [(kv['key'] as Buffer).toString('utf8'), (kv['value'] as Buffer).toString('utf8')]));
    return { kvs, revision: Number(asObj(r['header'])['revision']) };
  } finally {
    c.close();
  }
}

async function put(endpoint: string, key: string, value: string): Promise<number> {
  const c = new EtcdClient(endpoint);
  try {
    const r = await unaryOk(c, 'KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value) });
    return Number(asObj(r['header'])['revision']);
  } finally {
    c.close();
  }
}

async function podIp(lk: LocalKube, ns: string, pod: string): Promise<string> {
  return (await lk.kubectlOk(['get', 'pod', '-n', ns, pod, '-o', 'jsonpath={.status.podIP}'])).trim();
}

/** Copies the backup object under `key` with its metadata, the body changed by `mutate`. */
async function badCopy(s3: S3Server, rec: BackupRecord, key: string, mutate: (b: Buffer) => Buffer): Promise<void> {
  const c = s3.client();
  const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: rec.key }));
  const body = Buffer.from(await got.Body?.transformToByteArray() ?? new Uint8Array());
  assert.equal(body.length, rec.sizeBytes);
  await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: mutate(body), Metadata: got.Metadata }));
}

test('restore into a cluster on localkube (spec.bootstrap.fromBackup)', { timeout: 10 * 60_000 }, async (t) => {
  if (!needLocalkube(t)) return;
  const lk = await localkube();
  const ns = `restore-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  const s3 = await startS3({ ip: NODE_IP, buckets: [BUCKET] });
  try {
    await lk.apply(JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's3-creds', namespace: ns }, stringData: { AWS_ACCESS_KEY_ID: S3_ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_ADMIN.secretAccessKey } }));
    await lk.apply(cluster(ns, 'db'));
    await waitStatus(lk, ns, 'db', 'Available, 3 voters', availableWith(3), 300_000);
    const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'db-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const ep = `${ip}:2379`;

    const expected = new Map<string, string>();
    let lastRev = 0;
    for (let i = 0; i < KEYS; i++) {
      const k = `k/${String(i).padStart(4, '0')}`;
      const v = randomBytes(48).toString('hex');
      lastRev = await put(ep, k, v);
      expected.set(k, v);
    }
    const source = new SnapshotSource(`${await podIp(lk, ns, 'db-1')}:2379`);
    let rec: BackupRecord;
    try {
      rec = await runBackup({ s3: s3.client(), bucket: BUCKET, cluster: `${ns}-db`, source, now: () => new Date(), log: () => undefined });
    } finally {
      source.close();
    }
    t.diagnostic(`backup: ${rec.uri} ${String(rec.sizeBytes)} bytes at revision ${String(rec.revision)} in ${String(rec.end.getTime() - rec.start.getTime())} ms`);
    assert.equal(rec.revision, lastRev, 'no write between the last put and the backup');
    // The same state through the operator's own backup (an on-demand EtcdBackup): a backupRef restore below.
    const destination = { s3: { bucket: BUCKET, endpoint: s3.endpoint, forcePathStyle: true, credentialsSecretRef: { name: 's3-creds' } } };
    await lk.apply(JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdBackup', metadata: { name: 'db-before', namespace: ns }, spec: { clusterName: 'db', destination } }));
    let eb: Obj = {};
    await pollUntil('EtcdBackup db-before Succeeded', async () => {
      const r = await lk.kubectl(['get', 'etcdbackup', '-n', ns, 'db-before', '-o', 'json']);
      eb = r.code === 0 ? asObj((JSON.parse(r.stdout) as Obj)['status']) : {};
      if (eb['phase'] === 'Failed') throw new Error(`EtcdBackup failed: ${JSON.stringify(eb)}`);
      return eb['phase'] === 'Succeeded';
    }, 180_000, 1000);
    t.diagnostic(`EtcdBackup db-before: ${String(eb['uri'])} ${String(eb['size'])} bytes at revision ${String(eb['revision'])}`);
    // After the backup: more keys and a changed value the restored cluster must not have.
    for (let i = 0; i < 50; i++) await put(ep, `k/after-${String(i)}`, 'x');
    await put(ep, 'k/0000', 'changed after the backup');

    await t.test('delete, then the same name restored from the backup on the retained volumes', async () => {
      const old = await statusOf(lk, ns, 'db');
      const oldIds = new Set(((old['members'] ?? []) as Array<{ id: string }>).map((m) => m.id));
      await lk.kubectlOk(['delete', 'etcdcluster', '-n', ns, 'db']);
      await pollUntil('the old pods are gone', async () => (await lk.kubectl(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/instance=db', '-o', 'name'])).stdout.trim() === '', 120_000, 500);
      const pvcs = (await lk.kubectlOk(['get', 'pvc', '-n', ns, '-o', 'jsonpath={.items[*].metadata.name}'])).split(' ').filter((x) => x !== '');
      assert.ok(pvcs.includes('data-db-0') && pvcs.includes('wal-db-0'), `volumes retained: ${pvcs.join(' ')}`);
      const t0 = Date.now();
      await lk.apply(cluster(ns, 'db', fromS3(s3, rec.key)));
      const st = await waitStatus(lk, ns, 'db', 'restored and Available, 3 voters', (s) => availableWith(3)(s) && condOf(s, 'Restored')?.status === 'True', 300_000);
      t.diagnostic(`apply -> Restored and Available (3 members, ${String(rec.sizeBytes)} byte backup): ${String(Date.now() - t0)} ms`);
      const restore = asObj(st['restore']);
      assert.equal(restore['uri'], rec.uri);
      assert.equal(restore['sha256'], rec.sha256);
      assert.equal(restore['size'], rec.sizeBytes);
      assert.equal(condOf(st, 'Restored')?.reason, 'RestoredFromBackup');
      const ip2 = (await lk.kubectlOk(['get', 'service', '-n', ns, 'db-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
      const got = await readAll(`${ip2}:2379`, 'k/');
      assert.deepEqual([...got.kvs.keys()].sort(), [...expected.keys()].sort(), 'exactly the keys at the backup');
      for (const [k, v] of expected) assert.equal(got.kvs.get(k), v, k);
      assert.ok(got.revision >= rec.revision + BUMP, `revision ${String(got.revision)} bumped past ${String(rec.revision)} + ${String(BUMP)}`);
      const next = await put(`${ip2}:2379`, 'k/new', 'y');
      assert.ok(next > rec.revision + BUMP, `a new write gets revision ${String(next)}`);
      const c = new EtcdClient(`${ip2}:2379`);
      try {
        const old = await c.range({ key: Buffer.from('k/0001'), revision: String(rec.revision) });
        assert.equal(old.ok, false, 'a revision from before the restore reads as compacted');
        if (!old.ok) assert.match(old.details, /required revision has been compacted/);
      } finally {
        c.close();
      }
      // Nothing started on the old data: pod 0 moved it aside and restored; the others joined the new
      // cluster as new members (their old claims moved aside, or deleted as stale by the operator).
      assert.notEqual(st['clusterId'], old['clusterId'], 'a new cluster id');
      const ids = ((st['members'] ?? []) as Array<{ id: string }>).map((m) => m.id);
      assert.deepEqual(ids.filter((id) => oldIds.has(id)), [], `no old member id among ${ids.join(', ')}`);
      const log0 = await lk.kubectlOk(['logs', '-n', ns, 'db-0', '--tail=-1']);
      assert.match(log0, /moved another cluster's data aside/, 'db-0 moved the old data aside');
      assert.match(log0, /restored the backup into this member/);
      for (const pod of ['db-1', 'db-2']) {
        const log = await lk.kubectlOk(['logs', '-n', ns, pod, '--tail=-1']);
        assert.doesNotMatch(log, /the data dir holds this member/, `${pod} never started on data it found`);
        assert.match(log, /joining/, `${pod} joined`);
        assert.doesNotMatch(log, /restored the backup into this member/, `${pod} did not restore`);
      }
      const line = (await lk.kubectlOk(['logs', '-n', ns, 'db-0', '--tail=-1'])).split('\n').find((l) => l.includes('restored the backup into this member')) ?? '';
      t.diagnostic(`pod 0: ${line}`);
    });

    await t.test('a new cluster restored from an EtcdBackup (backupRef) holds the same keys', async () => {
      const t0 = Date.now();
      await lk.apply(cluster(ns, 'fromref', { replicas: 1, bootstrap: { fromBackup: { backupRef: { name: 'db-before' } } } }));
      const st = await waitStatus(lk, ns, 'fromref', 'restored and Available, 1 voter', (x) => availableWith(1)(x) && condOf(x, 'Restored')?.status === 'True', 240_000);
      t.diagnostic(`backupRef: apply -> Restored and Available (1 member): ${String(Date.now() - t0)} ms`);
      assert.equal(asObj(st['restore'])['uri'], eb['uri']);
      assert.equal(asObj(st['restore'])['sha256'], eb['sha256']);
      const ipr = (await lk.kubectlOk(['get', 'service', '-n', ns, 'fromref-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
      const got = await readAll(`${ipr}:2379`, 'k/');
      assert.deepEqual([...got.kvs.entries()].sort(), [...expected.entries()].sort(), 'exactly the keys at the backup');
      assert.ok(got.revision >= Number(eb['revision']) + BUMP);
    });

    await t.test('a truncated or corrupt object is refused before any member exists', async () => {
      await badCopy(s3, rec, `${rec.key}.truncated`, (b) => b.subarray(0, b.length - 1000));
      await badCopy(s3, rec, `${rec.key}.corrupt`, (b) => {
        const x = Buffer.from(b);
        x[Math.floor(x.length / 2)] = (x[Math.floor(x.length / 2)] ?? 0) ^ 0xff;
        return x;
      });
      for (const [name, key, why] of [
        ['truncated', `${rec.key}.truncated`, /bytes/],
        ['corrupt', `${rec.key}.corrupt`, /corrupt|SHA-256/],
      ] as const) {
        await lk.apply(cluster(ns, name, fromS3(s3, key)));
        const st = await waitStatus(lk, ns, name, 'Restored=False RestoreRefused', (s) => condOf(s, 'Restored')?.reason === 'RestoreRefused', 120_000);
        assert.equal(condOf(st, 'Restored')?.status, 'False');
        assert.match(condOf(st, 'Restored')?.message ?? '', why);
        assert.equal(condOf(st, 'Degraded')?.reason, 'RestoreRefused');
        t.diagnostic(`${name}: ${condOf(st, 'Restored')?.message ?? ''}`);
      }
      // No tight loop: the verdict stands, nothing is created, one refusal Event each (after a while).
      const since = Date.now();
      await pollUntil('ten seconds pass', () => Promise.resolve(Date.now() - since >= 10_000), 15_000, 1000);
      for (const name of ['truncated', 'corrupt']) {
        const sts = await lk.kubectl(['get', 'statefulset', '-n', ns, name, '-o', 'name']);
        assert.notEqual(sts.code, 0, `no StatefulSet ${name}`);
        const pods = await lk.kubectlOk(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/instance=${name}`, '-o', 'name']);
        assert.equal(pods.trim(), '', `no pod of ${name}`);
        const refused = (await eventsOf(lk, ns, name)).filter((e) => e.reason === 'RestoreRefused');
        assert.equal(refused.length, 1, `one RestoreRefused event for ${name}`);
        assert.equal(condOf(await statusOf(lk, ns, name), 'Restored')?.reason, 'RestoreRefused');
      }
    });
  } finally {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
    await s3.stop();
  }
});
