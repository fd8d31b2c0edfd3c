// The bbolt reader (server/snap/bbolt) on real etcd files: a snapshot of etcd 3.4 holding many keys
// (branch pages), a large value (overflow pages) and small buckets (inline buckets) decodes to what
// etcd served; damaged files are refused with a message naming what is wrong (bad magic, checksum,
// page out of range, truncation), never a crash or a hang: fuzzed with fast-check (random byte
// changes and cuts of the real file), and through `cairn snapshot restore`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { freePort, runEtcdctl, startEtcd, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { parseEtcdSnapshot } from '../../server/snap/frombolt.js';
import { SnapshotError } from '../../server/snap/index.js';
import { BoltDb, fnv1a64 } from '../../server/snap/bbolt/index.js';
import { allKvs, ok, runCairn, saveSnapshot } from './helpers.js';

const dir = tempDir('cairn-bbolt-reader-');
let data = Buffer.alloc(0);
let kvsServed: string[] = [];
let revision = 0;
const BIG = Buffer.alloc(20_000, 0x61);
/** 600 keys in 6 txns (sub revisions 0..99), the big one, one delete. */
const STORED_REVISIONS = 602;

const PAGE = 4096;
const META_AT = 16;

function refusedWith(buf: Buffer, pattern: RegExp): void {
  assert.throws(
    () => parseEtcdSnapshot(buf, 'x.db'),
    (e: unknown) => e instanceof SnapshotError && pattern.test(e.message),
  );
}

/** Rewrites a meta page's checksum after an edit (so only the edit is wrong). */
function reseal(buf: Buffer, page: number): void {
  const m = page * PAGE + META_AT;
  buf.writeBigUInt64LE(fnv1a64(buf.subarray(m, m + 56)), m + 56);
}

test('setup: an etcd 3.4 snapshot with branch, overflow and inline-bucket pages', { timeout: 60_000 }, async () => {
  const etcd = await startEtcd();
  const c = new EtcdClient(etcd.endpoint);
  try {
    for (let i = 0; i < 600; i += 100) {
      const success = Array.from({ length: 100 }, (_, j) => ({ request_put: { key: Buffer.from(`k/${String(i + j).padStart(4, '0')}`), value: Buffer.from(`value ${i + j}`) } }));
      ok(await c.txn({ success }), 'Txn');
    }
    ok(await c.put({ key: Buffer.from('big'), value: BIG }), 'Put big');
    ok(await c.deleteRange({ key: Buffer.from('k/0001') }), 'Delete');
    assert.equal((await runEtcdctl([`--endpoints=${etcd.endpoint}`, 'lease', 'grant', '300'])).exit, 0);
    const all = await allKvs(c);
    kvsServed = all.kvs;
    revision = all.revision;
    const file = join(dir, 'etcd.db');
    await saveSnapshot(etcd.endpoint, file);
    data = readFileSync(file).subarray(0, -32);
  } finally {
    c.close();
    await etcd.stop();
  }
});

test('a real etcd file decodes to what etcd served', () => {
  const d = parseEtcdSnapshot(data, 'etcd.db');
  const db = BoltDb.open(data, 'etcd.db');
  assert.equal(db.pageBytes, PAGE);
  assert.equal(d.revisions.length, STORED_REVISIONS, 'one stored (main, sub) revision per key written or deleted');
  assert.equal(Math.max(...d.revisions.map((r) => r.main)), revision);
  // the newest revision of each live key, as etcd's Range printed it
  const newest = new Map<string, (typeof d.revisions)[number]>();
  for (const r of d.revisions) newest.set(r.kv.key.toString('latin1'), r);
  const live = [...newest.values()].filter((r) => !r.tombstone).sort((a, b) => Buffer.compare(a.kv.key, b.kv.key));
  const ours = live.map((r) =>
    JSON.stringify([r.kv.key.toString('latin1'), r.kv.value.toString('latin1'), String(r.kv.createRevision), String(r.kv.modRevision), String(r.kv.version), String(r.kv.lease)]),
  );
  assert.deepEqual(ours, kvsServed);
  assert.ok(newest.get('big')?.kv.value.equals(BIG), 'the 20 KB value (overflow pages) is whole');
  assert.equal(newest.get('k/0001')?.tombstone, true);
  assert.equal(d.leases.length, 1);
  assert.equal(d.leases[0]?.ttl, 300);
});

