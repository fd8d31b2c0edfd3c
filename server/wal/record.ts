/**
 * Record framing. Every record is a 16-byte header followed by its payload (payload.ts):
 *
 *   0..4   payloadBytes   u32 LE
 *   4      type           u8 (1 entry, 2 hard state, 3 snapshot marker)
 *   5..8   reserved       3 zero bytes
 *   8..12  prevCrc        u32 LE: CRC of the previous record (segment header's prevCrc for the first)
 *   12..16 crc            u32 LE: crc32c(header[0..12] ++ payload, seed = prevCrc)
 *
 * The CRC is chained (seeded with the previous record's CRC), so a flipped bit anywhere, a dropped or
 * a duplicated record, breaks the chain. Storing prevCrc in the header as well makes each record
 * self-verifying, which lets the torn-tail check ask "does any intact record follow this damage?".
 * Framing also fixes each type's payload length (exact for hard states and markers, a minimum for
 * entries), so a damaged length is caught before the CRC is even computed.
 */
import { Buffer } from 'node:buffer';
import { crc32c } from '../base/crc32c.js';
import { isRecordType, payloadBytesOf, payloadLengthProblem, recordPayloadBytesMax, recordTypeOf, viewOf, writePayload } from './payload.js';
import type { RecordType, WalRecord } from './payload.js';

export const recordHeaderBytes = 16;

const crcCoveredHeaderBytes = 12;

export interface DecodedRecord {
  /** Byte offset of the record's header in the stream. */
  offset: number;
  type: RecordType;
  payload: Uint8Array;
  crc: number;
}

export type DecodeFailureReason = 'truncated' | 'bad-framing' | 'crc-mismatch' | 'chain-mismatch';

export interface DecodeFailure {
  /** Byte offset of the record that could not be decoded (= end of the last good record). */
  offset: number;
  reason: DecodeFailureReason;
  detail: string;
}

interface RecordHeader {
  payloadBytes: number;
  type: number;
  reserved: number;
  prevCrc: number;
  crc: number;
}

function readHeader(view: DataView, at: number): RecordHeader {
  return {
    payloadBytes: view.getUint32(at, true),
    type: view.getUint8(at + 4),
    reserved: view.getUint8(at + 5) | view.getUint8(at + 6) | view.getUint8(at + 7),
    prevCrc: view.getUint32(at + 8, true),
    crc: view.getUint32(at + 12, true),
  };
}

/** Why this header cannot start a record, or undefined if its framing is plausible. */
function framingProblem(h: RecordHeader): string | undefined {
  if (!isRecordType(h.type)) return `unknown record type ${h.type}`;
  if (h.reserved !== 0) return 'nonzero reserved header bytes';
  if (h.payloadBytes > recordPayloadBytesMax) return `declared length ${h.payloadBytes} exceeds ${recordPayloadBytesMax}`;
  return payloadLengthProblem(h.type, h.payloadBytes);
}

function recordCrc(header: Uint8Array, payload: Uint8Array, prevCrc: number): number {
  return crc32c(payload, crc32c(header.subarray(0, crcCoveredHeaderBytes), prevCrc));
}

export function encodedRecordBytes(record: WalRecord): number {
  return recordHeaderBytes + payloadBytesOf(record);
}

/** Writes one record at `at`; returns its CRC. */
function writeRecord(buf: Buffer, view: DataView, at: number, record: WalRecord, prevCrc: number): number {
  const payloadBytes = payloadBytesOf(record);
  view.setUint32(at, payloadBytes, true);
  view.setUint32(at + 4, recordTypeOf(record), true); // type byte + 3 zero reserved bytes
  view.setUint32(at + 8, prevCrc, true);
  const payloadAt = at + recordHeaderBytes;
  writePayload(buf, view, payloadAt, record);
  const crc = recordCrc(buf.subarray(at), buf.subarray(payloadAt, payloadAt + payloadBytes), prevCrc);
  view.setUint32(at + 12, crc, true);
  return crc;
}

/** Encodes records as one contiguous buffer of chained records. */
export function encodeRecords(records: readonly WalRecord[], prevCrc: number): { bytes: Buffer; lastCrc: number } {
  const total = records.reduce((sum, r) => sum + encodedRecordBytes(r), 0);
  const bytes = Buffer.allocUnsafe(total);
  const view = viewOf(bytes);
  let at = 0;
  let crc = prevCrc;
  for (const record of records) {
    crc = writeRecord(bytes, view, at, record, crc);
    at += encodedRecordBytes(record);
  }
  if (at !== total) throw new Error(`wal: encoder wrote ${at} of ${total} bytes`);
  return { bytes, lastCrc: crc };
}

/**
 * True if a well-framed record starts at `at`, lies wholly inside `bytes`, and its CRC verifies
 * against the prevCrc stored in its own header (it may still not chain to what precedes it).
 */
