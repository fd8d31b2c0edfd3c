// An in-memory LogStorage (etcd's MemoryStorage): the host appends what each Ready asks it to persist
// (after writing it to its WAL), records the hard state, installs snapshots and compacts. Also the
// storage of tests and of the simulation.

import { invariant, limitBytes } from './invariant.js';
import { CompactedError, UnavailableError, type ConfState, type Entry, type HardState, type LogStorage, type SnapshotMeta } from './types.js';

export class MemoryStorage implements LogStorage {
  private snap: SnapshotMeta;
  private hardState: HardState;
  /** Entries after snap.index, contiguous: ents[k].index === snap.index + 1 + k. */
  private ents: Entry[];

  constructor(snapshot: SnapshotMeta, hardState: HardState, entries: readonly Entry[] = []) {
    this.snap = snapshot;
    this.hardState = hardState;
    this.ents = [];
    const first = entries[0];
    if (first !== undefined && first.index !== snapshot.index + 1) {
      throw new Error(`raft: MemoryStorage entries start at ${first.index}, expected ${snapshot.index + 1}`);
    }
    this.append(entries);
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.confState };
  }

  firstIndex(): number {
    return this.snap.index + 1;
  }

  lastIndex(): number {
    return this.snap.index + this.ents.length;
  }

  snapshot(): SnapshotMeta {
    return this.snap;
  }

  term(i: number): number {
    if (i < this.snap.index) throw new CompactedError(i);
    if (i === this.snap.index) return this.snap.term;
    const e = this.ents[i - this.snap.index - 1];
    if (e === undefined) throw new UnavailableError(i);
    return e.term;
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    if (lo <= this.snap.index) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    const off = this.snap.index + 1;
    return limitBytes(this.ents.slice(lo - off, hi - off), maxBytes);
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  /**
   * Appends entries; one at an index <= lastIndex() replaces that entry and everything after it. Entries at
   * or below the snapshot index are ignored (etcd). A gap after lastIndex() is a bug and throws.
   */
  append(entries: readonly Entry[]): void {
    let ents = entries;
    const first = ents[0];
    if (first === undefined) return;
    for (let k = 1; k < ents.length; k++) {
      invariant(ents[k]?.index === first.index + k, `MemoryStorage.append: entries not contiguous at ${first.index + k}`);
    }
    const firstIndex = this.firstIndex();
    if (first.index + ents.length - 1 < firstIndex) return; // all compacted: nothing new
    if (first.index < firstIndex) ents = ents.slice(firstIndex - first.index);
    const start = ents[0]?.index ?? firstIndex;
    invariant(start <= this.lastIndex() + 1, `MemoryStorage.append: missing entries [${this.lastIndex() + 1}, ${start})`);
    this.ents.length = start - firstIndex; // truncate the replaced suffix (if any), then extend in place
    for (const e of ents) this.ents.push(e);
  }

  /** Installs a newer snapshot: every entry is dropped; the log continues after meta.index. */
  applySnapshot(meta: SnapshotMeta): void {
    if (meta.index <= this.snap.index) throw new Error(`raft: MemoryStorage.applySnapshot: snapshot ${meta.index} is not newer than ${this.snap.index}`);
    this.snap = meta;
    this.ents = [];
  }

  /**
   * Drops entries <= index (which must be held: snapshot index < index <= lastIndex()); snapshot() becomes
   * {index, term(index), confState}. Compacting at or below the current snapshot throws CompactedError.
   */
  compact(index: number, confState: ConfState): void {
    if (index <= this.snap.index) throw new CompactedError(index);
    if (index > this.lastIndex()) throw new UnavailableError(index);
    const term = this.term(index);
    this.ents = this.ents.slice(index - this.snap.index);
    this.snap = { index, term, confState };
  }
}
