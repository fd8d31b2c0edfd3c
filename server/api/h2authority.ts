// etcdctl 3.4's per-endpoint commands (`endpoint status|hashkv|health`, their --cluster forms) dial
// grpc-go's `passthrough:///http://host:port`, so every request's `:authority` is `http://host:port`.
// nghttp2 (inside node:http2) refuses a '/' in `:authority` and resets the stream before any of our
// code runs, and node does not let us turn that check off. etcd (Go's http2) accepts it.
//
// The fix lives on the wire, below node:http2, and only on the connections that need it:
// - a header block is scanned without an HPACK dynamic table (every representation says its own
//   length); each '/' in a literal `:authority` value becomes '-' in place, keeping the length (raw
//   strings: one byte; Huffman strings: the 6-bit code of '/' is replaced by the 6-bit code of '-'),
//   so the encoder's and the decoder's dynamic tables stay the same size and in step;
// - `AuthorityProbe` holds a new HTTP/2 connection until its first header block: it answers the
//   client preface with an empty SETTINGS itself (grpc-go sends no request before the server's
//   SETTINGS), answers PINGs, and drops the client's ACK of that SETTINGS (nghttp2 did not send it).
//   A first `:authority` without '/' (every well-behaved client) hands the raw socket, bytes put
//   back, to node:http2: no JS stream stays on its path. Otherwise the connection goes through a
//   `RewritingStream` whose frame filter rewrites every later header block too.
// The frame filter and the HPACK scan are pure and take bytes in any chunking.
import { Duplex } from 'node:stream';
import type * as net from 'node:net';

// ---------- limits ----------

/** How long a new HTTP/2 connection may be held waiting for its first header block. */
export const AUTHORITY_PROBE_MS = 2000;
/** Bytes held while probing; past it the connection is decided at once. */
export const PROBE_BYTES_MAX = 1024 * 1024;
/** A header block (HEADERS + CONTINUATIONs) held for rewriting; a larger one passes unchanged. */
export const HEADER_BLOCK_BYTES_MAX = 1024 * 1024;
/** HPACK integers past this are not ours to interpret: the block passes unchanged. */
const HPACK_INT_MAX = 2 ** 31;

// ---------- HTTP/2 frames (RFC 9113) ----------

/** The client connection preface ("PRI * HTTP/2.0...") is this long. */
export const PREFACE_BYTES = 24;
export const FRAME_HEADER_BYTES = 9;
export const FRAME_HEADERS = 0x1;
export const FRAME_SETTINGS = 0x4;
export const FRAME_PING = 0x6;
export const FRAME_CONTINUATION = 0x9;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
export const FLAG_PADDED = 0x8;
export const FLAG_PRIORITY = 0x20;

/** A frame: 9-byte header then payload. */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  b.set(payload, FRAME_HEADER_BYTES);
  return b;
}

/** The server's SETTINGS sent by the probe: empty, i.e. every setting at its RFC default. */
export const EMPTY_SETTINGS = frame(FRAME_SETTINGS, 0, 0);

// ---------- Huffman (RFC 7541 Appendix B) ----------

/**
 * Code lengths in bits of symbols 0..255 and EOS (256). The code is canonical (codes of one length are
 * consecutive, in symbol order, each length continuing where the shorter ones ended), so the lengths
 * alone define it; the test checks codes against the RFC's listing.
 */
const HUFFMAN_BITS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
  30, // EOS
];
export const HUFFMAN_EOS = 256;
const HUFFMAN_BITS_MAX = 30;

interface HuffmanTable {
  /** Per code length: the first code of that length, how many, where they start in `symbols`. */
  readonly first: number[];
  readonly count: number[];
  readonly offset: number[];
  /** Symbols ordered by (length, symbol). */
  readonly symbols: number[];
  /** Each symbol's code (for tests and the rewrite). */
  readonly codes: number[];
}

