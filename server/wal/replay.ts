/**
 * Open-time replay: list the segments, decode them in order, check the chain across them, and
 * settle a decode failure as either a torn tail (repaired) or corruption (thrown). See README.md
 * for the torn-tail rule.
 */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { keepBrokenCopy, syncDir, tempSuffix, truncateDurably } from './disk.js';
import { WalCorruptError } from './errors.js';
import { findIntactRecord } from './record.js';
import { parseSegmentFileName, scanSegment } from './segment.js';
import type { ScanFailure, SegmentHeader, SegmentRef, SegmentScan } from './segment.js';
import type { WalEntry, WalLogger } from './types.js';

/** State of the last segment after replay, for appending to it. */
export interface ReplayedTail {
  ref: SegmentRef;
  bytes: number;
  lastCrc: number;
  records: number;
}

export interface Replay {
  segments: SegmentRef[];
  entries: WalEntry[];
  tail: ReplayedTail | undefined;
  lastIndex: number;
}

interface Chain {
  lastCrc: number;
  nextIndex: number;
}

export async function replayDir(dir: string, logger: WalLogger): Promise<Replay> {
  await ensureDir(dir);
  const names = await readdir(dir);
  await removeTempLeftovers(dir, names, logger);
  const segments = listSegments(dir, names);
  checkSequence(segments);
  const entries: WalEntry[] = [];
  let chain: Chain | undefined;
  let tail: ReplayedTail | undefined;
  for (const [i, ref] of segments.entries()) {
    const scan = await replaySegment(ref, chain, i === segments.length - 1, logger);
    for (const entry of scan.entries) entries.push(entry);
    chain = { lastCrc: scan.lastCrc, nextIndex: scan.header.firstIndex + scan.entries.length };
    tail = { ref, bytes: scan.goodEnd, lastCrc: scan.lastCrc, records: scan.entries.length };
  }
  return { segments, entries, tail, lastIndex: chain === undefined ? 0 : chain.nextIndex - 1 };
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

async function replaySegment(ref: SegmentRef, chain: Chain | undefined, isLast: boolean, logger: WalLogger): Promise<SegmentScan> {
  const bytes = await readFile(ref.path);
  const scan = scanSegment(bytes);
  if (typeof scan === 'string') throw new WalCorruptError(ref.path, 0, scan);
  checkHeader(ref, scan.header, chain);
  if (scan.failure !== undefined) await settleFailure(ref, bytes, scan.failure, isLast, logger);
  return scan;
}

function checkHeader(ref: SegmentRef, header: SegmentHeader, chain: Chain | undefined): void {
  if (header.firstIndex !== ref.firstIndex) {
    throw new WalCorruptError(ref.path, 0, `header first index ${header.firstIndex} does not match the file name`);
  }
  if (chain === undefined) return; // the oldest remaining segment: nothing before it to chain to
  if (header.prevCrc !== chain.lastCrc) {
    throw new WalCorruptError(ref.path, 0, `segment crc chain mismatch (header ${header.prevCrc}, previous segment ends with ${chain.lastCrc})`);
  }
  if (header.firstIndex !== chain.nextIndex) {
    throw new WalCorruptError(ref.path, 0, `index gap: expected entry ${chain.nextIndex}, segment starts at ${header.firstIndex}`);
  }
}

/**
 * Repairs the failure if it is a torn tail (last segment, no intact record at or after it), throws
 * WalCorruptError otherwise. An index gap or undecodable entry sits in an intact record (its CRC
 * verified), so findIntactRecord finds it at failure.offset: those are always corruption.
 */
async function settleFailure(ref: SegmentRef, bytes: Uint8Array, failure: ScanFailure, isLast: boolean, logger: WalLogger): Promise<void> {
  const intactAfter = isLast ? findIntactRecord(bytes, failure.offset) : undefined;
  if (isLast && intactAfter === undefined) {
    await repairTornTail(ref, bytes, failure, logger);
    return;
  }
  const context = !isLast
    ? ' (not the last segment)'
    : intactAfter === undefined
      ? ''
      : `; an intact record follows at offset ${intactAfter}`;
  throw new WalCorruptError(ref.path, failure.offset, failure.detail + context);
}

async function repairTornTail(ref: SegmentRef, bytes: Uint8Array, failure: ScanFailure, logger: WalLogger): Promise<void> {
  const copy = await keepBrokenCopy(ref.path, bytes);
  await truncateDurably(ref.path, failure.offset);
  await syncDir(dirname(ref.path));
  logger.warn('wal: repaired torn tail', {
    file: ref.path,
    offset: failure.offset,
    bytesDropped: bytes.length - failure.offset,
    reason: failure.detail,
    copy,
  });
}
