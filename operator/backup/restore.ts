// Restoring a member from a backup object: download it (streamed to a file in the member's data
// volume), check its size and SHA-256 against the recorded values and its own SHA-256 trailer BEFORE
// anything else, then run `cairn snapshot restore` with --bump-revision and --mark-compacted by
// default (as etcd recommends for clusters that kube-apiserver watches: revisions move past every
// revision a client has seen, and watches from before the restore are told "compacted" and re-list).
// A corrupt or truncated object is refused with the reason (BackupError 'RestoreRefused'), and its
// download removed. Memory: the download streams through one hash pass (STREAM_BUFFER_BYTES).
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { META } from './backup.js';
import { BackupError, classifyS3Error } from './errors.js';
import { SECTOR_BYTES, SHA256_BYTES } from './snapshot.js';
import { objectUri } from './store.js';

/** etcd's advice for kube-apiserver's clusters: a billion revisions past the snapshot's. */
export const DEFAULT_BUMP_REVISION = 1_000_000_000;
/** Write buffer of the download file. */
export const STREAM_BUFFER_BYTES = 1024 * 1024;
/** Longest a `cairn snapshot status|restore` may run (a restore of a large database copies it). */
export const RESTORE_TIMEOUT_MS = 30 * 60 * 1000;
/** Bytes of a failed command's stderr kept for the message. */
const STDERR_TAIL_BYTES = 4096;

export interface RestoreMember {
  readonly name: string;
  /** "m1=http://a:2380,m2=http://b:2380" */
  readonly initialCluster: string;
  readonly initialClusterToken: string;
  /** This member's peer URLs, comma-separated. */
  readonly initialAdvertisePeerUrls: string;
  readonly dataDir: string;
  readonly walDir?: string;
}

export interface RestoreOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly key: string;
  /** What the backup's record says; the object must match both. */
  readonly expect: { readonly sizeBytes: number; readonly sha256: string };
  /** Where the object is downloaded (a file in the member's data volume; must not exist). */
  readonly downloadPath: string;
  readonly member: RestoreMember;
  /** `cairn` (server/bin/cairn or the installed command). */
  readonly cairnBin: string;
  /** Default DEFAULT_BUMP_REVISION; 0 restores the revisions as they were (and no compaction mark). */
  readonly bumpRevision?: number;
  /** Keep the downloaded file after a successful restore (default: removed). */
  readonly keepDownload?: boolean;
}

export interface RestoreResult {
  /** The revision in the snapshot (from `cairn snapshot status`). */
  readonly snapshotRevision: number;
  /** The revision the restored members start at. */
  readonly startRevision: number;
  readonly sizeBytes: number;
  readonly sha256: string;
}

export interface DownloadCheck {
  readonly sizeBytes: number;
  readonly sha256: string;
  /** The trailer matched the data's SHA-256. */
  readonly trailerOk: boolean;
  readonly trailerProblem: string | undefined;
}

const refuse = (uri: string, why: string, cause?: unknown): BackupError =>
  new BackupError('RestoreRefused', `backup ${uri} refused before restore: ${why}`, cause === undefined ? undefined : { cause });

/** Hashes the whole stream and, with a 32-byte hold-back, all of it but its last 32 bytes. */
class DownloadHasher extends Transform {
  private readonly all = createHash('sha256');
  private readonly data = createHash('sha256');
  private tail: Buffer = Buffer.alloc(0);
  private bytes = 0;
  private outcome: DownloadCheck | undefined;

  result(): DownloadCheck | undefined {
    return this.outcome;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.all.update(chunk);
    this.bytes += chunk.length;
    const joined = Buffer.concat([this.tail, chunk]);
    const cut = Math.max(0, joined.length - SHA256_BYTES);
    this.data.update(joined.subarray(0, cut));
    this.tail = Buffer.from(joined.subarray(cut));
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const computed = this.data.digest();
    let problem: string | undefined;
    if (this.bytes < SHA256_BYTES) problem = `it is ${this.bytes} bytes, shorter than its ${SHA256_BYTES}-byte SHA-256 trailer (truncated)`;
    else if (this.bytes % SECTOR_BYTES !== SHA256_BYTES) problem = `its ${this.bytes} bytes are not whole ${SECTOR_BYTES}-byte sectors plus a ${SHA256_BYTES}-byte SHA-256 trailer (truncated)`;
    else if (!computed.equals(this.tail)) problem = `its SHA-256 trailer ${this.tail.toString('hex')} does not match its data (${computed.toString('hex')}): corrupt`;
    this.outcome = { sizeBytes: this.bytes, sha256: this.all.digest('hex'), trailerOk: problem === undefined, trailerProblem: problem };
    cb();
  }
}

