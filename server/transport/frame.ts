// Connection framing. A connection starts with the sender's hello (fixed 36 bytes), then both sides
// exchange frames: u32 payloadBytes (BE) · u8 frame type · payload. FrameDecoder is incremental: it takes
// any split of the byte stream (one byte at a time included) and yields whole frames in order; malformed
// input stops it with a reason (the caller closes the connection).
import { Buffer } from 'node:buffer';
import { HELLO_MAGIC, PEER_FRAME_BYTES_MAX } from './constants.js';
import { PeerProtocolError, type RefusalCode, refusalCodeOf, refusalCodes } from './errors.js';

export const frameTypes = {
  /** Pseudo-type of the connection's leading hello (FrameDecoder with expectHello). */
  hello: 0,
  /** Receiver → sender: hello accepted (empty). */
  accept: 1,
  /** Receiver → sender: hello refused (u8 code · utf8 text); the receiver closes. */
  error: 2,
  /** stream: one raft message (codec.ts). */
  msg: 3,
  /** stream: f64 sender's clock, echoed by pong. */
  ping: 4,
  pong: 5,
  /** request: u32 id · u16 kindBytes · kind · body. */
  request: 6,
  /** request: u32 id · u8 status (0 ok, 1 error) · body or utf8 error message. */
  response: 7,
  /** snapshot: u64 fileBytes · raft message. */
  snapMsg: 8,
  /** snapshot: file bytes. */
  snapChunk: 9,
  /** snapshot: SHA-256 of the file (32 bytes). */
  snapEnd: 10,
  /** snapshot, receiver → sender: u8 ok · utf8 reason. */
  snapAck: 11,
} as const;
export type FrameType = (typeof frameTypes)[keyof typeof frameTypes];
const FRAME_TYPE_MAX = frameTypes.snapAck;

export const FRAME_HEADER_BYTES = 5;

export const purposes = { stream: 1, snapshot: 2, request: 3 } as const;
export type Purpose = keyof typeof purposes;

export interface Hello {
  readonly version: number;
  /** Raw purpose code (validated by the receiver, which answers an unknown one with an error frame). */
  readonly purpose: number;
  readonly clusterId: bigint;
  readonly from: bigint;
  readonly to: bigint;
}

const MAGIC = Buffer.from(HELLO_MAGIC, 'latin1');
export const HELLO_BYTES = MAGIC.length + 2 + 1 + 1 + 8 * 3;

export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  MAGIC.copy(b, 0);
  let o = b.writeUInt16BE(h.version, MAGIC.length);
  o = b.writeUInt8(h.purpose, o);
  o = b.writeUInt8(0, o);
  o = b.writeBigUInt64BE(h.clusterId, o);
  o = b.writeBigUInt64BE(h.from, o);
  b.writeBigUInt64BE(h.to, o);
  return b;
}

export function decodeHello(b: Buffer): Hello {
  if (b.length !== HELLO_BYTES || !b.subarray(0, MAGIC.length).equals(MAGIC)) throw new PeerProtocolError('bad magic');
  const o = MAGIC.length;
  if (b.readUInt8(o + 3) !== 0) throw new PeerProtocolError('bad hello (reserved byte)');
  return {
    version: b.readUInt16BE(o),
    purpose: b.readUInt8(o + 2),
    clusterId: b.readBigUInt64BE(o + 4),
    from: b.readBigUInt64BE(o + 12),
    to: b.readBigUInt64BE(o + 20),
  };
}

export function purposeOf(code: number): Purpose | undefined {
  for (const [p, c] of Object.entries(purposes)) if (c === code) return p as Purpose;
  return undefined;
}

export interface Frame {
  readonly type: FrameType;
  readonly payload: Buffer;
}

export function writeFrameHeader(buf: Buffer, at: number, type: FrameType, payloadBytes: number): number {
  const o = buf.writeUInt32BE(payloadBytes, at);
  return buf.writeUInt8(type, o);
}

export function encodeFrame(type: FrameType, ...parts: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
  let o = writeFrameHeader(b, 0, type, n);
  for (const p of parts) {
    b.set(p, o);
    o += p.length;
  }
  return b;
}

/**
 * Incremental decoder. push(chunk) returns the frames completed by that chunk; on malformed input it
 * returns the frames before the fault and sets `failure` (every later push returns nothing).
 * Bytes are copied at most once per frame (chunks are joined only when a frame is complete).
 */
export class FrameDecoder {
  failure: string | undefined;
  private chunks: Buffer[] = [];
  private pendingBytes = 0;
  private helloDone: boolean;

  constructor(
    expectHello: boolean,
    private readonly frameBytesMax: number = PEER_FRAME_BYTES_MAX,
  ) {
    this.helloDone = !expectHello;
  }

  push(chunk: Uint8Array): Frame[] {
    const out: Frame[] = [];
    if (this.failure !== undefined || chunk.length === 0) return out;
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingBytes += chunk.length;
    try {
      for (;;) {
        const f = this.next();
        if (f === undefined) break;
        out.push(f);
      }
    } catch (e) {
      if (!(e instanceof PeerProtocolError)) throw e;
      this.failure = e.message;
      this.chunks = [];
      this.pendingBytes = 0;
    }
    return out;
  }

