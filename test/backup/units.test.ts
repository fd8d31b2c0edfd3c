// Pure parts of operator/backup: retention (fast-check properties over random backup histories and
// policies), schedules (croner), the snapshot stream verifier fed real SnapshotResponse messages
// (good, truncated, corrupt, gaps), error classification and source choice.
// Property tests print their seed; replay with BACKUP_FC_SEED=<seed>.
// test-tier: unit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import {
  BackupError,
  BackupSlots,
  destinationProblems,
  SnapshotVerifier,
  classifyS3Error,
  nextRun,
  parseDuration,
  parseStamp,
  policyProblems,
  scheduleProblem,
  sourceOrder,
  stampOf,
  toDelete,
  validateSchedule,
  type RetainedItem,
  type RetentionPolicy,
} from '../../operator/backup/index.js';
import type { SnapshotResponse } from '../../proto/gen/etcdserverpb.js';

const seed = Number(process.env['BACKUP_FC_SEED'] ?? Date.now() % 2 ** 31);
const numRuns = 500;
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);

function check<T>(name: string, arb: fc.Arbitrary<T>, pred: (v: T) => void): void {
  try {
    fc.assert(fc.property(arb, pred), { seed, numRuns });
  } catch (e) {
    console.error(`${name}: failed with fast-check seed ${seed}; replay with BACKUP_FC_SEED=${seed}`);
    throw e;
  }
}

const itemsArb: fc.Arbitrary<RetainedItem[]> = fc
  .array(fc.record({ ageMs: fc.integer({ min: 0, max: 60 * DAY }), good: fc.boolean() }), { maxLength: 40 })
  .map((xs) => xs.map((x, i) => ({ id: `b${i}`, startMs: NOW - x.ageMs, good: x.good })));
const policyArb: fc.Arbitrary<RetentionPolicy> = fc.record(
  { keepLast: fc.integer({ min: 1, max: 10 }), keepDaily: fc.integer({ min: 1, max: 10 }), maxAgeMs: fc.integer({ min: 1, max: 40 * DAY }) },
  { requiredKeys: [] },
);

test(`retention: never the newest good backup, a subset oldest first, idempotent (seed ${seed})`, () => {
  check('retention basics', fc.tuple(itemsArb, policyArb), ([items, p]) => {
    const del = toDelete(items, p, NOW);
    const byId = new Map(items.map((i) => [i.id, i]));
    assert.equal(new Set(del).size, del.length, 'no duplicates');
    for (const id of del) assert.ok(byId.has(id), 'only known ids');
    const times = del.map((id) => byId.get(id)?.startMs ?? NaN);
    for (let k = 1; k < times.length; k++) assert.ok((times[k - 1] ?? 0) <= (times[k] ?? 0), 'oldest first');
    const good = items.filter((i) => i.good).sort((a, b) => b.startMs - a.startMs || (a.id < b.id ? 1 : -1));
    const newest = good[0];
    if (newest !== undefined) assert.ok(!del.includes(newest.id), 'the newest good backup is kept');
    const rest = items.filter((i) => !del.includes(i.id));
    assert.deepEqual(toDelete(rest, p, NOW), [], 'pruning what is left deletes nothing more');
  });
});

test(`retention: keepLast keeps the N newest good backups younger than maxAge (seed ${seed})`, () => {
  check('retention keepLast', fc.tuple(itemsArb, policyArb), ([items, p]) => {
    const del = new Set(toDelete(items, p, NOW));
    const good = items.filter((i) => i.good).sort((a, b) => b.startMs - a.startMs || (a.id < b.id ? 1 : -1));
    const young = (i: RetainedItem): boolean => p.maxAgeMs === undefined || i.startMs >= NOW - p.maxAgeMs;
    if (p.keepLast !== undefined) for (const g of good.slice(0, p.keepLast)) if (young(g)) assert.ok(!del.has(g.id), `keepLast ${p.keepLast} kept ${g.id}`);
    // Everything deleted is outside every keep rule, or too old, or a failed record older than the newest good.
    if (p.maxAgeMs !== undefined && p.keepLast === undefined && p.keepDaily === undefined) {
      for (const g of good) if (young(g)) assert.ok(!del.has(g.id), 'maxAge alone keeps the young');
    }
    for (const i of items) if (!i.good && del.has(i.id)) assert.ok(good.length > 0 && i.startMs <= (good[0]?.startMs ?? 0), 'a failed record goes only once a good one is newer');
  });
});

test(`retention: a larger keepLast never deletes more; no policy deletes nothing (seed ${seed})`, () => {
  check('retention monotone', fc.tuple(itemsArb, fc.integer({ min: 1, max: 10 }), fc.integer({ min: 0, max: 5 })), ([items, n, more]) => {
    const a = new Set(toDelete(items, { keepLast: n + more }, NOW));
    for (const id of a) assert.ok(toDelete(items, { keepLast: n }, NOW).includes(id));
    assert.deepEqual(toDelete(items, {}, NOW), []);
  });
});

