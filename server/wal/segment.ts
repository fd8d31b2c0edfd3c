/**
 * Segment files: naming, the 32-byte header, and scanning one segment's bytes (pure).
 *
 * File name: `<seq>-<firstIndex>.wal`, both 16 lower-case hex digits.
 * Header:
 *   0..8   magic "CAIRNWAL"
 *   8..12  format version u32 LE (1)
 *   12..16 reserved, zero
 *   16..24 firstIndex u64 LE: index of the segment's first entry (lastIndex + 1 when it was created)
 *   24..28 prevCrc u32 LE: CRC of the last record of the previous segment (0 for the very first)
 *   28..32 headerCrc u32 LE: crc32c(header[0..28])
 */
import { crc32c } from './crc32c.js';
import { RecordDecoder, decodeEntryPayload, readU64, recordTypes, viewOf, writeU64 } from './record.js';
import type { DecodeFailure, DecodeFailureReason } from './record.js';
import type { WalEntry } from './types.js';

export const segmentHeaderBytes = 32;
export const segmentFormatVersion = 1;
const magic = new TextEncoder().encode('CAIRNWAL');
const headerCrcAt = 28;
const hexWidth = 16;
const segmentNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export interface SegmentHeader {
  firstIndex: number;
  prevCrc: number;
}

export interface SegmentRef {
  seq: number;
  firstIndex: number;
  name: string;
  path: string;
}

export function segmentFileName(seq: number, firstIndex: number): string {
  const hex = (n: number): string => n.toString(16).padStart(hexWidth, '0');
  return `${hex(seq)}-${hex(firstIndex)}.wal`;
}

/** Parses a segment file name; undefined for anything else (.broken copies, temp files, strangers). */
export function parseSegmentFileName(name: string): { seq: number; firstIndex: number } | undefined {
  const m = segmentNamePattern.exec(name);
  const seqHex = m?.[1];
  const firstHex = m?.[2];
  if (seqHex === undefined || firstHex === undefined) return undefined;
  const seq = Number.parseInt(seqHex, 16);
  const firstIndex = Number.parseInt(firstHex, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { seq, firstIndex };
}

export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  const bytes = new Uint8Array(segmentHeaderBytes);
  const view = viewOf(bytes);
  bytes.set(magic, 0);
  view.setUint32(8, segmentFormatVersion, true);
  writeU64(view, 16, h.firstIndex);
  view.setUint32(24, h.prevCrc, true);
  view.setUint32(headerCrcAt, crc32c(bytes.subarray(0, headerCrcAt)), true);
  return bytes;
}

/** Decodes a segment header; a string says what is wrong with it. */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader | string {
  if (bytes.length < segmentHeaderBytes) return `segment header truncated (${bytes.length} bytes)`;
  const view = viewOf(bytes);
  if (!magic.every((b, i) => bytes[i] === b)) return 'bad segment magic';
  if (view.getUint32(headerCrcAt, true) !== crc32c(bytes.subarray(0, headerCrcAt))) return 'segment header crc mismatch';
  const version = view.getUint32(8, true);
  if (version !== segmentFormatVersion) return `unsupported segment format version ${version}`;
  const firstIndex = readU64(view, 16);
  if (firstIndex === undefined || firstIndex < 1) return 'segment first index out of range';
  return { firstIndex, prevCrc: view.getUint32(24, true) };
}

export type ScanFailureReason = DecodeFailureReason | 'index-gap' | 'bad-entry';

export interface ScanFailure {
  offset: number;
  reason: ScanFailureReason;
  detail: string;
}

export interface SegmentScan {
  header: SegmentHeader;
  entries: WalEntry[];
  /** Offset just past the last good record. */
  goodEnd: number;
  /** CRC of the last good record (header.prevCrc if none). */
  lastCrc: number;
  failure: ScanFailure | undefined;
}

/**
 * Decodes a whole segment: header, then chained records whose indexes must run consecutively from
 * header.firstIndex. Stops at the first failure. Returns a string if the header itself is bad.
 */
export function scanSegment(bytes: Uint8Array): SegmentScan | string {
  const header = decodeSegmentHeader(bytes);
  if (typeof header === 'string') return header;
  const decoder = new RecordDecoder(header.prevCrc, segmentHeaderBytes);
  const records = decoder.push(bytes.subarray(segmentHeaderBytes));
  const decodeFailure: DecodeFailure | undefined = decoder.finish();
  const entries: WalEntry[] = [];
  let failure: ScanFailure | undefined;
  for (const record of records) {
    const entry = record.type === recordTypes.entry ? decodeEntryPayload(record.payload) : 'unknown record type';
    failure = entryProblem(entry, header.firstIndex + entries.length, record.offset);
    if (failure !== undefined || typeof entry === 'string') break;
    entries.push(entry);
  }
  const goodEnd = failure?.offset ?? decoder.goodEnd;
  const lastCrc = failure === undefined ? decoder.lastCrc : lastCrcBefore(records, entries.length, header.prevCrc);
  return { header, entries, goodEnd, lastCrc, failure: failure ?? decodeFailure };
}

function entryProblem(entry: WalEntry | string, expectedIndex: number, offset: number): ScanFailure | undefined {
  if (typeof entry === 'string') return { offset, reason: 'bad-entry', detail: entry };
  if (entry.index !== expectedIndex) {
    return { offset, reason: 'index-gap', detail: `index gap: expected entry ${expectedIndex}, found ${entry.index}` };
  }
  return undefined;
}

function lastCrcBefore(records: readonly { crc: number }[], count: number, seed: number): number {
  return count === 0 ? seed : (records[count - 1]?.crc ?? seed);
}
