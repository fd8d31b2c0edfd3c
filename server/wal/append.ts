/** Pure rules for appending: validating a call and cutting records into per-segment chunks. */
import { entryDataBytesMax, u64Max } from './payload.js';
import type { WalRecord } from './payload.js';
import { encodedRecordBytes } from './record.js';
import type { WalEntry, WalHardState, WalSnapshot } from './types.js';

/** Where the accepted log stands: appends must start in (base, lastIndex + 1]. */
export interface LogBounds {
  lastIndex: number;
  base: number;
}

/** A safe integer >= 0 (indexes, terms, commits). */
function isIndex(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** Why `hardState` cannot be written, or undefined if it can. */
export function hardStateProblem(hardState: WalHardState): string | undefined {
  if (!isIndex(hardState.term)) return `hard state has invalid term ${hardState.term}`;
  if (!isIndex(hardState.commit)) return `hard state has invalid commit ${hardState.commit}`;
  if (typeof hardState.vote !== 'bigint' || hardState.vote < 0n || hardState.vote > u64Max) {
    return `hard state has invalid vote ${String(hardState.vote)} (a u64 bigint)`;
  }
  return undefined;
}

function entryProblem(e: WalEntry, i: number, expected: number): string | undefined {
  if (e.index !== expected) return `entry ${i} has index ${e.index}, expected ${expected}`;
  if (!isIndex(e.term)) return `entry ${i} has invalid term ${e.term}`;
  if (e.type !== 'normal' && e.type !== 'confChange') return `entry ${i} has invalid type ${String(e.type)}`;
  if (!(e.data instanceof Uint8Array)) return `entry ${i} data is not a Uint8Array`;
  if (e.data.byteLength > entryDataBytesMax) return `entry ${i} is ${e.data.byteLength} bytes, more than ${entryDataBytesMax}`;
  return undefined;
}

/**
 * Why append(entries, hardState) is refused, or undefined if it is accepted: something to write,
 * entries[0].index in (base, lastIndex + 1] (an index <= lastIndex replaces the suffix from there),
 * the rest consecutive, each entry and the hard state well formed.
 */
export function appendProblem(entries: readonly WalEntry[], hardState: WalHardState | undefined, bounds: LogBounds): string | undefined {
  const head = entries[0];
  if (head === undefined && hardState === undefined) return 'nothing to append (no entries and no hard state)';
  if (head !== undefined) {
    if (!Number.isSafeInteger(head.index) || head.index > bounds.lastIndex + 1) {
      return `entry 0 has index ${head.index}, expected at most ${bounds.lastIndex + 1} (the last index + 1)`;
    }
    if (head.index <= bounds.base) {
      return `entry 0 has index ${head.index}, at or below the log's base ${bounds.base} (a snapshot marker or released entries)`;
    }
  }
  let expected = head?.index ?? 0;
  for (const [i, e] of entries.entries()) {
    const problem = entryProblem(e, i, expected);
    if (problem !== undefined) return problem;
    expected++;
  }
  if (!Number.isSafeInteger(expected)) return 'index overflow';
  return hardState === undefined ? undefined : hardStateProblem(hardState);
}

/** Why appendSnapshot(snap, hardState) is refused, or undefined: a marker may not move the base backwards. */
export function snapshotProblem(snap: WalSnapshot, hardState: WalHardState | undefined, bounds: LogBounds): string | undefined {
  if (!isIndex(snap.index)) return `snapshot has invalid index ${snap.index}`;
  if (!isIndex(snap.term)) return `snapshot has invalid term ${snap.term}`;
  if (snap.index < bounds.base) return `snapshot index ${snap.index} is below the log's base ${bounds.base}`;
  return hardState === undefined ? undefined : hardStateProblem(hardState);
}

/** The records of one call, in the order they are written: entries (or the marker), then the hard state. */
export function callRecords(head: readonly WalRecord[], hardState: WalHardState | undefined): WalRecord[] {
  const records = [...head];
  if (hardState !== undefined) records.push({ kind: 'hardState', hardState: { ...hardState } });
  return records;
}

export function entryRecords(entries: readonly WalEntry[]): WalRecord[] {
  return entries.map((entry) => ({ kind: 'entry', entry }));
}

export function recordAt(records: readonly WalRecord[], i: number): WalRecord {
  const r = records[i];
  if (r === undefined) throw new Error(`wal: no record at position ${i} of ${records.length}`);
  return r;
}

/** A segment rotates once it holds at least one record and has reached segmentBytes. */
export function needsRotation(segmentSize: number, records: number, segmentBytes: number): boolean {
  return records > 0 && segmentSize >= segmentBytes;
}

/**
 * End (exclusive) of the chunk starting at `start` that goes into a segment currently
 * `segmentSize` bytes long: always at least one record, then more while the segment is below
 * segmentBytes. So a segment exceeds segmentBytes by at most one record.
 */
export function chunkEnd(records: readonly WalRecord[], start: number, segmentSize: number, segmentBytes: number): number {
  let size = segmentSize;
  let end = start;
  do {
    size += encodedRecordBytes(recordAt(records, end));
    end++;
  } while (end < records.length && size < segmentBytes);
  return end;
}
