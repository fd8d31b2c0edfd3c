// Defragment while a paced physical compaction runs (--compaction-batch-limit small,
// --compaction-sleep-interval long), as etcd's defrag takes the backend between two compaction
// batches: the compaction gives way between two steps, the Defragment answers within about one pause
// (not after the compaction's remaining steps × pause), the file shrinks, and the compaction then goes
// on from the key it stopped at and finishes once, leaving exactly the revisions and key index of a
// member that compacted the same history without a defrag (same HashKV at the compact revision too).
// A kill -9 after such a defrag, mid-compaction, still resumes at the restart; and with a pause
// shorter than the defrag, the compaction is seen waiting for it between two steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { EtcdClient } from '../harness/client.js';
import type { CallResult, Msg } from '../harness/client.js';
import { startCairn } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { hashKvOf, headerRev, ok, statusOf } from './helpers.js';
import type { HashKv } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);
const dbFile = (dataDir: string): string => join(dataDir, 'member', 'db.mdb');

const STARTED = 'compaction: removing old revisions';
const FINISHED = 'finished scheduled compaction';
const GIVES_WAY = 'compaction: giving way to a defragmentation';

/** The history the paced compaction removes: `rounds` versions of `keys` keys, one txn per round. */
interface History {
  readonly keys: number;
  readonly rounds: number;
}

/** Tests 1 and 2: 40 keys × 3 old versions = 120 revisions to remove, 10 per step, 3 s apart (~36 s). */
const PACED: History = { keys: 40, rounds: 4 };
const PACED_BATCH = 10;
const PACED_SLEEP_MS = 3000;
/** What a defrag of this small database may take beyond one pause (a loaded 2-core machine). */
const SLACK_MS = 2000;
/** Test 3: 2,000 revisions removed one per step, 1 ms apart: longer than a defrag, pauses shorter. */
const BUSY: History = { keys: 100, rounds: 21 };
const DEFRAGS_MAX = 5;

function msgs(p: ServerProc): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of p.stderrLines()) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // not a JSON line
    }
  }
  return out;
}

function logged(p: ServerProc, msg: string): Array<Record<string, unknown>> {
  return msgs(p).filter((m) => m['msg'] === msg);
}

/** ~20 MB written, deleted and compacted away (physical=true): free pages for a defrag to drop. */
async function garbage(c: EtcdClient): Promise<void> {
  const big = Buffer.alloc(10 * 1024, 0x61);
  for (let t = 0; t < 200; t++) {
    const success = Array.from({ length: 10 }, (_, j) => ({ request_put: { key: b(`bulk/${String(t * 10 + j).padStart(5, '0')}`), value: big } }));
    ok(await c.txn({ success }, { timeoutMs: 30_000 }), `txn bulk ${t}`);
  }
  ok(await c.deleteRange({ key: b('bulk/'), range_end: b('bulk0') }), 'delete bulk');
  const mark = ok(await c.put({ key: b('mark'), value: b('m') }), 'put mark');
  ok(await c.compact({ revision: String(headerRev(mark)), physical: true }, { timeoutMs: 60_000 }), 'compact bulk');
}

/** Writes the history (the same revisions on every member); returns its last revision. */
async function history(c: EtcdClient, h: History): Promise<number> {
  let rev = 0;
  for (let r = 0; r < h.rounds; r++) {
    const success = Array.from({ length: h.keys }, (_, k) => ({ request_put: { key: b(`hist/${String(k).padStart(4, '0')}`), value: b(`v${r}-${k}`) } }));
    rev = headerRev(ok(await c.txn({ success }, { timeoutMs: 30_000 }), `txn hist ${r}`));
  }
  return rev;
}

/** The KV revisions and the key index of a stopped member, hex key=value in key order. */
async function dump(dataDir: string): Promise<{ revs: string[]; index: string[] }> {
  const root = open({ path: dbFile(dataDir), keyEncoding: 'binary', encoding: 'binary', maxDbs: 16 });
  try {
    const rows = (name: string, dupSort: boolean): string[] => {
      const db = root.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary', dupSort });
      return [...db.getRange({})].map(({ key, value }) => `${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`);
    };
    return { revs: rows('rev', false), index: rows('index', true) };
  } finally {
    await root.close();
  }
}

interface Reference {
  readonly rev: number;
  readonly hash: HashKv;
  readonly stored: { revs: string[]; index: string[] };
}

const references = new Map<string, Promise<Reference>>();

