/**
 * Open-time replay: list the segments, decode them in order, check the chain across them, and
 * settle a decode failure as either a torn tail (repaired) or corruption (thrown). See README.md
 * for the torn-tail rule.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { keepBrokenCopy, readSegment, syncDir, tempSuffix, truncateDurably } from './disk.js';
import type { SegmentBytes } from './disk.js';
import { WalCorruptError, WalFormatError } from './errors.js';
import { ReplayLog } from './log.js';
import { findIntactRecord } from './record.js';
import { parseSegmentFileName, scanSegment, segmentFormatVersion } from './segment.js';
import type { ScanFailure, SegmentHeader, SegmentRef, SegmentScan } from './segment.js';
import type { WalEntry, WalHardState, WalLogger, WalSnapshot } from './types.js';

/** State of the last segment after replay, for appending to it. */
export interface ReplayedTail {
  ref: SegmentRef;
  bytes: number;
  lastCrc: number;
  records: number;
}

export interface Replay {
  segments: SegmentRef[];
  /** The effective log: strictly consecutive, starting anywhere. */
  entries: WalEntry[];
  hardState: WalHardState | undefined;
  snapshot: WalSnapshot | undefined;
  tail: ReplayedTail | undefined;
  /** Where the log ends (the last entry, else the last marker, else the first segment's firstIndex - 1; 0 when empty). */
  lastIndex: number;
  /**
   * Appends must start above this: the last marker's index, or the first segment's firstIndex - 1
   * when earlier segments were released (their entries were committed, never to be replaced).
   */
  base: number;
}

export async function replayDir(dir: string, logger: WalLogger): Promise<Replay> {
  await ensureDir(dir);
  const names = await readdir(dir);
  await removeTempLeftovers(dir, names, logger);
  const segments = listSegments(dir, names);
  checkSequence(segments);
  const first = segments[0];
  if (first === undefined) return { segments, entries: [], hardState: undefined, snapshot: undefined, tail: undefined, lastIndex: 0, base: 0 };
  const log = new ReplayLog(first.firstIndex - 1);
  let lastCrc: number | undefined;
  let tail: ReplayedTail | undefined;
  for (const [i, ref] of segments.entries()) {
    const scan = await replaySegment(ref, { log, lastCrc }, i === segments.length - 1, logger);
    lastCrc = scan.lastCrc;
    tail = { ref, bytes: scan.goodEnd, lastCrc: scan.lastCrc, records: scan.records.length };
  }
  // Entries below the first segment's start were committed before it was released (the caller's
  // contract); min() only matters if that contract was broken (a log truncated below it since).
  const base = Math.max(log.floor, Math.min(first.firstIndex - 1, log.last));
  return { segments, entries: log.entries, hardState: log.hardState, snapshot: log.snapshot, tail, lastIndex: log.last, base };
}

async function ensureDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true });
  if (created !== undefined) await syncDir(dirname(created));
}

async function removeTempLeftovers(dir: string, names: readonly string[], logger: WalLogger): Promise<void> {
  const leftovers = names.filter((n) => n.endsWith('.wal' + tempSuffix));
  for (const name of leftovers) {
    await rm(join(dir, name), { force: true });
    logger.info('wal: removed unfinished segment', { file: join(dir, name) });
  }
  if (leftovers.length > 0) await syncDir(dir);
}

function listSegments(dir: string, names: readonly string[]): SegmentRef[] {
  const refs: SegmentRef[] = [];
  for (const name of names) {
    const parsed = parseSegmentFileName(name);
    if (parsed !== undefined) refs.push({ ...parsed, name, path: join(dir, name) });
  }
  return refs.sort((a, b) => a.seq - b.seq);
}

/** Segment sequence numbers must be consecutive: a missing file in the middle is lost data. */
function checkSequence(segments: readonly SegmentRef[]): void {
  for (let i = 1; i < segments.length; i++) {
    const prev = segments[i - 1];
    const cur = segments[i];
    if (prev !== undefined && cur !== undefined && cur.seq !== prev.seq + 1) {
      throw new WalCorruptError(cur.path, 0, `segment sequence gap: expected segment ${prev.seq + 1} before it, found ${cur.seq}`);
    }
  }
}

