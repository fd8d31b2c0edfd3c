import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { appendFile, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import fc from 'fast-check';
import { Wal, WalClosedError, WalCorruptError, WalFatalError, WalFormatError, WalUsageError, entryDataBytesMax, segmentBytesDefault } from '../../server/wal/index.js';
import type { WalEntry, WalHardState, WalLogger } from '../../server/wal/index.js';
import { crc32c } from '../../server/base/crc32c.js';
import { decodePayload } from '../../server/wal/payload.js';
import type { WalRecord } from '../../server/wal/payload.js';
import { RecordDecoder, encodeRecords, encodedRecordBytes, recordHeaderBytes } from '../../server/wal/record.js';
import type { DecodedRecord, DecodeFailure } from '../../server/wal/record.js';
import { encodeSegmentHeader, encodeSegmentHeaderVersion, parseSegmentFileName, segmentFileName, segmentHeaderBytes } from '../../server/wal/segment.js';
import { tempDir } from '../harness/procs.js';

// ---------- helpers ----------

interface LogLine {
  level: 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown> | undefined;
}

function captureLogger(): WalLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push({ level, msg, fields });
  };
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/** A fresh directory, removed when the test process exits (the harness's tempDir). */
function freshDir(): string {
  return tempDir('cairn-wal-');
}

/** A fresh WAL dir holding entries 1..n, closed; with the path of its (single) segment file. */
async function closedWal(n: number): Promise<{ dir: string; path: string }> {
  const dir = freshDir();
  const first = await openWal(dir);
  await first.wal.append(entries(1, n));
  await first.wal.close();
  const [name] = await walFiles(dir);
  return { dir, path: join(dir, name ?? '') };
}

/** Entry with index i and `size` bytes of data derived from i (so mix-ups are visible); every 7th is a confChange. */
function entry(i: number, size = 40): WalEntry {
  const data = Buffer.alloc(size);
  for (let k = 0; k < size; k++) data[k] = (i * 31 + k) & 0xff;
  return { index: i, term: 1 + Math.floor(i / 10), type: i % 7 === 0 ? 'confChange' : 'normal', data };
}

/** Encodes entries as chained entry records (for hand-built segments). */
function encodeEntries(list: readonly WalEntry[], prevCrc: number): { bytes: Buffer; lastCrc: number } {
  return encodeRecords(list.map((e) => ({ kind: 'entry', entry: e })), prevCrc);
}

const hardStateRecordBytes = recordHeaderBytes + 24;
const snapshotRecordBytes = recordHeaderBytes + 16;

function entries(from: number, count: number, size = 40): WalEntry[] {
  return Array.from({ length: count }, (_, k) => entry(from + k, size));
}

function assertEntries(actual: readonly WalEntry[], from: number, count: number, size = 40): void {
  assert.equal(actual.length, count, `expected ${count} entries from ${from}, got ${actual.length}`);
  for (const [k, e] of actual.entries()) {
    const want = entry(from + k, size);
    assert.equal(e.index, want.index);
    assert.equal(e.term, want.term);
    assert.equal(e.type, want.type, `type of entry ${want.index}`);
    assert.deepEqual(Buffer.from(e.data), Buffer.from(want.data), `data of entry ${want.index}`);
  }
}

async function walFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
}

/** Size of one encoded entry record with `size` bytes of data. */
function recordBytes(size = 40): number {
  return recordHeaderBytes + 17 + size;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x5a;
  await writeFile(path, bytes);
}

async function openWal(dir: string, segmentBytes?: number) {
  const logger = captureLogger();
  const opened = await Wal.open(segmentBytes === undefined ? { dir, logger } : { dir, logger, segmentBytes });
  return { ...opened, logger };
}

