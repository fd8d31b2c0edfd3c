// Protobuf wire runtime used by the generated codecs in proto/gen/. Hand-written, allocation-light:
// one growable buffer per encode, nested messages reserve one length byte and shift when longer.
// 64-bit integers are `number` (exact up to 2^53) or `bigint` (ids), chosen per field by the generator.

export class ProtoDecodeError extends Error {
  override readonly name = 'ProtoDecodeError';
}

const TWO_32 = 4294967296;

export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = 256) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  tag(field: number, wireType: number): void {
    this.uint32(((field << 3) | wireType) >>> 0);
  }

  uint32(v: number): void {
    this.ensure(5);
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** int32 and enums: negative values take ten bytes (sign-extended), as protobuf requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.int64(v);
  }

  private varint64(lo: number, hi: number): void {
    this.ensure(10);
    const b = this.buf;
    let p = this.pos;
    while (hi !== 0 || lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** int64/uint64 held in a number (exact for |v| <= 2^53). */
  int64(v: number): void {
    if (v >= 0 && v < TWO_32) {
      this.uint32(v);
      return;
    }
    const neg = v < 0;
    const abs = neg ? -v : v;
    let lo = abs % TWO_32 >>> 0;
    let hi = Math.floor(abs / TWO_32) >>> 0;
    if (neg) {
      lo = (~lo + 1) >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    this.varint64(lo, hi);
  }

  /** int64/uint64 held in a bigint (two's complement for negatives). */
  bigint64(v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.varint64(Number(u & 0xffffffffn), Number(u >> 32n));
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  bytes(v: Uint8Array): void {
    this.uint32(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  string(v: string): void {
    const len = Buffer.byteLength(v, 'utf8');
    this.uint32(len);
    this.ensure(len);
    this.buf.write(v, this.pos, len, 'utf8');
    this.pos += len;
  }

  /** Starts a length-delimited field; returns the mark to hand to `endLength`. */
  beginLength(): number {
    this.ensure(1);
    const mark = this.pos;
    this.pos += 1;
    return mark;
  }

  endLength(mark: number): void {
    const len = this.pos - mark - 1;
    if (len < 128) {
      this.buf[mark] = len;
      return;
    }
    let prefix = 1;
    for (let v = len >>> 7; v > 0; v >>>= 7) prefix++;
    this.ensure(prefix - 1);
    this.buf.copyWithin(mark + prefix, mark + 1, this.pos);
    let v = len;
    let p = mark;
    while (v > 127) {
      this.buf[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[p] = v;
    this.pos += prefix - 1;
  }
}

export class Reader {
  pos: number;
  readonly end: number;

  constructor(readonly buf: Uint8Array, start = 0, end = buf.length) {
    this.pos = start;
    this.end = end;
  }

  private fail(what: string): never {
    throw new ProtoDecodeError(`proto: ${what} at offset ${this.pos}`);
  }

  uint32(): number {
    const b = this.buf;
    let p = this.pos;
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) this.fail('truncated varint');
      const byte = b[p++] as number;
      if (shift < 28) result |= (byte & 127) << shift;
      else if (shift === 28) result |= (byte & 15) << 28;
      if (byte < 128) break;
      shift += 7;
      if (shift > 63) this.fail('varint too long');
    }
    this.pos = p;
    return result >>> 0;
  }

  private varint64(): [number, number] {
    const b = this.buf;
    let p = this.pos;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) this.fail('truncated varint');
      const byte = b[p++] as number;
      const bits = byte & 127;
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 15) << 28;
        hi |= bits >>> 4;
      } else if (shift < 64) hi |= bits << (shift - 32);
      if (byte < 128) break;
      shift += 7;
      if (shift > 63) this.fail('varint too long');
    }
    this.pos = p;
    return [lo >>> 0, hi >>> 0];
  }

  int32(): number {
    return this.varint64()[0] | 0;
  }

  /** Signed 64-bit as number (values beyond 2^53 lose precision). */
  int64(): number {
    const [lo, hi] = this.varint64();
    if (hi >= 0x80000000) {
      const nlo = (~lo + 1) >>> 0;
      const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
      return -(nhi * TWO_32 + nlo);
    }
    return hi * TWO_32 + lo;
  }

  uint64(): number {
    const [lo, hi] = this.varint64();
    return hi * TWO_32 + lo;
  }

  bigint64(): bigint {
    const [lo, hi] = this.varint64();
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  }

  biguint64(): bigint {
    const [lo, hi] = this.varint64();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  bool(): boolean {
    const [lo, hi] = this.varint64();
    return lo !== 0 || hi !== 0;
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) this.fail('truncated fixed32');
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p] as number) | ((b[p + 1] as number) << 8) | ((b[p + 2] as number) << 16) | ((b[p + 3] as number) << 24)) >>> 0;
  }

  /** A zero-copy view of a length-delimited field. */
  bytes(): Buffer {
    const len = this.uint32();
    const start = this.pos;
    if (len > this.end - start) this.fail('length past end of message');
    this.pos = start + len;
    const b = this.buf;
    return Buffer.from(b.buffer, b.byteOffset + start, len);
  }

  string(): string {
    const len = this.uint32();
    const start = this.pos;
    if (len > this.end - start) this.fail('length past end of message');
    this.pos = start + len;
    const b = this.buf;
    return Buffer.from(b.buffer, b.byteOffset + start, len).toString('utf8');
  }

  /** End offset of a nested message starting at the current position (after its length). */
  nestedEnd(): number {
    const len = this.uint32();
    if (len > this.end - this.pos) this.fail('length past end of message');
    return this.pos + len;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.advance(this.uint32());
        return;
      case 5:
        this.advance(4);
        return;
      default:
        this.fail(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) this.fail('field past end of message');
    this.pos += n;
  }
}

export const EMPTY_BYTES: Buffer = Buffer.alloc(0);

/** Describes one RPC for the transport layer; the generated services are maps of these. */
export interface MethodDescriptor<Req, Res, ReqInit = Req, ResInit = Res> {
  readonly name: string;
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly encodeRequest: (m: ReqInit) => Buffer;
  readonly decodeRequest: (b: Uint8Array) => Req;
  readonly encodeResponse: (m: ResInit) => Buffer;
  readonly decodeResponse: (b: Uint8Array) => Res;
}
