// Leaving Cairn: etcd 3.6 data (fillWorkload history, a compaction, leases, auth) → etcdctl 3.6
// snapshot save → cairn snapshot restore → Cairn serves it → etcdctl snapshot save against Cairn →
// `cairn snapshot export --format bbolt` → `etcdutl snapshot status` (3.6.8) accepts it with the
// revision and total key count etcdutl prints for etcd's own snapshot; after `etcdutl snapshot
// restore` of both files with the same flags, etcdutl prints the SAME hash for both (every bucket
// byte-equal) → etcd 3.6 serves the export: HashKV at the same revision equals the original etcd's,
// every key, the compaction, leases and auth as the original etcd served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { freePort, startCairn, startEtcd, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { etcd36Bin, etcdctl36Bin, etcdctlBin, etcdutl36Bin } from '../harness/bins.js';
import { missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { fillWorkload, ok, rootLogin, runCairn, runTool, servedView } from './helpers.js';

const KEYS = 1500;
const ROOT_PW = 'root-secret';
const b = (s: string): Buffer => Buffer.from(s);

test('a Cairn snapshot exported as bbolt: etcdutl 3.6 status and restore take it, etcd 3.6 serves the same data', { timeout: 240_000 }, async (t) => {
  let etcd36 = '';
  let etcdctl36 = '';
  let etcdutl = '';
  let etcdctl34 = '';
  const missing = missingPrerequisite(() => {
    etcd36 = etcd36Bin();
    etcdctl36 = etcdctl36Bin();
    etcdutl = etcdutl36Bin();
    etcdctl34 = etcdctlBin();
  });
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return;
  }
  const dir = tempDir('cairn-bbolt-export-');

  // 1. the original: etcd 3.6 with history and auth. Cairn is restored below with the same name, peer
  // URL and token, so its member id (computed as etcd computes it) is the original's: the data is the same
  const peer = `http://127.0.0.1:${await freePort()}`;
  const src = await startEtcd({ etcdBin: etcd36, name: 'orig', extraArgs: ['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `orig=${peer}`] });
  const sc = new EtcdClient(src.endpoint);
  let want: unknown;
  let wantHash: { hash: number; compactRevision: number };
  let revision = 0;
  let compactRevision = 0;
  const etcdSnap = join(dir, 'etcd.db');
  try {
    const w = await fillWorkload(sc, KEYS);
    revision = w.revision;
    compactRevision = w.compactRevision;
    ok(await sc.unary('Auth', 'UserAdd', { name: 'root', password: ROOT_PW }), 'UserAdd');
    ok(await sc.unary('Auth', 'UserGrantRole', { user: 'root', role: 'root' }), 'UserGrantRole');
    ok(await sc.unary('Auth', 'UserAdd', { name: 'alice', password: 'pw' }), 'UserAdd alice');
    ok(await sc.unary('Auth', 'RoleAdd', { name: 'reader' }), 'RoleAdd');
    ok(await sc.unary('Auth', 'RoleGrantPermission', { name: 'reader', perm: { permType: 'READ', key: b('key/'), range_end: b('key0') } }), 'grant');
    ok(await sc.unary('Auth', 'UserGrantRole', { user: 'alice', role: 'reader' }), 'alice reader');
    ok(await sc.unary('Auth', 'AuthEnable', {}), 'AuthEnable');
    want = await servedView(sc, ROOT_PW, compactRevision + 25);
    const h = ok(await sc.unary('Maintenance', 'HashKV', { revision: String(revision) }, { metadata: await rootLogin(sc, ROOT_PW) }), 'HashKV');
    wantHash = { hash: Number(h['hash']), compactRevision: Number(h['compact_revision']) };
    const s = await runTool(etcdctl36, [`--endpoints=${src.endpoint}`, '--user', `root:${ROOT_PW}`, 'snapshot', 'save', etcdSnap]);
    assert.equal(s.exit, 0, s.stderr);
  } finally {
    sc.close();
    await src.stop();
  }

  // 2. into Cairn, and a snapshot of Cairn's data
  const cairnDir = join(dir, 'cairn');
  const r = await runCairn(['snapshot', 'restore', etcdSnap, '--name', 'orig', '--initial-cluster', `orig=${peer}`, '--initial-advertise-peer-urls', peer, '--data-dir', cairnDir]);
  assert.equal(r.exit, 0, r.stderr);
  const cairn = await startCairn({ name: 'orig', dataDir: cairnDir, extraArgs: ['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `orig=${peer}`] });
  const cairnSnap = join(dir, 'cairn.db');
  try {
    const c = new EtcdClient(cairn.endpoint);
    try {
      assert.deepEqual(await servedView(c, ROOT_PW, compactRevision + 25), want, 'Cairn serves what etcd served');
    } finally {
      c.close();
    }
    const s = await runTool(etcdctl34, [`--endpoints=${cairn.endpoint}`, '--user', `root:${ROOT_PW}`, 'snapshot', 'save', cairnSnap]);
    assert.equal(s.exit, 0, s.stderr);
  } finally {
    await cairn.stop();
  }

  // 3. export (of the stopped member's data dir: `cairn snapshot export` takes Cairn's LMDB form; the
  // snapshot saved from Cairn is already bbolt); etcdutl status on the export, on the snapshot saved
  // from Cairn and on etcd's own snapshot of the same data
  const exported = join(dir, 'export.db');
  const e = await runCairn(['snapshot', 'export', '--format', 'bbolt', cairnDir, exported]);
  assert.equal(e.exit, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`^Exported revision ${revision} `));
  const again = await runCairn(['snapshot', 'export', '--format', 'bbolt', cairnSnap, join(dir, 'again.db')]);
  assert.equal(again.exit, 1, 'a bbolt snapshot is not exported again');
  const fromDir = cairnSnap;
  type Status = { hash: number; revision: number; totalKey: number; totalSize: number; version: string };
  const status = async (f: string): Promise<Status> => {
    const s = await runTool(etcdutl, ['snapshot', 'status', f, '-w', 'json']);
    assert.equal(s.exit, 0, `etcdutl snapshot status ${f}: ${s.stderr}`);
    return JSON.parse(s.stdout) as Status;
  };
  const ours = await status(exported);
  const theirs = await status(etcdSnap);
  // the hash covers every bucket, the raft index and term in meta and the members' client URLs
  // included: those are the serving cluster's, so the files' hashes differ until etcdutl restore
  // rewrites them (3b)
  t.diagnostic(`etcdutl snapshot status: export ${JSON.stringify(ours)}, etcd's own ${JSON.stringify(theirs)}`);
  assert.equal(ours.revision, theirs.revision);
  assert.equal(ours.revision, revision);
  assert.equal(ours.totalKey, theirs.totalKey);
  assert.equal(ours.version, '3.6.0');
  assert.deepEqual({ ...(await status(fromDir)), hash: 0 }, { ...ours, hash: 0 }, 'the snapshot saved from Cairn: the same numbers as the export (the hash differs by the raft index in meta)');

  // 3b. both files restored by etcdutl with the same flags (which rewrites members, raft index and term)
  const same = async (f: string, d: string): Promise<Status> => {
    const x = await runTool(etcdutl, ['snapshot', 'restore', f, '--name', 'cmp', '--initial-cluster', `cmp=${peer}`, '--initial-advertise-peer-urls', peer, '--data-dir', d]);
    assert.equal(x.exit, 0, x.stderr);
    return status(join(d, 'member', 'snap', 'db'));
  };
  const ourDb = await same(exported, join(dir, 'cmp-ours'));
  const theirDb = await same(etcdSnap, join(dir, 'cmp-theirs'));
  t.diagnostic(`etcdutl snapshot status after etcdutl restore: export ${JSON.stringify(ourDb)}, etcd's own ${JSON.stringify(theirDb)}`);
  assert.deepEqual({ ...ourDb, totalSize: 0 }, { ...theirDb, totalSize: 0 }, 'same hash, revision, total keys and version as etcd\'s own snapshot of the same data');

  // 4. etcdutl restore → etcd 3.6 serves the same data, HashKV equal to the original's
  const name = 'back';
  const restoredDir = join(dir, 'etcd-restored');
  const rr = await runTool(etcdutl, ['snapshot', 'restore', exported, '--name', name, '--initial-cluster', `${name}=${peer}`, '--initial-advertise-peer-urls', peer, '--data-dir', restoredDir]);
  assert.equal(rr.exit, 0, rr.stderr);
  assert.ok(existsSync(join(restoredDir, 'member', 'snap', 'db')));
  const back = await startEtcd({ etcdBin: etcd36, name, dataDir: restoredDir });
  const bc = new EtcdClient(back.endpoint);
  try {
    assert.deepEqual(await servedView(bc, ROOT_PW, compactRevision + 25), want, 'etcd 3.6 serves the exported data as the original etcd did');
    const h = ok(await bc.unary('Maintenance', 'HashKV', { revision: String(revision) }, { metadata: await rootLogin(bc, ROOT_PW) }), 'HashKV');
    t.diagnostic(`HashKV at ${revision}: original etcd ${JSON.stringify(wantHash)}, etcd restored from the export ${String(h['hash'])}`);
    assert.deepEqual({ hash: Number(h['hash']), compactRevision: Number(h['compact_revision']) }, wantHash, 'HashKV at the same revision equals the original etcd\'s');
    const below = await bc.range({ key: b('key/'), revision: String(compactRevision - 1) }, { metadata: await rootLogin(bc, ROOT_PW) });
    assert.ok(!below.ok && /compacted/.test(below.details), 'the compaction is kept');
  } finally {
    bc.close();
    await back.stop();
  }
});