async function rejectsWith(p: Promise<unknown>, cls: new (...args: never[]) => Error, pattern?: RegExp): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected ${cls.name}, but it resolved`);
}

// ---------- crc ----------

test('crc32c matches the standard check value and chains', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
      const joined = new Uint8Array([...a, ...b]);
      return crc32c(b, crc32c(a)) === crc32c(joined);
    }),
  );
});

test('segment file names round trip and sort by sequence', () => {
  const name = segmentFileName(0x1f, 123456789);
  assert.equal(name, '000000000000001f-00000000075bcd15.wal');
  assert.deepEqual(parseSegmentFileName(name), { seq: 0x1f, firstIndex: 123456789 });
  assert.equal(parseSegmentFileName(name + '.broken'), undefined);
  assert.equal(parseSegmentFileName('1-1.wal'), undefined);
});

// ---------- round trip ----------

test('empty dir: open creates it, no entries, lastIndex 0', async () => {
  const dir = join(freshDir(), 'nested', 'wal');
  const { wal, entries: replayed, hardState, snapshot } = await openWal(dir);
  assert.equal(wal.lastIndex(), 0);
  assert.deepEqual(replayed, []);
  assert.equal(hardState, undefined);
  assert.equal(snapshot, undefined);
  assert.deepEqual(await walFiles(dir), [segmentFileName(1, 1)]);
  await wal.close();
});

test('round trip: append, close, reopen, append more, reopen', async () => {
  const dir = freshDir();
  const first = await openWal(dir);
  await first.wal.append(entries(1, 5));
  await first.wal.append(entries(6, 1, 0)); // empty data
  await first.wal.append(entries(7, 3, 3000));
  assert.equal(first.wal.lastIndex(), 9);
  await first.wal.close();

  const second = await openWal(dir);
  assert.equal(second.wal.lastIndex(), 9);
  assertEntries(second.entries.slice(0, 5), 1, 5);
  assertEntries(second.entries.slice(5, 6), 6, 1, 0);
  assertEntries(second.entries.slice(6), 7, 3, 3000);
  await second.wal.append(entries(10, 4));
  await second.wal.close();

  const third = await openWal(dir);
  assert.equal(third.wal.lastIndex(), 13);
  assert.equal(third.entries.length, 13);
  assertEntries(third.entries.slice(9), 10, 4);
  assert.equal(third.logger.lines.filter((l) => l.level !== 'info').length, 0);
  await third.wal.close();
});

test('append enforces index continuity and entry and hard-state limits', async () => {
  const dir = freshDir();
  const { wal } = await openWal(dir);
  const hs: WalHardState = { term: 1, vote: 0n, commit: 0 };
  await rejectsWith(wal.append([entry(2)]), WalUsageError, /index 2, expected at most 1/);
  await rejectsWith(wal.append([entry(1), entry(3)]), WalUsageError, /entry 1 has index 3, expected 2/);
  await rejectsWith(wal.append([{ index: 1, term: -1, type: 'normal', data: new Uint8Array(1) }]), WalUsageError, /invalid term/);
  const badType = { index: 1, term: 1, type: 'bogus', data: new Uint8Array(1) } as unknown as WalEntry;
  await rejectsWith(wal.append([badType]), WalUsageError, /invalid type bogus/);
  await rejectsWith(wal.append([{ index: 1, term: 1, type: 'normal', data: new Uint8Array(entryDataBytesMax + 1) }]), WalUsageError, /more than/);
  await rejectsWith(wal.append([]), WalUsageError, /nothing to append/);
  await rejectsWith(wal.append([], { ...hs, vote: 1n << 64n }), WalUsageError, /invalid vote/);
  await rejectsWith(wal.append([], { ...hs, vote: -1n }), WalUsageError, /invalid vote/);
  await rejectsWith(wal.append([], { ...hs, vote: 1 } as unknown as WalHardState), WalUsageError, /invalid vote/);
  await rejectsWith(wal.append([entry(1)], { ...hs, commit: 1.5 }), WalUsageError, /invalid commit/);
  await rejectsWith(wal.append([entry(1)], { ...hs, term: Number.MAX_SAFE_INTEGER + 1 }), WalUsageError, /invalid term/);
  await rejectsWith(wal.appendSnapshot({ index: -1, term: 1 }), WalUsageError, /invalid index/);
  assert.equal(wal.lastIndex(), 0, 'rejected appends change nothing');
  assert.equal(wal.stats().flushes, 0, 'and write nothing');
  await wal.append([entry(1)]);
  await rejectsWith(wal.append([entry(3)]), WalUsageError, /expected at most 2/);
  assert.equal(wal.lastIndex(), 1);
  await wal.close();
  const reopened = await openWal(dir);
  assertEntries(reopened.entries, 1, 1);
  assert.equal(reopened.hardState, undefined);
  await reopened.wal.close();
});

test('large entries (2 MiB) round trip', async () => {
  const dir = freshDir();
  const size = 2 * 1024 * 1024;
  const { wal } = await openWal(dir);
  await wal.append(entries(1, 3, size));
  await wal.close();
  const reopened = await openWal(dir);
  assertEntries(reopened.entries, 1, 3, size);
  await reopened.wal.close();
});

// ---------- group commit ----------

test('group commit: 200 concurrent appends share few fdatasyncs', async () => {
  const dir = freshDir();
  const { wal } = await openWal(dir);
  const done: number[] = [];
  const pending = Array.from({ length: 200 }, (_, k) => wal.append([entry(k + 1)]).then(() => done.push(k + 1)));
  assert.equal(wal.lastIndex(), 200, 'lastIndex counts accepted appends');
  await Promise.all(pending);
  const { syncs, flushes } = wal.stats();
  assert.ok(syncs <= 5, `expected a handful of fdatasyncs, got ${syncs}`);
  assert.ok(flushes <= syncs);
  assert.deepEqual(done, Array.from({ length: 200 }, (_, k) => k + 1), 'resolved in append order');
  await wal.close();
  const reopened = await openWal(dir);
  assertEntries(reopened.entries, 1, 200);
  await reopened.wal.close();
});

test('group commit: appends arriving during a flush go together in the next one', async () => {
  const dir = freshDir();
  const { wal } = await openWal(dir);
  const pending: Promise<void>[] = [];
  for (let i = 1; i <= 200; i++) {
    pending.push(wal.append([entry(i)]));
    await Promise.resolve(); // let the flush loop start after the first append
  }
  await Promise.all(pending);
  const { syncs, flushes } = wal.stats();
  assert.ok(flushes >= 2, `the first flush started alone, so at least 2 flushes (got ${flushes})`);
  assert.ok(syncs <= 10, `expected far fewer than 200 fdatasyncs, got ${syncs}`);
  await wal.close();
  const reopened = await openWal(dir);
  assertEntries(reopened.entries, 1, 200);
  await reopened.wal.close();
});

test('close waits for in-flight appends; append after close is refused', async () => {
  const dir = freshDir();
  const { wal } = await openWal(dir);
  const pending = [wal.append(entries(1, 10)), wal.append(entries(11, 10))];
  const closed = wal.close();
  await rejectsWith(wal.append([entry(21)]), WalClosedError);
  await Promise.all(pending);
  await closed;
  await rejectsWith(wal.releaseBefore(5), WalClosedError);
  const reopened = await openWal(dir);
  assertEntries(reopened.entries, 1, 20);
  await reopened.wal.close();
});

// ---------- rotation and release ----------

async function buildRotatedWal(dir: string): Promise<void> {
  const { wal } = await openWal(dir, 1024);
  await wal.append(entries(1, 100)); // one flush spanning several segments
  for (let i = 101; i <= 300; i += 10) await wal.append(entries(i, 10));
  assert.equal(wal.stats().segments, (await walFiles(dir)).length);
  assert.equal(wal.stats().rotations, (await walFiles(dir)).length - 1);
  await wal.close();
}

test('rotation: several segments, bounded size, names and replay', async () => {
  const dir = freshDir();
  await buildRotatedWal(dir);
  const files = await walFiles(dir);
  assert.ok(files.length >= 10, `expected many segments, got ${files.length}`);
  let expectedFirst = 1;
  for (const [k, name] of files.entries()) {
    const parsed = parseSegmentFileName(name);
    assert.ok(parsed !== undefined);
    assert.equal(parsed.seq, k + 1);
    assert.equal(parsed.firstIndex, expectedFirst, `${name} starts where the previous one ended`);
    const size = (await stat(join(dir, name))).size;
    assert.ok(size <= 1024 + recordBytes(), `${name} is ${size} bytes`);
    expectedFirst += (size - segmentHeaderBytes) / recordBytes();
  }
  assert.equal(expectedFirst, 301);
  const { entries: replayed, wal } = await openWal(dir, 1024);
  assertEntries(replayed, 1, 300);
  await wal.append(entries(301, 50));
  await wal.close();
  const again = await openWal(dir, 1024);
  assertEntries(again.entries, 1, 350);
  await again.wal.close();
});

test('releaseBefore deletes only segments wholly below the index, never the active one', async () => {
  const dir = freshDir();
  await buildRotatedWal(dir);
  const files = await walFiles(dir);
  const firstOf = (k: number): number => parseSegmentFileName(files[k] ?? '')?.firstIndex ?? NaN;
  const { wal } = await openWal(dir, 1024);

  await wal.releaseBefore(firstOf(1) - 1); // segment 0 still holds firstOf(1) - 1
  assert.deepEqual(await walFiles(dir), files);
  await wal.releaseBefore(firstOf(1)); // every entry of segment 0 is below firstOf(1)
  assert.deepEqual(await walFiles(dir), files.slice(1));
  await wal.releaseBefore(firstOf(3) + 1);
  assert.deepEqual(await walFiles(dir), files.slice(3));
  await wal.close();

  const reopened = await openWal(dir, 1024);
  assertEntries(reopened.entries, firstOf(3), 300 - firstOf(3) + 1);
  await reopened.wal.releaseBefore(1e9);
  assert.deepEqual(await walFiles(dir), files.slice(-1), 'the active segment survives');
  assert.equal(reopened.wal.lastIndex(), 300);
  assert.equal(reopened.wal.stats().segments, 1);
  await reopened.wal.append(entries(301, 5));
  await reopened.wal.close();

  const last = await openWal(dir, 1024);
  const lastFirst = firstOf(files.length - 1);
  assertEntries(last.entries, lastFirst, 305 - lastFirst + 1);
  assert.equal(last.wal.lastIndex(), 305);
  await last.wal.close();
});

// ---------- torn tail ----------

test('torn tail: a record cut mid-way is truncated, warned about and kept as .broken', async () => {
  const dir = freshDir();
  const first = await openWal(dir);
  await first.wal.append(entries(1, 10));
  await first.wal.close();
  const [name] = await walFiles(dir);
  assert.ok(name !== undefined);
  const path = join(dir, name);
  const fullSize = (await stat(path)).size;
  await truncate(path, fullSize - 25); // tear the last record

  const { wal, entries: replayed, logger } = await openWal(dir);
  assertEntries(replayed, 1, 9);
  assert.equal(wal.lastIndex(), 9);
  const warns = logger.lines.filter((l) => l.level === 'warn');
  assert.equal(warns.length, 1);
  const goodEnd = segmentHeaderBytes + 9 * recordBytes();
  assert.equal(warns[0]?.msg, 'wal: repaired torn tail');
  assert.equal(warns[0]?.fields?.['file'], path);
  assert.equal(warns[0]?.fields?.['offset'], goodEnd);
  assert.equal(warns[0]?.fields?.['bytesDropped'], recordBytes() - 25);
  assert.equal((await stat(path + '.broken')).size, fullSize - 25, 'damaged copy kept beside it');
  const repaired = await readFile(path);
  assert.equal(repaired.length, segmentBytesDefault, 'cut back to the good records, then preallocated again');
  assert.ok(repaired.subarray(goodEnd).every((b) => b === 0), 'nothing of the torn record is left');

  await wal.append(entries(10, 3));
  await wal.close();
  const again = await openWal(dir);
  assertEntries(again.entries, 1, 12);
  assert.equal(again.logger.lines.filter((l) => l.level === 'warn').length, 0, 'clean after repair');
  await again.wal.close();
});

test('torn tail: a garbage tail is repaired without losing good records', async () => {
  for (const tail of [Buffer.from(Array.from({ length: 777 }, (_, k) => (k * 7919 + 13) & 0xff))]) {
    const dir = freshDir();
    const first = await openWal(dir);
    await first.wal.append(entries(1, 4));
    await first.wal.close();
    const [name] = await walFiles(dir);
    const path = join(dir, name ?? '');
    await appendFile(path, tail);
    const { wal, entries: replayed, logger } = await openWal(dir);
    assertEntries(replayed, 1, 4);
    const warn = logger.lines.find((l) => l.level === 'warn');
    assert.equal(warn?.fields?.['bytesDropped'], tail.length);
    assert.equal(warn?.fields?.['offset'], segmentHeaderBytes + 4 * recordBytes());
    await wal.close();
  }
});

// ---------- preallocation ----------

test('preallocation: the active segment is preallocated; a zero tail is where the log ends, not damage', async () => {
  const dir = freshDir();
  const segmentBytes = 64 * 1024;
  const { wal } = await openWal(dir, segmentBytes);
  const hs: WalHardState = { term: 2, vote: 5n, commit: 2 };
  await wal.append(entries(1, 20), hs);
  const [name] = await walFiles(dir);
  const path = join(dir, name ?? '');
  // What a crash leaves: the file as it is while the WAL is open (no close, no cut-back).
  const crashed = await readFile(path);
  assert.equal(crashed.length, segmentBytes, 'the open segment is its full size');
  const used = segmentHeaderBytes + 20 * recordBytes() + hardStateRecordBytes;
  assert.ok(crashed.subarray(used).every((b) => b === 0), 'zeros after the records');
  await wal.close();
  assert.equal((await stat(path)).size, used, 'a clean close cuts the segment back to its records');

  await writeFile(path, crashed);
  const reopened = await openWal(dir, segmentBytes);
  assertEntries(reopened.entries, 1, 20);
  assert.deepEqual(reopened.hardState, hs);
  assert.equal(reopened.logger.lines.filter((l) => l.level !== 'info').length, 0, 'no repair, no warning');
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.broken')), [], 'no .broken copy');
  await reopened.wal.append(entries(21, 5));
  await reopened.wal.close();
  const again = await openWal(dir, segmentBytes);
  assertEntries(again.entries, 1, 25);
  await again.wal.close();
});

test('preallocation: a segment without a zero tail (an older Cairn, or cut back) is extended on open', async () => {
  const { dir, path } = await closedWal(5);
  const before = await readFile(path);
  const { wal, entries: replayed } = await openWal(dir, 8192);
  assertEntries(replayed, 1, 5);
  const during = await readFile(path);
  assert.equal(during.length, 8192);
  assert.deepEqual(during.subarray(0, before.length), before, 'its records are unchanged');
  await wal.close();
  assert.deepEqual(await readFile(path), before);
});

test('preallocation: rotation cuts the old segment back first, so only the last one has a zero tail', async () => {
  const dir = freshDir();
  const { wal } = await openWal(dir, 1024);
  for (let i = 1; i <= 100; i += 10) await wal.append(entries(i, 10));
  const files = await walFiles(dir);
  assert.ok(files.length >= 3, `expected several segments, got ${files.length}`);
  for (const [k, name] of files.entries()) {
    const bytes = await readFile(join(dir, name));
    if (k === files.length - 1) {
      assert.equal(bytes.length, 1024, `${name}: the active segment is preallocated`);
    } else {
      assert.notEqual(bytes.at(-1), 0, `${name}: ends with its last record's last byte, not with zeros`);
    }
  }
  // A crash now: every segment as it is on disk. Replay sees every entry and repairs nothing.
  const copy = freshDir();
  for (const name of files) await writeFile(join(copy, name), await readFile(join(dir, name)));
  await wal.close();
  const replayed = await openWal(copy, 1024);
  assertEntries(replayed.entries, 1, 100);
  assert.equal(replayed.logger.lines.filter((l) => l.level !== 'info').length, 0);
  await replayed.wal.close();
});

