// Binary encoding of raft messages for the peer stream (big-endian; member ids u64, indexes and terms
// u64 that must fit in a safe integer). Layout of one message:
//
//   u8 type · u8 flags (1 = reject, 2 = snapshot present) · u64 from · u64 to · u64 term · u64 index
//   · u64 logTerm · u64 commit · u64 rejectHint · u32 contextBytes · context
//   · u32 entryCount · entryCount × (u64 index · u64 term · u8 entryType · u32 dataBytes · data)
//   · [snapshot: u64 index · u64 term · u32 voterCount · voters u64… · u32 learnerCount · learners u64…]
//
// decodeMessage is the gate: anything short, long, out of range or of a local-only type is a
// PeerProtocolError. Decoded byte fields are copies (they never pin the receive buffer).
import { Buffer } from 'node:buffer';
import { assert } from '../base/index.js';
import type { Entry, EntryType, Message, MessageType, SnapshotMeta } from '../raft/types.js';
import { PeerProtocolError } from './errors.js';

/** Message types that travel between members, with their wire codes. Local-only types have none. */
const typeCodes = {
  prop: 1,
  app: 2,
  appResp: 3,
  vote: 4,
  voteResp: 5,
  preVote: 6,
  preVoteResp: 7,
  snap: 8,
  heartbeat: 9,
  heartbeatResp: 10,
  transferLeader: 11,
  timeoutNow: 12,
  readIndex: 13,
  readIndexResp: 14,
} as const satisfies Partial<Record<MessageType, number>>;

export type WireMessageType = keyof typeof typeCodes;
const typeByCode: readonly (WireMessageType | undefined)[] = (() => {
  const out: (WireMessageType | undefined)[] = [];
  for (const [t, c] of Object.entries(typeCodes)) out[c] = t as WireMessageType;
  return out;
})();

export function isWireMessageType(t: MessageType): t is WireMessageType {
  return Object.prototype.hasOwnProperty.call(typeCodes, t);
}

const entryTypeCodes: Readonly<Record<EntryType, number>> = { normal: 0, confChange: 1 };
const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const FLAGS_KNOWN = FLAG_REJECT | FLAG_SNAPSHOT;
const HEADER_BYTES = 2 + 7 * 8 + 4; // type, flags, 7 u64 fields, contextBytes
const ENTRY_META_BYTES = 8 + 8 + 1 + 4;
const TWO32 = 0x1_0000_0000;
const SAFE_HIGH_WORD_MAX = 0x1f_ffff;
const U64_MAX = (1n << 64n) - 1n;

/** Bytes encodeMessage(msg) produces. */
export function messageBytes(msg: Message): number {
  let n = HEADER_BYTES + msg.context.length + 4;
  for (const e of msg.entries) n += ENTRY_META_BYTES + e.data.length;
  if (msg.snapshot !== undefined) n += 8 + 8 + 4 + 8 * msg.snapshot.confState.voters.length + 4 + 8 * msg.snapshot.confState.learners.length;
  return n;
}

export function encodeMessage(msg: Message): Buffer {
  const buf = Buffer.allocUnsafe(messageBytes(msg));
  const end = writeMessage(buf, 0, msg);
  assert(end === buf.length, 'encodeMessage: size matches messageBytes');
  return buf;
}

/** Writes msg at `at`; returns the offset after it. The caller sized buf with messageBytes(). */
export function writeMessage(buf: Buffer, at: number, msg: Message): number {
  assert(isWireMessageType(msg.type), `message type ${msg.type} is local-only and is never sent`);
  let o = at;
  o = buf.writeUInt8(typeCodes[msg.type], o);
  o = buf.writeUInt8((msg.reject ? FLAG_REJECT : 0) | (msg.snapshot !== undefined ? FLAG_SNAPSHOT : 0), o);
  o = writeId(buf, o, msg.from);
  o = writeId(buf, o, msg.to);
  o = writeNum(buf, o, msg.term);
  o = writeNum(buf, o, msg.index);
  o = writeNum(buf, o, msg.logTerm);
  o = writeNum(buf, o, msg.commit);
  o = writeNum(buf, o, msg.rejectHint);
  o = writeBytes(buf, o, msg.context);
  o = buf.writeUInt32BE(msg.entries.length, o);
  for (const e of msg.entries) {
    o = writeNum(buf, o, e.index);
    o = writeNum(buf, o, e.term);
    o = buf.writeUInt8(entryTypeCodes[e.type], o);
    o = writeBytes(buf, o, e.data);
  }
  if (msg.snapshot !== undefined) o = writeSnapshot(buf, o, msg.snapshot);
  return o;
}

