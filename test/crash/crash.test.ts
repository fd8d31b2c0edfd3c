// Crash safety: concurrent writers, kill -9 in the middle of the load, restart on the same data.
// Every acknowledged put must read back with its acknowledged revision and value, and the store's
// revisions must stay contiguous (no gap, no reuse) across every crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCairn, tempDir, type ServerProc } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';

const ROUNDS = 5;
const WRITERS = 32;
const SEED = Number(process.env['CAIRN_CRASH_SEED'] ?? 20261124);
/** Small WAL segments released often, so crashes land around segment rotation and release too. */
const SMALL_WAL = ['--wal-segment-bytes', '65536', '--snapshot-count', '300'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Acked {
  readonly key: string;
  readonly value: string;
  readonly rev: number;
}

/** Runs writers until `stop()` resolves; returns every put the server acknowledged. */
async function load(client: EtcdClient, round: number, until: Promise<void>): Promise<Acked[]> {
  const acked: Acked[] = [];
  let done = false;
  void until.then(() => {
    done = true;
  });
  const writer = async (w: number): Promise<void> => {
    for (let seq = 0; !done; seq++) {
      const key = `crash/${round}/${w}/${seq}`;
      const value = `v-${round}-${w}-${seq}-${'x'.repeat(seq % 200)}`;
      const r = await client.put({ key: Buffer.from(key), value: Buffer.from(value) }, { timeoutMs: 3000 });
      if (!r.ok) return;
      const header = r.value['header'] as { revision: string };
      acked.push({ key, value, rev: Number(header.revision) });
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  return acked;
}

async function verify(client: EtcdClient, acked: readonly Acked[]): Promise<number> {
  for (const a of acked) {
    const r = await client.range({ key: Buffer.from(a.key) });
    assert.ok(r.ok, `range ${a.key}: ${JSON.stringify(r)}`);
    const kvs = r.value['kvs'] as { value: Buffer; mod_revision: string; create_revision: string }[];
    assert.equal(kvs.length, 1, `acknowledged key ${a.key} (rev ${a.rev}) is missing after restart`);
    const kv = kvs[0];
    assert.ok(kv !== undefined);
    assert.equal(kv.value.toString(), a.value, `value of ${a.key}`);
    assert.equal(Number(kv.mod_revision), a.rev, `mod_revision of ${a.key}`);
    assert.equal(Number(kv.create_revision), a.rev, `create_revision of ${a.key}`);
  }
  // Every revision 2..current belongs to exactly one put of a unique key: contiguous, no reuse.
  const all = await client.range({ key: Buffer.from('crash/'), range_end: Buffer.from('crash0'), keys_only: true });
  assert.ok(all.ok);
  const current = Number((all.value['header'] as { revision: string }).revision);
  const revs = (all.value['kvs'] as { mod_revision: string }[]).map((kv) => Number(kv.mod_revision)).sort((a, b) => a - b);
  assert.equal(revs.length, current - 1, `store holds ${revs.length} puts but is at revision ${current}`);
  revs.forEach((rev, i) => assert.equal(rev, i + 2, 'revisions are contiguous from 2'));
  return current;
}

test('acknowledged writes survive kill -9 mid-load, revisions continue without gap or reuse', { timeout: 300_000 }, async () => {
  const dataDir = tempDir('cairn-crash');
  const random = rng(SEED);
  const acked: Acked[] = [];
  const logs: string[] = [];
  let lastRev = 1;
  for (let round = 0; round < ROUNDS; round++) {
    const proc: ServerProc = await startCairn({ dataDir, extraArgs: SMALL_WAL });
    const client = new EtcdClient(proc.endpoint);
    try {
      await client.waitReady();
      lastRev = await verify(client, acked);
      const delayMs = 300 + Math.floor(random() * 700);
      const killed = new Promise<void>((res) => setTimeout(res, delayMs)).then(() => proc.kill9());
      const got = await load(client, round, killed);
      await killed;
      assert.ok(got.length > 0, `round ${round} (seed ${SEED}): some puts were acknowledged before the kill`);
      for (const a of got) assert.ok(a.rev > lastRev, `round ${round}: revision ${a.rev} reuses one at or below ${lastRev}`);
      acked.push(...got);
    } finally {
      client.close();
      await proc.kill9().catch(() => undefined);
      logs.push(...proc.stderrLines());
    }
  }
  assert.ok(logs.some((l) => l.includes('wal: rotated segment')), 'the load crossed WAL segment boundaries');
  assert.ok(logs.some((l) => l.includes('wal: released segments')), 'WAL segments were released between crashes');
  const proc = await startCairn({ dataDir, extraArgs: SMALL_WAL });
  const client = new EtcdClient(proc.endpoint);
  try {
    await client.waitReady();
    const final = await verify(client, acked);
    assert.ok(final >= acked.length + 1, `final revision ${final} covers the ${acked.length} acknowledged puts`);
    const next = await client.put({ key: Buffer.from('crash/after'), value: Buffer.from('x') });
    assert.ok(next.ok);
    assert.equal(Number((next.value['header'] as { revision: string }).revision), final + 1, 'the next write takes the next revision');
  } finally {
    client.close();
    await proc.stop();
  }
});