function buildHuffman(): HuffmanTable {
  const symbols = HUFFMAN_BITS.map((_, s) => s).sort((a, b) => (HUFFMAN_BITS[a] ?? 0) - (HUFFMAN_BITS[b] ?? 0) || a - b);
  const first: number[] = new Array<number>(HUFFMAN_BITS_MAX + 1).fill(0);
  const count: number[] = new Array<number>(HUFFMAN_BITS_MAX + 1).fill(0);
  const offset: number[] = new Array<number>(HUFFMAN_BITS_MAX + 1).fill(0);
  const codes: number[] = new Array<number>(HUFFMAN_BITS.length).fill(0);
  let code = 0;
  let len = 0;
  symbols.forEach((sym, i) => {
    const bits = HUFFMAN_BITS[sym] ?? 0;
    if (bits !== len) {
      code *= 2 ** (bits - len);
      len = bits;
      first[bits] = code;
      offset[bits] = i;
    }
    count[bits] = (count[bits] ?? 0) + 1;
    codes[sym] = code++;
  });
  return { first, count, offset, symbols, codes };
}

const HUFFMAN = buildHuffman();

/** The RFC 7541 code of `sym` and its length in bits. */
export function huffmanCode(sym: number): { code: number; bits: number } {
  return { code: HUFFMAN.codes[sym] ?? 0, bits: HUFFMAN_BITS[sym] ?? 0 };
}

function bitAt(buf: Uint8Array, start: number, bit: number): number {
  return ((buf[start + (bit >>> 3)] ?? 0) >>> (7 - (bit & 7))) & 1;
}

/**
 * Walks the Huffman string in buf[start, end): calls `onSymbol(symbol, bit offset)` per symbol; false
 * when it is not a valid string (EOS inside, a code past 30 bits, padding longer than 7 bits or not
 * all ones).
 */
export function huffmanWalk(buf: Uint8Array, start: number, end: number, onSymbol: (sym: number, bit: number) => void): boolean {
  const total = (end - start) * 8;
  let code = 0;
  let len = 0;
  let symStart = 0;
  for (let bit = 0; bit < total; bit++) {
    code = code * 2 + bitAt(buf, start, bit);
    len++;
    const idx = code - (HUFFMAN.first[len] ?? 0);
    if ((HUFFMAN.count[len] ?? 0) > 0 && idx >= 0 && idx < (HUFFMAN.count[len] ?? 0)) {
      const sym = HUFFMAN.symbols[(HUFFMAN.offset[len] ?? 0) + idx] ?? HUFFMAN_EOS;
      if (sym === HUFFMAN_EOS) return false;
      onSymbol(sym, symStart);
      code = 0;
      len = 0;
      symStart = bit + 1;
    } else if (len >= HUFFMAN_BITS_MAX) return false;
  }
  return len <= 7 && code === 2 ** len - 1;
}

/** Huffman-encodes bytes (tests build client header blocks with it). */
export function huffmanEncode(bytes: Uint8Array): Buffer {
  const bits: number[] = [];
  for (const b of bytes) {
    const { code, bits: n } = huffmanCode(b);
    for (let i = n - 1; i >= 0; i--) bits.push(Math.floor(code / 2 ** i) % 2);
  }
  while (bits.length % 8 !== 0) bits.push(1);
  const out = Buffer.alloc(bits.length / 8);
  bits.forEach((v, i) => {
    if (v === 1) out[i >>> 3] = (out[i >>> 3] ?? 0) | (0x80 >>> (i & 7));
  });
  return out;
}

export function huffmanDecode(buf: Uint8Array): Buffer | undefined {
  const out: number[] = [];
  return huffmanWalk(buf, 0, buf.length, (s) => out.push(s)) ? Buffer.from(out) : undefined;
}

const SLASH = 0x2f;
const DASH = 0x2d;

function writeBits(buf: Uint8Array, start: number, bit: number, code: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const at = start + ((bit + i) >>> 3);
    const mask = 0x80 >>> ((bit + i) & 7);
    const v = Math.floor(code / 2 ** (n - 1 - i)) % 2;
    buf[at] = v === 1 ? (buf[at] ?? 0) | mask : (buf[at] ?? 0) & ~mask;
  }
}

