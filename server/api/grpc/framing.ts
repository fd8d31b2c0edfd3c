// gRPC length-prefixed messages: 1 byte compressed flag, 4 bytes big-endian length, the message.
// The decoder is incremental and does not depend on how the bytes are chunked: a message may span
// many DATA frames and a frame may hold many messages.
import { Buffer } from 'node:buffer';
import {
  compressedWithoutEncoding,
  receivedTooLarge,
  unexpectedPayloadFormat,
  type GrpcError,
} from './status.js';

export const PREFIX_BYTES = 5;
const FLAG_COMPRESSED = 1;
const EMPTY = Buffer.alloc(0);

/** The prefix and the message in one buffer (one write, one DATA frame for small messages). */
export function frameMessage(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, PREFIX_BYTES);
  return out;
}

/** Several messages framed into one buffer (one write; DATA frames of up to the peer's frame size). */
export function frameMessages(messages: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const m of messages) total += PREFIX_BYTES + m.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const m of messages) {
    out[at] = 0;
    out.writeUInt32BE(m.length, at + 1);
    out.set(m, at + PREFIX_BYTES);
    at += PREFIX_BYTES + m.length;
  }
  return out;
}

export interface MessageSink {
  onDecoded(message: Buffer): void;
}

/**
 * Incremental decoder. A message that arrives whole in one chunk is handed on as a view of that
 * chunk (no copy); one split over chunks is copied once into a buffer of its exact size. A length
 * over the limit fails before any of its body is buffered. After a failure, input is ignored.
 */
export class MessageDecoder {
  /** Why decoding stopped, once it has. */
  failure: GrpcError | undefined = undefined;
  private prefixFilled = 0;
  private flag = 0;
  private lengthBytes = 0;
  private body: Buffer = EMPTY;
  private bodyFilled = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** True when bytes of an unfinished message are held (the stream must not end here). */
  get midMessage(): boolean {
    return this.prefixFilled > 0;
  }

  /** Feeds one chunk; each complete message goes to `sink`. Returns false once decoding has failed. */
  push(chunk: Uint8Array, sink: MessageSink): boolean {
    if (this.failure !== undefined) return false;
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.prefixFilled < PREFIX_BYTES) {
        pos = this.readPrefix(chunk, pos);
        if (this.prefixFilled < PREFIX_BYTES) return true;
        if (!this.checkPrefix()) return false;
        const len = this.lengthBytes;
        if (end - pos >= len) {
          // The whole message is in this chunk: hand on a view.
          this.prefixFilled = 0;
          sink.onDecoded(len === 0 ? EMPTY : Buffer.from(chunk.buffer, chunk.byteOffset + pos, len));
          pos += len;
          continue;
        }
        this.body = Buffer.allocUnsafe(len);
        this.bodyFilled = 0;
      }
      const take = Math.min(this.lengthBytes - this.bodyFilled, end - pos);
      this.body.set(chunk.subarray(pos, pos + take), this.bodyFilled);
      this.bodyFilled += take;
      pos += take;
      if (this.bodyFilled === this.lengthBytes) {
        const message = this.body;
        this.body = EMPTY;
        this.prefixFilled = 0;
        sink.onDecoded(message);
      }
    }
    return true;
  }

  private readPrefix(chunk: Uint8Array, pos: number): number {
    if (this.prefixFilled === 0 && chunk.length - pos >= PREFIX_BYTES) {
      this.flag = chunk[pos] ?? 0;
      this.lengthBytes = ((chunk[pos + 1] ?? 0) * 0x1000000) + (((chunk[pos + 2] ?? 0) << 16) | ((chunk[pos + 3] ?? 0) << 8) | (chunk[pos + 4] ?? 0));
      this.prefixFilled = PREFIX_BYTES;
      return pos + PREFIX_BYTES;
    }
    while (pos < chunk.length && this.prefixFilled < PREFIX_BYTES) {
      const b = chunk[pos] ?? 0;
      if (this.prefixFilled === 0) {
        this.flag = b;
        this.lengthBytes = 0;
      } else {
        this.lengthBytes = this.lengthBytes * 256 + b;
      }
      this.prefixFilled++;
      pos++;
    }
    return pos;
  }

  /** grpc-go's order: the size check first (on the prefix alone), then the payload format. */
  private checkPrefix(): boolean {
    if (this.lengthBytes > this.maxMessageBytes) this.failure = receivedTooLarge(this.lengthBytes, this.maxMessageBytes);
    else if (this.flag === FLAG_COMPRESSED) this.failure = compressedWithoutEncoding();
    else if (this.flag !== 0) this.failure = unexpectedPayloadFormat(this.flag);
    return this.failure === undefined;
  }
}