/** HeadObject checks (size, metadata SHA-256 vs the record), then the object's body stream. */
async function openChecked(o: Pick<RestoreOptions, 's3' | 'bucket' | 'key' | 'expect'>): Promise<Readable> {
  const uri = objectUri(o.bucket, o.key);
  const head = await o.s3.send(new HeadObjectCommand({ Bucket: o.bucket, Key: o.key })).catch((e: unknown) => {
    throw classifyS3Error(e, `read ${uri}`, o.bucket);
  });
  if (head.ContentLength !== o.expect.sizeBytes) throw refuse(uri, `the object is ${String(head.ContentLength)} bytes, the backup record says ${o.expect.sizeBytes}`);
  const metaSha = head.Metadata?.[META.sha256];
  if (metaSha !== undefined && metaSha !== o.expect.sha256) throw refuse(uri, `the object's metadata says SHA-256 ${metaSha}, the backup record says ${o.expect.sha256}`);
  const got = await o.s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.key, IfMatch: head.ETag })).catch((e: unknown) => {
    throw classifyS3Error(e, `read ${uri}`, o.bucket);
  });
  if (!(got.Body instanceof Readable)) throw refuse(uri, 'the object store answered without a body stream');
  return got.Body;
}

function checkOutcome(uri: string, r: DownloadCheck | undefined, expect: RestoreOptions['expect']): DownloadCheck {
  if (r === undefined) throw refuse(uri, 'the download ended without a result');
  if (r.sizeBytes !== expect.sizeBytes) throw refuse(uri, `downloaded ${r.sizeBytes} bytes, the backup record says ${expect.sizeBytes} (truncated)`);
  if (r.sha256 !== expect.sha256) throw refuse(uri, `its SHA-256 is ${r.sha256}, the backup record says ${expect.sha256}: corrupt`);
  if (!r.trailerOk) throw refuse(uri, r.trailerProblem ?? 'bad trailer');
  return r;
}

/**
 * Reads the whole object and checks it (size, SHA-256, trailer) without writing it anywhere: what the
 * operator runs before it creates any member of a cluster restored from this backup.
 */