/** Where replay stands when it reaches a segment: the log so far and the previous segment's last CRC. */
interface Chain {
  log: ReplayLog;
  /** undefined for the oldest remaining segment: nothing before it to chain to. */
  lastCrc: number | undefined;
}

async function replaySegment(ref: SegmentRef, chain: Chain, isLast: boolean, logger: WalLogger): Promise<SegmentScan> {
  const read = await readSegment(ref.path);
  const scan = scanSegment(read.bytes);
  if ('problem' in scan) {
    if (scan.version !== undefined) throw new WalFormatError(ref.path, scan.version, segmentFormatVersion);
    throw new WalCorruptError(ref.path, 0, scan.problem);
  }
  checkHeader(ref, scan.header, chain);
  for (const { offset, record } of scan.records) {
    const problem = chain.log.apply(record);
    // The record is intact (its CRC verified), so by the torn-tail rule this is corruption.
    if (problem !== undefined) throw new WalCorruptError(ref.path, offset, problem);
  }
  // The active segment is preallocated (a hole after its records): decoding stops at the first
  // all-zero header, and when nothing but zeros follows, that is where the log ends.
  const preallocatedEnd = isLast && scan.failure !== undefined && scan.failure.offset >= read.dataEnd;
  if (scan.failure !== undefined && !preallocatedEnd) await settleFailure(ref, read, scan.failure, isLast, logger);
  return scan;
}

function checkHeader(ref: SegmentRef, header: SegmentHeader, chain: Chain): void {
  if (header.firstIndex !== ref.firstIndex) {
    throw new WalCorruptError(ref.path, 0, `header first index ${header.firstIndex} does not match the file name`);
  }
  if (chain.lastCrc === undefined) return;
  if (header.prevCrc !== chain.lastCrc) {
    throw new WalCorruptError(ref.path, 0, `segment crc chain mismatch (header ${header.prevCrc}, previous segment ends with ${chain.lastCrc})`);
  }
  if (header.firstIndex !== chain.log.last + 1) {
    throw new WalCorruptError(ref.path, 0, `index gap: expected entry ${chain.log.last + 1}, segment starts at ${header.firstIndex}`);
  }
}

/**
 * Repairs the failure if it is a torn tail (last segment, no intact record at or after it), throws
 * WalCorruptError otherwise. An undecodable payload sits in an intact record (its CRC verified), so
 * findIntactRecord finds it at failure.offset: that is always corruption.
 */
async function settleFailure(ref: SegmentRef, read: SegmentBytes, failure: ScanFailure, isLast: boolean, logger: WalLogger): Promise<void> {
  const intactAfter = isLast ? findIntactRecord(read.bytes, failure.offset, read.dataEnd) : undefined;
  if (isLast && intactAfter === undefined) {
    await repairTornTail(ref, read, failure, logger);
    return;
  }
  const context = !isLast
    ? ' (not the last segment)'
    : intactAfter === undefined
      ? ''
      : `; an intact record follows at offset ${intactAfter}`;
  throw new WalCorruptError(ref.path, failure.offset, failure.detail + context);
}

/**
 * The copy keeps the file up to its last nonzero byte (a preallocated hole after it carries
 * nothing). A failure here lies before that byte: one at or past it is the preallocated end.
 */
async function repairTornTail(ref: SegmentRef, read: SegmentBytes, failure: ScanFailure, logger: WalLogger): Promise<void> {
  const copy = await keepBrokenCopy(ref.path, read.bytes.subarray(0, read.dataEnd));
  await truncateDurably(ref.path, failure.offset);
  await syncDir(dirname(ref.path));
  logger.warn('wal: repaired torn tail', {
    file: ref.path,
    offset: failure.offset,
    bytesDropped: read.dataEnd - failure.offset,
    reason: failure.detail,
    copy,
  });
}
