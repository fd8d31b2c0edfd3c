// Multi-version KV store on LMDB (etcd's mvcc/kvstore semantics).
//
// Invariants:
// - currentRev starts at 1 on an empty store; a write transaction with >= 1 change bumps it by
//   exactly 1 and every change in it shares that main revision, ordered by sub revision.
// - compactRev is -1 until the first compaction (as etcd's compactMainRev); reads below it fail.
// - Every index entry has a rev record; the index (LMDB dupsort) holds one entry per revision of a key, newest first.
// - currentRev and compactRev are persisted in the same LMDB transaction as the changes.
import { crc32 } from 'node:zlib';
import { crc32c } from '../base/crc32c.js';
import type { Backend, DupTable, Table } from '../storage/backend/index.js';
import {
  META,
  leaseKey,
  decodeIndexEntry,
  decodeNum,
  decodeRevRecord,
  encodeIndexEntry,
  encodeNum,
  encodeRevRecord,
  revKey,
  parseRevKey,
  TOMBSTONE,
  type IndexEntry,
} from '../storage/schema/index.js';
import { Event_EventType, decodeKeyValue, encodeKeyValue, type KeyValue } from '../../proto/gen/mvccpb.js';
import { ClientError, assert, VERIFY } from '../base/errors.js';
import { compareBytes, rangeIsEmpty, type KeyRange } from '../base/bytes.js';

/** One change of a revision, as a watcher sees it: a PUT carries the full kv, a DELETE only key + mod_revision. */
export interface MvccEvent {
  readonly type: Event_EventType;
  readonly kv: KeyValue;
}

/** The changes of one revision, in sub-revision order. */
export interface RevisionEvents {
  readonly rev: number;
  readonly events: readonly MvccEvent[];
}

export interface RangeResult {
  readonly kvs: KeyValue[];
  /** Keys in the range at the read revision, before any limit. */
  readonly count: number;
  /** The revision the read view is at (header.revision of a Range). */
  readonly rev: number;
}

/**
 * The newest index entry of a key at or below rev, or undefined. Entries sort newest first, so the
 * common case (reading the latest) is one plain get; older revisions walk on from there.
 */
function entryAt(index: DupTable, key: Uint8Array, rev: number): IndexEntry | undefined {
  const newest = index.first(key);
  if (newest === undefined) return undefined;
  const e = decodeIndexEntry(newest, key);
  if (e.main <= rev) return e;
  for (const raw of index.values(key, false)) {
    const older = decodeIndexEntry(raw, key);
    if (older.main <= rev) return older;
  }
  return undefined;
}

/** The key's live entry at rev (not a tombstone), or undefined. */
function liveAt(index: DupTable, key: Uint8Array, rev: number): IndexEntry | undefined {
  const e = entryAt(index, key, rev);
  return e === undefined || e.tombstone ? undefined : e;
}

/** Keys of a range, as a scan: one key, or LMDB's distinct keys in [start, end). */
function keysOf(index: DupTable, range: KeyRange): Iterable<Buffer> {
  if (range.single) return [range.start];
  if (rangeIsEmpty(range)) return [];
  return index.keys(range.start, range.end);
}

const EMPTY = Buffer.alloc(0);
/** At or below every key (keys are never empty). */
const FIRST_KEY = Buffer.alloc(1);

/**
 * The algorithm `KvStore.hashKV` computes, as members name it to each other (node/corrupt.ts):
 * 1 = Cairn's CRC-32 before this release (`hashKVv1`), 2 = etcd 3.6's CRC-32C. Bump it whenever
 * hashKV's result changes for the same data, and keep the previous algorithm for mixed clusters.
 */
export const HASH_KV_VERSION = 2;

export class KvStore {
  private readonly index: DupTable;
  private readonly revs: Table;
  private readonly meta: Table;
  private readonly leaseKeys: DupTable;
  currentRev: number;
  compactRev: number;
  /** Revisions committed by write transactions since the last takeChanges(). */
  private changes: RevisionEvents[] = [];
  /** For metrics: calls on this store's transactions (etcd's mvcc range/put/delete/txn totals), bytes of keys and values put, revisions removed by compaction. */
  readonly counts = { ranges: 0, puts: 0, deletes: 0, txns: 0, putBytes: 0, compactedRevisions: 0 };
  /** Live keys (not deleted), once counted; undefined until then and after a reload. */
  private live: number | undefined = undefined;

