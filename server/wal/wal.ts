/**
 * The segmented write-ahead log: open/replay, group-committed appends, rotation, release.
 *
 * Group commit: append() and appendSnapshot() validate and queue synchronously; one flush loop at a
 * time takes every queued call, writes their records (in call order) as one buffer per segment,
 * each durable when its write returns (O_DSYNC), then resolves them all. Calls arriving meanwhile
 * wait for the next flush, together.
 */
import { Buffer } from 'node:buffer';
import { unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import { appendProblem, callRecords, chunkEnd, entryRecords, needsRotation, snapshotProblem } from './append.js';
import type { LogBounds } from './append.js';
import { createSegmentFile, openForAppend, preallocate, resizeDurably, syncDir, writeAll, writeAllSync } from './disk.js';
import { WalClosedError, WalCorruptError, WalFatalError, WalUsageError } from './errors.js';
import { lastIndexAfter } from './log.js';
import { decodePayload, sameRecord } from './payload.js';
import type { WalRecord } from './payload.js';
import { RecordDecoder, encodeRecords } from './record.js';
import { replayDir } from './replay.js';
import type { Replay } from './replay.js';
import { encodeSegmentHeader, segmentFileName, segmentHeaderBytes } from './segment.js';
import type { SegmentRef } from './segment.js';
import type { WalEntry, WalHardState, WalLogger, WalOptions, WalSnapshot, WalStats } from './types.js';

export const segmentBytesDefault = 64 * 1024 * 1024;
/** Smallest accepted segmentBytes (tests use small segments to force rotation). */
export const segmentBytesMin = 1024;
/**
 * Chunks up to this size are written on the event-loop thread (writeSync): a small O_DSYNC write
 * takes ~0.13 ms here, and the thread-pool round trip of an async write adds ~0.06 ms to it, which
 * is most of what one request in flight waits for. Only while writes stay small (a moving average
 * of chunk sizes, so a lone small write among large ones does not count): with many requests in
 * flight writes go through the thread pool and the loop keeps serving while the disk works.
 */
export const syncWriteBytesMax = 4096;

/** Re-decode every encoded chunk before writing it (paired assertion), when CAIRN_VERIFY=1. */
const verifyEncoding = process.env['CAIRN_VERIFY'] === '1';

/** What Wal.open hands back: the WAL, ready for appends, and what replay found. */
export interface WalOpened {
  wal: Wal;
  /** The effective log after truncations and markers: strictly consecutive, starting at any index. */
  entries: WalEntry[];
  /** The last hard-state record (carried into every new segment, so release never loses it). */
  hardState: WalHardState | undefined;
  /** The last snapshot marker still on disk (undefined if never written or released with its segment). */
  snapshot: WalSnapshot | undefined;
}

interface Waiter {
  records: readonly WalRecord[];
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

/** What the records written so far (durable or being written) amount to; a new segment starts from it. */
interface Written {
  /** The log's last index: the header firstIndex of the next segment is this + 1. */
  last: number;
  /** The last hard state written: the first record of the next segment. */
  hardState: WalHardState | undefined;
}

interface WalParts {
  dir: string;
  segmentBytes: number;
  beforeWrite: (() => void) | undefined;
  observeWrite: ((write: Promise<void>, bytes: number) => Promise<void>) | undefined;
  logger: WalLogger;
  segments: SegmentRef[];
  active: ActiveSegment;
  bounds: LogBounds;
  written: Written;
}

export class Wal {
  readonly #dir: string;
  readonly #segmentBytes: number;
  readonly #beforeWrite: (() => void) | undefined;
  readonly #observeWrite: ((write: Promise<void>, bytes: number) => Promise<void>) | undefined;
  readonly #logger: WalLogger;
  readonly #segments: SegmentRef[];
  #active: ActiveSegment;
  /** The accepted log (including calls not yet durable): what the next call is validated against. */
  readonly #bounds: LogBounds;
  #written: Written;
  #queue: Waiter[] = [];
  /** Moving average of written chunk sizes: small means few requests in flight. */
  #chunkBytesAvg = 0;
  /** The last write ran on the event-loop thread (see #flushLoop). */
  #wroteOnLoop = false;
  #flushing: Promise<void> | undefined;
  #releasing: Promise<void> = Promise.resolve();
  #fatal: WalFatalError | undefined;
  #closing: Promise<void> | undefined;
  readonly #stats = { syncs: 0, flushes: 0, rotations: 0 };

  private constructor(parts: WalParts) {
    this.#dir = parts.dir;
    this.#segmentBytes = parts.segmentBytes;
    this.#beforeWrite = parts.beforeWrite;
    this.#observeWrite = parts.observeWrite;
    this.#logger = parts.logger;
    this.#segments = parts.segments;
    this.#active = parts.active;
    this.#bounds = parts.bounds;
    this.#written = parts.written;
  }

  /**
   * Opens (creating if missing) the WAL in opts.dir, replays it and repairs a torn tail. Throws
   * WalCorruptError (WalFormatError for a segment of another format version) or WalFatalError.
   */
  static async open(opts: WalOptions): Promise<WalOpened> {
    const segmentBytes = checkSegmentBytes(opts.segmentBytes ?? segmentBytesDefault);
    try {
      const replay = await replayDir(opts.dir, opts.logger);
      const active = await openActive(opts.dir, replay, segmentBytes);
      const segments = replay.segments.length > 0 ? replay.segments : [active.ref];
      const wal = new Wal({
        dir: opts.dir,
        segmentBytes,
        beforeWrite: opts.beforeWrite,
        observeWrite: opts.observeWrite,
        logger: opts.logger,
        segments,
        active,
        bounds: { lastIndex: replay.lastIndex, base: replay.base },
        written: { last: replay.lastIndex, hardState: replay.hardState },
      });
      opts.logger.info('wal: opened', {
        dir: opts.dir,
        segments: segments.length,
        entries: replay.entries.length,
        firstIndex: replay.entries[0]?.index,
        lastIndex: replay.lastIndex,
        snapshotIndex: replay.snapshot?.index,
      });
      return { wal, entries: replay.entries, hardState: replay.hardState, snapshot: replay.snapshot };
    } catch (err) {
      if (err instanceof WalCorruptError) throw err;
      throw new WalFatalError(`wal: cannot open ${opts.dir}`, { cause: err });
    }
  }

  /**
   * Appends entries, then the hard state if given; resolves once all of them are durable. entries
   * may be empty only if hardState is given. entries[0].index must lie in (base, lastIndex() + 1],
   * the rest consecutive: an index <= lastIndex() replaces that entry and every one after it. base
   * is the last snapshot marker's index (or the first live segment's firstIndex - 1 once earlier
   * segments were released; else 0). Rejects with WalUsageError on a contract breach (nothing is
   * written), WalFatalError after any storage fault (then every later call is refused too). Do not
   * mutate the entries' data until the promise settles.
   */
  append(entries: readonly WalEntry[], hardState?: WalHardState): Promise<void> {
    const problem = appendProblem(entries, hardState, this.#bounds);
    if (problem !== undefined) return this.#refuse(`cannot append: ${problem}`);
    const last = entries.at(-1);
    return this.#enqueue(callRecords(entryRecords(entries), hardState), () => {
      if (last !== undefined) this.#bounds.lastIndex = last.index;
    });
  }

  /**
   * Writes a snapshot marker, then the hard state if given; resolves once durable. Afterwards the
   * log is empty and ends at snap.index: lastIndex() === snap.index, the base is snap.index, and the
   * next append must start at snap.index + 1. snap.index may not be below the current base.
   */
  appendSnapshot(snap: WalSnapshot, hardState?: WalHardState): Promise<void> {
    const problem = snapshotProblem(snap, hardState, this.#bounds);
    if (problem !== undefined) return this.#refuse(`cannot append snapshot marker: ${problem}`);
    const marker: WalRecord = { kind: 'snapshot', snapshot: { index: snap.index, term: snap.term } };
    return this.#enqueue(callRecords([marker], hardState), () => {
      this.#bounds.lastIndex = snap.index;
      this.#bounds.base = snap.index;
    });
  }

  /**
   * Whether writes now run on the event-loop thread (small writes, see syncWriteBytesMax): the next
   * flush will then hold the thread for the length of an O_DSYNC write.
   */
  get writesOnLoop(): boolean {
    return this.#chunkBytesAvg <= syncWriteBytesMax;
  }

  /** Where the accepted log ends (calls durable or still being flushed): its last entry, else the last marker's index, else 0. */
  lastIndex(): number {
    return this.#bounds.lastIndex;
  }

  /**
   * Deletes whole segments, oldest first, whose successor starts at or before index; never the
   * active segment. The caller promises that every entry below index is committed and durably
   * applied elsewhere, so it is never replaced: appends must start at index or above afterwards.
   */
  releaseBefore(index: number): Promise<void> {
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const run = this.#releasing.then(() => this.#release(index));
    this.#releasing = run.catch(() => undefined);
    return run;
  }

  /** Waits for queued appends and releases to finish, then cuts the active segment back to its records and closes it. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  stats(): WalStats {
    return { ...this.#stats, segments: this.#segments.length };
  }

  #refuse(problem: string): Promise<void> {
    return Promise.reject(this.#refusal() ?? new WalUsageError(`wal: ${problem}`));
  }

  /** Queues one call's records; `accept` updates the accepted bounds (synchronously, in call order). */
  #enqueue(records: readonly WalRecord[], accept: () => void): Promise<void> {
    const refusal = this.#refusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    accept();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ records, resolve, reject });
      this.#startFlushing();
    });
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
      if (this.#wroteOnLoop && this.#queue.length > 0) {
        // Nothing could arrive while a write on the loop thread ran: let the rest of this turn's
        // appends join the next flush, as they would have during a thread-pool write.
        this.#wroteOnLoop = false;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const batch = this.#queue.splice(0);
      if (batch.length === 0) {
        this.#flushing = undefined; // synchronously after the empty check: no append can slip by
        this.#wroteOnLoop = false; // the next loop's first flush starts after one microtask, as always
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
      await this.#writeRecords(batch.flatMap((w) => w.records));
      this.#stats.flushes++;
      for (const w of batch) w.resolve();
    } catch (err) {
      const fatal = this.#fail('write', err);
      rejectAll(batch, fatal);
      rejectAll(this.#queue.splice(0), fatal);
    }
  }

  async #writeRecords(records: readonly WalRecord[]): Promise<void> {
    for (let start = 0; start < records.length; ) {
      if (needsRotation(this.#active.bytes, this.#active.records, this.#segmentBytes)) await this.#rotate();
      const end = chunkEnd(records, start, this.#active.bytes, this.#segmentBytes);
      await this.#writeChunk(records.slice(start, end));
      start = end;
    }
  }

  async #writeChunk(chunk: readonly WalRecord[]): Promise<void> {
    const active = this.#active;
    const { bytes, lastCrc } = encodeRecords(chunk, active.lastCrc);
    if (verifyEncoding) assertDecodesBack(bytes, chunk, active.lastCrc, lastCrc);
    this.#beforeWrite?.();
    // O_DSYNC: durable when the write returns.
    this.#chunkBytesAvg += (bytes.length - this.#chunkBytesAvg) / 4;
    if (bytes.length <= syncWriteBytesMax && this.#chunkBytesAvg <= syncWriteBytesMax) {
      await this.#writeOnLoop(active.fh, bytes, active.bytes);
    } else {
      const write = writeAll(active.fh, bytes, active.bytes);
      await (this.#observeWrite === undefined ? write : this.#observeWrite(write, bytes.length));
    }
    this.#stats.syncs++;
    active.bytes += bytes.length;
    active.lastCrc = lastCrc;
    active.records += chunk.length;
    this.#written = chunk.reduce(advanceWritten, this.#written);
  }

  /** A small write on the event-loop thread; observeWrite still sees (and times) it as a promise. */
  async #writeOnLoop(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
    let settle: (err?: Error) => void = () => undefined;
    const write = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    const observed = this.#observeWrite === undefined ? write : this.#observeWrite(write, bytes.length);
    this.#wroteOnLoop = true;
    try {
      writeAllSync(fh, bytes, position);
      settle();
    } catch (err) {
      settle(err instanceof Error ? err : new Error(String(err)));
    }
    await observed;
  }

  /**
   * Starts the next segment: header firstIndex = the written log's last index + 1, and (created
   * with it, atomically) a copy of the last hard state as its first record, so that releasing the
   * older segments never loses the hard state. The old segment is cut back to its records first, so
   * only the last segment ever has a preallocated tail (a crash in between leaves it the last one).
   */
  async #rotate(): Promise<void> {
    const old = this.#active;
    await resizeDurably(old.fh, old.bytes);
    const firstIndex = this.#written.last + 1;
    const ref = segmentRef(this.#dir, old.ref.seq + 1, firstIndex);
    const start = segmentStart(firstIndex, old.lastCrc, this.#written.hardState);
    const fh = await createSegmentFile(this.#dir, ref.name, start.bytes, this.#segmentBytes);
    this.#segments.push(ref);
    this.#active = { ref, fh, bytes: start.bytes.length, lastCrc: start.lastCrc, records: start.records };
    this.#stats.rotations++;
    await old.fh.close();
    this.#logger.info('wal: rotated segment', { file: ref.path, firstIndex, previousBytes: old.bytes });
  }

  async #release(index: number): Promise<void> {
    const count = releasableCount(this.#segments, index);
    if (count === 0) return;
    const victims = this.#segments.splice(0, count);
    const first = this.#segments[0];
    if (first !== undefined) {
      // As replay will see it: entries below the first live segment's start are committed.
      this.#bounds.base = Math.max(this.#bounds.base, Math.min(first.firstIndex - 1, this.#bounds.lastIndex));
    }
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

  /** After the last write, a clean close cuts the active segment back to its records (not after a fault: the disk is not touched again). */
  async #shutdown(): Promise<void> {
    await this.#flushing;
    await this.#releasing;
    try {
      if (this.#fatal === undefined) await resizeDurably(this.#active.fh, this.#active.bytes);
    } catch (err) {
      throw this.#fail('close', err);
    } finally {
      await this.#active.fh.close();
    }
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

function advanceWritten(w: Written, record: WalRecord): Written {
  return { last: lastIndexAfter(w.last, record), hardState: record.kind === 'hardState' ? record.hardState : w.hardState };
}

/** The initial bytes of a new segment: its header, then the carried hard state (if any). */
function segmentStart(firstIndex: number, prevCrc: number, hardState: WalHardState | undefined): { bytes: Uint8Array; lastCrc: number; records: number } {
  const header = encodeSegmentHeader({ firstIndex, prevCrc });
  if (hardState === undefined) return { bytes: header, lastCrc: prevCrc, records: 0 };
  const carried: WalRecord[] = [{ kind: 'hardState', hardState }];
  const { bytes, lastCrc } = encodeRecords(carried, prevCrc);
  if (verifyEncoding) assertDecodesBack(bytes, carried, prevCrc, lastCrc);
  return { bytes: Buffer.concat([header, bytes]), lastCrc, records: 1 };
}

/**
 * Opens the last replayed segment for appending (preallocated to segmentBytes if it is shorter: a
 * segment of an older Cairn, or one cut back by a torn-tail repair or a rotation), or creates the
 * first segment of an empty WAL.
 */
async function openActive(dir: string, replay: Replay, segmentBytes: number): Promise<ActiveSegment> {
  const tail = replay.tail;
  if (tail === undefined) {
    const ref = segmentRef(dir, 1, 1);
    const fh = await createSegmentFile(dir, ref.name, encodeSegmentHeader({ firstIndex: 1, prevCrc: 0 }), segmentBytes);
    return { ref, fh, bytes: segmentHeaderBytes, lastCrc: 0, records: 0 };
  }
  const fh = await openForAppend(tail.ref.path);
  await preallocate(fh, segmentBytes);
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

/** Paired assertion (CAIRN_VERIFY=1): the encoded bytes decode back to exactly the records given. */
function assertDecodesBack(bytes: Uint8Array, records: readonly WalRecord[], seedCrc: number, lastCrc: number): void {
  const decoder = new RecordDecoder(seedCrc, 0);
  const decoded = decoder.push(bytes);
  const failure = decoder.finish();
  if (failure !== undefined || decoded.length !== records.length || decoder.lastCrc !== lastCrc) {
    throw new Error(`wal: encoded chunk does not decode back (${failure?.detail ?? `${decoded.length} of ${records.length} records`})`);
  }
  for (const [i, d] of decoded.entries()) {
    const back = decodePayload(d.type, d.payload);
    const want = records[i];
    if (typeof back === 'string' || want === undefined || !sameRecord(back, want)) {
      throw new Error(`wal: record ${i} of an encoded chunk decodes to something else (${typeof back === 'string' ? back : back.kind})`);
    }
  }
}
