// The bbolt writer (server/snap/bbolt/writer.ts) read back by the reader: random buckets (empty, small
// enough to be inline, many keys over several branch levels, values larger than a page on overflow
// pages) come back exactly, in key order, and the meta pages carry valid checksums. The files etcd's
// own tools accept are checked in bbolt-export.test.ts (etcdutl snapshot status|restore).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BoltDb } from '../../server/snap/bbolt/index.js';
import { writeBolt, type BoltBucketInput } from '../../server/snap/bbolt/writer.js';

function roundTrip(buckets: readonly BoltBucketInput[]): void {
  const file = writeBolt(buckets);
  assert.ok(writeBolt(buckets).equals(file), 'deterministic: the same records give the same bytes');
  assert.equal(file.length % 4096, 0);
  const db = BoltDb.open(file, 'written.db');
  assert.deepEqual(db.root.entries().map((e) => e.key.toString()), buckets.map((b) => b.name).sort());
  for (const bk of buckets) {
    const got = db.bucket(bk.name)?.entries().map((e) => [e.key.toString('hex'), e.value.toString('hex')]);
    const want = [...bk.records].sort((a, b) => Buffer.compare(a.key, b.key)).map((r) => [r.key.toString('hex'), r.value.toString('hex')]);
    assert.deepEqual(got, want, `bucket ${bk.name}`);
  }
}

test('random buckets written and read back', () => {
  const record = fc.record({ key: fc.uint8Array({ minLength: 1, maxLength: 64 }), value: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 3000, maxLength: 20_000 })) });
  const bucket = fc.record({
    name: fc.stringMatching(/^[a-zA-Z_]{1,12}$/),
    records: fc.uniqueArray(record, { maxLength: 300, selector: (r) => Buffer.from(r.key).toString('hex') }),
  });
  fc.assert(
    fc.property(fc.uniqueArray(bucket, { minLength: 1, maxLength: 6, selector: (b) => b.name }), (bs) => {
      roundTrip(bs.map((b) => ({ name: b.name, records: b.records.map((r) => ({ key: Buffer.from(r.key), value: Buffer.from(r.value) })) })));
    }),
    { numRuns: 60 },
  );
});

test('a bucket of 60,000 keys (three B+tree levels) and an empty one', () => {
  const records = Array.from({ length: 60_000 }, (_, i) => ({ key: Buffer.from(`key/${String(i).padStart(8, '0')}`), value: Buffer.from(`value ${i}`) }));
  roundTrip([{ name: 'key', records }, { name: 'empty', records: [] }]);
});
