// The outgoing raft stream to one peer: a bounded queue, one long-lived connection, batched writes
// (every message queued in one event-loop turn goes out in one socket write), pings for round-trip
// time and liveness, and reconnection with capped backoff. Messages are never buffered for a peer
// that is down: they are dropped and raft is told (onUnreachable), as etcd's stream writer does.
import { Buffer } from 'node:buffer';
import type { Logger } from '../base/index.js';
import type { Message } from '../raft/types.js';
import { messageBytes, writeMessage } from './codec.js';
import type { FramedConn } from './conn.js';
import {
  PEER_BACKOFF_MAX_MS,
  PEER_BACKOFF_MIN_MS,
  PEER_FRAME_BYTES_MAX,
  PEER_READ_TIMEOUT_MS,
  PEER_SEND_QUEUE_MSGS,
  PEER_WRITE_BATCH_BYTES,
} from './constants.js';
import { PeerProtocolError, PeerRefusedError } from './errors.js';
import { FRAME_HEADER_BYTES, type Frame, type Hello, decodeTime, encodeTime, frameTypes, writeFrameHeader } from './frame.js';

export interface StreamEnv {
  readonly logger: Logger;
  /** The hello for a new connection to `to`; undefined while our cluster ID is unknown. */
  hello(to: bigint): Hello | undefined;
  dial(urls: readonly string[], hello: Hello): Promise<FramedConn>;
  /** Messages to `to` were lost (rate-limited by the caller). */
  unreachable(to: bigint): void;
  refused(to: bigint, err: PeerRefusedError): void;
  /** A ping's round trip to `to` was measured (ms). */
  roundTrip?(to: bigint, ms: number): void;
}

export interface StreamStats {
  messagesSent: number;
  writes: number;
  bytesSent: number;
  dropped: number;
}

type State = 'dialing' | 'up' | 'backoff' | 'stopped';

export class StreamSender {
  activeSinceMs: number | undefined;
  roundTripMs: number | undefined;
  readonly stats: StreamStats = { messagesSent: 0, writes: 0, bytesSent: 0, dropped: 0 };
  private state: State = 'dialing';
  private queue: Message[] = [];
  private queueHead = 0;
  private conn: FramedConn | undefined;
  private backoffMs = PEER_BACKOFF_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private flushScheduled = false;
  /** True once an outage has been logged (one warning per outage, not per attempt). */
  private outageLogged = false;

  constructor(
    readonly to: bigint,
    public urls: readonly string[],
    private readonly env: StreamEnv,
  ) {
    void this.connect();
  }

  /** A getter, so that checks after an await are not narrowed away by the compiler. */
  private get stopped(): boolean {
    return this.state === 'stopped';
  }

  get queued(): number {
    return this.queue.length - this.queueHead;
  }

  /** Never blocks: queues the message, or drops it (peer down or queue full) and reports the peer unreachable. */
  enqueue(msg: Message): void {
    if ((this.state === 'up' || this.state === 'dialing') && this.queued < PEER_SEND_QUEUE_MSGS) {
      this.queue.push(msg);
      if (this.state === 'up') this.scheduleFlush();
      return;
    }
    this.stats.dropped++;
    this.env.unreachable(this.to);
  }

  /** Sends a ping (transport tick) and closes a connection on which nothing arrived for too long. */
  tick(nowMs: number): void {
    const conn = this.conn;
    if (this.state !== 'up' || conn === undefined) return;
    if (conn.idleMs(nowMs) > PEER_READ_TIMEOUT_MS) {
      conn.close(`nothing received for ${PEER_READ_TIMEOUT_MS} ms`);
      return;
    }
    conn.write(encodeTime(frameTypes.ping, nowMs));
  }

  stop(): void {
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    this.conn?.close('peer removed or transport closed');
    this.conn = undefined;
    this.activeSinceMs = undefined;
    this.dropQueue();
  }

  private async connect(): Promise<void> {
    this.state = 'dialing';
    const hello = this.env.hello(this.to);
    let conn: FramedConn;
    try {
      if (hello === undefined) throw new Error('cluster ID not known yet');
      conn = await this.env.dial(this.urls, hello);
    } catch (e) {
      if (this.stopped) return;
      this.dialFailed(e);
      return;
    }
    if (this.stopped) {
      conn.close('stopped');
      return;
    }
    this.up(conn);
  }