test('damaged files are refused with what is wrong', () => {
  const junkMagic = Buffer.from(data);
  for (const p of [0, 1]) junkMagic.writeUInt32LE(0x12345678, p * PAGE + META_AT);
  refusedWith(junkMagic, /not a valid bbolt database: meta page 0 has bad magic 0x12345678 \(want 0xed0cdaed\); meta page 1 has bad magic/);

  const badSum = Buffer.from(data);
  for (const p of [0, 1]) badSum[p * PAGE + META_AT + 57] = (badSum[p * PAGE + META_AT + 57] ?? 0) ^ 1;
  refusedWith(badSum, /meta page 0 has a bad checksum \(stored 0x[0-9a-f]+, computed 0x[0-9a-f]+\); meta page 1 has a bad checksum/);

  // one damaged meta page: the other one is used
  const oneBad = Buffer.from(data);
  oneBad[META_AT + 57] = (oneBad[META_AT + 57] ?? 0) ^ 1;
  assert.equal(parseEtcdSnapshot(oneBad, 'x.db').revisions.length, STORED_REVISIONS);

  const rootOut = Buffer.from(data);
  for (const p of [0, 1]) {
    rootOut.writeBigUInt64LE(100_000n, p * PAGE + META_AT + 16);
    reseal(rootOut, p);
  }
  refusedWith(rootOut, /root bucket page 100000 out of range \(2\.\.\d+\)/);

  refusedWith(data.subarray(0, data.length - 3 * PAGE), /is truncated: its meta page says \d+ pages \(\d+ bytes\) but the file holds \d+ bytes/);
  refusedWith(data.subarray(0, 40), /too short for a bbolt database/);

  // a page of the key bucket overwritten with zeros: its header no longer names it
  const db = BoltDb.open(data, 'x');
  const zeroed = Buffer.from(data);
  const rootPage = Number(db.meta.root);
  zeroed.fill(0, rootPage * PAGE, (rootPage + 1) * PAGE);
  refusedWith(zeroed, /page \d+ \(root bucket\) has id 0 in its header/);
});

test('fuzz: random byte changes and cuts of a real file are decoded or refused, never a crash', () => {
  const size = data.length;
  const edit = fc.record({
    flips: fc.array(fc.record({ at: fc.nat({ max: size - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 24 }),
    reseal: fc.boolean(),
    cut: fc.option(fc.nat({ max: size }), { nil: undefined }),
  });
  fc.assert(
    fc.property(edit, ({ flips, reseal: fix, cut }) => {
      const b = Buffer.from(data);
      for (const f of flips) b[f.at] = f.value;
      if (fix) for (const p of [0, 1]) reseal(b, p);
      const input = cut === undefined ? b : b.subarray(0, cut);
      try {
        parseEtcdSnapshot(input, 'fuzz.db');
      } catch (e) {
        if (!(e instanceof SnapshotError)) throw e;
        assert.match(e.message, /^etcd snapshot file "fuzz\.db": /);
      }
    }),
    { numRuns: 2000 },
  );
});

test('cairn snapshot restore refuses a damaged bbolt file with the reason and leaves nothing', async () => {
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const bad = Buffer.from(data);
  for (const p of [0, 1]) {
    bad.writeBigUInt64LE(100_000n, p * PAGE + META_AT + 16);
    reseal(bad, p);
  }
  const file = join(dir, 'bad-root.db');
  writeFileSync(file, bad);
  const out = join(dir, 'restored');
  const r = await runCairn(['snapshot', 'restore', file, '--skip-hash-check', '--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl, '--data-dir', out]);
  assert.equal(r.exit, 1, r.stderr);
  assert.match(r.stderr.trim().split('\n').pop() ?? '', /^Error: etcd snapshot file ".*bad-root\.db": root bucket page 100000 out of range/);
  assert.equal(existsSync(out), false);
  // the raw database (no trailer) restores with --skip-hash-check
  const raw = join(dir, 'raw.db');
  writeFileSync(raw, data);
  const good = await runCairn(['snapshot', 'restore', raw, '--skip-hash-check', '--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl, '--data-dir', join(dir, 'raw-restored')]);
  assert.equal(good.exit, 0, good.stderr);
});
