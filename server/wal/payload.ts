/**
 * Record payloads: the three kinds of record the WAL stores and their byte layouts (all integers
 * little-endian). The framing around them (length, type byte, chained CRC) is record.ts.
 *
 *   entry      (type 1): index u64 · term u64 · entryType u8 (0 normal, 1 confChange) · data
 *   hardState  (type 2): term u64 · vote u64 · commit u64                 (exactly 24 bytes)
 *   snapshot   (type 3): index u64 · term u64                             (exactly 16 bytes)
 *
 * Indexes, terms and commits must fit in a safe integer (2^53 - 1); the vote is a full u64 (bigint).
 */
import { Buffer } from 'node:buffer';
import type { WalEntry, WalEntryType, WalHardState, WalSnapshot } from './types.js';

export const recordTypes = { entry: 1, hardState: 2, snapshot: 3 } as const;
export type RecordType = (typeof recordTypes)[keyof typeof recordTypes];

/** One record as the WAL writes and replays it. */
export type WalRecord =
  | { kind: 'entry'; entry: WalEntry }
  | { kind: 'hardState'; hardState: WalHardState }
  | { kind: 'snapshot'; snapshot: WalSnapshot };

const entryTypeCodes: Readonly<Record<WalEntryType, number>> = { normal: 0, confChange: 1 };
const entryTypesByCode: readonly WalEntryType[] = ['normal', 'confChange'];

/** index u64 + term u64 + entry type u8. */
export const entryMetaBytes = 17;
export const hardStatePayloadBytes = 24;
export const snapshotPayloadBytes = 16;
/** Largest entry data accepted by append(). */
export const entryDataBytesMax = 16 * 1024 * 1024 - 16;
/** Largest payload a record may declare; anything larger is bad framing. */
export const recordPayloadBytesMax = entryMetaBytes + entryDataBytesMax;

export const u64Max = (1n << 64n) - 1n;
const two32 = 0x1_0000_0000;
const safeHighWordMax = 0x1f_ffff; // 2^53 - 1 >>> 32

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % two32, true);
  view.setUint32(at + 4, Math.floor(value / two32), true);
}

/** Reads a u64 that must fit in a safe integer; undefined otherwise. */
export function readU64(view: DataView, at: number): number | undefined {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  return hi > safeHighWordMax ? undefined : hi * two32 + lo;
}

export function isRecordType(type: number): type is RecordType {
  return type === recordTypes.entry || type === recordTypes.hardState || type === recordTypes.snapshot;
}

/** Why a record of this type cannot have this payload length (part of framing), or undefined. */
export function payloadLengthProblem(type: RecordType, payloadBytes: number): string | undefined {
  switch (type) {
    case recordTypes.entry:
      if (payloadBytes < entryMetaBytes) return `entry record too short (${payloadBytes} bytes)`;
      return payloadBytes > recordPayloadBytesMax ? `declared length ${payloadBytes} exceeds ${recordPayloadBytesMax}` : undefined;
    case recordTypes.hardState:
      return payloadBytes === hardStatePayloadBytes ? undefined : `hard-state record of ${payloadBytes} bytes, expected ${hardStatePayloadBytes}`;
    case recordTypes.snapshot:
      return payloadBytes === snapshotPayloadBytes ? undefined : `snapshot record of ${payloadBytes} bytes, expected ${snapshotPayloadBytes}`;
  }
}

export function recordTypeOf(record: WalRecord): RecordType {
  return recordTypes[record.kind];
}

export function payloadBytesOf(record: WalRecord): number {
  switch (record.kind) {
    case 'entry':
      return entryMetaBytes + record.entry.data.byteLength;
    case 'hardState':
      return hardStatePayloadBytes;
    case 'snapshot':
      return snapshotPayloadBytes;
  }
}

/** Writes the payload of `record` at `at` (payloadBytesOf(record) bytes). */
export function writePayload(buf: Buffer, view: DataView, at: number, record: WalRecord): void {
  switch (record.kind) {
    case 'entry': {
      const e = record.entry;
      writeU64(view, at, e.index);
      writeU64(view, at + 8, e.term);
      view.setUint8(at + 16, entryTypeCodes[e.type]);
      buf.set(e.data, at + entryMetaBytes);
      return;
    }
    case 'hardState': {
      const h = record.hardState;
      writeU64(view, at, h.term);
      view.setBigUint64(at + 8, h.vote, true);
      writeU64(view, at + 16, h.commit);
      return;
    }
    case 'snapshot':
      writeU64(view, at, record.snapshot.index);
      writeU64(view, at + 8, record.snapshot.term);
      return;
  }
}

/**
 * Decodes a payload whose framing (type, length) was already checked; a string says why it is not
 * a valid record (then it is corruption: the record's CRC verified, so the writer wrote it so).
 */
export function decodePayload(type: RecordType, payload: Uint8Array): WalRecord | string {
  const view = viewOf(payload);
  switch (type) {
    case recordTypes.entry:
      return decodeEntry(view, payload);
    case recordTypes.hardState:
      return decodeHardState(view);
    case recordTypes.snapshot:
      return decodeSnapshot(view);
  }
}

function decodeEntry(view: DataView, payload: Uint8Array): WalRecord | string {
  const index = readU64(view, 0);
  const term = readU64(view, 8);
  const type = entryTypesByCode[view.getUint8(16)];
  if (index === undefined || index < 1) return 'entry index out of range';
  if (term === undefined) return 'entry term out of range';
  if (type === undefined) return `unknown entry type ${view.getUint8(16)}`;
  return { kind: 'entry', entry: { index, term, type, data: payload.subarray(entryMetaBytes) } };
}

function decodeHardState(view: DataView): WalRecord | string {
  const term = readU64(view, 0);
  const commit = readU64(view, 16);
  if (term === undefined) return 'hard-state term out of range';
  if (commit === undefined) return 'hard-state commit out of range';
  return { kind: 'hardState', hardState: { term, vote: view.getBigUint64(8, true), commit } };
}

function decodeSnapshot(view: DataView): WalRecord | string {
  const index = readU64(view, 0);
  const term = readU64(view, 8);
  if (index === undefined) return 'snapshot index out of range';
  if (term === undefined) return 'snapshot term out of range';
  return { kind: 'snapshot', snapshot: { index, term } };
}

/** True if both records say the same thing (used by the CAIRN_VERIFY decode-back check). */
export function sameRecord(a: WalRecord, b: WalRecord): boolean {
  if (a.kind === 'entry' && b.kind === 'entry') {
    const x = a.entry;
    const y = b.entry;
    return x.index === y.index && x.term === y.term && x.type === y.type && sameBytes(x.data, y.data);
  }
  if (a.kind === 'hardState' && b.kind === 'hardState') {
    return a.hardState.term === b.hardState.term && a.hardState.vote === b.hardState.vote && a.hardState.commit === b.hardState.commit;
  }
  if (a.kind === 'snapshot' && b.kind === 'snapshot') {
    return a.snapshot.index === b.snapshot.index && a.snapshot.term === b.snapshot.term;
  }
  return false;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
