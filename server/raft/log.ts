// raft's view of the log: the host's storage (persisted) followed by the unstable tail, plus the commit and
// applied cursors. Invariant: applied <= committed <= lastIndex; firstIndex - 1 <= committed.

import { invariant, limitBytes } from './invariant.js';
import { Unstable } from './unstable.js';
import { CompactedError, UnavailableError, type Entry, type LogStorage, type SnapshotMeta } from './types.js';

export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  committed: number;
  applied: number;

  constructor(storage: LogStorage) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    invariant(first >= 1 && last >= first - 1, `storage bounds first=${first} last=${last}`);
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term of entry i, or undefined when i is compacted away or past the last index. */
  maybeTerm(i: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof CompactedError || e instanceof UnavailableError) return undefined;
      throw e;
    }
  }

  termOrZero(i: number): number {
    return this.maybeTerm(i) ?? 0;
  }

  lastTerm(): number {
    const t = this.maybeTerm(this.lastIndex());
    invariant(t !== undefined, `term of the last index ${this.lastIndex()} unavailable`);
    return t;
  }

  matchTerm(i: number, term: number): boolean {
    return this.maybeTerm(i) === term;
  }

  /** A candidate's log (last index and term) is at least as up to date as ours (Raft §5.4.1). */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /** Index of the first entry in ents that conflicts with (or extends) our log; 0 when all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /** The largest index <= index whose term is <= term (or that is unavailable): the reject hint. */
  findConflictByTerm(index: number, term: number): number {
    if (index > this.lastIndex()) return index;
    for (;;) {
      const t = this.maybeTerm(index);
      if (t === undefined || t <= term || index === 0) return index;
      index--;
    }
  }

  /** Append from a leader's app at (index, logTerm); undefined when our log does not match there. */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(ci > this.committed, `entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    const first = ents[0];
    if (first === undefined) return this.lastIndex();
    invariant(first.index - 1 >= this.committed, `append after ${first.index - 1} is below committed ${this.committed}`);
    invariant(first.index <= this.lastIndex() + 1, `append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /** Committed entries not yet handed to the host for applying, at most maxBytes (at least one). */
  nextEnts(maxBytes: number): readonly Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 <= off) return [];
    return this.slice(off, this.committed + 1, maxBytes);
  }

  hasNextEnts(): boolean {
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  snapshot(): SnapshotMeta {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(toCommit: number): void {
    if (this.committed >= toCommit) return;
    invariant(toCommit <= this.lastIndex(), `commit ${toCommit} is out of range [last index ${this.lastIndex()}]`);
    this.committed = toCommit;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(i <= this.committed && i >= this.applied, `applied ${i} is out of range [prevApplied ${this.applied}, committed ${this.committed}]`);
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Leader: commit maxIndex if it is of the current term (Raft §5.4.2: never count older terms' entries). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: SnapshotMeta): void {
    this.committed = s.index;
    this.unstable.restore(s);
  }

  /** Entries from i to the end, at most maxBytes (at least one); throws CompactedError below firstIndex. */
  entries(i: number, maxBytes: number): readonly Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxBytes);
  }

  /** Entries [lo, hi), at most maxBytes (at least one); throws CompactedError when lo < firstIndex. */
  slice(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    invariant(lo <= hi, `slice lo ${lo} > hi ${hi}`);
    if (lo < this.firstIndex()) throw new CompactedError(lo);
    invariant(hi <= this.lastIndex() + 1, `slice [${lo},${hi}) past last index ${this.lastIndex()}`);
    if (lo === hi) return [];
    const off = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < off) {
      const stop = Math.min(hi, off);
      const stored = this.storage.entries(lo, stop, maxBytes);
      invariant(stored.length > 0 && stored[0]?.index === lo, `storage.entries(${lo}, ${stop}) returned nothing or the wrong first entry`);
      if (stored.length < stop - lo) return stored; // cut by maxBytes
      ents = stored.slice();
    }
    if (hi > off) ents = ents.concat(this.unstable.slice(Math.max(lo, off), hi));
    return limitBytes(ents, maxBytes);
  }
}
