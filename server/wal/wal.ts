/**
 * The segmented write-ahead log: open/replay, group-committed appends, rotation, release.
 *
 * Group commit: append() validates and queues synchronously; one flush loop at a time takes every
 * queued append, writes their records as one buffer per segment, fdatasyncs once, then resolves
 * them all. Appends arriving meanwhile wait for the next flush, together.
 */
import { unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import { appendProblem, chunkEnd, entryAt, needsRotation } from './append.js';
import { createSegmentFile, openForAppend, syncDir, writeAll } from './disk.js';
import { WalClosedError, WalCorruptError, WalFatalError, WalUsageError } from './errors.js';
import { RecordDecoder, encodeEntries } from './record.js';
import { replayDir } from './replay.js';
import type { Replay } from './replay.js';
import { encodeSegmentHeader, segmentFileName, segmentHeaderBytes } from './segment.js';
import type { SegmentRef } from './segment.js';
import type { WalEntry, WalLogger, WalOptions, WalStats } from './types.js';

export const segmentBytesDefault = 64 * 1024 * 1024;
/** Smallest accepted segmentBytes (tests use small segments to force rotation). */
export const segmentBytesMin = 1024;

/** Re-decode every encoded chunk before writing it (paired assertion), when CAIRN_VERIFY=1. */
const verifyEncoding = process.env['CAIRN_VERIFY'] === '1';

interface Waiter {
  entries: readonly WalEntry[];
  resolve: () => void;
  reject: (err: Error) => void;
}

interface ActiveSegment {
  ref: SegmentRef;
  fh: FileHandle;
  bytes: number;
  lastCrc: number;
  records: number;
}

interface WalParts {
  dir: string;
  segmentBytes: number;
  beforeWrite: (() => void) | undefined;
  logger: WalLogger;
  segments: SegmentRef[];
  active: ActiveSegment;
  lastIndex: number;
}

export class Wal {
  readonly #dir: string;
  readonly #segmentBytes: number;
  readonly #beforeWrite: (() => void) | undefined;
  readonly #logger: WalLogger;
  readonly #segments: SegmentRef[];
  #active: ActiveSegment;
  #lastIndex: number;
  #queue: Waiter[] = [];
  #flushing: Promise<void> | undefined;
  #releasing: Promise<void> = Promise.resolve();
  #fatal: WalFatalError | undefined;
  #closing: Promise<void> | undefined;
  readonly #stats = { syncs: 0, flushes: 0, rotations: 0 };

  private constructor(parts: WalParts) {
    this.#dir = parts.dir;
    this.#segmentBytes = parts.segmentBytes;
    this.#beforeWrite = parts.beforeWrite;
    this.#logger = parts.logger;
    this.#segments = parts.segments;
    this.#active = parts.active;
    this.#lastIndex = parts.lastIndex;
  }

  /** Opens (creating if missing) the WAL in opts.dir, replays it and repairs a torn tail. */
  static async open(opts: WalOptions): Promise<{ wal: Wal; entries: WalEntry[] }> {
    const segmentBytes = checkSegmentBytes(opts.segmentBytes ?? segmentBytesDefault);
    try {
      const replay = await replayDir(opts.dir, opts.logger);
      const active = await openActive(opts.dir, replay);
      const segments = replay.segments.length > 0 ? replay.segments : [active.ref];
      const wal = new Wal({ dir: opts.dir, segmentBytes, beforeWrite: opts.beforeWrite, logger: opts.logger, segments, active, lastIndex: replay.lastIndex });
      opts.logger.info('wal: opened', { dir: opts.dir, segments: segments.length, entries: replay.entries.length, lastIndex: replay.lastIndex });
      return { wal, entries: replay.entries };
    } catch (err) {
      if (err instanceof WalCorruptError) throw err;
      throw new WalFatalError(`wal: cannot open ${opts.dir}`, { cause: err });
    }
  }

  /**
   * Appends entries; resolves once they are written and fdatasync'ed. entries[0].index must be
   * lastIndex() + 1 and the rest consecutive. Rejects with WalUsageError on a contract breach,
   * WalFatalError after any storage fault (then every later append is refused too).
   */
  append(entries: readonly WalEntry[]): Promise<void> {
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const problem = appendProblem(entries, this.#lastIndex);
    if (problem !== undefined) return Promise.reject(new WalUsageError(`wal: cannot append: ${problem}`));
    if (entries.length === 0) return Promise.resolve();
    this.#lastIndex = entryAt(entries, entries.length - 1).index;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ entries, resolve, reject });
      this.#startFlushing();
    });
  }

  /** Index of the last entry accepted by append() (durable or still being flushed); 0 when empty. */
  lastIndex(): number {
    return this.#lastIndex;
  }

  /** Deletes whole segments all of whose entries are < index; never the active segment. */
  releaseBefore(index: number): Promise<void> {
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const run = this.#releasing.then(() => this.#release(index));
    this.#releasing = run.catch(() => undefined);
    return run;
  }

  /** Waits for queued appends and releases to finish, then closes the active segment. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  stats(): WalStats {
    return { ...this.#stats, segments: this.#segments.length };
  }

  #refusal(): Error | undefined {
    if (this.#fatal !== undefined) return this.#fatal;
    if (this.#closing !== undefined) return new WalClosedError();
    return undefined;
  }

  #startFlushing(): void {
    if (this.#flushing === undefined) this.#flushing = this.#flushLoop();
  }

  async #flushLoop(): Promise<void> {
    // Yield once so appends made in the same tick share the first flush. This await also
    // guarantees #flushing is assigned before the loop can clear it below.
    await Promise.resolve();
    for (;;) {
      const batch = this.#queue.splice(0);
      if (batch.length === 0) {
        this.#flushing = undefined; // synchronously after the empty check: no append can slip by
        return;
      }
      await this.#flushBatch(batch);
    }
  }

  async #flushBatch(batch: readonly Waiter[]): Promise<void> {
    if (this.#fatal !== undefined) {
      rejectAll(batch, this.#fatal);
      return;
    }
    try {
      await this.#writeEntries(batch.flatMap((w) => w.entries));
      this.#stats.flushes++;
      for (const w of batch) w.resolve();
    } catch (err) {
      const fatal = this.#fail('write', err);
      rejectAll(batch, fatal);
      rejectAll(this.#queue.splice(0), fatal);
    }
  }

  async #writeEntries(entries: readonly WalEntry[]): Promise<void> {
    for (let start = 0; start < entries.length; ) {
      if (needsRotation(this.#active.bytes, this.#active.records, this.#segmentBytes)) {
        await this.#rotate(entryAt(entries, start).index);
      }
      const end = chunkEnd(entries, start, this.#active.bytes, this.#segmentBytes);
      await this.#writeChunk(entries.slice(start, end));
      start = end;
    }
  }

  async #writeChunk(chunk: readonly WalEntry[]): Promise<void> {
    const active = this.#active;
    const { bytes, lastCrc } = encodeEntries(chunk, active.lastCrc);
    if (verifyEncoding) assertDecodesBack(bytes, chunk.length, active.lastCrc, lastCrc);
    this.#beforeWrite?.();
    await writeAll(active.fh, bytes, active.bytes); // O_DSYNC: durable when the write returns
    this.#stats.syncs++;
    active.bytes += bytes.length;
    active.lastCrc = lastCrc;
    active.records += chunk.length;
  }

  async #rotate(firstIndex: number): Promise<void> {
    const old = this.#active;
    const ref = segmentRef(this.#dir, old.ref.seq + 1, firstIndex);
    const fh = await createSegmentFile(this.#dir, ref.name, encodeSegmentHeader({ firstIndex, prevCrc: old.lastCrc }));
    this.#segments.push(ref);
    this.#active = { ref, fh, bytes: segmentHeaderBytes, lastCrc: old.lastCrc, records: 0 };
    this.#stats.rotations++;
    await old.fh.close();
    this.#logger.info('wal: rotated segment', { file: ref.path, firstIndex, previousBytes: old.bytes });
  }

  async #release(index: number): Promise<void> {
    const count = releasableCount(this.#segments, index);
    if (count === 0) return;
    const victims = this.#segments.splice(0, count);
    try {
      for (const v of victims) await unlink(v.path); // oldest first: a crash leaves a contiguous suffix
      await syncDir(this.#dir);
    } catch (err) {
      throw this.#fail('release', err);
    }
    this.#logger.info('wal: released segments', { files: victims.map((v) => v.name), before: index });
  }

  #fail(op: string, err: unknown): WalFatalError {
    this.#fatal ??= new WalFatalError(`wal: ${op} failed in ${this.#dir}; the process must exit`, { cause: err });
    this.#logger.error('wal: storage fault', { op, dir: this.#dir, error: String(err) });
    return this.#fatal;
  }

  async #shutdown(): Promise<void> {
    await this.#flushing;
    await this.#releasing;
    await this.#active.fh.close();
  }
}

function checkSegmentBytes(n: number): number {
  if (!Number.isSafeInteger(n) || n < segmentBytesMin) {
    throw new WalUsageError(`wal: segmentBytes must be an integer >= ${segmentBytesMin}, got ${n}`);
  }
  return n;
}

function segmentRef(dir: string, seq: number, firstIndex: number): SegmentRef {
  const name = segmentFileName(seq, firstIndex);
  return { seq, firstIndex, name, path: join(dir, name) };
}

/** Opens the last replayed segment for appending, or creates the first segment of an empty WAL. */
async function openActive(dir: string, replay: Replay): Promise<ActiveSegment> {
  const tail = replay.tail;
  if (tail === undefined) {
    const ref = segmentRef(dir, 1, 1);
    const fh = await createSegmentFile(dir, ref.name, encodeSegmentHeader({ firstIndex: 1, prevCrc: 0 }));
    return { ref, fh, bytes: segmentHeaderBytes, lastCrc: 0, records: 0 };
  }
  const fh = await openForAppend(tail.ref.path);
  return { ref: tail.ref, fh, bytes: tail.bytes, lastCrc: tail.lastCrc, records: tail.records };
}

/** How many leading segments hold only entries < index (the next segment starts at or before index). */
function releasableCount(segments: readonly SegmentRef[], index: number): number {
  let count = 0;
  while (count < segments.length - 1 && (segments[count + 1]?.firstIndex ?? Infinity) <= index) count++;
  return count;
}

function rejectAll(waiters: readonly Waiter[], err: Error): void {
  for (const w of waiters) w.reject(err);
}

function assertDecodesBack(bytes: Uint8Array, records: number, seedCrc: number, lastCrc: number): void {
  const decoder = new RecordDecoder(seedCrc, 0);
  const decoded = decoder.push(bytes);
  const failure = decoder.finish();
  if (failure !== undefined || decoded.length !== records || decoder.lastCrc !== lastCrc) {
    throw new Error(`wal: encoded chunk does not decode back (${failure?.detail ?? `${decoded.length} of ${records} records`})`);
  }
}
