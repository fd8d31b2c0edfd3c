// A snapshot file (what Maintenance.Snapshot streams and `etcdctl snapshot save` writes as is): the
// bytes of a consistent LMDB copy of a member's database, then 32 bytes = SHA-256 of all the bytes
// before them. LMDB pages are 4 KiB, so the data is a whole number of 512-byte sectors, which is how
// etcd tells a file with a trailer from a raw database copy (size % 512 == 32).
//
// This module checks a file before anything is written (the trailer, the hash, LMDB's meta pages) and
// copies its data out; it never opens LMDB itself (LMDB trusts its meta pages: a damaged or
// truncated file can crash the process, hence checkLmdbHeader first).
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { LMDB_PAGE_BYTES, parseLmdbMeta, type LmdbMeta } from '../storage/backend/index.js';
import { SnapshotError } from './errors.js';
import type { Progress } from './progress.js';

export const SHA256_BYTES = 32;
/** etcd's hasChecksum: a snapshot's data is a whole number of these, the trailer makes size % 512 == 32. */
export const SECTOR_BYTES = 512;
/** Read/write size of the copy and hash passes. */
const IO_CHUNK_BYTES = 4 * 1024 * 1024;

export interface SnapshotLayout {
  readonly path: string;
  readonly fileBytes: number;
  /** Bytes of LMDB data (the file without its trailer). */
  readonly dataBytes: number;
  /** The SHA-256 trailer to check the data against; undefined when there is none or it is skipped. */
  readonly trailer: Buffer | undefined;
}

const q = (s: string): string => JSON.stringify(s);

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function openRead(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new SnapshotError(`cannot read snapshot file ${q(path)}: ${errMessage(err)}`, { cause: err });
  }
}

function readFully(fd: number, buf: Buffer, position: number, path: string): void {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) throw new SnapshotError(`snapshot file ${q(path)} is truncated: it ended while being read (at byte ${position + got})`);
    got += n;
  }
}

/**
 * How a file's SHA-256 trailer is treated: 'require' (restore: a file without one is refused),
 * 'ifPresent' (status: checked when there is one), 'skip' (--skip-hash-check: a trailer is cut off,
 * never checked; a raw database copy is accepted).
 */
export type HashCheck = 'require' | 'ifPresent' | 'skip';

/** Where the data ends and whether there is a trailer (etcd's rule: size % 512 == 32 means one). */
export function inspectLayout(path: string, check: HashCheck): SnapshotLayout {
  const fd = openRead(path);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SnapshotError(`snapshot file ${q(path)} is not a regular file`);
    const size = st.size;
    const hasTrailer = size % SECTOR_BYTES === SHA256_BYTES;
    if (check === 'require') {
      if (size < SHA256_BYTES) throw new SnapshotError(`snapshot file ${q(path)} is truncated: ${size} bytes, shorter than its ${SHA256_BYTES}-byte SHA-256 trailer`);
      if (size % SECTOR_BYTES === 0) {
        throw new SnapshotError(
          `snapshot file ${q(path)} has no SHA-256 trailer (its size, ${size} bytes, is a whole number of ${SECTOR_BYTES}-byte sectors: a database copied from a data dir, or a snapshot whose last 32 bytes were cut off); restore a raw database copy with --skip-hash-check`,
        );
      }
      if (!hasTrailer) {
        throw new SnapshotError(`snapshot file ${q(path)} is truncated: ${size} bytes is not a whole number of ${SECTOR_BYTES}-byte sectors plus the ${SHA256_BYTES}-byte SHA-256 trailer`);
      }
    }
    if (!hasTrailer) return { path, fileBytes: size, dataBytes: size, trailer: undefined };
    if (check === 'skip') return { path, fileBytes: size, dataBytes: size - SHA256_BYTES, trailer: undefined };
    const trailer = Buffer.alloc(SHA256_BYTES);
    readFully(fd, trailer, size - SHA256_BYTES, path);
    return { path, fileBytes: size, dataBytes: size - SHA256_BYTES, trailer };
  } finally {
    closeSync(fd);
  }
}

function mismatch(layout: SnapshotLayout, got: string, what: string): SnapshotError {
  const expected = layout.trailer?.toString('hex') ?? '(none)';
  return new SnapshotError(`snapshot file ${q(layout.path)} has a SHA-256 mismatch (expected ${expected}, got ${got}): ${what}`);
}