test('preallocation: a torn record inside the preallocated tail is repaired; the copy leaves out the zeros', async () => {
  const dir = freshDir();
  const segmentBytes = 64 * 1024;
  const { wal } = await openWal(dir, segmentBytes);
  await wal.append(entries(1, 10));
  const [name] = await walFiles(dir);
  const path = join(dir, name ?? '');
  const crashed = await readFile(path);
  await wal.close();
  const goodEnd = segmentHeaderBytes + 9 * recordBytes();
  crashed.fill(0, goodEnd + 20, goodEnd + recordBytes()); // the last write's end never reached the disk
  await writeFile(path, crashed);
  const { wal: repaired, entries: replayed, logger } = await openWal(dir, segmentBytes);
  assertEntries(replayed, 1, 9);
  const warn = logger.lines.find((l) => l.level === 'warn');
  assert.equal(warn?.msg, 'wal: repaired torn tail');
  assert.equal(warn?.fields?.['offset'], goodEnd);
  const copy = await readFile(path + '.broken');
  assert.ok(copy.length > goodEnd && copy.length <= goodEnd + 20, `the copy ends at the last nonzero byte (${copy.length})`);
  assert.deepEqual(copy, crashed.subarray(0, copy.length));
  await repaired.close();
});

test('torn tail: a flipped byte in the very last record counts as a torn tail', async () => {
  const { dir, path } = await closedWal(6);
  const lastAt = segmentHeaderBytes + 5 * recordBytes();
  await flipByte(path, lastAt + 20);
  const { wal, entries: replayed, logger } = await openWal(dir);
  assertEntries(replayed, 1, 5);
  assert.equal(logger.lines.find((l) => l.level === 'warn')?.fields?.['offset'], lastAt);
  await wal.close();
});

