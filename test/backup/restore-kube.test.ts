// A kube-apiserver watching a Cairn member that is restored from a backup re-lists instead of missing
// events (issue 15). Real processes on loopback: one Cairn member, kube-apiserver 1.34 on it, SeaweedFS.
// ConfigMaps are created through the apiserver, a backup is taken with operator/backup runBackup, more
// ConfigMaps are created, a watch is opened through the apiserver; the member is stopped, its data dir
// restored from the backup with the operator's restore path (restoreMember: download verified, `cairn
// snapshot restore --bump-revision --mark-compacted`) and the member started again on the same
// endpoint. Then:
//   - the watch opened before the restore ends, and a client that re-watches from the last
//     resourceVersion it saw is told 410 Gone ("too old resource version"), so it re-lists: no event is
//     silently missed;
//   - a LIST through the apiserver shows exactly the ConfigMaps of the backup (those created after it
//     are gone), the same as the store holds;
//   - resourceVersions after the restore (the list's, a new ConfigMap's) are above every one seen
//     before, and a new watch sees a ConfigMap created after the restore.
// Then the same restore WITHOUT --bump-revision/--mark-compacted shows why they matter: the store's
// revision goes back, a new ConfigMap gets a resourceVersion the clients have already seen for another
// state, and nothing tells the apiserver's watch cache: it keeps serving a ConfigMap the store no
// longer holds and lacks the one it does.
// test-file-timeout: 4 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync, rmSync } from 'node:fs';
import { runBackup, SnapshotSource, type BackupRecord } from '../../operator/backup/index.js';
import type { Cluster } from '../harness/cluster.js';
import type { EtcdClient, Msg } from '../harness/client.js';
import { kubeBins, startBackend, startKubeApiserver, type KubeApiserver } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { startS3, weedBin } from '../harness/s3.js';
import { LineSplitter, parseWatchLine, type WatchEvent } from '../bench/kube-report.js';
import { clientFor, logSink, restoreFromRecord } from './lib.js';

const BUCKET = 'kube-backups';
const NS = 'default';
const CM_PATH = `/api/v1/namespaces/${NS}/configmaps`;
const BEFORE = 8;
/** Enough ConfigMaps after the backup that the no-bump restore's new writes reuse revisions already seen. */
const AFTER = 24;
const RECOVER_MS = 90_000;

const log = (msg: string, fields: Record<string, unknown> = {}): void => {
  console.error(JSON.stringify({ ts: new Date().toISOString(), msg: `restore-kube: ${msg}`, ...fields }));
};

/** One watch request through the apiserver: every event it delivered, and whether and how it ended. */
class WatchStream {
  readonly events: WatchEvent[] = [];
  status = 0;
  /** The body of a non-200 answer (a Status). */
  refusal = '';
  ended = false;
  endReason = '';
  private readonly req;

  constructor(api: KubeApiserver, fromRv: string) {
    const path = `${CM_PATH}?watch=1&allowWatchBookmarks=false&timeoutSeconds=600&resourceVersion=${fromRv}`;
    this.req = httpsRequest(new URL(path, api.url), { method: 'GET', agent: false, ca: readFileSync(api.caFile), headers: { authorization: `Bearer ${api.token}`, accept: 'application/json' } }, (r) => this.read(r));
    this.req.on('error', (e) => this.end(`request error: ${e.message}`));
    this.req.end();
  }

  private read(r: IncomingMessage): void {
    this.status = r.statusCode ?? 0;
    const lines = new LineSplitter();
    r.setEncoding('utf8');
    r.on('data', (chunk: string) => {
      if (this.status !== 200) this.refusal += chunk;
      else for (const line of lines.feed(chunk)) this.parse(line);
    });
    r.on('end', () => this.end(`stream ended (HTTP ${this.status})`));
    r.on('error', (e) => this.end(`response error: ${e.message}`));
  }

  private parse(line: string): void {
    const ev = parseWatchLine(line);
    if (ev !== undefined) this.events.push(ev);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = why;
  }

  /** The resourceVersion a reflector would re-watch from: its last non-error event's. */
  lastRv(fallback: string): string {
    const last = this.events.filter((e) => e.type !== 'ERROR' && e.resourceVersion !== '').pop();
    return last === undefined ? fallback : last.resourceVersion;
  }

  /** 410 Gone: as an ERROR event (the apiserver's way in a watch) or as the HTTP status; its message. */
  gone(): string | undefined {
    if (this.status === 410) return this.refusal;
    const e = this.events.find((x) => x.type === 'ERROR' && /too old resource version|Expired|Gone/i.test(x.message));
    return e?.message;
  }

  close(): void {
    this.req.destroy();
  }
}