  constructor(private readonly backend: Backend) {
    this.index = backend.dupTable('index');
    this.revs = backend.table('rev');
    this.meta = backend.table('meta');
    this.leaseKeys = backend.dupTable('leaseKeys');
    this.currentRev = 1;
    this.compactRev = -1;
    this.reload();
  }

  /** Re-reads the persisted revisions (at start, and after an aborted write transaction). */
  reload(): void {
    this.currentRev = decodeNum(this.meta.get(META.currentRev), 1);
    this.compactRev = decodeNum(this.meta.get(META.compactRev), -1);
    this.live = undefined;
  }

  /** Keys with a live (not deleted) revision: counted once (a scan), then kept by the writes. */
  liveKeys(): number {
    if (this.live === undefined) {
      let n = 0;
      for (const key of this.index.keys(FIRST_KEY, undefined)) if (liveAt(this.index, key, Infinity) !== undefined) n++;
      this.live = n;
    }
    return this.live;
  }

  /** Keys created (+) or deleted (-) by a write transaction. */
  addLiveKeys(n: number): void {
    if (this.live !== undefined) this.live += n;
  }

  /** Reads [range] as of rev. `limit` <= 0 = all; count is always the full count. */
  rangeAt(range: KeyRange, rev: number, limit: number, countOnly: boolean, viewRev: number): RangeResult {
    const picked: { key: Buffer; entry: IndexEntry }[] = [];
    let count = 0;
    const want = countOnly ? 0 : limit <= 0 ? Infinity : limit;
    for (const key of keysOf(this.index, range)) {
      const e = liveAt(this.index, key, rev);
      if (e === undefined) continue;
      count++;
      if (picked.length < want) picked.push({ key, entry: e });
    }
    const kvs = picked.map(({ key, entry }) => this.loadKv(key, entry));
    return { kvs, count, rev: viewRev };
  }

  private loadKv(key: Buffer, e: IndexEntry): KeyValue {
    const rk = revKey(e.main, e.sub);
    const raw = this.revs.get(rk);
    const where = `rev ${e.main}.${e.sub} of ${this.backend.path}`;
    assert(raw !== undefined, `rev record ${where} exists for an index entry`);
    const rec = decodeRevRecord(raw, where);
    if (VERIFY) assert(compareBytes(rec.kv.key, key) === 0 && rec.kv.modRevision === e.main, `rev record ${where} matches its index entry`);
    return rec.kv;
  }

  /** Checks a read revision as etcd's rangeKeys does; returns the effective revision. */
  checkReadRev(requested: number, curRev: number): number {
    if (requested > curRev) throw new ClientError('futureRev');
    const rev = requested <= 0 ? curRev : requested;
    if (rev < this.compactRev) throw new ClientError('compacted');
    return rev;
  }

  /** A read view at the current revision (etcd's storeTxnRead). */
  beginRead(): ReadTxn {
    return new ReadTxn(this);
  }

  /** Starts a write transaction; call only inside Backend.write. */
  beginWrite(): WriteTxn {
    return new WriteTxn(this, this.index, this.revs, this.leaseKeys, this.currentRev);
  }

  /** Called by WriteTxn.end with the new revision and its events (inside the same LMDB transaction). */
  commitRev(rev: number, events: MvccEvent[]): void {
    assert(rev === this.currentRev + 1, `revision advances by one (${this.currentRev} -> ${rev})`);
    this.currentRev = rev;
    this.meta.put(META.currentRev, encodeNum(rev));
    this.changes.push({ rev, events });
  }

  /** The revisions committed since the last call (drop them when the LMDB transaction aborted). */
  takeChanges(): RevisionEvents[] {
    const out = this.changes;
    this.changes = [];
    return out;
  }

  /**
   * The events of revisions fromRev..toRev from history, oldest first; stops after a whole revision
   * once about `bytesMax` bytes of records were read. `endRev` = the last revision covered (a revision
   * with no record, such as 1, is covered without events). Callers check compactRev first.
   */
  history(fromRev: number, toRev: number, bytesMax: number): { revs: RevisionEvents[]; endRev: number } {
    const revs: RevisionEvents[] = [];
    let cur: { rev: number; events: MvccEvent[] } | undefined;
    let bytes = 0;
    for (const { key, value } of this.revs.entries(revKey(fromRev, 0), revKey(toRev + 1, 0))) {
      const main = parseRevKey(key).main;
      if (cur === undefined || cur.rev !== main) {
        if (cur !== undefined && bytes >= bytesMax) return { revs, endRev: cur.rev };
        cur = { rev: main, events: [] };
        revs.push(cur);
      }
      bytes += value.length;
      const rec = decodeRevRecord(value, `rev ${main} of ${this.backend.path}`);
      cur.events.push({ type: rec.tombstone ? Event_EventType.DELETE : Event_EventType.PUT, kv: rec.kv });
    }
    return { revs, endRev: toRev };
  }