// ---------- corruption ----------

test('corruption: a flipped byte followed by intact records throws, naming file and offset', async () => {
  const { dir, path } = await closedWal(10);
  const badAt = segmentHeaderBytes + 4 * recordBytes();
  await flipByte(path, badAt + recordHeaderBytes + 20); // inside the data of entry 5
  const before = await readFile(path);

  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.file, path);
  assert.equal(err.offset, badAt);
  assert.ok(err.message.startsWith(`wal: corrupt record in ${path} at offset ${badAt}: crc mismatch`), err.message);
  assert.deepEqual(await readFile(path), before, 'nothing on disk changed');
  assert.equal((await readdir(dir)).some((n) => n.endsWith('.broken')), false);
});

test('corruption: damage in the length field of a middle record is not mistaken for a torn tail', async () => {
  const { dir, path } = await closedWal(10);
  const badAt = segmentHeaderBytes + 2 * recordBytes();
  const bytes = await readFile(path);
  bytes.writeUInt32LE(bytes.length, badAt); // declared length now runs past EOF
  await writeFile(path, bytes);
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /intact record follows/);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.offset, badAt);
});

test('corruption: a flipped byte in a non-last segment throws', async () => {
  const dir = freshDir();
  await buildRotatedWal(dir);
  const files = await walFiles(dir);
  const path = join(dir, files[2] ?? '');
  const badAt = segmentHeaderBytes + 1 * recordBytes();
  await flipByte(path, badAt + recordHeaderBytes + 3);
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger(), segmentBytes: 1024 }), WalCorruptError);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.file, path);
  assert.equal(err.offset, badAt);
  assert.match(err.message, new RegExp(`in ${path} at offset ${badAt}`));
});

