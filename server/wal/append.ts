/** Pure rules for appending: validating a batch and cutting it into per-segment chunks. */
import { encodedEntryBytes, entryDataBytesMax } from './record.js';
import type { WalEntry } from './types.js';

/** Why `entries` cannot follow `lastIndex`, or undefined if they can. */
export function appendProblem(entries: readonly WalEntry[], lastIndex: number): string | undefined {
  let expected = lastIndex + 1;
  for (const [i, e] of entries.entries()) {
    if (e.index !== expected) return `entry ${i} has index ${e.index}, expected ${expected}`;
    if (!Number.isSafeInteger(e.term) || e.term < 0) return `entry ${i} has invalid term ${e.term}`;
    if (!(e.data instanceof Uint8Array)) return `entry ${i} data is not a Uint8Array`;
    if (e.data.byteLength > entryDataBytesMax) return `entry ${i} is ${e.data.byteLength} bytes, more than ${entryDataBytesMax}`;
    expected++;
  }
  if (!Number.isSafeInteger(expected)) return 'index overflow';
  return undefined;
}

export function entryAt(entries: readonly WalEntry[], i: number): WalEntry {
  const e = entries[i];
  if (e === undefined) throw new Error(`wal: no entry at position ${i} of ${entries.length}`);
  return e;
}

/** A segment rotates once it holds at least one record and has reached segmentBytes. */
export function needsRotation(segmentSize: number, records: number, segmentBytes: number): boolean {
  return records > 0 && segmentSize >= segmentBytes;
}

/**
 * End (exclusive) of the chunk starting at `start` that goes into a segment currently
 * `segmentSize` bytes long: always at least one entry, then more while the segment is below
 * segmentBytes. So a segment exceeds segmentBytes by at most one record.
 */
export function chunkEnd(entries: readonly WalEntry[], start: number, segmentSize: number, segmentBytes: number): number {
  let size = segmentSize;
  let end = start;
  do {
    size += encodedEntryBytes(entryAt(entries, end));
    end++;
  } while (end < entries.length && size < segmentBytes);
  return end;
}