async function createCm(api: KubeApiserver, name: string): Promise<number> {
  const r = await api.request('POST', CM_PATH, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { name } });
  assert.equal(r.status, 201, `create ${name}: ${r.body}`);
  return Number((JSON.parse(r.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
}

/** A LIST through the apiserver (as a client sends it: no resourceVersion, so a consistent read). */
async function listCms(api: KubeApiserver): Promise<{ status: number; names: string[]; rv: number; body: string }> {
  const r = await api.request('GET', CM_PATH, undefined, { timeoutMs: 10_000 });
  if (r.status !== 200) return { status: r.status, names: [], rv: 0, body: r.body };
  const l = JSON.parse(r.body) as { metadata: { resourceVersion: string }; items: Array<{ metadata: { name: string } }> };
  return { status: 200, names: l.items.map((i) => i.metadata.name).sort(), rv: Number(l.metadata.resourceVersion), body: '' };
}

/** The ConfigMaps the store itself holds in the namespace, read with an etcd client. */
async function storeCms(c: EtcdClient): Promise<{ names: string[]; revision: number }> {
  const prefix = `/registry/configmaps/${NS}/`;
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  const r = await c.range({ key: Buffer.from(prefix), range_end: end, keys_only: true }, { timeoutMs: 10_000 });
  if (!r.ok) throw new Error(`range ${prefix}: ${r.details}`);
  const names = (r.value['kvs'] as Msg[]).map((kv) => (kv['key'] as Buffer).toString('utf8').slice(prefix.length)).sort();
  return { names, revision: Number((r.value['header'] as Msg)['revision']) };
}

/** Stops the member, restores its data dir from the backup (bump 0: no bump, no compaction mark), starts it on the same endpoint. */
async function restoreInPlace(cluster: Cluster, s3: ReturnType<typeof clientFor>, rec: BackupRecord, bumpRevision: number | undefined): Promise<{ snapshotRevision: number; startRevision: number }> {
  const m = cluster.members[0];
  assert.ok(m !== undefined);
  await cluster.stop(m.name);
  rmSync(m.dataDir, { recursive: true, force: true });
  const res = await restoreFromRecord(s3, BUCKET, rec, { name: m.name, initialCluster: cluster.initialCluster(), initialClusterToken: cluster.token, initialAdvertisePeerUrls: m.peerUrl, dataDir: m.dataDir }, bumpRevision);
  await cluster.start(m.name);
  log('member restored and started', { bumpRevision: bumpRevision ?? 'default', snapshotRevision: res.snapshotRevision, startRevision: res.startRevision, endpoint: m.endpoint });
  return res;
}

test('a kube-apiserver watching a restored member re-lists instead of missing events; without the bump it serves stale data', { timeout: 230_000 }, async (t) => {
  const missing = missingPrerequisite(() => {
    weedBin();
    kubeBins();
  });
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const [s3server, cluster] = await Promise.all([startS3({ buckets: [BUCKET] }), startBackend('cairn', 1)]);
  const s3 = clientFor(s3server);
  let api: KubeApiserver | undefined;
  const watches: WatchStream[] = [];
  try {
    const member = cluster.members[0];
    assert.ok(member !== undefined);
    const store = cluster.client(member.name);
    api = await startKubeApiserver({ etcdServers: [member.clientUrl] });
    const a = api;
    const seen: number[] = [];
    for (let i = 0; i < BEFORE; i++) seen.push(await createCm(a, `before-${i}`));
    const atBackup = await listCms(a);
    assert.equal(atBackup.status, 200);
    seen.push(atBackup.rv);

    const source = new SnapshotSource(member.endpoint);
    const rec = await runBackup({ s3, bucket: BUCKET, prefix: 'kube/', cluster: 'default-kube', source, now: () => new Date(), log: logSink().log });
    source.close();
    log('backup taken', { key: rec.key, bytes: rec.sizeBytes, revision: rec.revision });

    for (let i = 0; i < AFTER; i++) seen.push(await createCm(a, `after-${i}`));
    const beforeRestore = await listCms(a);
    seen.push(beforeRestore.rv);
    const maxSeen = Math.max(...seen);
    // A watch from the list's resourceVersion, as a reflector opens one; it sees a change made now.
    const w1 = new WatchStream(a, String(beforeRestore.rv));
    watches.push(w1);
    const lastCreated = await createCm(a, 'watched-before-restore');
    await pollUntil('the first watch to see watched-before-restore', () => Promise.resolve(w1.events.some((e) => e.name === 'watched-before-restore')), 20_000);
    const maxSeenBeforeRestore = Math.max(maxSeen, lastCreated);

    // ---- restore with the operator's defaults: --bump-revision 1e9 --mark-compacted ----
    const res = await restoreInPlace(cluster, s3, rec, undefined);
    await pollUntil('the watch opened before the restore to end', () => Promise.resolve(w1.ended), RECOVER_MS, 100);
    log('first watch ended', { reason: w1.endReason, events: w1.events.length, errors: w1.events.filter((e) => e.type === 'ERROR') });
    assert.ok(!w1.events.some((e) => e.name.startsWith('after-') && e.type === 'DELETED'), 'the watch does not pretend the ConfigMaps lost in the restore were deleted');
    // A reflector re-watches from the last resourceVersion it saw: it is told 410 Gone and must re-list.
    const rewatchFrom = w1.lastRv(String(beforeRestore.rv));
    let rewatch: WatchStream | undefined;
    await pollUntil(
      'a re-watch from the last seen resourceVersion to be answered 410 Gone',
      async () => {
        if (w1.gone() !== undefined) return true;
        rewatch?.close();
        rewatch = new WatchStream(a, rewatchFrom);
        watches.push(rewatch);
        const rw = rewatch;
        await pollUntil('a re-watch answer', () => Promise.resolve(rw.events.length > 0 || rw.ended), 15_000, 50).catch(() => undefined);
        return rw.gone() !== undefined;
      },
      RECOVER_MS,
      500,
    );
    const goneMsg = w1.gone() ?? rewatch?.gone() ?? '';
    log('watch from before the restore: 410 Gone', { from: rewatchFrom, message: goneMsg });
    assert.match(goneMsg, /too old resource version|Expired|Gone/i);

    // A LIST through the apiserver: exactly the backup's ConfigMaps, as the store holds them.
    let after: Awaited<ReturnType<typeof listCms>> | undefined;
    await pollUntil(
      'a LIST through the apiserver after the restore',
      async () => {
        after = await listCms(a).catch(() => undefined);
        return after?.status === 200 && after.rv > maxSeenBeforeRestore;
      },
      RECOVER_MS,
      250,
    );
    assert.ok(after !== undefined);
    assert.deepEqual(after.names, atBackup.names, 'the LIST holds exactly the ConfigMaps at the backup');
    assert.deepEqual((await storeCms(store)).names, atBackup.names, 'so does the store');
    assert.ok(after.rv >= res.startRevision, `the list's resourceVersion ${after.rv} is at least the bumped start ${res.startRevision}`);
    assert.ok(after.rv > maxSeenBeforeRestore, `the list's resourceVersion ${after.rv} is above every one seen before (${maxSeenBeforeRestore})`);

    // A new watch from that list sees a ConfigMap created after the restore, with a bumped resourceVersion.
    const w2 = new WatchStream(a, String(after.rv));
    watches.push(w2);
    const postRv = await createCm(a, 'post-restore');
    assert.ok(postRv > maxSeenBeforeRestore, `post-restore's resourceVersion ${postRv} is above every one seen before (${maxSeenBeforeRestore})`);
    await pollUntil('the new watch to see post-restore', () => Promise.resolve(w2.events.some((e) => e.type === 'ADDED' && e.name === 'post-restore' && Number(e.resourceVersion) === postRv)), 20_000);
    log('after the bumped restore', { listRv: after.rv, postRestoreRv: postRv, maxSeenBefore: maxSeenBeforeRestore, snapshotRevision: res.snapshotRevision });
    w2.close();

    // ---- the same restore WITHOUT --bump-revision/--mark-compacted ----
    const cached = await listCms(a);
    assert.ok(cached.names.includes('post-restore'));
    const w3 = new WatchStream(a, String(cached.rv));
    watches.push(w3);
    await pollUntil('the third watch to be open', () => Promise.resolve(w3.status === 200), 20_000);
    const plain = await restoreInPlace(cluster, s3, rec, 0);
    assert.equal(plain.startRevision, plain.snapshotRevision, 'no bump');
    let reusedRv = 0;
    await pollUntil(
      'a create through the apiserver after the plain restore',
      async () => {
        const r = await a.request('POST', CM_PATH, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'no-bump' }, data: {} }, { timeoutMs: 10_000 }).catch(() => undefined);
        if (r?.status !== 201) return false;
        reusedRv = Number((JSON.parse(r.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
        return true;
      },
      RECOVER_MS,
      250,
    );
    // The revision went back: the new ConfigMap's resourceVersion was already handed out for another state.
    assert.ok(reusedRv <= maxSeenBeforeRestore, `no-bump's resourceVersion ${reusedRv} is one clients saw before (<= ${maxSeenBeforeRestore}): reused`);
    const inStore = await storeCms(store);
    assert.deepEqual(inStore.names, [...atBackup.names, 'no-bump'].sort(), 'the store holds the backup and no-bump');
    // Nothing told the apiserver's watch cache: its LIST is at the old (higher) revision and still
    // holds post-restore, which the store lost, and lacks no-bump, which the store holds.
    const stale = await listCms(a);
    log('after the plain restore', { storeRevision: inStore.revision, noBumpRv: reusedRv, apiserverListRv: stale.rv, apiserverNames: stale.names, storeNames: inStore.names, thirdWatchEnded: w3.ended, thirdWatchEvents: w3.events });
    assert.equal(stale.status, 200);
    assert.ok(stale.names.includes('post-restore') && !stale.names.includes('no-bump'), `the apiserver serves stale ConfigMaps: ${stale.names.join(',')}`);
    assert.ok(stale.rv > inStore.revision, `the apiserver's list resourceVersion ${stale.rv} is above the store's revision ${inStore.revision}`);
    assert.ok(!w3.events.some((e) => e.name === 'no-bump'), 'the open watch never delivers no-bump');
  } finally {
    for (const w of watches) w.close();
    await api?.stop();
    s3.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