  /** The key as it was at rev (etcd's prev_kv lookup), or undefined if absent or compacted away. */
  kvAt(key: Buffer, rev: number): KeyValue | undefined {
    if (rev < this.compactRev || rev <= 0) return undefined;
    const e = liveAt(this.index, key, rev);
    return e === undefined ? undefined : this.loadKv(key, e);
  }

  /**
   * HashKV as etcd 3.6 computes it (mvcc/hash.go), so a Cairn member and an etcd member holding the
   * same history answer the same hash: CRC-32C of "key", then, in revision order, each revision as
   * etcd stores it (etcd's 17/18-byte revision key, then the mvccpb.KeyValue; a tombstone holds only
   * the key): every revision above compactRev up to `rev` (0 = current), and below it only each
   * key's newest revision at `rev` when that is not a tombstone (etcd's kvindex.Keep(rev)). The same
   * whatever the physical compaction progress (etcd differs only when no key at all is alive at
   * `rev`: then it hashes whatever its compaction left below compactRev).
   */
  hashKV(rev: number): { hash: number; compactRevision: number; hashRevision: number } {
    const { upTo, compact } = this.hashBounds(rev);
    let h = crc32c(Buffer.from('key'));
    const add = (main: number, sub: number, record: Buffer): void => {
      const tombstone = ((record[0] as number) & TOMBSTONE) !== 0;
      const k = Buffer.alloc(tombstone ? 18 : 17);
      k.writeBigUInt64BE(BigInt(main), 0);
      k[8] = 0x5f;
      k.writeBigUInt64BE(BigInt(sub), 9);
      if (tombstone) k[17] = 0x74;
      const body = record.subarray(5);
      h = crc32c(tombstone ? encodeKeyValue({ key: decodeKeyValue(body).key }) : body, crc32c(k, h));
    };
    if (compact > 0) {
      const kept: { main: number; sub: number }[] = [];
      for (const key of this.index.keys(Buffer.alloc(0), undefined)) {
        for (const raw of this.index.values(key, false)) {
          const e = decodeIndexEntry(raw, key);
          if (e.main > upTo) continue;
          if (e.main <= compact && !e.tombstone) kept.push({ main: e.main, sub: e.sub });
          break;
        }
      }
      kept.sort((a, b) => a.main - b.main || a.sub - b.sub);
      for (const r of kept) {
        const v = this.revs.get(revKey(r.main, r.sub));
        if (v !== undefined) add(r.main, r.sub, v);
      }
    }
    for (const { key, value } of this.revs.entries(revKey(Math.max(compact, 0) + 1, 0), revKey(upTo + 1, 0))) {
      const r = parseRevKey(key);
      add(r.main, r.sub, value);
    }
    return { hash: h >>> 0, compactRevision: compact, hashRevision: upTo };
  }

  /** The revisions a HashKV at `rev` (0 = current) covers; etcd's errors outside them. */
  private hashBounds(rev: number): { upTo: number; compact: number } {
    const upTo = rev === 0 ? this.currentRev : rev;
    if (upTo > this.currentRev) throw new ClientError('futureRev');
    if (rev !== 0 && rev < this.compactRev) throw new ClientError('compacted');
    return { upTo, compact: this.compactRev };
  }

  /**
   * HashKV as Cairn computed it before it computed etcd 3.6's (hash version 1): a CRC-32 over, for
   * each key in key order, its newest revision at or below compactRev unless that is a tombstone,
   * then every record above compactRev up to `rev`, each as Cairn's revision key + stored record.
   * Kept so that a member still answers a previous-release peer's corruption check with the hash that
   * peer computes (the peers exchange the version, see node/corrupt.ts); clients never see it.
   */
  hashKVv1(rev: number): { hash: number; compactRevision: number; hashRevision: number } {
    const { upTo, compact } = this.hashBounds(rev);
    let h = crc32(Buffer.from('key'));
    if (compact > 0) {
      for (const key of this.index.keys(Buffer.alloc(0), undefined)) {
        for (const raw of this.index.values(key, false)) {
          const e = decodeIndexEntry(raw, key);
          if (e.main > compact) continue;
          if (!e.tombstone) {
            const k = revKey(e.main, e.sub);
            const v = this.revs.get(k);
            if (v !== undefined) h = crc32(v, crc32(k, h));
          }
          break;
        }
      }
    }
    for (const { key, value } of this.revs.entries(revKey(Math.max(compact, 0) + 1, 0), revKey(upTo + 1, 0))) {
      h = crc32(value, crc32(key, h));
    }
    return { hash: h >>> 0, compactRevision: compact, hashRevision: upTo };
  }

