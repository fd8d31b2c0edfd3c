// MemoryStorage semantics (etcd's MemoryStorage) and the ConfChange codec.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CompactedError,
  MemoryStorage,
  NONE,
  UnavailableError,
  decodeConfChange,
  encodeConfChange,
  type ConfChange,
  type Entry,
} from '../../server/raft/index.js';

const conf = { voters: [1n, 2n, 3n], learners: [4n] };
const ent = (index: number, term: number, bytes = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array(bytes) });
const indexes = (es: readonly Entry[]): number[] => es.map((e) => e.index);

/** Snapshot at 3 (term 2), entries 4..6 (terms 2, 3, 3). */
function storage(): MemoryStorage {
  return new MemoryStorage({ index: 3, term: 2, confState: conf }, { term: 3, vote: 1n, commit: 5 }, [ent(4, 2), ent(5, 3), ent(6, 3)]);
}

test('MemoryStorage: bounds, terms, entries and their errors', () => {
  const s = storage();
  assert.deepEqual([s.firstIndex(), s.lastIndex()], [4, 6]);
  assert.deepEqual(s.initialState(), { hardState: { term: 3, vote: 1n, commit: 5 }, confState: conf });
  assert.equal(s.term(3), 2, 'the snapshot index has the snapshot term');
  assert.equal(s.term(5), 3);
  assert.throws(() => s.term(2), CompactedError);
  assert.throws(() => s.term(7), UnavailableError);
  assert.deepEqual(indexes(s.entries(4, 7, Infinity)), [4, 5, 6]);
  assert.deepEqual(indexes(s.entries(5, 6, Infinity)), [5]);
  assert.throws(() => s.entries(3, 5, Infinity), CompactedError);
  assert.throws(() => s.entries(4, 8, Infinity), UnavailableError);
  assert.throws(() => new MemoryStorage({ index: 3, term: 2, confState: conf }, { term: 0, vote: NONE, commit: 0 }, [ent(5, 2)]), /start at 5, expected 4/);
});

test('MemoryStorage: entries() honours maxBytes but always returns at least one entry', () => {
  const s = new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 0, vote: NONE, commit: 0 }, [ent(1, 1, 10), ent(2, 1, 10), ent(3, 1, 10)]);
  assert.deepEqual(indexes(s.entries(1, 4, 0)), [1]);
  assert.deepEqual(indexes(s.entries(1, 4, 19)), [1]);
  assert.deepEqual(indexes(s.entries(1, 4, 20)), [1, 2]);
  assert.deepEqual(indexes(s.entries(1, 4, 30)), [1, 2, 3]);
});

test('MemoryStorage: append extends, replaces a suffix, ignores compacted entries and refuses gaps', () => {
  const s = storage();
  s.append([ent(7, 3), ent(8, 3)]);
  assert.equal(s.lastIndex(), 8);
  s.append([ent(6, 4), ent(7, 4)]); // replaces 6.. and drops 8
  assert.deepEqual([s.lastIndex(), s.term(5), s.term(6), s.term(7)], [7, 3, 4, 4]);
  s.append([ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 5)]); // 2 and 3 are below the snapshot: ignored
  assert.deepEqual([s.firstIndex(), s.lastIndex(), s.term(4), s.term(5)], [4, 5, 2, 5]);
  s.append([ent(1, 1), ent(2, 1)]); // wholly compacted: no-op
  assert.equal(s.lastIndex(), 5);
  assert.throws(() => s.append([ent(7, 5)]), /missing entries/);
  assert.throws(() => s.append([ent(6, 5), ent(8, 5)]), /not contiguous/);
  s.append([]);
  assert.equal(s.lastIndex(), 5);
});

test('MemoryStorage: compact keeps the term of the compaction point; applySnapshot drops everything', () => {
  const s = storage();
  s.compact(5, { voters: [1n, 2n], learners: [] });
  assert.deepEqual(s.snapshot(), { index: 5, term: 3, confState: { voters: [1n, 2n], learners: [] } });
  assert.deepEqual([s.firstIndex(), s.lastIndex(), s.term(5), s.term(6)], [6, 6, 3, 3]);
  assert.deepEqual(s.initialState().confState, { voters: [1n, 2n], learners: [] });
  assert.throws(() => s.compact(5, conf), CompactedError);
  assert.throws(() => s.compact(7, conf), UnavailableError);
  s.setHardState({ term: 9, vote: 2n, commit: 6 });
  assert.deepEqual(s.initialState().hardState, { term: 9, vote: 2n, commit: 6 });
  s.applySnapshot({ index: 20, term: 8, confState: conf });
  assert.deepEqual([s.firstIndex(), s.lastIndex(), s.term(20)], [21, 20, 8]);
  assert.throws(() => s.entries(20, 21, Infinity), CompactedError);
  assert.throws(() => s.applySnapshot({ index: 20, term: 8, confState: conf }), /not newer/);
  s.append([ent(21, 8)]);
  assert.equal(s.lastIndex(), 21);
});

test('ConfChange codec: round trip of every type, u64 ids and context bytes', () => {
  const cases: ConfChange[] = [
    { type: 'addNode', nodeId: 1n, context: new Uint8Array(0) },
    { type: 'addLearner', nodeId: (1n << 64n) - 1n, context: Uint8Array.from([1, 2, 3]) },
    { type: 'removeNode', nodeId: 0x0123456789abcdefn, context: new Uint8Array(0) },
    { type: 'updateNode', nodeId: 42n, context: new TextEncoder().encode('{"peerURLs":["http://a:2380"]}') },
  ];
  for (const cc of cases) assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  const b = encodeConfChange({ type: 'removeNode', nodeId: 258n, context: Uint8Array.from([9]) });
  assert.deepEqual([...b], [2, 0, 0, 0, 0, 0, 0, 1, 2, 9], 'type byte, id u64 big-endian, context');
  // Decoding a view into a larger buffer.
  const big = new Uint8Array(20);
  big.set(b, 5);
  assert.deepEqual(decodeConfChange(big.subarray(5, 15)), { type: 'removeNode', nodeId: 258n, context: Uint8Array.from([9]) });
  fc.assert(
    fc.property(
      fc.constantFrom<ConfChange['type']>('addNode', 'addLearner', 'removeNode', 'updateNode'),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.uint8Array({ maxLength: 64 }),
      (type, nodeId, context) => {
        assert.deepEqual(decodeConfChange(encodeConfChange({ type, nodeId, context })), { type, nodeId, context });
      },
    ),
    { seed: 4242, numRuns: 200 },
  );
});

test('ConfChange codec: malformed input is refused with a clear error', () => {
  assert.throws(() => decodeConfChange(new Uint8Array(0)), /malformed conf change: 0 bytes, need at least 9/);
  assert.throws(() => decodeConfChange(new Uint8Array(8)), /malformed conf change: 8 bytes/);
  assert.throws(() => decodeConfChange(Uint8Array.from([4, 0, 0, 0, 0, 0, 0, 0, 1])), /unknown type code 4/);
  assert.throws(() => encodeConfChange({ type: 'addNode', nodeId: 1n << 64n, context: new Uint8Array(0) }), /not a u64/);
  assert.throws(() => encodeConfChange({ type: 'bogus' as ConfChange['type'], nodeId: 1n, context: new Uint8Array(0) }), /unknown conf change type/);
});