test('corruption: truncating a non-last segment throws instead of repairing', async () => {
  const dir = freshDir();
  await buildRotatedWal(dir);
  const files = await walFiles(dir);
  const path = join(dir, files[0] ?? '');
  await truncate(path, (await stat(path)).size - 5);
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger(), segmentBytes: 1024 }), WalCorruptError, /not the last segment/);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.file, path);
});

test('corruption: a duplicated record breaks the crc chain', async () => {
  const { dir, path } = await closedWal(6);
  const bytes = await readFile(path);
  const r2 = segmentHeaderBytes + 2 * recordBytes();
  bytes.copy(bytes, r2 + recordBytes(), r2, r2 + recordBytes()); // record 4 := copy of record 3
  await writeFile(path, bytes);
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /crc chain mismatch/);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.offset, r2 + recordBytes());
});

test('corruption: an index gap inside a segment throws, even in the last record', async () => {
  const dir = freshDir();
  const header = encodeSegmentHeader({ firstIndex: 1, prevCrc: 0 });
  const { bytes } = encodeEntries([entry(1), entry(2), entry(4)], 0); // valid CRCs, wrong index
  const path = join(dir, segmentFileName(1, 1));
  await writeFile(path, Buffer.concat([header, bytes]));
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /index gap: expected entry 3 or lower, found 4/);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.offset, segmentHeaderBytes + 2 * recordBytes());
  assert.equal((await readFile(path)).length, header.length + bytes.length, 'not truncated');
});

test('corruption: a missing middle segment and a mismatched segment start throw', async () => {
  const dir = freshDir();
  await buildRotatedWal(dir);
  const files = await walFiles(dir);
  await rm(join(dir, files[3] ?? ''));
  await rejectsWith(Wal.open({ dir, logger: captureLogger(), segmentBytes: 1024 }), WalCorruptError, /segment sequence gap/);

  const other = freshDir();
  const a = encodeEntries(entries(1, 3), 0);
  await writeFile(join(other, segmentFileName(1, 1)), Buffer.concat([encodeSegmentHeader({ firstIndex: 1, prevCrc: 0 }), a.bytes]));
  const b = encodeEntries(entries(5, 2), a.lastCrc); // should have started at 4
  await writeFile(join(other, segmentFileName(2, 5)), Buffer.concat([encodeSegmentHeader({ firstIndex: 5, prevCrc: a.lastCrc }), b.bytes]));
  await rejectsWith(Wal.open({ dir: other, logger: captureLogger() }), WalCorruptError, /index gap: expected entry 4, segment starts at 5/);
});

test('corruption: a segment whose header does not chain to the previous segment throws', async () => {
  const dir = freshDir();
  const a = encodeEntries(entries(1, 3), 0);
  await writeFile(join(dir, segmentFileName(1, 1)), Buffer.concat([encodeSegmentHeader({ firstIndex: 1, prevCrc: 0 }), a.bytes]));
  const wrongSeed = (a.lastCrc ^ 1) >>> 0;
  const b = encodeEntries(entries(4, 2), wrongSeed); // self-consistent, but not chained to segment 1
  const second = join(dir, segmentFileName(2, 4));
  await writeFile(second, Buffer.concat([encodeSegmentHeader({ firstIndex: 4, prevCrc: wrongSeed }), b.bytes]));
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /segment crc chain mismatch/);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.file, second);
});

test('corruption: a damaged segment header throws even in the last segment', async () => {
  const dir = freshDir();
  const first = await openWal(dir);
  await first.wal.append(entries(1, 3));
  await first.wal.close();
  const [name] = await walFiles(dir);
  await flipByte(join(dir, name ?? ''), 18); // firstIndex field
  await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /at offset 0: segment header crc mismatch/);
});

/** A framed record with a valid CRC around any payload (to write what our encoder never would). */
function rawRecord(type: number, payload: Uint8Array, prevCrc: number): { bytes: Buffer; crc: number } {
  const header = Buffer.alloc(recordHeaderBytes);
  header.writeUInt32LE(payload.length, 0);
  header[4] = type;
  header.writeUInt32LE(prevCrc, 8);
  const crc = crc32c(payload, crc32c(header.subarray(0, 12), prevCrc));
  header.writeUInt32LE(crc, 12);
  return { bytes: Buffer.concat([header, payload]), crc };
}

