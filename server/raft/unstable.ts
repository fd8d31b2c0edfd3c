// The tail of raft's log not yet persisted by the host: entries after `offset - 1`, and possibly an incoming
// snapshot. Everything here is handed out in Ready.entries / Ready.snapshot and dropped on advance().

import { invariant } from './invariant.js';
import type { Entry, SnapshotMeta } from './types.js';

export class Unstable {
  snapshot: SnapshotMeta | undefined = undefined;
  entries: Entry[] = [];
  /** Index of entries[0] (when present); always the index after the last persisted entry or the snapshot. */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.index + 1;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot === undefined ? undefined : this.snapshot.index;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      return this.snapshot !== undefined && this.snapshot.index === i ? this.snapshot.term : undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset]?.term;
  }

  /** The host persisted entries up to (i, t): drop them unless they were replaced meanwhile. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || gt !== t || i < this.offset) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.index === i) this.snapshot = undefined;
  }

  restore(s: SnapshotMeta): void {
    this.offset = s.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const first = ents[0];
    if (first === undefined) return;
    const after = first.index;
    if (after === this.offset + this.entries.length) {
      this.entries = this.entries.concat(ents);
    } else if (after <= this.offset) {
      // Replaces everything from `after` on, including persisted entries (the host truncates them).
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
    this.checkJoined(ents);
  }

  slice(lo: number, hi: number): Entry[] {
    invariant(lo <= hi && this.offset <= lo && hi <= this.offset + this.entries.length, `unstable.slice[${lo},${hi}) out of [${this.offset},${this.offset + this.entries.length}]`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  /** The appended run `ents` is contiguous and ends the unstable log. */
  private checkJoined(ents: readonly Entry[]): void {
    const start = this.offset + this.entries.length - ents.length;
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k];
      invariant(e !== undefined && e.index === start + k, `unstable append not contiguous: expected index ${start + k}`);
    }
    const prev = this.entries[this.entries.length - ents.length - 1];
    invariant(prev === undefined || (ents[0] !== undefined && prev.term <= ents[0].term), 'unstable append: terms must not decrease');
  }
}
