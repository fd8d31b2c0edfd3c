// etcdctl `snapshot save` against a Cairn member holding history (thousands of keys, overwrites,
// deletes, leases, a compaction) → `cairn snapshot restore` three times → a NEW 3-member cluster with
// identical data: HashKV equal across the members and equal to the source's at the same revision,
// every key equal, the new member list and a new cluster id; leases and the compaction kept. Then a
// snapshot taken from one of that cluster's followers restores to the same data too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { freePort, startCairn, tempDir } from '../harness/procs.js';
import { EtcdClient, type Msg } from '../harness/client.js';
import { Cluster } from '../harness/cluster.js';
import { computeClusterId, computeMemberId } from '../../server/membership/index.js';
import { humanizeBytes } from '../../server/ctl/print.js';
import { allKvs, clusterIdOf, fillWorkload, hashKv, headerRev, logLines, ok, runCairn, saveSnapshot } from './helpers.js';

const KEYS = 4000;

test('snapshot save → cairn snapshot restore ×3 → a new 3-member cluster with identical data', { timeout: 110_000 }, async () => {
  const dir = tempDir('cairn-snapshot-restore-');
  const source = await startCairn();
  const src = new EtcdClient(source.endpoint);
  const cluster = new Cluster('cairn', { size: 3 });
  try {
    const w = await fillWorkload(src, KEYS);
    // auth state (users, roles, permissions) travels with the snapshot (auth stays disabled)
    ok(await src.unary('Auth', 'UserAdd', { name: 'alice', password: 'pw' }), 'AuthUserAdd');
    ok(await src.unary('Auth', 'RoleAdd', { name: 'reader' }), 'AuthRoleAdd');
    ok(await src.unary('Auth', 'RoleGrantPermission', { name: 'reader', perm: { permType: 'READ', key: Buffer.from('key/'), range_end: Buffer.from('key0') } }), 'AuthRoleGrantPermission');
    ok(await src.unary('Auth', 'UserGrantRole', { user: 'alice', role: 'reader' }), 'AuthUserGrantRole');
    const authRev = headerRev(ok(await src.range({ key: Buffer.from('x') }), 'Range'));
    assert.equal(authRev, w.revision, 'auth changes do not move the KV revision');
    const srcHash = await hashKv(src, w.revision);
    const srcKvs = await allKvs(src, w.revision);
    assert.equal(srcKvs.kvs.length, w.liveKeys);
    const srcClusterId = clusterIdOf(ok(await src.unary('Maintenance', 'Status', {}), 'Status'));
    const file = join(dir, 'snap.db');
    await saveSnapshot(source.endpoint, file);
    const fileBytes = statSync(file).size;
    assert.equal(fileBytes % 512, 32, 'data is whole sectors plus the SHA-256 trailer');

    // status: etcd's fields; revision and total keys checked against the source and an independent count
    const st = await runCairn(['snapshot', 'status', file, '-w', 'json']);
    assert.equal(st.exit, 0, st.stderr);
    const status = JSON.parse(st.stdout) as { hash: number; revision: number; totalKey: number; totalSize: number };
    assert.equal(status.revision, w.revision);
    assert.equal(status.totalSize, fileBytes - 32);
    // the snapshot is etcd's bbolt database: total keys counted as etcdutl 3.6 counts them (live keys)
    assert.equal(status.totalKey, w.liveKeys);
    const simple = await runCairn(['snapshot', 'status', file]);
    assert.equal(simple.stdout, `${status.hash.toString(16)}, ${status.revision}, ${status.totalKey}, ${humanizeBytes(status.totalSize)}, 3.6.0\n`);

    // restore three members of a new cluster (the harness's reserved ports and data dirs)
    for (const n of ['m1', 'm2', 'm3']) await cluster.reserve(n);
    const ic = cluster.initialCluster();
    for (const m of cluster.members) {
      const r = await runCairn(['snapshot', 'restore', file, '--name', m.name, '--initial-cluster', ic, '--initial-cluster-token', cluster.token, '--initial-advertise-peer-urls', m.peerUrl, '--data-dir', m.dataDir]);
      assert.equal(r.exit, 0, r.stderr);
      const lines = logLines(r.stderr);
      const done = lines.find((l) => l['msg'] === 'restored snapshot');
      assert.ok(done !== undefined, `no final line: ${r.stderr}`);
      assert.equal(typeof done['took-ms'], 'number');
      assert.equal(done['revision'], w.revision);
      assert.ok(lines.some((l) => l['msg'] === 'restoring an etcd (bbolt) snapshot'));
    }
    await Promise.all(cluster.members.map((m) => cluster.startNew(m.name, ic, 'new')));
    await cluster.leader();

    // identical data on every member
    for (const m of cluster.members) {
      const c = cluster.client(m.name);
      assert.deepEqual(await hashKv(c, w.revision), srcHash, `HashKV of ${m.name} at ${w.revision}`);
      const kvs = await allKvs(c, 0, true);
      assert.equal(kvs.revision, w.revision, `${m.name} starts at the snapshot's revision`);
      assert.deepEqual(kvs.kvs, srcKvs.kvs, `every key of ${m.name}`);
    }
    // the compaction is kept
    const old = await cluster.client('m1').range({ key: Buffer.from('key/'), revision: String(w.compactRevision - 1) });
    assert.ok(!old.ok && /compacted/.test(old.details), 'a read below the compacted revision is refused');

    // new member list and cluster id, computed as etcd does from the restore flags
    const list = await cluster.memberList();
    assert.deepEqual(list.map((l) => l.name).sort(), ['m1', 'm2', 'm3']);
    const ids = cluster.members.map((m) => computeMemberId([m.peerUrl], cluster.token));
    assert.deepEqual(list.map((l) => BigInt(l.id)).sort(), [...ids].sort());
    for (const l of list) assert.deepEqual(l.peerURLs, [cluster.member(l.name).peerUrl]);
    const newClusterId = clusterIdOf(ok(await cluster.client('m2').unary('Maintenance', 'Status', {}), 'Status'));
    assert.notEqual(newClusterId, srcClusterId);
    assert.equal(BigInt(newClusterId), computeClusterId(ids));

    // leases kept, with their keys
    const leases = ok(await cluster.client('m1').unary('Lease', 'LeaseLeases', {}), 'LeaseLeases');
    assert.deepEqual(((leases['leases'] as Msg[]) ?? []).map((l) => String(l['ID'])).sort(), w.leases.map((l) => l.id).sort());
    for (const l of w.leases) {
      const ttl = ok(await cluster.client('m3').unary('Lease', 'LeaseTimeToLive', { ID: l.id, keys: true }), 'LeaseTimeToLive');
      assert.equal(Number(ttl['grantedTTL']), l.ttl);
      assert.ok(Number(ttl['TTL']) > 0);
      assert.equal((ttl['keys'] as unknown[]).length, l.keys);
    }

    // auth users and roles kept
    const users = ok(await cluster.client('m2').unary('Auth', 'UserList', {}), 'AuthUserList');
    assert.deepEqual(users['users'], ['alice']);
    const role = ok(await cluster.client('m3').unary('Auth', 'RoleGet', { role: 'reader' }), 'AuthRoleGet');
    const perms = (role['perm'] as Msg[]).map((p) => [p['permType'], (p['key'] as Buffer).toString(), (p['range_end'] as Buffer).toString()]);
    assert.deepEqual(perms, [['READ', 'key/', 'key0']]);
    const alice = ok(await cluster.client('m1').unary('Auth', 'UserGet', { name: 'alice' }), 'AuthUserGet');
    assert.deepEqual(alice['roles'], ['reader']);

    // the new cluster takes writes above the old revisions and converges
    const put = ok(await cluster.client('m1').put({ key: Buffer.from('new'), value: Buffer.from('x') }), 'Put');
    assert.equal(headerRev(put), w.revision + 1);
    await cluster.waitConverged(20_000);

    // a snapshot taken from a follower of the restored cluster restores to the same data
    const leader = await cluster.leader();
    const follower = cluster.members.find((m) => m.name !== leader.name);
    assert.ok(follower !== undefined);
    const file2 = join(dir, 'follower.db');
    await saveSnapshot(follower.endpoint, file2);
    const peerPort = await freePort();
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const dataDir = join(dir, 'single');
    const r = await runCairn(['snapshot', 'restore', file2, '--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl, '--data-dir', dataDir]);
    assert.equal(r.exit, 0, r.stderr);
    const solo = await startCairn({ name: 'solo', dataDir, extraArgs: ['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `solo=${peerUrl}`] });
    const soloClient = new EtcdClient(solo.endpoint);
    try {
      const want = await hashKv(cluster.client(follower.name), w.revision + 1);
      assert.deepEqual(await hashKv(soloClient, w.revision + 1), want);
      assert.deepEqual((await allKvs(soloClient)).kvs, (await allKvs(cluster.client(follower.name), 0, true)).kvs);
    } finally {
      soloClient.close();
      await solo.stop();
    }
  } catch (e) {
    console.error(`restore test failed; member logs:\n${cluster.logTails()}`);
    throw e;
  } finally {
    src.close();
    await cluster.close();
    await source.stop();
  }
});
