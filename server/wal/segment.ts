/**
 * Segment files: naming, the 32-byte header, and scanning one segment's bytes (pure).
 *
 * File name: `<seq>-<firstIndex>.wal`, both 16 lower-case hex digits.
 * Header:
 *   0..8   magic "CAIRNWAL"
 *   8..12  format version u32 LE (2; version 1 is refused: no migration)
 *   12..16 reserved, zero
 *   16..24 firstIndex u64 LE: the log's last index + 1 when the segment was created (entries in it
 *          may later go below it by truncation, never to or below the log's base)
 *   24..28 prevCrc u32 LE: CRC of the last record of the previous segment (0 for the very first)
 *   28..32 headerCrc u32 LE: crc32c(header[0..28])
 */
import { crc32c } from '../base/crc32c.js';
import { decodePayload, readU64, viewOf, writeU64 } from './payload.js';
import type { WalRecord } from './payload.js';
import { RecordDecoder } from './record.js';
import type { DecodeFailure, DecodeFailureReason } from './record.js';

export const segmentHeaderBytes = 32;
export const segmentFormatVersion = 2;
const magic = new TextEncoder().encode('CAIRNWAL');
const headerCrcAt = 28;
const hexWidth = 16;
const segmentNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export interface SegmentHeader {
  firstIndex: number;
  prevCrc: number;
}

/** Why a segment header is unusable; `version` is set when it is well formed but in another format version. */
export interface HeaderProblem {
  problem: string;
  version?: number;
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

/** Encodes a header in any format version (tests write old-format segments with it). */
export function encodeSegmentHeaderVersion(h: SegmentHeader, version: number): Uint8Array {
  const bytes = new Uint8Array(segmentHeaderBytes);
  const view = viewOf(bytes);
  bytes.set(magic, 0);
  view.setUint32(8, version, true);
  writeU64(view, 16, h.firstIndex);
  view.setUint32(24, h.prevCrc, true);
  view.setUint32(headerCrcAt, crc32c(bytes.subarray(0, headerCrcAt)), true);
  return bytes;
}

export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  return encodeSegmentHeaderVersion(h, segmentFormatVersion);
}

/** Decodes a segment header, or says what is wrong with it. */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader | HeaderProblem {
  if (bytes.length < segmentHeaderBytes) return { problem: `segment header truncated (${bytes.length} bytes)` };
  const view = viewOf(bytes);
  if (!magic.every((b, i) => bytes[i] === b)) return { problem: 'bad segment magic' };
  if (view.getUint32(headerCrcAt, true) !== crc32c(bytes.subarray(0, headerCrcAt))) return { problem: 'segment header crc mismatch' };
  const version = view.getUint32(8, true);
  if (version !== segmentFormatVersion) return { problem: `unsupported segment format version ${version}`, version };
  if (view.getUint32(12, true) !== 0) return { problem: 'nonzero reserved segment header bytes' };
  const firstIndex = readU64(view, 16);
  if (firstIndex === undefined || firstIndex < 1) return { problem: 'segment first index out of range' };
  return { firstIndex, prevCrc: view.getUint32(24, true) };
}

export type ScanFailureReason = DecodeFailureReason | 'bad-payload';

export interface ScanFailure {
  offset: number;
  reason: ScanFailureReason;
  detail: string;
}

export interface ScannedRecord {
  /** Byte offset of the record's header in the file. */
  offset: number;
  record: WalRecord;
}

export interface SegmentScan {
  header: SegmentHeader;
  /** The records before the first failure, in file order. */
  records: ScannedRecord[];
  /** Offset just past the last good record. */
  goodEnd: number;
  /** CRC of the last good record (header.prevCrc if none). */
  lastCrc: number;
  failure: ScanFailure | undefined;
}

/**
 * Decodes a whole segment: header, then chained records, each payload decoded. Stops at the first
 * failure. Returns a HeaderProblem if the header itself is bad. What the records mean together
 * (index continuity, truncation, markers) is replay's business (log.ts).
 */
export function scanSegment(bytes: Uint8Array): SegmentScan | HeaderProblem {
  const header = decodeSegmentHeader(bytes);
  if ('problem' in header) return header;
  const decoder = new RecordDecoder(header.prevCrc, segmentHeaderBytes);
  const decoded = decoder.push(bytes.subarray(segmentHeaderBytes));
  const decodeFailure: DecodeFailure | undefined = decoder.finish();
  const records: ScannedRecord[] = [];
  let lastCrc = header.prevCrc;
  for (const d of decoded) {
    const record = decodePayload(d.type, d.payload);
    if (typeof record === 'string') {
      return { header, records, goodEnd: d.offset, lastCrc, failure: { offset: d.offset, reason: 'bad-payload', detail: record } };
    }
    records.push({ offset: d.offset, record });
    lastCrc = d.crc;
  }
  return { header, records, goodEnd: decoder.goodEnd, lastCrc: decoder.lastCrc, failure: decodeFailure };
}
