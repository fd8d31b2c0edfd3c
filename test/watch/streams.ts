// Stream helpers for the watch tests: gRPC channels that each own their HTTP/2 connection, a Watch
// stream with a message callback that can be paused like a client that stops reading, and a raw
// HTTP/2 gRPC stream for bytes no generated client would send.
import * as grpc from '@grpc/grpc-js';
import { connect, constants as h2 } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { readFileSync } from 'node:fs';
import { methodDefinition, statusName, type Msg } from '../harness/client.js';

/**
 * A gRPC client with its own subchannel pool: grpc-js shares one HTTP/2 connection between all
 * clients of an address by default, and these tests want several real connections.
 */
export function ownChannel(endpoint: string): grpc.Client {
  return new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });
}

export function waitReady(ch: grpc.Client, timeoutMs = 10_000): Promise<void> {
  return new Promise((res, rej) => {
    ch.waitForReady(Date.now() + timeoutMs, (err) => (err === undefined || err === null ? res() : rej(err)));
  });
}

function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

/**
 * A Watch stream whose responses go to a callback (in arrival order). `pause()` stops reading
 * (grpc-js then stops reading the HTTP/2 stream, so the server's flow-control window fills up);
 * `resume()` reads again. After `cancel()` no further message reaches the callback.
 */
export class WatchStream {
  private readonly call: grpc.ClientDuplexStream<object, Msg>;
  /** Set once the stream ended: status code and details (OK on a clean end). */
  ended: { code: number; details: string } | undefined = undefined;
  private canceled = false;
  received = 0;

  constructor(channel: grpc.Client, onMessage: (m: Msg) => void, onEnd?: (e: { code: number; details: string }) => void) {
    const def = methodDefinition('Watch', 'Watch');
    this.call = channel.makeBidiStreamRequest(def.path, def.requestSerialize, (b: Buffer) => def.responseDeserialize(b) as Msg, new grpc.Metadata(), {});
    this.call.on('data', (m: Msg) => {
      if (this.canceled) return;
      this.received += 1;
      onMessage(m);
    });
    const finish = (e: { code: number; details: string }): void => {
      if (this.ended !== undefined) return;
      this.ended = e;
      if (!this.canceled) onEnd?.(e);
    };
    this.call.on('error', (e: unknown) => {
      finish(isServiceError(e) ? { code: e.code, details: e.details } : { code: grpc.status.UNKNOWN, details: String(e) });
    });
    this.call.on('end', () => finish({ code: grpc.status.OK, details: '' }));
  }

  /** Writes a request; false when grpc-js buffers it (the transport pushes back). */
  send(request: object): boolean {
    return this.call.write(request);
  }

  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  get isPaused(): boolean {
    return this.call.isPaused();
  }

  cancel(): void {
    this.canceled = true;
    this.call.cancel();
  }

  describeEnd(): string {
    return this.ended === undefined ? 'open' : `${statusName(this.ended.code)} ${this.ended.details}`;
  }
}

/** /proc/<pid>/status field in KiB (e.g. "RssAnon", "VmRSS"), undefined once the process is gone. */
export function procStatusKb(pid: number, field: string): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Samples a /proc/<pid>/status field every `everyMs` and keeps the maximum. */
export class PeakSampler {
  peakKb = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    private readonly field: string,
    everyMs = 50,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  sample(): number {
    const v = procStatusKb(this.pid, this.field) ?? 0;
    if (v > this.peakKb) this.peakKb = v;
    return v;
  }
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peakKb;
  }
}

/** A gRPC length-prefixed message frame (uncompressed). */
export function grpcFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/**
 * A gRPC call on a raw HTTP/2 stream: the test writes whatever bytes it likes, reads the decoded
 * response messages, and sees the grpc-status trailer.
 */
export class RawGrpcStream {
  readonly session: ClientHttp2Session;
  readonly stream: ClientHttp2Stream;
  readonly messages: Buffer[] = [];
  /** grpc-status / grpc-message from trailers (or headers of a trailers-only reply), once ended. */
  status: { code: number; details: string } | undefined = undefined;
  closed = false;
  private pending = Buffer.alloc(0);
  private readonly waiters: Array<() => void> = [];

  constructor(endpoint: string, path: string) {
    this.session = connect(`http://${endpoint}`);
    this.session.on('error', () => {
      // surfaced through the stream's close
    });
    this.stream = this.session.request({
      [h2.HTTP2_HEADER_METHOD]: 'POST',
      [h2.HTTP2_HEADER_PATH]: path,
      [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      te: 'trailers',
    });
    const takeStatus = (hdrs: IncomingHttpHeaders): void => {
      const code = hdrs['grpc-status'];
      if (code === undefined) return;
      const msg = hdrs['grpc-message'];
      this.status = { code: Number(code), details: typeof msg === 'string' ? decodeURIComponent(msg) : '' };
    };
    this.stream.on('response', (hdrs) => takeStatus(hdrs));
    this.stream.on('trailers', (hdrs: IncomingHttpHeaders) => takeStatus(hdrs));
    this.stream.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5) {
        const len = this.pending.readUInt32BE(1);
        if (this.pending.length < 5 + len) break;
        this.messages.push(this.pending.subarray(5, 5 + len));
        this.pending = this.pending.subarray(5 + len);
      }
      this.wake();
    });
    this.stream.on('error', () => {
      // a reset: status stays as received (or undefined)
    });
    this.stream.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `cond()` holds (checked on every arrival), rejects after timeoutMs. */
  until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((res, rej) => {
      const deadline = Date.now() + timeoutMs;
      const check = (): void => {
        if (cond()) {
          res();
          return;
        }
        if (Date.now() >= deadline) {
          rej(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
          return;
        }
        this.waiters.push(check);
      };
      const t = setTimeout(() => this.wake(), timeoutMs + 5);
      t.unref();
      check();
    });
  }

  write(bytes: Buffer): boolean {
    return this.stream.write(bytes);
  }

  close(): void {
    if (!this.stream.destroyed) this.stream.close(h2.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}