  /** Bytes received but not yet part of a complete frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  private next(): Frame | undefined {
    if (!this.helloDone) return this.nextHello();
    if (this.pendingBytes < FRAME_HEADER_BYTES) return undefined;
    const head = this.peek(FRAME_HEADER_BYTES);
    const len = head.readUInt32BE(0);
    const type = head.readUInt8(4);
    if (type === frameTypes.hello || type > FRAME_TYPE_MAX) throw new PeerProtocolError(`unknown frame type ${type}`);
    if (len > this.frameBytesMax) throw new PeerProtocolError(`frame of ${len} bytes exceeds the limit of ${this.frameBytesMax}`);
    if (this.pendingBytes < FRAME_HEADER_BYTES + len) return undefined;
    const whole = this.take(FRAME_HEADER_BYTES + len);
    return { type: type as FrameType, payload: whole.subarray(FRAME_HEADER_BYTES) };
  }

  private nextHello(): Frame | undefined {
    const have = Math.min(this.pendingBytes, MAGIC.length);
    if (!this.peek(have).equals(MAGIC.subarray(0, have))) throw new PeerProtocolError('bad magic');
    if (this.pendingBytes < HELLO_BYTES) return undefined;
    const payload = this.take(HELLO_BYTES);
    decodeHello(payload);
    this.helloDone = true;
    return { type: frameTypes.hello, payload };
  }

  /** The first n buffered bytes (n <= pendingBytes), joining leading chunks as needed. */
  private peek(n: number): Buffer {
    let first = this.chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length < n) {
      let k = 0;
      let got = 0;
      while (got < n && k < this.chunks.length) got += this.chunks[k++]?.length ?? 0;
      first = Buffer.concat(this.chunks.slice(0, k), got);
      this.chunks.splice(0, k, first);
    }
    return first.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.peek(n);
    const head = this.chunks[0];
    if (head !== undefined && head.length === n) this.chunks.shift();
    else if (head !== undefined) this.chunks[0] = head.subarray(n);
    this.pendingBytes -= n;
    return first;
  }
}

// Payloads of the small frames.

export function encodeError(code: RefusalCode, text: string): Buffer {
  return encodeFrame(frameTypes.error, Buffer.from([refusalCodes[code]]), Buffer.from(text, 'utf8'));
}

export function decodeError(p: Buffer): { code: RefusalCode; text: string } {
  if (p.length < 1) throw new PeerProtocolError('empty error frame');
  return { code: refusalCodeOf(p.readUInt8(0)), text: p.subarray(1).toString('utf8') };
}

export function encodeTime(type: typeof frameTypes.ping | typeof frameTypes.pong, t: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
  b.writeDoubleBE(t, writeFrameHeader(b, 0, type, 8));
  return b;
}

export function decodeTime(p: Buffer): number {
  if (p.length !== 8) throw new PeerProtocolError('bad ping/pong frame');
  return p.readDoubleBE(0);
}

export function encodeRequest(id: number, kind: string, body: Uint8Array): Buffer {
  const k = Buffer.from(kind, 'utf8');
  const head = Buffer.allocUnsafe(6);
  head.writeUInt32BE(id, 0);
  head.writeUInt16BE(k.length, 4);
  return encodeFrame(frameTypes.request, head, k, body);
}

export function decodeRequest(p: Buffer): { id: number; kind: string; body: Buffer } {
  if (p.length < 6) throw new PeerProtocolError('request frame truncated');
  const k = p.readUInt16BE(4);
  if (p.length < 6 + k) throw new PeerProtocolError('request frame truncated');
  return { id: p.readUInt32BE(0), kind: p.subarray(6, 6 + k).toString('utf8'), body: p.subarray(6 + k) };
}

export function encodeResponse(id: number, ok: boolean, body: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(id, 0);
  head.writeUInt8(ok ? 0 : 1, 4);
  return encodeFrame(frameTypes.response, head, body);
}

export function decodeResponse(p: Buffer): { id: number; ok: boolean; body: Buffer } {
  if (p.length < 5) throw new PeerProtocolError('response frame truncated');
  const status = p.readUInt8(4);
  if (status > 1) throw new PeerProtocolError(`bad response status ${status}`);
  return { id: p.readUInt32BE(0), ok: status === 0, body: p.subarray(5) };
}

export function encodeSnapAck(ok: boolean, reason: string): Buffer {
  return encodeFrame(frameTypes.snapAck, Buffer.from([ok ? 1 : 0]), Buffer.from(reason, 'utf8'));
}

export function decodeSnapAck(p: Buffer): { ok: boolean; reason: string } {
  if (p.length < 1 || p.readUInt8(0) > 1) throw new PeerProtocolError('bad snapshot ack');
  return { ok: p.readUInt8(0) === 1, reason: p.subarray(1).toString('utf8') };
}