/** Streams the data through SHA-256 and compares with the trailer. No-op for a file without one. */
export function verifyHash(layout: SnapshotLayout, progress: Progress): void {
  if (layout.trailer === undefined) return;
  const fd = openRead(layout.path);
  const h = createHash('sha256');
  try {
    streamData(fd, layout, (chunk) => {
      h.update(chunk);
      progress.advance(chunk.length);
    });
  } finally {
    closeSync(fd);
  }
  const got = h.digest('hex');
  if (got !== layout.trailer.toString('hex')) throw mismatch(layout, got, 'the file was cut short or altered');
}

function streamData(fd: number, layout: SnapshotLayout, each: (chunk: Buffer) => void): void {
  const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK_BYTES, Math.max(layout.dataBytes, 1)));
  for (let off = 0; off < layout.dataBytes; ) {
    const want = Math.min(buf.length, layout.dataBytes - off);
    const chunk = buf.subarray(0, want);
    readFully(fd, chunk, off, layout.path);
    each(chunk);
    off += want;
  }
}

/**
 * Copies the data (without the trailer) to a new file `to` (which must not exist), hashing it again
 * on the way (the source may have changed since verifyHash), and fsyncs it.
 */
export function copyData(layout: SnapshotLayout, to: string, progress: Progress): void {
  const src = openRead(layout.path);
  try {
    const dst = openSync(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    const h = createHash('sha256');
    try {
      let at = 0;
      streamData(src, layout, (chunk) => {
        h.update(chunk);
        for (let w = 0; w < chunk.length; ) w += writeSync(dst, chunk, w, chunk.length - w, at + w);
        at += chunk.length;
        progress.advance(chunk.length);
      });
      fsyncSync(dst);
    } finally {
      closeSync(dst);
    }
    const got = h.digest('hex');
    if (layout.trailer !== undefined && got !== layout.trailer.toString('hex')) throw mismatch(layout, got, 'the file changed while it was being restored');
  } finally {
    closeSync(src);
  }
}

const P_INVALID = 0xffffffffffffffffn;
/** bbolt's magic (etcd's database format), at offset 16 of its meta pages. */
const BOLT_MAGIC = 0xed0cdaed;

/** A meta page LMDB will accept: its magic and flag (parseLmdbMeta), and our page size. */
function parseMeta(buf: Buffer, page: number): LmdbMeta | undefined {
  const m = parseLmdbMeta(buf, page);
  return m !== undefined && m.pageBytes === LMDB_PAGE_BYTES ? m : undefined;
}

/**
 * Checks that the data starts with LMDB meta pages that LMDB will accept and that every page the
 * newest one refers to lies inside the data: a file cut short must be refused here, not crash LMDB.
 */
export function checkLmdbHeader(layout: SnapshotLayout): void {
  const { path, dataBytes } = layout;
  if (dataBytes < 2 * LMDB_PAGE_BYTES) throw new SnapshotError(`snapshot file ${q(path)} is truncated: ${dataBytes} bytes of data, less than LMDB's two ${LMDB_PAGE_BYTES}-byte meta pages`);
  const buf = Buffer.alloc(2 * LMDB_PAGE_BYTES);
  const fd = openRead(path);
  try {
    readFully(fd, buf, 0, path);
  } finally {
    closeSync(fd);
  }
  const metas = [parseMeta(buf, 0), parseMeta(buf, 1)].filter((m): m is LmdbMeta => m !== undefined);
  if (metas.length === 0) {
    if (buf.readUInt32LE(16) === BOLT_MAGIC) throw new SnapshotError(`snapshot file ${q(path)} is already an etcd (bbolt) snapshot, not Cairn's LMDB form (\`cairn snapshot restore|status\` and etcdutl take it as it is)`);
    throw new SnapshotError(`snapshot file ${q(path)} is not a Cairn snapshot: neither of its first two pages is an LMDB meta page (damaged, or not a snapshot)`);
  }
  const newest = metas.reduce((a, b) => (b.txnId > a.txnId ? b : a));
  const pages = newest.lastPage + 1n;
  if (pages * BigInt(LMDB_PAGE_BYTES) > BigInt(dataBytes)) {
    throw new SnapshotError(`snapshot file ${q(path)} is truncated: its LMDB meta page says the database has ${pages} pages (${pages * BigInt(LMDB_PAGE_BYTES)} bytes) but the file holds ${dataBytes} bytes of data`);
  }
  if (newest.roots.some((r) => r !== P_INVALID && r > newest.lastPage)) {
    throw new SnapshotError(`snapshot file ${q(path)} is damaged: its LMDB meta page points past the database's last page`);
  }
  if (dataBytes % LMDB_PAGE_BYTES !== 0) {
    throw new SnapshotError(`snapshot file ${q(path)} is truncated: ${dataBytes} bytes of data is not a whole number of ${LMDB_PAGE_BYTES}-byte LMDB pages`);
  }
}