function isIntactRecordAt(bytes: Uint8Array, view: DataView, at: number): boolean {
  if (!isRecordType(bytes[at + 4] ?? 0)) return false; // cheap prefilter before parsing
  const h = readHeader(view, at);
  if (framingProblem(h) !== undefined) return false;
  const end = at + recordHeaderBytes + h.payloadBytes;
  if (end > bytes.length) return false;
  return recordCrc(bytes.subarray(at), bytes.subarray(at + recordHeaderBytes, end), h.prevCrc) === h.crc;
}

/**
 * Offset of the first intact record starting at or after `from` (and before `until`), if any. A
 * caller that knows every byte from some offset on is zero passes it as `until`: no record with an
 * all-zero header is intact (type 0 is no record type).
 */
export function findIntactRecord(bytes: Uint8Array, from: number, until = bytes.length): number | undefined {
  const view = viewOf(bytes);
  for (let at = from; at < until && at + recordHeaderBytes <= bytes.length; at++) {
    if (isIntactRecordAt(bytes, view, at)) return at;
  }
  return undefined;
}

/**
 * Incremental record decoder: the same records and the same failure come out however the input is
 * split into chunks. It keeps references to pushed chunks (no copy): do not mutate them afterwards.
 * After the first failure it decodes nothing more.
 */
export class RecordDecoder {
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #recordStart: number;
  #chainCrc: number;
  #header: { parsed: RecordHeader; bytes: Uint8Array } | undefined;
  #failure: DecodeFailure | undefined;

  constructor(seedCrc: number, startOffset: number) {
    this.#chainCrc = seedCrc;
    this.#recordStart = startOffset;
  }

  /** CRC of the last good record (the seed if none). */
  get lastCrc(): number {
    return this.#chainCrc;
  }

  /** Offset just past the last good record. */
  get goodEnd(): number {
    return this.#recordStart;
  }

  get failure(): DecodeFailure | undefined {
    return this.#failure;
  }

  push(chunk: Uint8Array): DecodedRecord[] {
    if (chunk.length > 0 && this.#failure === undefined) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const out: DecodedRecord[] = [];
    for (let rec = this.#step(); rec !== undefined; rec = this.#step()) out.push(rec);
    return out;
  }

  /** Ends the stream: leftover bytes are an incomplete record. Returns the failure, if any. */
  finish(): DecodeFailure | undefined {
    if (this.#failure === undefined && (this.#buffered > 0 || this.#header !== undefined)) {
      const have = this.#buffered + (this.#header === undefined ? 0 : recordHeaderBytes);
      const want = this.#header === undefined ? recordHeaderBytes : recordHeaderBytes + this.#header.parsed.payloadBytes;
      this.#fail('truncated', `incomplete record: ${have} of ${want} bytes`);
    }
    return this.#failure;
  }

  #step(): DecodedRecord | undefined {
    if (this.#failure !== undefined) return undefined;
    if (this.#header === undefined && !this.#readHeader()) return undefined;
    const header = this.#header;
    if (header === undefined || this.#buffered < header.parsed.payloadBytes) return undefined;
    const payload = this.#take(header.parsed.payloadBytes);
    this.#header = undefined;
    return this.#verify(header.parsed, header.bytes, payload);
  }

  #readHeader(): boolean {
    if (this.#buffered < recordHeaderBytes) return false;
    const bytes = this.#take(recordHeaderBytes);
    const parsed = readHeader(viewOf(bytes), 0);
    const problem = framingProblem(parsed);
    if (problem !== undefined) {
      this.#fail('bad-framing', problem);
      return false;
    }
    this.#header = { parsed, bytes };
    return true;
  }

  #verify(h: RecordHeader, headerBytes: Uint8Array, payload: Uint8Array): DecodedRecord | undefined {
    if (h.prevCrc !== this.#chainCrc) {
      this.#fail('chain-mismatch', `crc chain mismatch (record says previous crc ${h.prevCrc}, expected ${this.#chainCrc})`);
      return undefined;
    }
    const crc = recordCrc(headerBytes, payload, h.prevCrc);
    if (crc !== h.crc || !isRecordType(h.type)) {
      this.#fail('crc-mismatch', 'crc mismatch');
      return undefined;
    }
    const record: DecodedRecord = { offset: this.#recordStart, type: h.type, payload, crc };
    this.#recordStart += recordHeaderBytes + h.payloadBytes;
    this.#chainCrc = crc;
    return record;
  }

  #fail(reason: DecodeFailureReason, detail: string): void {
    this.#failure = { offset: this.#recordStart, reason, detail };
    this.#chunks = [];
    this.#buffered = 0;
  }

  /** Removes and returns the next n buffered bytes (zero-copy when they lie in one chunk). */
  #take(n: number): Uint8Array {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      this.#consumeFront(first, n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    for (let filled = 0; filled < n; ) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) throw new Error('wal: decoder buffer underflow');
      const k = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, k), filled);
      this.#consumeFront(chunk, k);
      filled += k;
    }
    return out;
  }

  #consumeFront(chunk: Uint8Array, k: number): void {
    if (k === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(k);
  }
}