test('corruption: an intact entry record with an unknown entry type throws, even as the last record', async () => {
  const dir = freshDir();
  const a = encodeEntries(entries(1, 2), 0);
  const payload = Buffer.alloc(17 + 3);
  payload.writeUInt32LE(3, 0); // index 3
  payload.writeUInt32LE(1, 8); // term 1
  payload[16] = 9; // no such entry type
  const bad = rawRecord(1, payload, a.lastCrc);
  const path = join(dir, segmentFileName(1, 1));
  await writeFile(path, Buffer.concat([encodeSegmentHeader({ firstIndex: 1, prevCrc: 0 }), a.bytes, bad.bytes]));
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /unknown entry type 9/);
  assert.ok(err instanceof WalCorruptError);
  assert.equal(err.offset, segmentHeaderBytes + 2 * recordBytes());
  assert.equal((await readdir(dir)).some((n) => n.includes('.broken')), false, 'not repaired');
});

// ---------- format version ----------

test('a segment in format version 1 (an older Cairn) is refused: the data dir must be recreated', async () => {
  const dir = freshDir();
  // What Cairn with WAL format 1 wrote: the same header layout with version 1, then entry records
  // whose payload is index u64 · term u64 · data (no entry type byte).
  const payload = Buffer.alloc(16 + 5);
  payload.writeUInt32LE(1, 0);
  payload.writeUInt32LE(1, 8);
  payload.write('hello', 16);
  const path = join(dir, segmentFileName(1, 1));
  await writeFile(path, Buffer.concat([encodeSegmentHeaderVersion({ firstIndex: 1, prevCrc: 0 }, 1), rawRecord(1, payload, 0).bytes]));
  const before = await readFile(path);
  const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalFormatError);
  assert.ok(err instanceof WalFormatError && err instanceof WalCorruptError, 'a WalCorruptError too');
  assert.equal(err.version, 1);
  assert.equal(err.file, path);
  assert.ok(err.message.includes(path), err.message);
  assert.match(err.message, /version 1, written by an older Cairn; this Cairn reads only version 2 and does not migrate: this data dir must be recreated/);
  assert.deepEqual(await readFile(path), before, 'nothing on disk changed');
  assert.deepEqual(await readdir(dir), [segmentFileName(1, 1)], 'no copy, no new segment');

  const newer = freshDir();
  await writeFile(join(newer, segmentFileName(1, 1)), encodeSegmentHeaderVersion({ firstIndex: 1, prevCrc: 0 }, 3));
  await rejectsWith(Wal.open({ dir: newer, logger: captureLogger() }), WalFormatError, /version 3, written by a newer Cairn/);
});

// ---------- every record type at the tail and in the middle ----------

const hs1: WalHardState = { term: 2, vote: 5n, commit: 2 };
const hs2: WalHardState = { term: 3, vote: (1n << 64n) - 1n, commit: 3 };

/** The last call of each scenario, the size of the record it writes last, and its kind. */
const lastCalls: { kind: WalRecord['kind']; bytes: number; call: (wal: Wal) => Promise<void> }[] = [
  { kind: 'entry', bytes: recordBytes(), call: (wal) => wal.append([entry(4)]) },
  { kind: 'hardState', bytes: hardStateRecordBytes, call: (wal) => wal.append([], hs2) },
  { kind: 'snapshot', bytes: snapshotRecordBytes, call: (wal) => wal.appendSnapshot({ index: 3, term: 1 }) },
];

test('torn tail: a damaged last record of every type is dropped; the state before it survives', async () => {
  for (const last of lastCalls) {
    const dir = freshDir();
    const first = await openWal(dir);
    await first.wal.append(entries(1, 3), hs1);
    await last.call(first.wal);
    await first.wal.close();
    const [name] = await walFiles(dir);
    const path = join(dir, name ?? '');
    const original = await readFile(path);
    const lastAt = original.length - last.bytes;
    const damages: { what: string; bytes: Buffer }[] = [
      ...[1, 4, 8, 15, 16, 17, last.bytes - 1].map((k) => ({ what: `cut ${k} bytes in`, bytes: original.subarray(0, lastAt + k) })),
      ...[0, 4, 9, 13, 16, last.bytes - 1].map((k) => {
        const b = Buffer.from(original);
        b[lastAt + k] = (b[lastAt + k] ?? 0) ^ 0x10;
        return { what: `byte ${k} flipped`, bytes: b };
      }),
    ];
    for (const damage of damages) {
      await writeFile(path, damage.bytes);
      const label = `${last.kind} record, ${damage.what}`;
      const { wal, entries: replayed, hardState, snapshot, logger } = await openWal(dir);
      assertEntries(replayed, 1, 3);
      assert.deepEqual(hardState, hs1, label);
      assert.equal(snapshot, undefined, label);
      assert.equal(wal.lastIndex(), 3, label);
      assert.equal(logger.lines.find((l) => l.level === 'warn')?.fields?.['offset'], lastAt, label);
      await wal.close();
      assert.equal((await stat(path)).size, lastAt, label);
    }
    await writeFile(path, original);
    const intact = await openWal(dir);
    assert.equal(intact.logger.lines.filter((l) => l.level === 'warn').length, 0);
    assert.deepEqual(intact.hardState, last.kind === 'hardState' ? hs2 : hs1);
    assert.deepEqual(intact.snapshot, last.kind === 'snapshot' ? { index: 3, term: 1 } : undefined);
    assert.equal(intact.entries.length, last.kind === 'entry' ? 4 : last.kind === 'snapshot' ? 0 : 3);
    await intact.wal.close();
  }
});

