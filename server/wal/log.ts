/**
 * The log's meaning, pure: how a sequence of records (entries, hard states, snapshot markers) folds
 * into the effective log. Replay feeds it every record on disk in order; the writer uses
 * `lastIndexAfter` to know where the log ends for a new segment's header.
 */
import type { WalRecord } from './payload.js';
import type { WalEntry, WalHardState, WalSnapshot } from './types.js';

/** The log's last index after `record` is applied to a log ending at `last`. */
export function lastIndexAfter(last: number, record: WalRecord): number {
  switch (record.kind) {
    case 'entry':
      return record.entry.index;
    case 'snapshot':
      return record.snapshot.index;
    case 'hardState':
      return last;
  }
}

/**
 * The effective log rebuilt by replay.
 * - An entry at index e must satisfy floor < e <= last + 1; it drops every entry with index >= e
 *   (a Raft truncation), then becomes the last entry.
 * - A marker at index m (m >= floor) drops every entry: the log now ends at m and may never again
 *   be truncated to or below m.
 * - A hard state replaces the previous one.
 * `entries` stays strictly consecutive.
 */
export class ReplayLog {
  readonly entries: WalEntry[] = [];
  /** Index of the last entry, or where the log ends when it holds none (a marker, a segment start). */
  last: number;
  /** Entries must lie above this (the last marker's index; 0 when none has been seen). */
  floor = 0;
  hardState: WalHardState | undefined;
  snapshot: WalSnapshot | undefined;

  /**
   * `last` is where the log ends before the first record: the first segment's firstIndex - 1. Its
   * floor is unknown (segments before it may have been released), so it starts at 0: an entry
   * below `last` is a truncation written after that segment was created.
   */
  constructor(last: number) {
    this.last = last;
  }

  /** Applies one record; returns why it cannot follow what came before (corruption), or undefined. */
  apply(record: WalRecord): string | undefined {
    switch (record.kind) {
      case 'entry':
        return this.#applyEntry(record.entry);
      case 'snapshot':
        return this.#applySnapshot(record.snapshot);
      case 'hardState':
        this.hardState = record.hardState;
        return undefined;
    }
  }

  #applyEntry(entry: WalEntry): string | undefined {
    if (entry.index <= this.floor) {
      return `entry ${entry.index} at or below the snapshot marker at ${this.floor}`;
    }
    if (entry.index > this.last + 1) {
      return `index gap: expected entry ${this.last + 1} or lower, found ${entry.index}`;
    }
    const first = this.entries[0]?.index;
    if (first !== undefined && entry.index <= this.last) this.entries.length = Math.max(0, entry.index - first);
    this.entries.push(entry);
    this.last = entry.index;
    return undefined;
  }

  #applySnapshot(snap: WalSnapshot): string | undefined {
    if (snap.index < this.floor) {
      return `snapshot marker at ${snap.index} below the previous marker at ${this.floor}`;
    }
    this.entries.length = 0;
    this.last = snap.index;
    this.floor = snap.index;
    this.snapshot = snap;
    return undefined;
  }
}