/** A member that wrote the same history and compacted it without a defrag (default flags). */
function reference(h: History): Promise<Reference> {
  const id = `${h.keys}x${h.rounds}`;
  let r = references.get(id);
  if (r === undefined) {
    r = (async (): Promise<Reference> => {
      const p = await startCairn();
      const c = new EtcdClient(p.endpoint);
      try {
        await c.waitReady();
        await garbage(c);
        const rev = await history(c, h);
        ok(await c.compact({ revision: String(rev), physical: true }, { timeoutMs: 120_000 }), 'compact history');
        const hash = await hashKvOf(c, rev);
        c.close();
        await p.stop();
        assert.equal(logged(p, FINISHED).length, 2, 'the reference finished both compactions');
        return { rev, hash, stored: await dump(p.dataDir) };
      } finally {
        c.close();
        await p.stop();
      }
    })();
    references.set(id, r);
  }
  return r;
}

interface Compacting {
  readonly p: ServerProc;
  readonly c: EtcdClient;
  readonly rev: number;
  /** The Compact(physical=true) call: it answers once the physical compaction is done. */
  readonly compact: Promise<CallResult<Msg>>;
  readonly answered: () => boolean;
}

/**
 * A member with garbage to defragment, restarted with `flags`, that wrote the history and compacted
 * it with physical=true: returns once the physical compaction of the history has begun (its first step
 * is taken in the turn that logs STARTED).
 */
async function compacting(h: History, flags: string[]): Promise<Compacting> {
  const first = await startCairn();
  let c = new EtcdClient(first.endpoint);
  try {
    await c.waitReady();
    await garbage(c);
  } finally {
    c.close();
    await first.stop();
  }
  const p = await startCairn({ dataDir: first.dataDir, name: first.name, extraArgs: flags });
  c = new EtcdClient(p.endpoint);
  try {
    await c.waitReady();
    const rev = await history(c, h);
    let answered = false;
    const compact = c.compact({ revision: String(rev), physical: true }, { timeoutMs: 600_000 }).finally(() => {
      answered = true;
    });
    await pollUntil('the physical compaction of the history', () => Promise.resolve(logged(p, STARTED).length > 0), 30_000, 5);
    return { p, c, rev, compact, answered: () => answered };
  } catch (e) {
    c.close();
    await p.stop();
    throw e;
  }
}

/** Defragment through the gRPC API; how long it took and whether the compaction had finished by then. */
async function defragment(c: EtcdClient, p: ServerProc): Promise<{ tookMs: number; compactionDone: boolean }> {
  const started = Date.now();
  ok(await c.unary('Maintenance', 'Defragment', {}, { timeoutMs: 600_000 }), 'Defragment');
  return { tookMs: Date.now() - started, compactionDone: logged(p, FINISHED).length > 0 };
}

/**
 * Waits for the end of the compaction at `rev` on `p`, which must have run once (started and finished
 * logged once), then checks it left what the reference did: HashKV at `rev`, and (p stopped) the
 * revisions and key index. Returns the STARTED line.
 */
async function endsAsReference(p: ServerProc, c: EtcdClient, rev: number, ref: Reference, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
  await pollUntil('the end of the compaction', () => Promise.resolve(logged(p, FINISHED).length > 0), timeoutMs, 50);
  const finished = logged(p, FINISHED);
  assert.equal(finished.length, 1, 'finished scheduled compaction logged once');
  assert.equal(finished[0]?.['compact-revision'], rev);
  const started = logged(p, STARTED);
  assert.equal(started.length, 1, 'the compaction went on after the defrag, it did not start over');
  assert.deepEqual(await hashKvOf(c, rev), ref.hash, 'HashKV at the compact revision');
  c.close();
  await p.stop();
  const stored = await dump(p.dataDir);
  assert.equal(stored.revs.length, ref.stored.revs.length, 'revisions left');
  assert.deepEqual(stored, ref.stored, 'the revisions and key index left are those of a compaction without a defrag');
  return started[0];
}

