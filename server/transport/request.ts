// Forwarded requests to one peer: request/response frames with ids, multiplexed on one connection that
// is opened on first use and re-opened by the next request after it breaks. Every request has a
// timeout; the number awaiting a response is bounded.
import type { Logger } from '../base/index.js';
import type { FramedConn } from './conn.js';
import { PEER_PENDING_REQUESTS_MAX, PEER_READ_TIMEOUT_MS, PEER_REQUEST_BODY_BYTES_MAX } from './constants.js';
import { PeerProtocolError, PeerRefusedError, PeerRequestError, PeerUnavailableError } from './errors.js';
import { type Frame, type Hello, decodeResponse, encodeRequest, frameTypes } from './frame.js';

export interface RequestEnv {
  readonly logger: Logger;
  /** The hello for a new connection; undefined while our cluster ID is unknown. */
  hello(): Hello | undefined;
  dial(urls: readonly string[], hello: Hello): Promise<FramedConn>;
  refused(err: PeerRefusedError): void;
}

interface Pending {
  readonly kind: string;
  resolve(body: Uint8Array): void;
  reject(err: Error): void;
  readonly timer: NodeJS.Timeout;
  /** The encoded frame while no connection is up yet. */
  frame: Buffer | undefined;
}

export class RequestChannel {
  private conn: FramedConn | undefined;
  private dialing = false;
  private stopped = false;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private readonly name: string,
    public urls: readonly string[],
    private readonly env: RequestEnv,
  ) {}

  request(kind: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.stopped) return Promise.reject(new PeerUnavailableError('stopped', 'transport stopped'));
    if (body.length > PEER_REQUEST_BODY_BYTES_MAX) {
      return Promise.reject(new PeerUnavailableError('tooLarge', `request body of ${body.length} bytes exceeds ${PEER_REQUEST_BODY_BYTES_MAX}`));
    }
    if (this.pending.size >= PEER_PENDING_REQUESTS_MAX) {
      return Promise.reject(new PeerUnavailableError('tooManyRequests', `too many pending requests to ${this.name}`));
    }
    const id = this.takeId();
    const frame = encodeRequest(id, kind, body);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => this.timedOut(id, timeoutMs), timeoutMs);
      this.pending.set(id, { kind, resolve, reject, timer, frame: undefined });
      if (this.conn !== undefined) this.conn.write(frame);
      else {
        const p = this.pending.get(id);
        if (p !== undefined) p.frame = frame;
        if (!this.dialing) void this.connect();
      }
    });
  }

  /** Rejects everything pending and closes the connection; later requests are refused. */
  stop(reason: string): void {
    this.stopped = true;
    this.conn?.close(reason);
    this.conn = undefined;
    this.rejectAll(() => new PeerUnavailableError('stopped', reason));
  }

  private takeId(): number {
    do {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
      if (!this.pending.has(id)) return id;
    } while (this.pending.size < PEER_PENDING_REQUESTS_MAX);
    throw new Error('unreachable: a free request id exists while below the pending bound');
  }

  private timedOut(id: number, timeoutMs: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    p.reject(new PeerUnavailableError('timeout', `request ${p.kind} to ${this.name} timed out after ${timeoutMs} ms`));
    // A connection that has been silent for long while requests time out is presumed dead.
    const conn = this.conn;
    if (conn !== undefined && conn.idleMs(performance.now()) > PEER_READ_TIMEOUT_MS) conn.close('requests timing out on a silent connection');
  }

  private async connect(): Promise<void> {
    this.dialing = true;
    let conn: FramedConn;
    try {
      const hello = this.env.hello();
      if (hello === undefined) throw new PeerUnavailableError('unreachable', 'cluster ID not known yet');
      conn = await this.env.dial(this.urls, hello);
    } catch (e) {
      this.dialing = false;
      if (e instanceof PeerRefusedError) this.env.refused(e);
      const err = e instanceof Error ? e : new Error(String(e));
      this.rejectAll(() => err);
      return;
    } finally {
      this.dialing = false;
    }
    if (this.stopped) {
      conn.close('stopped');
      return;
    }
    this.conn = conn;
    conn.setHandler((frames) => this.onFrames(frames));
    conn.onClose((reason) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.rejectAll(() => new PeerUnavailableError('closed', `connection to ${this.name} closed: ${reason}`));
    });
    for (const p of this.pending.values()) {
      if (p.frame !== undefined) conn.write(p.frame);
      p.frame = undefined;
    }
  }

  private onFrames(frames: Frame[]): void {
    for (const f of frames) {
      if (f.type !== frameTypes.response) throw new PeerProtocolError(`unexpected frame type ${f.type} on a request connection`);
      const { id, ok, body } = decodeResponse(f.payload);
      const p = this.pending.get(id);
      if (p === undefined) continue; // timed out already
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (ok) p.resolve(new Uint8Array(body));
      else p.reject(new PeerRequestError(body.toString('utf8')));
    }
  }

  private rejectAll(err: () => Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err());
    }
  }
}