/** Replaces each '/' by '-' in the HPACK string buf[start, end) (Huffman if `huffman`); how many, or -1 if invalid. */
export function rewriteSlashes(buf: Uint8Array, start: number, end: number, huffman: boolean): number {
  if (!huffman) {
    let n = 0;
    for (let i = start; i < end; i++) {
      if (buf[i] === SLASH) {
        buf[i] = DASH;
        n++;
      }
    }
    return n;
  }
  const at: number[] = [];
  if (!huffmanWalk(buf, start, end, (sym, bit) => sym === SLASH && at.push(bit))) return -1;
  const dash = huffmanCode(DASH);
  for (const bit of at) writeBits(buf, start, bit, dash.code, dash.bits); // both codes are 6 bits
  return at.length;
}

// ---------- HPACK header block scan (RFC 7541 §6) ----------

/** The static table index of `:authority`. */
const AUTHORITY_INDEX = 1;
const AUTHORITY_NAME = Buffer.from(':authority', 'latin1');

export interface BlockScan {
  /** Literal `:authority` fields seen (values in the dynamic table referenced by index are not counted). */
  readonly authorities: number;
  /** '/' rewritten to '-'. */
  readonly slashes: number;
  /** The block did not parse to its end: it was left as far as it parsed (nghttp2 will judge it). */
  readonly malformed: boolean;
}

class BlockReader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  /** An HPACK integer with an N-bit prefix; undefined past the end or past HPACK_INT_MAX. */
  int(prefixBits: number): number | undefined {
    const mask = 2 ** prefixBits - 1;
    const first = this.buf[this.pos++];
    if (first === undefined) return undefined;
    let v = first & mask;
    if (v < mask) return v;
    for (let m = 0; ; m += 7) {
      const b = this.buf[this.pos++];
      if (b === undefined || m > 28) return undefined;
      v += (b & 0x7f) * 2 ** m;
      if (v > HPACK_INT_MAX) return undefined;
      if ((b & 0x80) === 0) return v;
    }
  }

  /** A string's place: [start, end) and whether it is Huffman-coded. */
  string(): { start: number; end: number; huffman: boolean } | undefined {
    const huffman = ((this.buf[this.pos] ?? 0) & 0x80) !== 0;
    const len = this.int(7);
    if (len === undefined || this.pos + len > this.buf.length) return undefined;
    const start = this.pos;
    this.pos += len;
    return { start, end: this.pos, huffman };
  }
}

function isAuthorityName(buf: Uint8Array, s: { start: number; end: number; huffman: boolean }): boolean {
  const raw = buf.subarray(s.start, s.end);
  const name = s.huffman ? huffmanDecode(raw) : raw;
  return name !== undefined && AUTHORITY_NAME.equals(name);
}

/** Rewrites, in place, each '/' of every literal `:authority` value in a complete header block. */
export function rewriteHeaderBlock(block: Uint8Array): BlockScan {
  const r = new BlockReader(block);
  let authorities = 0;
  let slashes = 0;
  const result = (malformed: boolean): BlockScan => ({ authorities, slashes, malformed });
  while (r.pos < block.length) {
    const b = block[r.pos] ?? 0;
    if ((b & 0x80) !== 0 || (b & 0xe0) === 0x20) {
      // indexed field (1xxxxxxx) or dynamic table size update (001xxxxx): an integer, nothing else
      if (r.int((b & 0x80) !== 0 ? 7 : 5) === undefined) return result(true);
      continue;
    }
    const nameIndex = r.int((b & 0x40) !== 0 ? 6 : 4);
    if (nameIndex === undefined) return result(true);
    let authority = nameIndex === AUTHORITY_INDEX;
    if (nameIndex === 0) {
      const name = r.string();
      if (name === undefined) return result(true);
      authority = isAuthorityName(block, name);
    }
    const value = r.string();
    if (value === undefined) return result(true);
    if (!authority) continue;
    authorities++;
    const n = rewriteSlashes(block, value.start, value.end, value.huffman);
    if (n < 0) return result(true);
    slashes += n;
  }
  return result(false);
}

// ---------- the client-to-server frame filter ----------

