// Compaction removes old revisions in the background, in batches: reads are served while a
// physical compaction runs, Compact(physical=true) answers only when it is done, and a compaction
// cut short by kill -9 resumes after the restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCairn, tempDir } from '../harness/procs.js';
import { EtcdClient, type CallResult, type Msg } from '../harness/client.js';

const KEYS = 40_000;
const PER_TXN = 100;

async function populate(c: EtcdClient): Promise<number> {
  let rev = 0;
  for (let round = 0; round < 2; round++) {
    const txns: Promise<CallResult<Msg>>[] = [];
    for (let i = 0; i < KEYS; i += PER_TXN) {
      const success = Array.from({ length: PER_TXN }, (_, j) => ({ request_put: { key: Buffer.from(`c/${String(i + j).padStart(6, '0')}`), value: Buffer.from(`v${round}`) } }));
      txns.push(c.txn({ success }, { timeoutMs: 60_000 }));
    }
    for (const r of await Promise.all(txns)) {
      assert.ok(r.ok, JSON.stringify(r));
      rev = Math.max(rev, Number((r.value['header'] as { revision: string }).revision));
    }
  }
  return rev;
}

function settled(p: Promise<unknown>): { done: boolean } {
  const state = { done: false };
  void p.finally(() => {
    state.done = true;
  });
  return state;
}

/** Reads at rev-1 until they fail with `compacted`: the compaction has been applied (logically). */
async function waitLogical(c: EtcdClient, rev: number): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    const r = await c.range({ key: Buffer.from('c/000001'), revision: rev - 1 });
    if (!r.ok && r.details === 'etcdserver: mvcc: required revision has been compacted') return;
  }
  throw new Error('the compaction was never applied');
}

test('reads are served while a physical compaction runs; physical=true answers when it is done', { timeout: 180_000 }, async () => {
  const proc = await startCairn();
  const c = new EtcdClient(proc.endpoint);
  try {
    const rev = await populate(c);
    const compact = c.compact({ revision: rev, physical: true }, { timeoutMs: 60_000 });
    const state = settled(compact);
    await waitLogical(c, rev);
    assert.equal(state.done, false, 'physical=true is still waiting for the old revisions to go');
    const read = await c.range({ key: Buffer.from('c/'), range_end: Buffer.from('c0'), count_only: true });
    assert.ok(read.ok);
    assert.equal(Number(read.value['count']), KEYS);
    assert.equal(state.done, false, 'a read was answered in the middle of the physical compaction');
    const done = await compact;
    assert.ok(done.ok, JSON.stringify(done));
    const lines = proc.stderrLines();
    assert.ok(lines.some((l) => l.includes('finished scheduled compaction')));
    const latest = await c.range({ key: Buffer.from('c/039999') });
    assert.ok(latest.ok);
    assert.equal((latest.value['kvs'] as { value: Buffer }[])[0]?.value.toString(), 'v1');
  } finally {
    c.close();
    await proc.stop();
  }
});

test('a physical compaction cut short by kill -9 resumes after the restart', { timeout: 180_000 }, async () => {
  const dataDir = tempDir('cairn-compact-crash');
  const first = await startCairn({ dataDir });
  let c = new EtcdClient(first.endpoint);
  let rev = 0;
  try {
    rev = await populate(c);
    void c.compact({ revision: rev, physical: true }, { timeoutMs: 60_000 });
    await waitLogical(c, rev);
  } finally {
    c.close();
    await first.kill9();
  }
  const cutShort = !first.stderrLines().some((l) => l.includes('finished scheduled compaction'));
  assert.ok(cutShort, 'the kill landed in the middle of the physical compaction');
  const second = await startCairn({ dataDir });
  c = new EtcdClient(second.endpoint);
  try {
    const r = await c.range({ key: Buffer.from('c/000001'), revision: rev - 1 });
    assert.equal(r.ok ? 'OK' : r.details, 'etcdserver: mvcc: required revision has been compacted', 'the compaction survived the crash');
    // The resumed removal shows in the log; reads keep being answered meanwhile.
    for (let i = 0; i < 5000 && !second.stderrLines().some((l) => l.includes('finished scheduled compaction')); i++) {
      await c.range({ key: Buffer.from('c/000001') });
    }
    // No Compact was sent to this process: any removal it logs is the interrupted one, resumed.
    assert.ok(second.stderrLines().some((l) => l.includes('compaction: removing old revisions')), 'the interrupted removal resumed');
    assert.ok(second.stderrLines().some((l) => l.includes('finished scheduled compaction')), 'and finished');
    const all = await c.range({ key: Buffer.from('c/'), range_end: Buffer.from('c0'), count_only: true });
    assert.ok(all.ok);
    assert.equal(Number(all.value['count']), KEYS);
  } finally {
    c.close();
    await second.stop();
  }
});
