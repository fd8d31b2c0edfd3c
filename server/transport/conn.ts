// One framed connection: a socket, its incremental decoder and the handler its frames go to. Malformed
// input (the decoder's failure or a PeerProtocolError from the handler) is logged as a warning with the
// peer's address and closes this connection only. An async handler pauses reading until it settles
// (back-pressure for snapshot writes).
import type { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import type { Logger } from '../base/index.js';
import { PeerProtocolError } from './errors.js';
import { type Frame, FrameDecoder } from './frame.js';

export type FrameHandler = (frames: Frame[]) => void | Promise<void>;

export class FramedConn {
  readonly remote: string;
  /** Monotonic ms of the last bytes received (or of the end of the last async handling). */
  lastReadMs: number;
  closed = false;
  closeReason = '';
  /** Resolves once the socket is closed. */
  readonly done: Promise<void>;
  private readonly decoder: FrameDecoder;
  private busy = false;
  private readonly closeListeners: ((reason: string) => void)[] = [];

  constructor(
    readonly socket: Socket,
    expectHello: boolean,
    private readonly logger: Logger,
    private handler: FrameHandler,
    private readonly countBytes: (n: number) => void = () => undefined,
    remote?: string,
  ) {
    this.decoder = new FrameDecoder(expectHello);
    this.remote = remote ?? `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.lastReadMs = performance.now();
    this.done = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        const reason = this.closeReason === '' ? 'closed by peer' : this.closeReason;
        for (const l of this.closeListeners.splice(0)) l(reason);
        resolve();
      });
    });
    socket.on('error', (err) => {
      if (this.closeReason === '') this.closeReason = err.message;
    });
    socket.on('end', () => {
      if (this.closeReason === '') this.closeReason = 'closed by peer';
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  setHandler(h: FrameHandler): void {
    this.handler = h;
  }

  /** Called once with the reason when the socket closes (at once if it already has). */
  onClose(fn: (reason: string) => void): void {
    if (this.closed) fn(this.closeReason);
    else this.closeListeners.push(fn);
  }

  write(b: Uint8Array): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(b);
  }

  get needDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** Milliseconds since bytes last arrived; 0 while an async handler holds reading paused. */
  idleMs(nowMs: number): number {
    return this.busy ? 0 : nowMs - this.lastReadMs;
  }

  close(reason: string): void {
    if (this.closeReason === '') this.closeReason = reason;
    this.socket.destroy();
  }

  /** Sends the last bytes (an error frame), then closes; destroys anyway if the peer does not read them. */
  endWith(b: Uint8Array, reason: string): void {
    if (this.closeReason === '') this.closeReason = reason;
    this.socket.end(b);
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    this.lastReadMs = performance.now();
    this.countBytes(chunk.length);
    this.dispatch(this.decoder.push(chunk));
  }

  private dispatch(frames: Frame[]): void {
    if (frames.length > 0) {
      let r: void | Promise<void>;
      try {
        r = this.handler(frames);
      } catch (e) {
        // The peer's fault closes this connection; anything else is a bug of ours or the host's: crash.
        if (!(e instanceof PeerProtocolError)) throw e;
        this.malformed(e.message);
        return;
      }
      if (r instanceof Promise) {
        this.busy = true;
        this.socket.pause();
        r.then(
          () => {
            this.busy = false;
            this.lastReadMs = performance.now();
            this.afterFrames();
            if (!this.socket.destroyed) this.socket.resume();
          },
          (e: unknown) => {
            this.busy = false;
            this.fail(e);
          },
        );
        return;
      }
    }
    this.afterFrames();
  }

  private afterFrames(): void {
    const why = this.decoder.failure;
    if (why !== undefined && !this.socket.destroyed) this.malformed(why);
  }

  private fail(e: unknown): void {
    if (e instanceof PeerProtocolError) {
      this.malformed(e.message);
      return;
    }
    this.logger.error('peer connection handler failed', { remote: this.remote, error: e });
    this.close(`handler failed: ${e instanceof Error ? e.message : String(e)}`);
  }

  private malformed(reason: string): void {
    this.logger.warn('closing peer connection: malformed data', { remote: this.remote, reason });
    this.close(`malformed data: ${reason}`);
  }
}