/** A growing list of chunks read from the front. */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** The first n bytes (n ≤ length) without consuming them. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  take(n: number): Buffer {
    const out = Buffer.from(this.peek(n)); // a copy: rewriting must not touch the reader's buffers
    const first = this.chunks[0];
    if (first !== undefined && first.length > n) this.chunks[0] = first.subarray(n);
    else this.chunks.shift();
    this.length -= n;
    return out;
  }

  all(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface FrameFilterOptions {
  /** How many SETTINGS ACKs from the client to drop (the ones answering SETTINGS nghttp2 never sent). */
  readonly dropSettingsAcks: number;
  /** Take PINGs out of the stream (the host answers them from `takePings`). */
  readonly answerPings: boolean;
}

/**
 * Client-to-server HTTP/2 frames after the preface, in any chunking: header blocks (HEADERS, then
 * CONTINUATIONs until END_HEADERS) are held whole and their `:authority` rewritten; the client's
 * first `dropSettingsAcks` SETTINGS ACKs and (while `answerPings`) its PINGs are taken out; every
 * other byte passes unchanged and in order.
 */
export class ClientFrameFilter {
  answerPings: boolean;
  private acksToDrop: number;
  private readonly input = new ByteQueue();
  /** The frames of a header block waiting for END_HEADERS. */
  private block: Buffer[] = [];
  private blockStream = 0;
  private blockBytes = 0;
  private pings: Buffer[] = [];
  /** Header blocks completed, those whose `:authority` had a '/', SETTINGS ACKs dropped. */
  headerBlocks = 0;
  slashBlocks = 0;
  acksDropped = 0;

  constructor(opts: FrameFilterOptions) {
    this.acksToDrop = opts.dropSettingsAcks;
    this.answerPings = opts.answerPings;
  }

  /** Inside a header block (HEADERS seen, END_HEADERS not yet). */
  get inBlock(): boolean {
    return this.block.length > 0;
  }

  /** The bytes to pass on now. */
  push(chunk: Uint8Array): Buffer[] {
    this.input.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    const out: Buffer[] = [];
    while (this.input.length >= FRAME_HEADER_BYTES) {
      const len = this.input.peek(3).readUIntBE(0, 3);
      if (this.input.length < FRAME_HEADER_BYTES + len) break;
      this.onFrame(this.input.take(FRAME_HEADER_BYTES + len), out);
    }
    return out;
  }

  /** Payloads of PINGs taken out since the last call. */
  takePings(): Buffer[] {
    const p = this.pings;
    this.pings = [];
    return p;
  }

  /** Everything received and not passed yet (a held header block, a partial frame), unchanged. */
  held(): Buffer {
    return Buffer.concat([...this.block, this.input.all()]);
  }

  private onFrame(f: Buffer, out: Buffer[]): void {
    const type = f[3] ?? 0;
    const flags = f[4] ?? 0;
    const stream = f.readUInt32BE(5) & 0x7fffffff;
    if (this.inBlock) {
      if (type === FRAME_CONTINUATION && stream === this.blockStream) return this.continueBlock(f, flags, out);
      this.flushBlock(out); // a protocol error for nghttp2 to report; we pass it along unchanged
    }
    if (type === FRAME_HEADERS) return this.startBlock(f, flags, stream, out);
    if (type === FRAME_SETTINGS && (flags & FLAG_ACK) !== 0 && this.acksToDrop > 0) {
      this.acksToDrop--;
      this.acksDropped++;
      return;
    }
    if (type === FRAME_PING && (flags & FLAG_ACK) === 0 && this.answerPings && f.length === FRAME_HEADER_BYTES + 8) {
      this.pings.push(f.subarray(FRAME_HEADER_BYTES));
      return;
    }
    out.push(f);
  }

  private startBlock(f: Buffer, flags: number, stream: number, out: Buffer[]): void {
    this.block = [f];
    this.blockStream = stream;
    this.blockBytes = f.length;
    if ((flags & FLAG_END_HEADERS) !== 0) this.finishBlock(out);
  }

  private continueBlock(f: Buffer, flags: number, out: Buffer[]): void {
    this.block.push(f);
    this.blockBytes += f.length;
    if ((flags & FLAG_END_HEADERS) !== 0) this.finishBlock(out);
    else if (this.blockBytes > HEADER_BLOCK_BYTES_MAX) this.flushBlock(out);
  }

  private flushBlock(out: Buffer[]): void {
    out.push(...this.block);
    this.block = [];
  }

  private finishBlock(out: Buffer[]): void {
    const parts = this.block.map(fragmentOf);
    const whole = Buffer.concat(parts.map((p) => (p === undefined ? Buffer.alloc(0) : p)));
    if (parts.every((p) => p !== undefined)) {
      const scan = rewriteHeaderBlock(whole);
      let at = 0;
      for (const p of parts) {
        if (p === undefined) continue;
        whole.copy(p, 0, at, at + p.length); // back into the frames, same places
        at += p.length;
      }
      this.headerBlocks++;
      if (scan.slashes > 0) this.slashBlocks++;
    }
    this.flushBlock(out);
  }
}

/** The header block fragment of a HEADERS or CONTINUATION frame (a view into it), undefined if malformed. */
function fragmentOf(f: Buffer): Buffer | undefined {
  const type = f[3] ?? 0;
  const flags = f[4] ?? 0;
  let start = FRAME_HEADER_BYTES;
  let end = f.length;
  if (type === FRAME_HEADERS) {
    if ((flags & FLAG_PADDED) !== 0) {
      const pad = f[start];
      if (pad === undefined) return undefined;
      start += 1;
      end -= pad;
    }
    if ((flags & FLAG_PRIORITY) !== 0) start += 5;
  }
  return start <= end ? f.subarray(start, end) : undefined;
}

// ---------- the connection host ----------

/**
 * A connection whose client bytes pass through a ClientFrameFilter (PINGs left in, for nghttp2 to
 * answer: only nghttp2 writes once it has the connection) on their way to node:http2.
 */
export class RewritingStream extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    private readonly frames: ClientFrameFilter,
    initial: Buffer,
  ) {
    super({ allowHalfOpen: false });
    if (initial.length > 0) this.push(initial);
    socket.on('data', (chunk: Buffer) => {
      for (const b of this.frames.push(chunk)) if (!this.push(b)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}

export type Handover = { readonly kind: 'raw'; readonly socket: net.Socket } | { readonly kind: 'rewrite'; readonly stream: RewritingStream };

/**
 * Holds a new HTTP/2 connection until its first header block shows whether its `:authority` needs
 * rewriting, then calls `hand` once. `first` = the bytes read so far, starting with the 24-byte client
 * preface. The caller watches the socket's 'close'/'error' meanwhile; the returned function abandons
 * the probe (no `hand` call after it).
 */
export function probeAuthority(socket: net.Socket, first: Buffer, hand: (h: Handover) => void, probeMs = AUTHORITY_PROBE_MS): () => void {
  const filter = new ClientFrameFilter({ dropSettingsAcks: 1, answerPings: true });
  const passed: Buffer[] = [first.subarray(0, PREFACE_BYTES)];
  let passedBytes = 0;
  const cleanup = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
  };
  const raw = (): void => {
    cleanup();
    socket.pause();
    socket.unshift(Buffer.concat([...passed, filter.held()]));
    hand({ kind: 'raw', socket });
  };
  const rewrite = (): void => {
    cleanup();
    socket.pause();
    filter.answerPings = false;
    hand({ kind: 'rewrite', stream: new RewritingStream(socket, filter, Buffer.concat(passed)) });
  };
  const onData = (chunk: Buffer): void => {
    for (const b of filter.push(chunk)) {
      passed.push(b);
      passedBytes += b.length;
    }
    for (const p of filter.takePings()) socket.write(frame(FRAME_PING, FLAG_ACK, 0, p));
    if (filter.slashBlocks > 0) rewrite();
    else if (filter.headerBlocks > 0 && filter.acksDropped > 0) raw();
    else if (passedBytes > PROBE_BYTES_MAX) (filter.acksDropped > 0 ? raw : rewrite)();
  };
  const timer = setTimeout(() => (filter.acksDropped > 0 && !filter.inBlock ? raw : rewrite)(), probeMs);
  socket.write(EMPTY_SETTINGS);
  socket.on('data', onData);
  onData(first.subarray(PREFACE_BYTES));
  return cleanup;
}
