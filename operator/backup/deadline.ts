// The overall deadline of one backup run. The snapshot stream's idle timeout, the Status call's
// deadline and the S3 sockets' timeouts each bound one wait, but not the run: a member that accepts the
// connection and then answers nothing the idle timer sees, an observation that never returns, a
// multipart completion that never ends, or a run that simply moves too slowly would hold the
// cluster's backup slot (BackupSlots) forever and leave the EtcdBackup Running.
//
// A RunDeadline is armed when the run starts (backupCluster, or runBackup alone) and shared by every
// member the run tries. When it passes, its signal aborts everything the run waits on: every S3
// request of the run carries it (withAbortSignal), the Status call and the snapshot stream are
// cancelled, lib-storage's upload is aborted; and every wait raced through run() rejects at once with
// BackupError('Timeout') naming the limit and the phase the run was in. The failure path then removes
// the partial upload under its own bound (BACKUP_CLEANUP_TIMEOUT_MS), and the caller's slot is released.
import { BackupError } from './errors.js';

/**
 * Longest one backup run may take, from its start (observing the members) to the object under its
 * final key and the retention applied. At the stores' slowest plausible 5 MB/s this is 18 GB, more
 * than twice etcd's suggested largest backend quota (8 GiB).
 */
export const BACKUP_RUN_TIMEOUT_MS = 60 * 60_000;
/** Longest the cleanup after a failed run may take (abort the multipart upload, sweep .incomplete/). */
export const BACKUP_CLEANUP_TIMEOUT_MS = 60_000;

export class RunDeadline {
  private readonly controller = new AbortController();
  private readonly expired: Promise<never>;
  private readonly startedMs = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private current = 'starting';
  private passed: BackupError | undefined;

  /** `what` names the run in the message: "backup of cluster default-main". */
  constructor(
    readonly what: string,
    readonly limitMs: number = BACKUP_RUN_TIMEOUT_MS,
  ) {
    if (!Number.isFinite(limitMs) || limitMs <= 0) throw new RangeError(`RunDeadline: limit ${String(limitMs)} ms is not a positive number`);
    this.expired = new Promise<never>((_resolve, reject) => {
      this.timer = setTimeout(() => {
        const err = this.timeoutError();
        this.passed = err;
        reject(err);
        this.controller.abort(err);
      }, limitMs);
      // A run in flight keeps the process alive by itself; a deadline left armed must not.
      this.timer.unref();
    });
    this.expired.catch(() => undefined);
  }

  /** Aborted when the deadline passes (its reason is the Timeout error). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The Timeout error once the deadline has passed; undefined before. */
  get error(): BackupError | undefined {
    return this.passed;
  }

  /** The phase the run is in (named in the Timeout error). */
  get phase(): string {
    return this.current;
  }

  /**
   * Runs one phase: `work` gets the signal to pass to what it calls; the result is raced against the
   * deadline, so the phase rejects with the Timeout error at the deadline even if `work` ignores it.
   */
  run<T>(phase: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.current = phase;
    if (this.passed !== undefined) return Promise.reject(this.passed);
    return Promise.race([work(this.controller.signal), this.expired]);
  }

  /** Disarms the timer (the run ended); idempotent. */
  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private timeoutError(): BackupError {
    const secs = ((Date.now() - this.startedMs) / 1000).toFixed(1);
    return new BackupError(
      'Timeout',
      `${this.what} passed its deadline of ${formatMs(this.limitMs)} (BACKUP_RUN_TIMEOUT_MS) after ${secs} s, in phase "${this.current}"; everything it was waiting on was aborted`,
    );
  }
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${String(ms / 60_000)} min` : ms % 1000 === 0 ? `${String(ms / 1000)} s` : `${String(ms)} ms`;
}

/**
 * Runs `work` under `given` (the caller's deadline, shared), or under a deadline of its own of
 * `limitMs` (default BACKUP_RUN_TIMEOUT_MS) disarmed when `work` settles.
 */
export async function underDeadline<T>(given: RunDeadline | undefined, what: string, limitMs: number | undefined, work: (d: RunDeadline) => Promise<T>): Promise<T> {
  if (given !== undefined) return work(given);
  const own = new RunDeadline(what, limitMs);
  try {
    return await work(own);
  } finally {
    own.dispose();
  }
}