test('retention: keepDaily keeps the newest of each of the last D days', () => {
  const items: RetainedItem[] = [
    { id: 'd0-late', startMs: NOW - 1000, good: true },
    { id: 'd0-early', startMs: NOW - 3 * 3_600_000, good: true },
    { id: 'd1-late', startMs: NOW - DAY, good: true },
    { id: 'd1-early', startMs: NOW - DAY - 3_600_000, good: true },
    { id: 'd3', startMs: NOW - 3 * DAY, good: true },
    { id: 'd4-failed', startMs: NOW - 4 * DAY, good: false },
  ];
  assert.deepEqual(toDelete(items, { keepDaily: 2 }, NOW), ['d4-failed', 'd3', 'd1-early', 'd0-early']);
  assert.deepEqual(toDelete(items, { keepDaily: 2, keepLast: 2 }, NOW), ['d4-failed', 'd3', 'd1-early']);
  assert.deepEqual(toDelete(items, { maxAgeMs: 2 * DAY }, NOW), ['d4-failed', 'd3']);
  // Everything too old: the newest good one stays anyway.
  assert.deepEqual(toDelete(items, { maxAgeMs: 1 }, NOW), ['d4-failed', 'd3', 'd1-early', 'd1-late', 'd0-early']);
  assert.deepEqual(policyProblems({ keepLast: 0, maxAgeMs: -1 }).length, 2);
  assert.equal(parseDuration('30d'), 30 * DAY);
  assert.equal(parseDuration('1d12h'), DAY + 12 * 3_600_000);
  assert.equal(parseDuration('12x'), undefined);
});

test('schedule: croner expressions in a time zone; a schedule that does not parse is refused with the reason', () => {
  assert.equal(scheduleProblem({ schedule: '0 3 * * *' }), undefined);
  assert.equal(scheduleProblem({ schedule: '*/5 * * * *', timeZone: 'Europe/Berlin' }), undefined);
  assert.equal(scheduleProblem({ schedule: '@daily' }), undefined);
  for (const bad of ['61 * * * *', 'every day', '* * *', '0 3 * *', '']) {
    const p = scheduleProblem({ schedule: bad });
    assert.ok(p !== undefined && p.includes('spec.backup.schedule'), `refused: ${bad} (${String(p)})`);
    assert.throws(() => validateSchedule({ schedule: bad }), (e: unknown) => e instanceof BackupError && e.reason === 'InvalidSchedule');
  }
  assert.match(scheduleProblem({ schedule: '0 3 * * *', timeZone: 'Mars/Olympus' }) ?? '', /not an IANA time zone/);
  // 03:00 in Berlin (UTC+1 in December) is 02:00 UTC.
  const n = nextRun({ schedule: '0 3 * * *', timeZone: 'Europe/Berlin' }, new Date(Date.UTC(2026, 11, 6, 12)));
  assert.equal(n?.toISOString(), '2026-12-07T02:00:00.000Z');
  assert.equal(nextRun({ schedule: '*/15 * * * *' }, new Date(Date.UTC(2026, 11, 6, 12, 7)))?.toISOString(), '2026-12-06T12:15:00.000Z');
});

test('keys: start stamps sort as time and parse back', () => {
  const d = new Date(Date.UTC(2026, 11, 6, 16, 36, 31, 123));
  assert.equal(stampOf(d), '20261206T163631123Z');
  assert.equal(parseStamp(stampOf(d))?.getTime(), d.getTime());
  assert.equal(parseStamp('20261306T163631123Z'), undefined);
});

/** SnapshotResponse messages as Cairn sends them: 32 KiB chunks counting down, then the SHA-256. */
function messages(data: Buffer, chunk = 32 * 1024): SnapshotResponse[] {
  const out: SnapshotResponse[] = [];
  for (let at = 0; at < data.length; at += chunk) {
    const blob = data.subarray(at, Math.min(at + chunk, data.length));
    out.push({ header: undefined, remainingBytes: data.length - at - blob.length, blob, version: '' });
  }
  out.push({ header: undefined, remainingBytes: 0, blob: createHash('sha256').update(data).digest(), version: '' });
  return out;
}

async function verify(ms: SnapshotResponse[]): Promise<{ bytes: Buffer; err: unknown }> {
  const v = new SnapshotVerifier('test');
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb): void {
      parts.push(c);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(ms, { objectMode: true }), v, sink);
    return { bytes: Buffer.concat(parts), err: undefined };
  } catch (e) {
    return { bytes: Buffer.concat(parts), err: e };
  }
}

