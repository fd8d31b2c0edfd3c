// `cairn snapshot restore --bump-revision N --mark-compacted` (etcdutl 3.5): the restored cluster's
// revision is the snapshot's + N and everything below it reads as compacted (Range and Watch), new
// writes get revisions above it, and the members agree (HashKV).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startCairn, tempDir } from '../harness/procs.js';
import { EtcdClient, openWatch, type Msg } from '../harness/client.js';
import { Cluster } from '../harness/cluster.js';
import { allKvs, fillWorkload, headerRev, ok, runCairn, saveSnapshot } from './helpers.js';

const BUMP = 1_000_000;

test('restore with --bump-revision 1000000 --mark-compacted: revisions above the old ones, old ones compacted', { timeout: 110_000 }, async () => {
  const dir = tempDir('cairn-snapshot-bump-');
  const source = await startCairn();
  const src = new EtcdClient(source.endpoint);
  const cluster = new Cluster('cairn', { size: 3 });
  try {
    const w = await fillWorkload(src, 600);
    const latest = await allKvs(src);
    const file = join(dir, 'snap.db');
    await saveSnapshot(source.endpoint, file);
    await source.stop();

    for (const n of ['m1', 'm2', 'm3']) await cluster.reserve(n);
    const ic = cluster.initialCluster();
    for (const m of cluster.members) {
      const r = await runCairn([
        'snapshot', 'restore', file, `--name=${m.name}`, `--initial-cluster=${ic}`, `--initial-cluster-token=${cluster.token}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`, `--data-dir=${m.dataDir}`, '--bump-revision', String(BUMP), '--mark-compacted',
      ]);
      assert.equal(r.exit, 0, r.stderr);
    }
    await Promise.all(cluster.members.map((m) => cluster.startNew(m.name, ic, 'new')));
    await cluster.leader();
    const bumped = w.revision + BUMP;

    for (const m of cluster.members) {
      const c = cluster.client(m.name);
      const st = ok(await c.unary('Maintenance', 'Status', {}), 'Status');
      assert.equal(headerRev(st), bumped, `${m.name}: header revision = old + ${BUMP}`);
      // Range at an old revision: compacted; at the bumped one: the snapshot's latest data
      const old = await c.range({ key: Buffer.from('key/'), revision: String(w.revision) });
      assert.ok(!old.ok && /required revision has been compacted/.test(old.details), `${m.name}: old revision compacted (${old.ok ? 'answered' : old.details})`);
      const now = await allKvs(c, bumped, true);
      assert.deepEqual(now.kvs, latest.kvs, `${m.name}: data at the bumped revision`);
    }

    // a watch from an old revision is cancelled as compacted at the bumped revision
    const ws = openWatch(cluster.client('m2'));
    try {
      ws.send({ create_request: { key: Buffer.from('key/'), range_end: Buffer.from('key0'), start_revision: String(w.revision - 5) } });
      let cancelled: Msg | undefined;
      for (let i = 0; i < 3 && cancelled === undefined; i++) {
        const msg = await ws.next(10_000);
        if (msg['canceled'] === true) cancelled = msg;
      }
      assert.ok(cancelled !== undefined, 'watch cancelled');
      assert.equal(Number(cancelled['compact_revision']), bumped);
    } finally {
      ws.cancel();
    }

    // new writes go above
    const put = ok(await cluster.client('m3').put({ key: Buffer.from('fresh'), value: Buffer.from('after restore') }), 'Put');
    assert.equal(headerRev(put), bumped + 1);
    assert.ok(headerRev(put) > w.revision + BUMP);
    const got = ok(await cluster.client('m1').range({ key: Buffer.from('fresh') }), 'Range');
    assert.equal(Number((got['kvs'] as Msg[])[0]?.['mod_revision']), bumped + 1);
    await cluster.waitConverged(20_000);

    // status of a snapshot of the restored cluster shows the new revision
    const file2 = join(dir, 'after.db');
    await saveSnapshot(cluster.member('m1').endpoint, file2);
    const st = await runCairn(['snapshot', 'status', file2, '-w', 'json']);
    assert.equal(st.exit, 0, st.stderr);
    assert.equal((JSON.parse(st.stdout) as { revision: number }).revision, bumped + 1);
  } catch (e) {
    console.error(`bump test failed; member logs:\n${cluster.logTails()}`);
    throw e;
  } finally {
    src.close();
    await cluster.close();
    await source.stop();
  }
});