  /** Keys currently attached to a lease, in byte order (fresh buffers). */
  keysOfLease(id: bigint): Buffer[] {
    return [...this.leaseKeys.values(leaseKey(id), false)].map((k) => Buffer.from(k));
  }

  /**
   * Compacts at rev, logically (inside a write transaction): from now on reads below rev fail with
   * `compacted`, and reads at or above it are unaffected by whether older revisions still exist. The
   * physical removal of what no read can reach any more is `compactKeys`, run in batches afterwards;
   * `pendingCompaction` (persisted with compactRev) says where it stands.
   */
  compact(rev: number): void {
    if (rev <= this.compactRev) throw new ClientError('compacted');
    if (rev > this.currentRev) throw new ClientError('futureRev');
    this.compactRev = rev;
    this.meta.put(META.compactRev, encodeNum(rev));
    this.meta.put(META.compactPhysicalRev, encodeNum(rev));
    this.meta.put(META.compactPhysicalFrom, FIRST_KEY);
  }

  /** The compaction whose physical removal is unfinished: its revision, the next key to visit, and whether a step was taken. */
  pendingCompaction(): { rev: number; from: Buffer; begun: boolean } | undefined {
    const rev = decodeNum(this.meta.get(META.compactPhysicalRev), -1);
    const from = this.meta.get(META.compactPhysicalFrom);
    return rev < 0 || from === undefined ? undefined : { rev, from, begun: !from.equals(FIRST_KEY) };
  }

  /**
   * One step of the physical removal: from `from` on, removes the revisions older than each key's
   * newest one at or below rev (and that one too when it is a tombstone), until `limit` revisions are
   * removed or `limit` keys visited (etcd's --compaction-batch-limit counts revisions). A key's
   * revisions may be split over steps, oldest first; the next step starts at that key again. Call
   * inside a write transaction; records progress, and clears it when the key space is done. Returns
   * true when finished.
   */
  compactKeys(rev: number, from: Buffer, limit: number): boolean {
    const drops: { key: Buffer; drop: IndexEntry[] }[] = [];
    let next: Buffer | undefined;
    let budget = limit;
    let visited = 0;
    for (const key of this.index.keys(from, undefined)) {
      if (visited >= limit || budget <= 0) {
        next = key;
        break;
      }
      visited++;
      // Newest first: keep everything above rev and the newest entry at or below it (unless that is
      // a tombstone older than rev: a watcher may still start at rev and must see a delete made at
      // rev, etcd #18274); drop the older ones.
      const entries = [...this.index.values(key, false)].map((raw) => decodeIndexEntry(raw, key));
      const at = entries.findIndex((e) => e.main <= rev);
      const newest = entries[at];
      const keepThrough = newest === undefined ? entries.length - 1 : newest.tombstone && newest.main < rev ? at - 1 : at;
      const drop = entries.slice(keepThrough + 1);
      if (drop.length > budget) {
        drops.push({ key, drop: drop.slice(drop.length - budget) }); // the oldest; the rest next step
        next = key;
        break;
      }
      drops.push({ key, drop });
      budget -= drop.length;
    }
    for (const { key, drop } of drops) {
      for (const e of drop) {
        this.revs.del(revKey(e.main, e.sub));
        this.index.remove(key, encodeIndexEntry(e));
      }
      this.counts.compactedRevisions += drop.length;
    }
    if (next !== undefined) {
      this.meta.put(META.compactPhysicalFrom, next);
      return false;
    }
    this.meta.del(META.compactPhysicalRev);
    this.meta.del(META.compactPhysicalFrom);
    return true;
  }
}

/** What Range, Txn compares and pre-checks read from: a read view or a write transaction. */
export interface RangeSource {
  readRev(): number;
  firstRev(): number;
  range(range: KeyRange, requestedRev: number, limit: number, countOnly: boolean): RangeResult;
}

export class ReadTxn implements RangeSource {
  private readonly rev: number;
  /** Calls so far: a view with more than one counts as a txn (etcd's metricsTxnWrite). */
  private ops = 0;

  constructor(private readonly store: KvStore) {
    this.rev = store.currentRev;
  }

