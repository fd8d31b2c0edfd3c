// The watchable store's live delivery (server/mvcc/watch.ts) against a plain model of what each
// watcher must get: several revisions delivered in one batch, watchers of one range with different
// filters and start revisions (they are matched as a group and share chunk lists), a second range
// overlapping the first, a single-key watcher, and a txn touching keys inside and outside a range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { Event_EventType } from '../../proto/gen/mvccpb.js';
import { inRange, keyRange, type KeyRange } from '../../server/base/bytes.js';
import { KvStore } from '../../server/mvcc/store.js';
import { WatchableStore, Watcher, type WatchEvent, type WatchFilters, type WatchSink } from '../../server/mvcc/watch.js';
import { Backend } from '../../server/storage/backend/backend.js';
import { tempDir } from '../harness/procs.js';

interface Got {
  rev: number;
  key: string;
  type: Event_EventType;
  prevValue: string | undefined;
}

class RecordingSink implements WatchSink {
  readonly blocked = false;
  readonly got = new Map<bigint, Got[]>();
  responses = 0;

  sendEvents(w: Watcher, chunks: readonly (readonly WatchEvent[])[], _headerRev: number): void {
    this.responses++;
    const list = this.got.get(w.id) ?? [];
    for (const chunk of chunks) {
      for (const e of chunk) {
        list.push({ rev: e.kv.modRevision, key: e.kv.key.toString(), type: e.type, prevValue: e.prevKv === undefined ? undefined : Buffer.from(e.prevKv.value).toString() });
      }
    }
    this.got.set(w.id, list);
  }

  sendCompacted(): void {
    assert.fail('nothing is compacted here');
  }
}

const NONE: WatchFilters = { noPut: false, noDelete: false, prevKv: false };

test('one delivery of several revisions: every watcher gets exactly its events, in order, whatever range group, filters and start', async () => {
  const backend = Backend.open(join(tempDir('cairn-watchable-'), 'db'), 64 * 1024 * 1024);
  const store = new KvStore(backend);
  const scheduled: (() => void)[] = [];
  const hub = new WatchableStore(store, { watchersPerStep: 512, revisionsPerStep: 1000, bytesPerStep: 1 << 20 }, (fn) => scheduled.push(fn));
  const sink = new RecordingSink();
  const values = new Map<string, string>();
  /** The model: every event with its previous value, by revision. */
  const history: { rev: number; key: string; type: Event_EventType; prevValue: string | undefined }[] = [];

  const write = (ops: readonly { key: string; value?: string }[]): void => {
    backend.write(() => {
      const txn = store.beginWrite();
      for (const op of ops) {
        if (op.value === undefined) txn.deleteRange(keyRange(Buffer.from(op.key), Buffer.alloc(0)));
        else txn.put(Buffer.from(op.key), Buffer.from(op.value), 0n);
      }
      const rev = txn.end();
      for (const op of ops) {
        history.push({ rev, key: op.key, type: op.value === undefined ? Event_EventType.DELETE : Event_EventType.PUT, prevValue: values.get(op.key) });
        if (op.value === undefined) values.delete(op.key);
        else values.set(op.key, op.value);
      }
    });
    hub.notify(store.takeChanges());
  };

  write([{ key: 'a0', value: 'v0' }]); // before any watcher
  for (const fn of scheduled.splice(0)) fn();
  const start = store.currentRev + 1;
  const prefixA = keyRange(Buffer.from('a'), Buffer.from('b'));
  const aToC = keyRange(Buffer.from('a'), Buffer.from('c'));
  const single = keyRange(Buffer.from('a1'), Buffer.alloc(0));
  const specs: { range: KeyRange; filters: WatchFilters; nextRev: number }[] = [
    { range: prefixA, filters: NONE, nextRev: start },
    { range: prefixA, filters: NONE, nextRev: start },
    { range: prefixA, filters: { ...NONE, prevKv: true }, nextRev: start },
    { range: prefixA, filters: { ...NONE, noPut: true }, nextRev: start },
    { range: prefixA, filters: { ...NONE, noDelete: true }, nextRev: start + 2 },
    { range: prefixA, filters: NONE, nextRev: start + 3 },
    { range: aToC, filters: NONE, nextRev: start },
    { range: single, filters: { ...NONE, prevKv: true }, nextRev: start },
  ];
  const watchers = specs.map((s, i) => new Watcher(BigInt(i + 1), s.range, s.nextRev, s.nextRev, s.filters, sink));
  for (const w of watchers) hub.add(w);

  // Five revisions, delivered together: puts, a txn with keys in and out of prefixA, a delete.
  write([{ key: 'a1', value: 'v1' }]);
  write([{ key: 'a2', value: 'v2' }]);
  write([{ key: 'a1', value: 'v1b' }, { key: 'b1', value: 'w1' }, { key: 'zz', value: 'out' }]);
  write([{ key: 'a2' }]);
  write([{ key: 'b2', value: 'w2' }, { key: 'a3', value: 'v3' }]);
  assert.ok(scheduled.length >= 1, 'delivery waits for the scheduler');
  for (const fn of scheduled.splice(0)) fn();

  for (const [i, w] of watchers.entries()) {
    const s = specs[i];
    assert.ok(s !== undefined);
    const want = history
      .filter((h) => h.rev >= s.nextRev && inRange(s.range, Buffer.from(h.key)))
      .filter((h) => (h.type === Event_EventType.PUT ? !s.filters.noPut : !s.filters.noDelete))
      .map((h) => ({ ...h, prevValue: s.filters.prevKv && h.type === Event_EventType.PUT && h.prevValue !== undefined ? h.prevValue : s.filters.prevKv && h.type === Event_EventType.DELETE ? h.prevValue : undefined }));
    assert.ok(want.length > 0, `watcher ${i + 1} expects events`);
    assert.deepEqual(sink.got.get(w.id) ?? [], want, `watcher ${i + 1}`);
    assert.equal(w.nextRev, store.currentRev + 1, `watcher ${i + 1} is up to date`);
  }
  assert.equal(sink.responses, watchers.length, 'one response per watcher for the whole batch');
  await backend.close();
});
