/** File-system leaves: durable creation, positional writes, directory fsync. No policy here. */
import { constants, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** Temp-file suffix used while a segment is being created; leftovers are removed on open. */
export const tempSuffix = '.tmp';
const brokenCopiesMax = 1000;

/** fsync a directory so that file creations, renames and deletions in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes all of `bytes` at `position`, looping over short writes. */
export async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`short write: ${done} of ${bytes.length} bytes`);
    done += bytesWritten;
  }
}

/**
 * writeAll on the calling thread: no thread-pool round trip (two thread wake-ups and a promise),
 * at the price of blocking the event loop for the write. For small O_DSYNC writes only.
 */
export function writeAllSync(fh: FileHandle, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const written = writeSync(fh.fd, bytes, done, bytes.length - done, position + done);
    if (written <= 0) throw new Error(`short write: ${done} of ${bytes.length} bytes`);
    done += written;
  }
}

/** Writes a new file (failing if it exists) and fsyncs it. The caller syncs the directory. */
async function writeNewFile(path: string, bytes: Uint8Array): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await writeAll(fh, bytes, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `dir/name` holding `header`, atomically: write a temp file, fsync it, rename it into
 * place, fsync the directory. A crash leaves either no segment or a complete header. Returns the
 * new file opened for writing.
 */
export async function createSegmentFile(dir: string, name: string, header: Uint8Array): Promise<FileHandle> {
  const path = join(dir, name);
  const temp = path + tempSuffix;
  await rm(temp, { force: true });
  await writeNewFile(temp, header);
  await rename(temp, path);
  await syncDir(dir);
  return openForAppend(path);
}

/**
 * Opens a segment for appending with O_DSYNC: every write returns only once its data (and the
 * metadata needed to read it back) is on disk, i.e. write + fdatasync in one system call and one
 * thread-pool round trip instead of two.
 */
export function openForAppend(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDWR | constants.O_DSYNC);
}

function isAlreadyExists(err: unknown): boolean {
  return err instanceof Error && 'code' in err && err.code === 'EEXIST';
}

/** Saves `bytes` as `<path>.broken` (or `.broken.N` if taken), durably. Returns the copy's path. */
export async function keepBrokenCopy(path: string, bytes: Uint8Array): Promise<string> {
  for (let n = 0; n < brokenCopiesMax; n++) {
    const copy = n === 0 ? `${path}.broken` : `${path}.broken.${n}`;
    try {
      await writeNewFile(copy, bytes);
      return copy;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
  throw new Error(`too many broken copies of ${path}`);
}

/** Truncates a file to `size` bytes and fsyncs it. */
export async function truncateDurably(path: string, size: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