  readRev(): number {
    return this.rev;
  }

  firstRev(): number {
    return this.store.compactRev;
  }

  range(range: KeyRange, requestedRev: number, limit: number, countOnly: boolean): RangeResult {
    this.store.counts.ranges++;
    if (++this.ops === 2) this.store.counts.txns++;
    const rev = this.store.checkReadRev(requestedRev, this.rev);
    return this.store.rangeAt(range, rev, limit, countOnly, this.rev);
  }
}

/** One write transaction's view: etcd's storeTxnWrite. */
export class WriteTxn implements RangeSource {
  /** Number of changes so far; the next change's sub revision. */
  changes = 0;

  private readonly events: MvccEvent[] = [];
  /** Calls so far: a transaction with more than one counts as a txn (etcd's metricsTxnWrite). */
  private ops = 0;

  constructor(
    private readonly store: KvStore,
    private readonly index: DupTable,
    private readonly revs: Table,
    private readonly leaseKeys: DupTable,
    readonly beginRev: number,
  ) {}

  /** The revision reads inside this transaction see (beginRev, or beginRev+1 once it has changed something). */
  readRev(): number {
    return this.changes > 0 ? this.beginRev + 1 : this.beginRev;
  }

  firstRev(): number {
    return this.store.compactRev;
  }

  range(range: KeyRange, requestedRev: number, limit: number, countOnly: boolean): RangeResult {
    this.store.counts.ranges++;
    this.counted();
    const cur = this.readRev();
    const rev = this.store.checkReadRev(requestedRev, cur);
    return this.store.rangeAt(range, rev, limit, countOnly, cur);
  }

  put(key: Buffer, value: Uint8Array, lease: bigint): number {
    const rev = this.beginRev + 1;
    const sub = this.changes++;
    const last = liveAt(this.index, key, Infinity);
    this.store.counts.puts++;
    this.store.counts.putBytes += key.length + value.length;
    this.counted();
    if (last === undefined) this.store.addLiveKeys(1);
    const create = last !== undefined ? last.create : rev;
    const version = last !== undefined ? last.version + 1 : 1;
    const kv: KeyValue = { key, value: Buffer.from(value.buffer, value.byteOffset, value.length), createRevision: create, modRevision: rev, version, lease };
    this.revs.put(revKey(rev, sub), encodeRevRecord(kv, false));
    this.index.add(key, encodeIndexEntry({ main: rev, sub, tombstone: false, create, version, lease }));
    const old = last?.lease ?? 0n;
    if (old !== lease) {
      if (old !== 0n) this.leaseKeys.remove(leaseKey(old), key);
      if (lease !== 0n) this.leaseKeys.add(leaseKey(lease), key);
    }
    this.events.push({ type: Event_EventType.PUT, kv });
    return rev;
  }

  /** Deletes the live keys in range; returns [deleted, revision] as etcd's DeleteRange. */
  deleteRange(range: KeyRange): [number, number] {
    const at = this.readRev();
    const live = this.liveKeys(range, at);
    this.store.counts.deletes++;
    this.counted();
    this.store.addLiveKeys(-live.length);
    const rev = this.beginRev + 1;
    for (const { key, entry } of live) {
      const sub = this.changes++;
      this.revs.put(revKey(rev, sub), encodeRevRecord({ key, modRevision: rev }, true));
      this.index.add(key, encodeIndexEntry({ main: rev, sub, tombstone: true, create: 0, version: 0, lease: 0n }));
      if (entry.lease !== 0n) this.leaseKeys.remove(leaseKey(entry.lease), key);
      this.events.push({ type: Event_EventType.DELETE, kv: { key, modRevision: rev, createRevision: 0, version: 0, value: EMPTY, lease: 0n } });
    }
    if (live.length !== 0 || this.changes > 0) return [live.length, rev];
    return [0, this.beginRev];
  }

  private liveKeys(range: KeyRange, rev: number): { key: Buffer; entry: IndexEntry }[] {
    const out: { key: Buffer; entry: IndexEntry }[] = [];
    for (const key of keysOf(this.index, range)) {
      const entry = liveAt(this.index, key, rev);
      if (entry !== undefined) out.push({ key, entry });
    }
    return out;
  }

  private counted(): void {
    if (++this.ops === 2) this.store.counts.txns++;
  }

  /** Ends the transaction: the store revision advances when anything changed. Returns the new current revision. */
  end(): number {
    if (this.changes > 0) this.store.commitRev(this.beginRev + 1, this.events);
    return this.store.currentRev;
  }
}
