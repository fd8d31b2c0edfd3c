// Leaving Cairn in one step: `etcdctl snapshot save` (3.6) against a Cairn member holding history,
// a compaction, leases and auth gets an etcd (bbolt) database, as from etcd 3.6 (Maintenance.Snapshot
// streams it: server/snap/image.ts). Then, with the real etcdutl 3.6.8 and etcd 3.6.8:
// - `etcdutl snapshot status`: the revision and live key count Cairn served, version 3.6.0, and
//   `cairn snapshot status` prints the same hash, revision, key count, size and version;
// - `etcdutl snapshot restore` + etcd 3.6.8 on the restored dir serve every key with the same value,
//   create/mod revision, version and lease as Cairn did, at the latest revision and at one below it;
//   HashKV at the latest revision is Cairn's; the compaction, leases and auth are kept;
// - `cairn snapshot restore` of the same file: Cairn serves the same data again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freePort, startCairn, startEtcd, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { etcd36Bin, etcdctl36Bin, etcdutl36Bin } from '../harness/bins.js';
import { missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { fillWorkload, ok, rootLogin, runCairn, runTool, servedView } from './helpers.js';

const KEYS = 1200;
const ROOT_PW = 'root-secret';
const b = (s: string): Buffer => Buffer.from(s);

type Status = { hash: number; revision: number; totalKey: number; totalSize: number; version: string };

test('etcdctl snapshot save against Cairn: etcdutl 3.6.8 status and restore take it, etcd 3.6.8 serves the same keys and revisions', { timeout: 300_000 }, async (t) => {
  let etcd36 = '';
  let etcdctl = '';
  let etcdutl = '';
  const missing = missingPrerequisite(() => {
    etcd36 = etcd36Bin();
    etcdctl = etcdctl36Bin();
    etcdutl = etcdutl36Bin();
  });
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return;
  }
  const dir = tempDir('cairn-bbolt-snapshot-');
  const cairn = await startCairn();
  const c = new EtcdClient(cairn.endpoint);
  const file = join(dir, 'cairn.db');
  let want: Awaited<ReturnType<typeof servedView>>;
  let wantHash: { hash: number; compactRevision: number };
  let compactRevision = 0;
  let liveKeys = 0;
  try {
    const w = await fillWorkload(c, KEYS);
    compactRevision = w.compactRevision;
    liveKeys = w.liveKeys;
    ok(await c.unary('Auth', 'UserAdd', { name: 'root', password: ROOT_PW }), 'UserAdd');
    ok(await c.unary('Auth', 'UserGrantRole', { user: 'root', role: 'root' }), 'UserGrantRole');
    ok(await c.unary('Auth', 'UserAdd', { name: 'alice', password: 'pw' }), 'UserAdd alice');
    ok(await c.unary('Auth', 'RoleAdd', { name: 'reader' }), 'RoleAdd');
    ok(await c.unary('Auth', 'RoleGrantPermission', { name: 'reader', perm: { permType: 'READ', key: b('key/'), range_end: b('key0') } }), 'grant');
    ok(await c.unary('Auth', 'UserGrantRole', { user: 'alice', role: 'reader' }), 'alice reader');
    ok(await c.unary('Auth', 'AuthEnable', {}), 'AuthEnable');
    want = await servedView(c, ROOT_PW, compactRevision + 25);
    assert.equal(want.revision, w.revision);
    const h = ok(await c.unary('Maintenance', 'HashKV', { revision: String(want.revision) }, { metadata: await rootLogin(c, ROOT_PW) }), 'HashKV');
    wantHash = { hash: Number(h['hash']), compactRevision: Number(h['compact_revision']) };
    const s = await runTool(etcdctl, [`--endpoints=${cairn.endpoint}`, '--user', `root:${ROOT_PW}`, 'snapshot', 'save', file]);
    assert.equal(s.exit, 0, s.stderr);
    assert.match(s.stdout, /Snapshot saved at /);
    assert.match(s.stdout, /Server version 3\.6\.0/, 'SnapshotResponse.version is the storage version, as etcd 3.6 sends it');
    const refused = await runTool(etcdctl, [`--endpoints=${cairn.endpoint}`, '--user', 'alice:pw', 'snapshot', 'save', join(dir, 'alice.db')]);
    assert.notEqual(refused.exit, 0, 'a user without the root role cannot take a snapshot');
  } finally {
    c.close();
    await cairn.stop();
  }

  // status: etcdutl's numbers are Cairn's, and cairn prints the same
  const st = await runTool(etcdutl, ['snapshot', 'status', file, '-w', 'json']);
  assert.equal(st.exit, 0, st.stderr);
  const theirs = JSON.parse(st.stdout) as Status;
  t.diagnostic(`etcdutl snapshot status: ${JSON.stringify(theirs)}`);
  assert.equal(theirs.revision, want.revision);
  assert.equal(theirs.totalKey, liveKeys);
  assert.equal(theirs.version, '3.6.0');
  const ours = await runCairn(['snapshot', 'status', file, '-w', 'json']);
  assert.equal(ours.exit, 0, ours.stderr);
  assert.deepEqual(JSON.parse(ours.stdout), theirs, 'cairn snapshot status prints what etcdutl prints (hash included)');
  for (const w of ['table', 'simple', 'fields']) {
    const a = await runTool(etcdutl, ['snapshot', 'status', file, '-w', w]);
    const o = await runCairn(['snapshot', 'status', file, '-w', w]);
    assert.equal(o.stdout, a.stdout, `-w ${w}`);
  }

  // etcdutl restore, etcd 3.6.8 serves it
  const peer = `http://127.0.0.1:${await freePort()}`;
  const restored = join(dir, 'etcd-restored');
  const rr = await runTool(etcdutl, ['snapshot', 'restore', file, '--name', 'back', '--initial-cluster', `back=${peer}`, '--initial-advertise-peer-urls', peer, '--data-dir', restored]);
  assert.equal(rr.exit, 0, rr.stderr);
  const etcd = await startEtcd({ etcdBin: etcd36, name: 'back', dataDir: restored, extraArgs: ['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `back=${peer}`] });
  const ec = new EtcdClient(etcd.endpoint);
  try {
    const got = await servedView(ec, ROOT_PW, compactRevision + 25);
    assert.deepEqual(got, want, 'etcd 3.6.8 serves every key, revision, lease and user as Cairn did');
    const h = ok(await ec.unary('Maintenance', 'HashKV', { revision: String(want.revision) }, { metadata: await rootLogin(ec, ROOT_PW) }), 'HashKV');
    assert.deepEqual({ hash: Number(h['hash']), compactRevision: Number(h['compact_revision']) }, wantHash, "HashKV at the latest revision is Cairn's");
    const below = await ec.range({ key: b('key/'), revision: String(compactRevision - 1) }, { metadata: await rootLogin(ec, ROOT_PW) });
    assert.ok(!below.ok && /compacted/.test(below.details), 'the compaction is kept');
  } finally {
    ec.close();
    await etcd.stop();
  }

  // and back into Cairn
  const cairnDir = join(dir, 'cairn-restored');
  const cr = await runCairn(['snapshot', 'restore', file, '--name', 'again', '--initial-cluster', `again=${peer}`, '--initial-advertise-peer-urls', peer, '--data-dir', cairnDir]);
  assert.equal(cr.exit, 0, cr.stderr);
  const back = await startCairn({ name: 'again', dataDir: cairnDir, extraArgs: ['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `again=${peer}`] });
  const bc = new EtcdClient(back.endpoint);
  try {
    assert.deepEqual(await servedView(bc, ROOT_PW, compactRevision + 25), want, 'cairn snapshot restore of its own snapshot serves the same data');
  } finally {
    bc.close();
    await back.stop();
  }
});