  private up(conn: FramedConn): void {
    this.conn = conn;
    this.state = 'up';
    this.activeSinceMs = Date.now();
    this.roundTripMs = undefined;
    this.backoffMs = PEER_BACKOFF_MIN_MS;
    this.outageLogged = false;
    this.env.logger.info('peer stream established', { peer: this.to.toString(16), remote: conn.remote });
    conn.setHandler((frames) => this.onFrames(frames));
    conn.onClose((reason) => this.broken(conn, reason));
    conn.socket.on('drain', () => this.flush());
    this.flush();
  }

  private dialFailed(e: unknown): void {
    if (e instanceof PeerRefusedError) this.env.refused(this.to, e);
    else if (!this.outageLogged) {
      this.outageLogged = true;
      this.env.logger.warn('peer stream unreachable', { peer: this.to.toString(16), reason: e instanceof Error ? e.message : String(e) });
    }
    if (this.dropQueue() > 0) this.env.unreachable(this.to);
    this.retryLater();
  }

  private broken(conn: FramedConn, reason: string): void {
    if (this.conn !== conn || this.state === 'stopped') return;
    this.conn = undefined;
    this.activeSinceMs = undefined;
    this.roundTripMs = undefined;
    this.outageLogged = true;
    this.env.logger.warn('peer stream lost', { peer: this.to.toString(16), remote: conn.remote, reason });
    this.dropQueue();
    this.env.unreachable(this.to);
    // A stream that was up is redialled at once (messages queue while dialing): after a pause (e.g.
    // SIGSTOP) the peer usually is fine and a forwarded proposal should not be dropped in a backoff.
    // Failed dials back off as usual.
    void this.connect();
  }

  private retryLater(): void {
    this.state = 'backoff';
    this.retryTimer = setTimeout(() => void this.connect(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, PEER_BACKOFF_MAX_MS);
  }

  private dropQueue(): number {
    const n = this.queued;
    this.stats.dropped += n;
    this.queue = [];
    this.queueHead = 0;
    return n;
  }

  private onFrames(frames: Frame[]): void {
    for (const f of frames) {
      if (f.type !== frameTypes.pong) throw new PeerProtocolError(`unexpected frame type ${f.type} on an outgoing stream`);
      this.roundTripMs = Math.max(0, performance.now() - decodeTime(f.payload));
      this.env.roundTrip?.(this.to, this.roundTripMs);
    }
  }

  /** Writes what is queued now instead of in the scheduled immediate (which then finds less or nothing). */
  flushNow(): void {
    if (this.queued > 0) this.flush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes queued messages, one socket write per batch, while the socket takes more. */
  private flush(): void {
    const conn = this.conn;
    while (this.state === 'up' && conn !== undefined && this.queued > 0 && !conn.needDrain) {
      const batch = this.takeBatch();
      if (batch.length > 0) conn.write(batch);
    }
    if (this.queued === 0) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > PEER_SEND_QUEUE_MSGS) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /** Encodes the next messages (up to PEER_WRITE_BATCH_BYTES, at least one) as msg frames in one buffer. */
  private takeBatch(): Buffer {
    const batch: { m: Message; n: number }[] = [];
    let bytes = 0;
    for (; this.queueHead < this.queue.length; this.queueHead++) {
      const m = this.queue[this.queueHead];
      if (m === undefined) break;
      const n = messageBytes(m);
      if (n > PEER_FRAME_BYTES_MAX) {
        this.stats.dropped++;
        this.env.logger.warn('dropping a message larger than a frame', { peer: this.to.toString(16), type: m.type, bytes: n });
        continue;
      }
      if (batch.length > 0 && bytes + FRAME_HEADER_BYTES + n > PEER_WRITE_BATCH_BYTES) break;
      batch.push({ m, n });
      bytes += FRAME_HEADER_BYTES + n;
    }
    const buf = Buffer.allocUnsafe(bytes);
    let o = 0;
    for (const { m, n } of batch) {
      o = writeFrameHeader(buf, o, frameTypes.msg, n);
      o = writeMessage(buf, o, m);
    }
    this.stats.messagesSent += batch.length;
    if (batch.length > 0) this.stats.writes++;
    this.stats.bytesSent += bytes;
    return buf;
  }
}
