// Defragment on a real single-member Cairn: after ~20 MB written, deleted and compacted, `etcdctl
// defrag` shrinks both Status.dbSize and the LMDB file on disk, the data is intact (HashKV at the
// same revision equal before and after), and writes and a watch opened before the defrag still work.
// Then: defragmentations during a concurrent put load lose no acknowledged write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdClient, openWatch } from '../harness/client.js';
import type { Msg } from '../harness/client.js';
import { startCairn } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { ctl, hashKvOf, headerRev, ok, outcome, pool, statusOf } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);
const dbFile = (dataDir: string): string => join(dataDir, 'member', 'db.mdb');

test('defrag shrinks the database file after deletes and compaction; data, writes and watches survive it', async () => {
  const cairn = await startCairn();
  const c = new EtcdClient(cairn.endpoint);
  try {
    await c.waitReady();
    // Keys that stay, with history below the compaction that must not leak into the hash.
    const keep = Array.from({ length: 200 }, (_, i) => `keep/${String(i).padStart(4, '0')}`);
    await pool(keep, 8, async (k) => {
      ok(await c.put({ key: b(k), value: b(`v1-${k}`) }), `put ${k}`);
    });
    const big = Buffer.alloc(10 * 1024, 0x61);
    const bulk = Array.from({ length: 2000 }, (_, i) => i);
    await pool(bulk, 8, async (i) => {
      ok(await c.put({ key: b(`bulk/${String(i).padStart(5, '0')}`), value: big }), `put bulk ${i}`);
    });
    await pool(keep, 8, async (k) => {
      ok(await c.put({ key: b(k), value: b(`v2-${k}`) }), `put ${k}`);
    });
    const full = await statusOf(c);
    assert.ok(full.dbSize > 20_000_000, `db after ~20 MB of writes is only ${full.dbSize} bytes`);
    const del = ok(await c.deleteRange({ key: b('bulk/'), range_end: b('bulk0') }), 'delete bulk');
    assert.equal(Number(del['deleted']), bulk.length);
    const rev = headerRev(del);
    ok(await c.compact({ revision: String(rev), physical: true }), 'compact');

    const before = await statusOf(c);
    const fileBefore = statSync(dbFile(cairn.dataDir)).size;
    const hashBefore = await hashKvOf(c, rev);
    assert.equal(hashBefore.compactRevision, rev);
    // In use is far below the file size once the bulk is gone: the free pages are what defrag drops.
    assert.ok(before.dbSizeInUse < before.dbSize / 4, `in use ${before.dbSizeInUse} of ${before.dbSize} after delete + compact`);

    const w = openWatch(c);
    w.send({ create_request: { key: b('watched'), start_revision: String(rev + 1) } });
    const created = await w.next();
    assert.equal(created['created'], true);

    const started = Date.now();
    const r = await ctl(cairn.endpoint, ['defrag']);
    const tookMs = Date.now() - started;
    assert.deepEqual(r, { exit: 0, stdout: `Finished defragmenting etcd member[${cairn.endpoint}]\n`, errors: '' });

    const after = await statusOf(c);
    const fileAfter = statSync(dbFile(cairn.dataDir)).size;
    assert.ok(after.dbSize < before.dbSize / 4, `Status.dbSize ${before.dbSize} → ${after.dbSize}: not much smaller`);
    assert.ok(fileAfter < fileBefore / 4, `LMDB file ${fileBefore} → ${fileAfter} bytes: not much smaller`);
    assert.ok(after.dbSize >= after.dbSizeInUse, `dbSize ${after.dbSize} < in use ${after.dbSizeInUse}`);
    assert.equal(after.revision, rev, 'defrag changed the revision');
    const hashAfter = await hashKvOf(c, rev);
    assert.deepEqual(hashAfter, hashBefore, 'HashKV at the same revision changed across defrag');
    const kept = ok(await c.range({ key: b('keep/'), range_end: b('keep0') }), 'range keep');
    assert.equal(Number(kept['count']), keep.length);
    for (const kv of kept['kvs'] as Msg[]) assert.equal(String(kv['value']), `v2-${String(kv['key'])}`);
    const compacted = await c.range({ key: b('keep/0000'), revision: String(rev - 1) });
    assert.equal(outcome(compacted), 'OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted');

    // Writes and the watch opened before the defrag work after it.
    const put = ok(await c.put({ key: b('watched'), value: b('after-defrag') }), 'put after defrag');
    assert.equal(headerRev(put), rev + 1);
    const ev = await w.next();
    const events = ev['events'] as Msg[];
    assert.equal(events.length, 1);
    const kv = events[0]?.['kv'] as Msg;
    assert.equal(String(kv['value']), 'after-defrag');
    assert.equal(Number(kv['mod_revision']), rev + 1);
    w.cancel();
    console.log(`defrag: dbSize ${before.dbSize} → ${after.dbSize}, file ${fileBefore} → ${fileAfter}, in use ${before.dbSizeInUse}, took ${tookMs} ms`);
  } finally {
    c.close();
    await cairn.stop();
  }
});