test('corruption: a damaged hard-state or marker record followed by intact records throws', async () => {
  const dir = freshDir();
  const first = await openWal(dir);
  await first.wal.append(entries(1, 3), hs1);
  await first.wal.appendSnapshot({ index: 3, term: 1 }, hs2);
  await first.wal.append([entry(4)]);
  await first.wal.close();
  const [name] = await walFiles(dir);
  const path = join(dir, name ?? '');
  const original = await readFile(path);
  const hsAt = segmentHeaderBytes + 3 * recordBytes();
  const markerAt = hsAt + hardStateRecordBytes;
  const hs2At = markerAt + snapshotRecordBytes;
  for (const [at, k] of [[hsAt, 20], [markerAt, 17], [hs2At, 30], [markerAt, 0]] as const) {
    const damaged = Buffer.from(original);
    damaged[at + k] = (damaged[at + k] ?? 0) ^ 0x01;
    await writeFile(path, damaged);
    const err = await rejectsWith(Wal.open({ dir, logger: captureLogger() }), WalCorruptError, /intact record follows/);
    assert.ok(err instanceof WalCorruptError);
    assert.equal(err.offset, at);
    assert.deepEqual(await readFile(path), damaged, 'nothing on disk changed');
  }
});

test('open removes a leftover temp file from an interrupted segment creation', async () => {
  const dir = freshDir();
  const first = await openWal(dir);
  await first.wal.append(entries(1, 3));
  await first.wal.close();
  const leftover = join(dir, segmentFileName(2, 4) + '.tmp');
  await writeFile(leftover, Buffer.alloc(10));
  const { wal, entries: replayed } = await openWal(dir);
  assertEntries(replayed, 1, 3);
  assert.equal((await readdir(dir)).includes(segmentFileName(2, 4) + '.tmp'), false);
  await wal.close();
});

// ---------- fail stop ----------

test('a storage fault rejects every waiter with WalFatalError and refuses later appends', async () => {
  const dir = freshDir();
  const { wal, logger } = await openWal(dir, 1024);
  await wal.append([entry(1, 2000)]); // the active segment is now full: the next append rotates
  await rm(dir, { recursive: true, force: true }); // creating the next segment will fail
  const results = await Promise.allSettled([wal.append([entry(2)]), wal.append([entry(3)]), wal.append([entry(4)])]);
  const errors = results.map((r) => (r.status === 'rejected' ? (r.reason as unknown) : undefined));
  for (const e of errors) assert.ok(e instanceof WalFatalError, `expected WalFatalError, got ${String(e)}`);
  assert.equal(errors[0], errors[2], 'one fatal error for everybody');
  assert.ok(errors[0] instanceof Error && errors[0].cause !== undefined, 'the fatal error carries the cause');
  await rejectsWith(wal.append([entry(5)]), WalFatalError);
  assert.ok(logger.lines.some((l) => l.level === 'error' && l.msg === 'wal: storage fault'));
  await wal.close();
});

// ---------- decoder property: framing does not depend on chunking ----------

const fcSeed = Number(process.env['WAL_FC_SEED'] ?? Date.now() % 0x7fffffff);

function checkProperty<Ts extends [unknown, ...unknown[]]>(name: string, prop: fc.IProperty<Ts>, numRuns = 200): void {
  try {
    fc.assert(prop, { seed: fcSeed, numRuns });
  } catch (err) {
    console.error(`${name}: failed with fast-check seed ${fcSeed}; replay with WAL_FC_SEED=${fcSeed}`);
    throw err;
  }
}

interface Decoded {
  records: DecodedRecord[];
  failure: DecodeFailure | undefined;
  lastCrc: number;
}

/** Feeds `bytes` to a fresh decoder in chunks of the given sizes (cycled). */
function decodeInChunks(bytes: Uint8Array, seedCrc: number, sizes: readonly number[]): Decoded {
  const decoder = new RecordDecoder(seedCrc, 0);
  const records: DecodedRecord[] = [];
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const size = sizes.length === 0 ? bytes.length : Math.max(1, sizes[k % sizes.length] ?? 1);
    for (const r of decoder.push(bytes.slice(at, at + size))) records.push(r);
    at += size;
  }
  const failure = decoder.finish();
  return { records, failure, lastCrc: decoder.lastCrc };
}

function summary(d: Decoded): unknown {
  return { records: d.records.map((r) => ({ ...r, payload: Buffer.from(r.payload).toString('hex') })), failure: d.failure, lastCrc: d.lastCrc };
}

/** Start offsets of each record, plus the total length at the end. */
function recordStarts(list: readonly WalRecord[]): number[] {
  const starts = [0];
  for (const r of list) starts.push((starts.at(-1) ?? 0) + encodedRecordBytes(r));
  return starts;
}

/** A record as plain comparable data (bytes as hex). */
function plain(r: WalRecord | string): unknown {
  if (typeof r === 'string') return r;
  switch (r.kind) {
    case 'entry':
      return { kind: r.kind, entry: { ...r.entry, data: Buffer.from(r.entry.data).toString('hex') } };
    case 'hardState':
      return { kind: r.kind, hardState: { ...r.hardState } };
    case 'snapshot':
      return { kind: r.kind, snapshot: { ...r.snapshot } };
  }
}