function writeSnapshot(buf: Buffer, at: number, s: SnapshotMeta): number {
  let o = writeNum(buf, at, s.index);
  o = writeNum(buf, o, s.term);
  for (const ids of [s.confState.voters, s.confState.learners]) {
    o = buf.writeUInt32BE(ids.length, o);
    for (const id of ids) o = writeId(buf, o, id);
  }
  return o;
}

function writeId(buf: Buffer, at: number, id: bigint): number {
  assert(id >= 0n && id <= U64_MAX, `member id ${id} fits in u64`);
  return buf.writeBigUInt64BE(id, at);
}

function writeNum(buf: Buffer, at: number, n: number): number {
  assert(Number.isSafeInteger(n) && n >= 0, `${n} is a non-negative safe integer`);
  buf.writeUInt32BE(Math.floor(n / TWO32), at);
  return buf.writeUInt32BE(n % TWO32, at + 4);
}

function writeBytes(buf: Buffer, at: number, b: Uint8Array): number {
  const o = buf.writeUInt32BE(b.length, at);
  buf.set(b, o);
  return o + b.length;
}

/** Reads one message that fills `bytes` exactly. Throws PeerProtocolError on anything malformed. */
export function decodeMessage(bytes: Uint8Array): Message {
  const r = new Reader(bytes);
  const code = r.u8();
  const type = typeByCode[code];
  if (type === undefined) throw new PeerProtocolError(`unknown message type code ${code}`);
  const flags = r.u8();
  if ((flags & ~FLAGS_KNOWN) !== 0) throw new PeerProtocolError(`unknown message flags 0x${flags.toString(16)}`);
  const from = r.id();
  const to = r.id();
  const term = r.num();
  const index = r.num();
  const logTerm = r.num();
  const commit = r.num();
  const rejectHint = r.num();
  const context = r.bytes();
  const entries = readEntries(r);
  const snapshot = (flags & FLAG_SNAPSHOT) !== 0 ? readSnapshot(r) : undefined;
  r.end();
  const msg: Message = { type, from, to, term, index, logTerm, commit, entries, reject: (flags & FLAG_REJECT) !== 0, rejectHint, context };
  return snapshot === undefined ? msg : { ...msg, snapshot };
}

function readEntries(r: Reader): Entry[] {
  const n = r.count(ENTRY_META_BYTES);
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const index = r.num();
    const term = r.num();
    const t = r.u8();
    const type: EntryType | undefined = t === 0 ? 'normal' : t === 1 ? 'confChange' : undefined;
    if (type === undefined) throw new PeerProtocolError(`unknown entry type code ${t}`);
    out.push({ index, term, type, data: r.bytes() });
  }
  return out;
}

function readSnapshot(r: Reader): SnapshotMeta {
  const index = r.num();
  const term = r.num();
  const voters = r.ids();
  const learners = r.ids();
  return { index, term, confState: { voters, learners } };
}

class Reader {
  private at = 0;
  private readonly buf: Buffer;
  constructor(bytes: Uint8Array) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): number {
    if (this.buf.length - this.at < n) throw new PeerProtocolError('message truncated');
    const at = this.at;
    this.at += n;
    return at;
  }
  u8(): number {
    return this.buf.readUInt8(this.need(1));
  }
  id(): bigint {
    return this.buf.readBigUInt64BE(this.need(8));
  }
  num(): number {
    const at = this.need(8);
    const hi = this.buf.readUInt32BE(at);
    if (hi > SAFE_HIGH_WORD_MAX) throw new PeerProtocolError('number beyond 2^53');
    return hi * TWO32 + this.buf.readUInt32BE(at + 4);
  }
  /** A u32 count of items of at least minBytes each, checked against the bytes left. */
  count(minBytes: number): number {
    const n = this.buf.readUInt32BE(this.need(4));
    if (n * minBytes > this.buf.length - this.at) throw new PeerProtocolError('count exceeds message');
    return n;
  }
  bytes(): Uint8Array {
    const n = this.buf.readUInt32BE(this.need(4));
    const at = this.need(n);
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(at, at + n));
    return out;
  }
  ids(): bigint[] {
    const n = this.count(8);
    const out: bigint[] = [];
    for (let i = 0; i < n; i++) out.push(this.id());
    return out;
  }
  end(): void {
    if (this.at !== this.buf.length) throw new PeerProtocolError(`${this.buf.length - this.at} trailing bytes after message`);
  }
}
