// The bytes Maintenance.Snapshot streams: the etcd (bbolt) database of a consistent copy of this
// member's LMDB database (the node makes the copy), built in a worker thread (imageworker.ts) so the
// server's event loop never carries the encoding. The worker plans the layout (one pass: the size
// is known before the first byte, as the stream announces it), then makes the pages on demand: the
// caller pulls chunks of about CHUNK_BYTES and the worker makes at most PREFETCH chunks ahead, so a
// slow client holds a few MiB here, never the database.
import { Worker } from 'node:worker_threads';

/** Bytes of pages in one chunk handed from the worker. */
const CHUNK_BYTES = 1024 * 1024;
/** Chunks asked of the worker before the caller takes them. */
const PREFETCH = 2;
/** A worker that does not stop this long after it was asked to is terminated. */
const STOP_WAIT_MS = 5_000;

export interface SnapshotImage {
  /** Bytes of the database (the SHA-256 trailer is not included). */
  readonly bytes: number;
  /** etcd's storage version of the image (SnapshotResponse.version, as etcd 3.6 sends it). */
  readonly version: string;
  readonly revision: number;
  /** The next chunk of the database, undefined after the last; rejects when the encoding failed. */
  next(): Promise<Buffer | undefined>;
  /** Stops the worker (idempotent). The image cannot be read after. */
  close(): Promise<void>;
}

type FromWorker =
  | { type: 'plan'; bytes: number; version: string; revision: number }
  | { type: 'data'; buf: ArrayBuffer; length: number }
  | { type: 'end' }
  | { type: 'error'; message: string };

export interface ImageWorkerData {
  readonly path: string;
  readonly chunkBytes: number;
}

class WorkerImage implements SnapshotImage {
  private readonly chunks: Buffer[] = [];
  private asked = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly worker: Worker,
    readonly bytes: number,
    readonly version: string,
    readonly revision: number,
  ) {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'data') {
        this.asked--;
        this.chunks.push(Buffer.from(m.buf, 0, m.length));
      } else if (m.type === 'end') {
        this.ended = true;
      } else if (m.type === 'error') {
        this.failure = new Error(`snapshot encoding failed: ${m.message}`);
      }
      this.notify();
    });
    worker.on('error', (err) => {
      this.failure ??= err;
      this.notify();
    });
    worker.on('exit', (code) => {
      if (!this.ended && this.closing === undefined) this.failure ??= new Error(`snapshot encoder exited (code ${code}) before the end of the database`);
      this.notify();
    });
    this.ask();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private ask(): void {
    while (!this.ended && this.failure === undefined && this.asked + this.chunks.length < PREFETCH) {
      this.asked++;
      this.worker.postMessage({ type: 'pull' });
    }
  }

  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const c = this.chunks.shift();
      if (c !== undefined) {
        this.ask();
        return c;
      }
      if (this.ended) return undefined;
      if (this.closing !== undefined) throw new Error('snapshot image closed');
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate(), STOP_WAIT_MS);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage({ type: 'stop' });
      this.notify();
    });
    return this.closing;
  }
}

/**
 * Starts encoding the LMDB database file at `lmdbPath` (a copy nobody writes) as an etcd bbolt
 * database; resolves once its size is known.
 */
export function boltImage(lmdbPath: string): Promise<SnapshotImage> {
  const data: ImageWorkerData = { path: lmdbPath, chunkBytes: CHUNK_BYTES };
  const worker = new Worker(new URL('./imageworker.js', import.meta.url), { workerData: data });
  return new Promise<SnapshotImage>((resolve, reject) => {
    const onMessage = (m: FromWorker): void => {
      off();
      if (m.type === 'plan') {
        resolve(new WorkerImage(worker, m.bytes, m.version, m.revision));
        return;
      }
      void worker.terminate();
      reject(new Error(`snapshot encoding failed: ${m.type === 'error' ? m.message : `unexpected ${m.type} before the plan`}`));
    };
    const onError = (err: Error): void => {
      off();
      void worker.terminate();
      reject(err);
    };
    const onExit = (code: number): void => {
      off();
      reject(new Error(`snapshot encoder exited (code ${code}) before planning`));
    };
    const off = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}