const arbU64Safe = fc.oneof(fc.nat({ max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const arbRecord: fc.Arbitrary<WalRecord> = fc.oneof(
  fc.record({
    index: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    term: arbU64Safe,
    type: fc.constantFrom('normal' as const, 'confChange' as const),
    data: fc.uint8Array({ maxLength: 200 }),
  }).map((entry): WalRecord => ({ kind: 'entry', entry })),
  fc.record({ term: arbU64Safe, vote: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constant((1n << 64n) - 1n), fc.constant(0n)), commit: arbU64Safe })
    .map((hardState): WalRecord => ({ kind: 'hardState', hardState })),
  fc.record({ index: arbU64Safe, term: arbU64Safe }).map((snapshot): WalRecord => ({ kind: 'snapshot', snapshot })),
);
const arbRecords = fc.array(arbRecord, { minLength: 1, maxLength: 12 });
const arbSizes = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 });

/** One record of each kind and entry type, with the largest values each field can hold. */
const everyKind: WalRecord[] = [
  { kind: 'entry', entry: { index: 1, term: 1, type: 'normal', data: Buffer.from('hello') } },
  { kind: 'hardState', hardState: { term: Number.MAX_SAFE_INTEGER, vote: (1n << 64n) - 1n, commit: Number.MAX_SAFE_INTEGER } },
  { kind: 'entry', entry: { index: Number.MAX_SAFE_INTEGER, term: 7, type: 'confChange', data: new Uint8Array(0) } },
  { kind: 'snapshot', snapshot: { index: Number.MAX_SAFE_INTEGER, term: 3 } },
  { kind: 'hardState', hardState: { term: 0, vote: 0n, commit: 0 } },
];

test('decoder: byte-at-a-time equals all-at-once, for every record type', () => {
  const list: WalRecord[] = [...entries(1, 20, 37).map((e): WalRecord => ({ kind: 'entry', entry: e })), ...everyKind];
  const { bytes, lastCrc } = encodeRecords(list, 12345);
  const whole = decodeInChunks(bytes, 12345, []);
  const bytewise = decodeInChunks(bytes, 12345, [1]);
  assert.equal(whole.records.length, list.length);
  assert.equal(whole.failure, undefined);
  assert.equal(whole.lastCrc, lastCrc);
  assert.deepEqual(summary(bytewise), summary(whole));
  assert.deepEqual(bytewise.records.map((r) => plain(decodePayload(r.type, r.payload))), list.map(plain), 'every field round-trips');
});

test('decoder property: random splits decode the same records', () => {
  checkProperty(
    'random splits',
    fc.property(arbRecords, fc.integer({ min: 0, max: 0xffffffff }), arbSizes, (list, seedCrc, sizes) => {
      const { bytes, lastCrc } = encodeRecords(list, seedCrc);
      const split = decodeInChunks(bytes, seedCrc, sizes);
      assert.equal(split.failure, undefined);
      assert.equal(split.lastCrc, lastCrc);
      assert.deepEqual(summary(split), summary(decodeInChunks(bytes, seedCrc, [1])));
      assert.deepEqual(split.records.map((r) => plain(decodePayload(r.type, r.payload))), list.map(plain));
    }),
  );
});

test('decoder property: a cut stream yields the whole records and reports the cut record', () => {
  checkProperty(
    'truncation',
    fc.property(arbRecords, fc.double({ min: 0, max: 1, noNaN: true }), arbSizes, (list, where, sizes) => {
      const { bytes } = encodeRecords(list, 7);
      const cut = Math.floor(where * bytes.length);
      const starts = recordStarts(list);
      const whole = starts.filter((s, k) => k > 0 && s <= cut).length;
      const d = decodeInChunks(bytes.subarray(0, cut), 7, sizes);
      assert.equal(d.records.length, whole);
      const boundary = starts.includes(cut);
      assert.equal(d.failure?.reason, boundary ? undefined : 'truncated');
      if (!boundary) assert.equal(d.failure?.offset, starts[whole]);
    }),
  );
});

test('decoder property: any flipped bit fails at the record containing it, however split', () => {
  checkProperty(
    'bit flip',
    fc.property(arbRecords, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.integer({ min: 0, max: 7 }), arbSizes, (list, where, bit, sizes) => {
      const { bytes } = encodeRecords(list, 99);
      const pos = Math.floor(where * bytes.length);
      const damaged = Buffer.from(bytes);
      damaged[pos] = (damaged[pos] ?? 0) ^ (1 << bit);
      const starts = recordStarts(list);
      const containing = starts.filter((s) => s <= pos).length - 1;
      const whole = decodeInChunks(damaged, 99, []);
      assert.notEqual(whole.failure, undefined, `flip at ${pos} not detected`);
      assert.equal(whole.failure?.offset, starts[containing]);
      assert.equal(whole.records.length, containing);
      assert.deepEqual(summary(decodeInChunks(damaged, 99, sizes)), summary(whole));
      assert.deepEqual(summary(decodeInChunks(damaged, 99, [1])), summary(whole));
    }),
  );
});

test('writesOnLoop: true while writes are small, false once large writes move them to the thread pool, true again after small ones', async () => {
  const dir = freshDir();
  const { wal } = await openWal(dir);
  assert.equal(wal.writesOnLoop, true, 'a new WAL writes small chunks on the loop thread');
  let next = 1;
  for (let k = 0; k < 4; k++) await wal.append([entry(next++, 64 * 1024)]);
  assert.equal(wal.writesOnLoop, false, 'after 64 KiB writes');
  for (let k = 0; k < 12; k++) await wal.append([entry(next++, 40)]);
  assert.equal(wal.writesOnLoop, true, 'the moving average came back down');
  await wal.close();
});