test('a defrag in the middle of a paced compaction answers within one pause; the compaction resumes and ends as without it', { timeout: 300_000 }, async () => {
  const ref = await reference(PACED);
  const { p, c, rev, compact, answered } = await compacting(PACED, [`--compaction-batch-limit=${PACED_BATCH}`, `--compaction-sleep-interval=${PACED_SLEEP_MS}ms`]);
  try {
    assert.equal(rev, ref.rev, 'the same history, the same revisions');
    // The first of at least REMOVED / BATCH steps is taken: what is left takes that many pauses less one.
    const leftMs = (Math.ceil((PACED.keys * (PACED.rounds - 1)) / PACED_BATCH) - 1) * PACED_SLEEP_MS;
    assert.ok(PACED_SLEEP_MS + SLACK_MS < leftMs / 4, 'the bound separates giving way from waiting for the compaction');
    const fileBefore = statSync(dbFile(p.dataDir)).size;
    const before = await statusOf(c);

    const d = await defragment(c, p);
    assert.equal(d.compactionDone, false, 'the defrag answered while the compaction still had steps to take');
    assert.ok(d.tookMs < PACED_SLEEP_MS + SLACK_MS, `Defragment took ${d.tookMs} ms: it waited for the compaction (${leftMs} ms of pauses left), not for one step`);
    assert.equal(answered(), false, 'Compact(physical=true) is still waiting: the defrag did not end the compaction');
    const fileAfter = statSync(dbFile(p.dataDir)).size;
    const after = await statusOf(c);
    assert.ok(fileAfter < fileBefore / 4, `LMDB file ${fileBefore} → ${fileAfter} bytes: not much smaller`);
    assert.ok(after.dbSize < before.dbSize / 4, `Status.dbSize ${before.dbSize} → ${after.dbSize}: not much smaller`);

    assert.equal((await compact).ok, true, 'Compact(physical=true) answered once the compaction was done');
    await endsAsReference(p, c, rev, ref, 60_000);
    console.log(`defrag during compaction: ${d.tookMs} ms (pauses left ${leftMs} ms), file ${fileBefore} → ${fileAfter} bytes`);
  } finally {
    c.close();
    await p.stop();
  }
});

test('kill -9 after a defrag in the middle of a paced compaction: the restart resumes it from the defragmented file', { timeout: 300_000 }, async () => {
  const ref = await reference(PACED);
  const { p, c, rev, compact } = await compacting(PACED, [`--compaction-batch-limit=${PACED_BATCH}`, `--compaction-sleep-interval=${PACED_SLEEP_MS}ms`]);
  void compact; // cut short by the kill
  const fileBefore = statSync(dbFile(p.dataDir)).size;
  try {
    const d = await defragment(c, p);
    assert.equal(d.compactionDone, false, 'the defrag answered while the compaction still had steps to take');
  } finally {
    c.close();
    await p.kill9();
  }
  assert.equal(logged(p, FINISHED).length, 0, 'the kill landed in the middle of the compaction');
  assert.ok(statSync(dbFile(p.dataDir)).size < fileBefore / 4, 'the defragmented file is the one the restart opens');
  const again = await startCairn({ dataDir: p.dataDir, name: p.name });
  const c2 = new EtcdClient(again.endpoint);
  try {
    const resumed = await endsAsReference(again, c2, rev, ref, 60_000);
    assert.equal(resumed?.['resumed'], true, 'the restart resumed the compaction part done (before and after the defrag)');
  } finally {
    c2.close();
    await again.stop();
  }
});

test('a compaction whose pauses are shorter than the defrag waits for it between two steps, then finishes as without it', { timeout: 300_000 }, async () => {
  const ref = await reference(BUSY);
  const { p, c, rev, compact, answered } = await compacting(BUSY, ['--compaction-batch-limit=1', '--compaction-sleep-interval=1ms']);
  try {
    // A defrag spans many 1 ms pauses, so the compaction meets it at a step; a few more defrags in case
    // one was quicker than a pause (the compaction outlasts them: ≥ 2,000 pauses).
    let defrags = 0;
    while (defrags < DEFRAGS_MAX && logged(p, GIVES_WAY).length === 0) {
      const d = await defragment(c, p);
      defrags++;
      assert.equal(d.compactionDone, false, `defrag ${defrags} ran in the middle of the compaction`);
      assert.equal(answered(), false, 'Compact(physical=true) is still waiting');
    }
    const gaveWay = logged(p, GIVES_WAY);
    assert.equal(gaveWay.length, 1, `the compaction reached a step while one of ${defrags} defrags ran, and waited for it once`);
    assert.equal(gaveWay[0]?.['compact-revision'], rev);
    assert.ok(Number(gaveWay[0]?.['steps']) > 0, 'it gave way in the middle, after some steps');
    assert.equal((await compact).ok, true, 'Compact(physical=true) answered once the compaction was done');
    await endsAsReference(p, c, rev, ref, 60_000);
  } finally {
    c.close();
    await p.stop();
  }
});