export async function verifyObject(o: Pick<RestoreOptions, 's3' | 'bucket' | 'key' | 'expect'>): Promise<DownloadCheck> {
  const uri = objectUri(o.bucket, o.key);
  const body = await openChecked(o);
  const hasher = new DownloadHasher();
  const sink = new Writable({
    write(_c: Buffer, _e, cb): void {
      cb();
    },
  });
  try {
    await pipeline(body, hasher, sink);
  } catch (e) {
    throw e instanceof BackupError ? e : refuse(uri, `reading it failed: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  return checkOutcome(uri, hasher.result(), o.expect);
}

/** Downloads the object to `path` (created, fsynced) and checks it; removes the file and throws if it does not verify. */
export async function downloadVerified(o: Pick<RestoreOptions, 's3' | 'bucket' | 'key' | 'expect' | 'downloadPath'>): Promise<DownloadCheck> {
  const uri = objectUri(o.bucket, o.key);
  const body = await openChecked(o);
  const hasher = new DownloadHasher();
  try {
    await pipeline(body, hasher, createWriteStream(o.downloadPath, { flags: 'wx', highWaterMark: STREAM_BUFFER_BYTES }));
    const fh = await open(o.downloadPath, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    return checkOutcome(uri, hasher.result(), o.expect);
  } catch (e) {
    rmSync(o.downloadPath, { force: true });
    if (e instanceof BackupError) throw e;
    throw refuse(uri, `download failed: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: RESTORE_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout = (stdout + b.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `cairn snapshot status -w json`: the snapshot's revision. */
export async function snapshotRevision(cairnBin: string, file: string): Promise<number> {
  const r = await run(cairnBin, ['snapshot', 'status', file, '-w', 'json']);
  if (r.code !== 0) throw new BackupError('RestoreRefused', `cairn snapshot status ${file} failed: ${r.stderr.trim()}`);
  const parsed: unknown = JSON.parse(r.stdout);
  const rev = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['revision'] : undefined;
  if (typeof rev !== 'number') throw new BackupError('RestoreRefused', `cairn snapshot status ${file}: no revision in ${r.stdout.trim()}`);
  return rev;
}

/** Hashes a file (streamed): its size and SHA-256 (hex). */
export async function fileSha256(path: string): Promise<{ sizeBytes: number; sha256: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  await pipeline(
    createReadStream(path, { highWaterMark: STREAM_BUFFER_BYTES }),
    new Writable({
      write(c: Buffer, _e, cb): void {
        h.update(c);
        bytes += c.length;
        cb();
      },
    }),
  );
  return { sizeBytes: bytes, sha256: h.digest('hex') };
}

export interface FileRestoreOptions {
  /** A snapshot file already on the member's volume (a quorum-loss recovery's). */
  readonly file: string;
  readonly expect: { readonly sizeBytes: number; readonly sha256: string };
  readonly member: RestoreMember;
  readonly cairnBin: string;
  readonly bumpRevision?: number;
}

/** Checks a local snapshot file's size and SHA-256 against the record, then restores it like restoreMember (the file is kept). */
export async function restoreFile(o: FileRestoreOptions): Promise<RestoreResult> {
  const got = await fileSha256(o.file).catch((e: unknown) => {
    throw new BackupError('RestoreRefused', `snapshot file ${o.file} cannot be read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  if (got.sizeBytes !== o.expect.sizeBytes || got.sha256 !== o.expect.sha256) {
    throw new BackupError('RestoreRefused', `snapshot file ${o.file} refused before restore: ${String(got.sizeBytes)} bytes, sha256 ${got.sha256}; the record says ${String(o.expect.sizeBytes)} bytes, sha256 ${o.expect.sha256}`);
  }
  return restoreChecked(o.file, o.file, got, o);
}

/** Downloads, verifies, then restores one member's data dir (and WAL dir) from the backup. */
export async function restoreMember(o: RestoreOptions): Promise<RestoreResult> {
  const checked = await downloadVerified(o);
  try {
    return await restoreChecked(o.downloadPath, objectUri(o.bucket, o.key), checked, o);
  } finally {
    if (o.keepDownload !== true) rmSync(o.downloadPath, { force: true });
  }
}

/** `cairn snapshot restore` of a verified snapshot file into the member's dirs. */
async function restoreChecked(file: string, what: string, checked: { sizeBytes: number; sha256: string }, o: Pick<RestoreOptions, 'cairnBin' | 'member' | 'bumpRevision'>): Promise<RestoreResult> {
  {
    const rev = await snapshotRevision(o.cairnBin, file);
    const bump = o.bumpRevision ?? DEFAULT_BUMP_REVISION;
    const m = o.member;
    const args = [
      'snapshot', 'restore', file,
      '--name', m.name,
      '--initial-cluster', m.initialCluster,
      '--initial-cluster-token', m.initialClusterToken,
      '--initial-advertise-peer-urls', m.initialAdvertisePeerUrls,
      '--data-dir', m.dataDir,
      ...(m.walDir !== undefined ? ['--wal-dir', m.walDir] : []),
      ...(bump > 0 ? ['--bump-revision', String(bump), '--mark-compacted'] : []),
    ];
    const r = await run(o.cairnBin, args);
    if (r.code !== 0) throw new BackupError('RestoreRefused', `cairn snapshot restore of ${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return { snapshotRevision: rev, startRevision: rev + bump, sizeBytes: checked.sizeBytes, sha256: checked.sha256 };
  }
}