test('snapshot verifier: passes the file through (data + trailer) and ends only when the trailer matches', async () => {
  const data = randomBytes(512 * 300);
  const ms = messages(data);
  const good = await verify(ms);
  assert.equal(good.err, undefined);
  const sha = createHash('sha256').update(data).digest();
  assert.ok(good.bytes.equals(Buffer.concat([data, sha])));

  const cases: [string, SnapshotResponse[], RegExp][] = [
    ['no trailer', ms.slice(0, -1), /without its SHA-256 trailer/],
    ['a chunk missing', [...ms.slice(0, 2), ...ms.slice(3)], /remain/],
    ['wrong trailer', [...ms.slice(0, -1), { header: undefined, remainingBytes: 0, blob: Buffer.alloc(32, 7), version: '' }], /SHA-256 mismatch/],
    ['short trailer', [...ms.slice(0, -1), { header: undefined, remainingBytes: 0, blob: Buffer.alloc(31), version: '' }], /not a 32-byte SHA-256/],
    ['flipped bit', ms.map((m, i) => (i === 1 ? { ...m, blob: Buffer.from(m.blob.map((b, j) => (j === 5 ? b ^ 1 : b))) } : m)), /SHA-256 mismatch/],
    ['chunk after trailer', [...ms, { header: undefined, remainingBytes: 0, blob: Buffer.alloc(32), version: '' }], /after the SHA-256 trailer/],
  ];
  for (const [name, bad, re] of cases) {
    const r = await verify(bad);
    assert.ok(r.err instanceof BackupError, `${name}: fails`);
    assert.equal(r.err.reason, 'SnapshotFailed');
    assert.match(r.err.message, re, name);
    assert.ok(r.bytes.length <= data.length, `${name}: the trailer is never passed on`);
  }
});

test(`snapshot verifier: the outcome does not depend on chunk sizes (seed ${seed})`, async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 9000 }), async (sectors, chunk) => {
      const data = randomBytes(512 * sectors);
      const r = await verify(messages(data, chunk));
      assert.equal(r.err, undefined);
      assert.equal(r.bytes.length, data.length + 32);
    }),
    { seed, numRuns: 50 },
  );
});

test('errors: S3 failures are classified for the BackupHealthy condition', () => {
  const mk = (name: string, status: number): unknown => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  assert.equal(classifyS3Error(mk('NoSuchBucket', 404), 'upload', 'b').reason, 'BucketMissing');
  assert.equal(classifyS3Error(mk('InvalidAccessKeyId', 403), 'upload', 'b').reason, 'AccessDenied');
  assert.equal(classifyS3Error(mk('AccessDenied', 403), 'upload', 'b').reason, 'AccessDenied');
  assert.equal(classifyS3Error(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'upload', 'b').reason, 'EndpointUnreachable');
  assert.equal(classifyS3Error(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), 'upload', 'b').reason, 'EndpointUnreachable');
  assert.equal(classifyS3Error(mk('InternalError', 500), 'upload', 'b').reason, 'UploadFailed');
});

test('source: healthy followers first (most caught up first), then the leader, never a learner', () => {
  const m = (endpoint: string, id: string, o: { learner?: boolean; healthy?: boolean; rev?: number } = {}) => ({
    endpoint,
    memberId: id,
    leaderId: 'a',
    isLearner: o.learner ?? false,
    healthy: o.healthy ?? true,
    revision: o.rev ?? 10,
  });
  const order = sourceOrder([m('e1', 'a'), m('e2', 'b', { rev: 9 }), m('e3', 'c', { rev: 11 }), m('e4', 'd', { learner: true }), m('e5', 'e', { healthy: false })]);
  assert.deepEqual(
    order.map((c) => c.endpoint),
    ['e3', 'e2', 'e1'],
  );
});

test('one backup at a time per cluster', () => {
  const slots = new BackupSlots();
  const release = slots.tryAcquire('a');
  assert.ok(release !== undefined);
  assert.equal(slots.tryAcquire('a'), undefined, 'a second backup of the same cluster waits');
  const other = slots.tryAcquire('b');
  assert.ok(other !== undefined, 'another cluster is independent');
  release();
  release();
  assert.ok(slots.tryAcquire('a') !== undefined);
});

test('destination: bucket names, endpoints, regions and prefixes checked at the gate', () => {
  assert.deepEqual(destinationProblems({ bucket: 'etcd-backups', endpoint: 'https://s3.example.com:9000', region: 'eu-west-1', prefix: 'prod/' }), []);
  assert.equal(destinationProblems({ bucket: 'Bad_Bucket' }).length, 1);
  assert.equal(destinationProblems({ bucket: 'ok-bucket', endpoint: 'ftp://x' }).length, 1);
  assert.match(destinationProblems({ bucket: 'ok-bucket', endpoint: 'https://s3.example.com/bucket' })[0] ?? '', /has a path/);
  assert.equal(destinationProblems({ bucket: 'ok-bucket', region: 'US East' }).length, 1);
  assert.equal(destinationProblems({ bucket: 'ok-bucket', prefix: 'a/../b' }).length, 1);
});
