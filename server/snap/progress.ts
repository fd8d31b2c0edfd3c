// Progress of a long copy or hash pass, as JSON log lines on stderr: one every PROGRESS_EVERY_MS or
// every PROGRESS_EVERY_BYTES (whichever comes first), and a final one with the phase's duration.
import type { Logger } from '../base/log.js';

/** A progress line at least this often while bytes move. */
export const PROGRESS_EVERY_MS = 1000;
/** ... and at least every this many bytes. */
export const PROGRESS_EVERY_BYTES = 64 * 1024 * 1024;

/** Milliseconds from a monotonic clock (the caller owns time: DESIGN.md style 2). */
export type NowMs = () => number;

export class Progress {
  private done = 0;
  private lastAtMs: number;
  private lastBytes = 0;
  private readonly startMs: number;

  constructor(
    private readonly log: Logger,
    private readonly nowMs: NowMs,
    private readonly phase: string,
    private readonly path: string,
    private readonly totalBytes: number,
  ) {
    this.startMs = nowMs();
    this.lastAtMs = this.startMs;
  }

  /** Counts n more bytes; logs a line when a second or 64 MiB passed since the last one. */
  advance(n: number): void {
    this.done += n;
    const now = this.nowMs();
    if (now - this.lastAtMs < PROGRESS_EVERY_MS && this.done - this.lastBytes < PROGRESS_EVERY_BYTES) return;
    this.lastAtMs = now;
    this.lastBytes = this.done;
    this.log.info(this.phase, { path: this.path, bytes: this.done, total: this.totalBytes, percent: percent(this.done, this.totalBytes) });
  }

  /** The final line: bytes, duration and throughput of the phase. Returns the duration in ms. */
  finish(): number {
    const tookMs = this.nowMs() - this.startMs;
    this.log.info(`${this.phase}: done`, {
      path: this.path,
      bytes: this.done,
      total: this.totalBytes,
      'took-ms': Math.round(tookMs),
      'mb-per-s': tookMs > 0 ? Math.round((this.done / 1e6 / (tookMs / 1000)) * 10) / 10 : undefined,
    });
    return tookMs;
  }
}

function percent(done: number, total: number): number {
  return total === 0 ? 100 : Math.floor((done / total) * 1000) / 10;
}