test('defrag during a concurrent put load loses no acknowledged write', async () => {
  const cairn = await startCairn();
  const c = new EtcdClient(cairn.endpoint);
  const acked = new Map<string, string>();
  const failures: string[] = [];
  try {
    await c.waitReady();
    // Some garbage so that each defrag has work to do.
    const big = Buffer.alloc(8 * 1024, 0x62);
    await pool(Array.from({ length: 400 }, (_, i) => i), 8, async (i) => {
      ok(await c.put({ key: b(`junk/${i}`), value: big }), 'junk');
    });
    ok(await c.deleteRange({ key: b('junk/'), range_end: b('junk0') }), 'delete junk');

    let stop = false;
    let seq = 0;
    const writer = async (): Promise<void> => {
      while (!stop) {
        const n = seq++;
        const k = `load/${String(n).padStart(6, '0')}`;
        const v = `value-${n}-${'x'.repeat(n % 500)}`;
        const r = await c.put({ key: b(k), value: b(v) }, { timeoutMs: 20_000 });
        if (r.ok) acked.set(k, v);
        else failures.push(`${k}: ${outcome(r)}`);
      }
    };
    const writers = Array.from({ length: 4 }, () => writer());
    let defrags = 0;
    try {
      for (let round = 0; round < 4; round++) {
        const floor = acked.size + 100;
        await pollUntil(`${floor} acknowledged puts`, () => Promise.resolve(acked.size >= floor), 30_000);
        const st = await statusOf(c);
        ok(await c.compact({ revision: String(st.revision) }), 'compact');
        const d = await c.unary('Maintenance', 'Defragment', {}, { timeoutMs: 60_000 });
        assert.equal(outcome(d), 'OK');
        defrags++;
      }
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    assert.equal(defrags, 4);
    assert.deepEqual(failures, [], 'puts failed during defragmentation');
    // Every acknowledged write is there with its value.
    const all = ok(await c.range({ key: b('load/'), range_end: b('load0') }, { timeoutMs: 30_000 }), 'range load');
    const got = new Map((all['kvs'] as Msg[]).map((kv) => [String(kv['key']), String(kv['value'])]));
    const missing = [...acked].filter(([k, v]) => got.get(k) !== v).map(([k]) => k);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${acked.size} acknowledged puts missing or wrong after defrag`);
    assert.equal(got.size, acked.size, 'unacknowledged puts may exist only if a put failed');
    // And they survive a restart.
    c.close();
    await cairn.stop();
    const again = await startCairn({ dataDir: cairn.dataDir, name: cairn.name });
    const c2 = new EtcdClient(again.endpoint);
    try {
      const all2 = ok(await c2.range({ key: b('load/'), range_end: b('load0') }, { timeoutMs: 30_000 }), 'range after restart');
      assert.equal(Number(all2['count']), acked.size);
    } finally {
      c2.close();
      await again.stop();
    }
    console.log(`defrag under load: ${defrags} defrags, ${acked.size} acknowledged puts, all present`);
  } finally {
    c.close();
    await cairn.stop();
  }
});

test('--bootstrap-defrag-threshold-megabytes: at start, defragmented when that frees enough, "Skipping defragmentation" otherwise', async () => {
  let cairn = await startCairn();
  const { dataDir, name } = cairn;
  let c = new EtcdClient(cairn.endpoint);
  try {
    await c.waitReady();
    const big = Buffer.alloc(10 * 1024, 0x62);
    await pool(Array.from({ length: 1000 }, (_, i) => i), 8, async (i) => {
      ok(await c.put({ key: b(`bulk/${String(i).padStart(5, '0')}`), value: big }), `put bulk ${i}`);
    });
    ok(await c.put({ key: b('stay'), value: b('here') }), 'put stay');
    const del = ok(await c.deleteRange({ key: b('bulk/'), range_end: b('bulk0') }), 'delete bulk');
    ok(await c.unary('KV', 'Compact', { revision: String(headerRev(del)), physical: true }), 'compact');
    const hashBefore = await hashKvOf(c, 0);
    c.close();
    await cairn.stop();
    const fileBefore = statSync(dbFile(dataDir)).size;
    assert.ok(fileBefore > 10_000_000, `the file holds ~10 MB of freed pages (${fileBefore} bytes)`);

    // A threshold above what would be freed: nothing done.
    cairn = await startCairn({ name, dataDir, extraArgs: ['--bootstrap-defrag-threshold-megabytes=1000'] });
    assert.ok(cairn.stderrLines().some((l) => l.includes('"msg":"Skipping defragmentation"')), 'Skipping defragmentation logged');
    await cairn.stop();
    assert.equal(statSync(dbFile(dataDir)).size, fileBefore);

    // A threshold below it: the file is compacted before serving, the data the same.
    cairn = await startCairn({ name, dataDir, extraArgs: ['--experimental-bootstrap-defrag-threshold-megabytes=1'] });
    assert.ok(cairn.stderrLines().some((l) => l.includes('defragmenting the storage backend at start')), 'the defragmentation at start logged');
    const fileAfter = statSync(dbFile(dataDir)).size;
    assert.ok(fileAfter < fileBefore / 4, `the file shrank: ${fileBefore} -> ${fileAfter} bytes`);
    c = new EtcdClient(cairn.endpoint);
    await c.waitReady();
    assert.deepEqual(await hashKvOf(c, 0), hashBefore);
    const got = ok(await c.range({ key: b('stay') }), 'get stay');
    assert.equal(Buffer.from((got['kvs'] as { value: Buffer }[])[0]?.value ?? []).toString(), 'here');
  } finally {
    c.close();
    await cairn.stop();
  }
});
