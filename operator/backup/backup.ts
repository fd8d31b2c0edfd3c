// One backup: Maintenance.Snapshot from one member, verified on the way (snapshot.ts), streamed to
// the object store as a multipart upload under a temporary key, then copied to its final key with
// the complete metadata only once the snapshot's trailer and the uploaded object's size matched.
// Nothing is ever whole in memory or on disk: grpc-js → SnapshotVerifier (SNAPSHOT_QUEUE_MESSAGES
// chunks of 32 KiB) → lib-storage (partSizeBytes × (queueSize + 1) at most) → S3.
//
// Keys:  <prefix><cluster>/<start>.snapshot              the backups (complete, verified)
//        <prefix><cluster>/.incomplete/<start>.snapshot  the upload in progress (never a backup)
// A failed backup aborts its multipart upload and deletes its temporary object; if the object store
// is gone at that moment, the next backup of the cluster sweeps them (sweepIncomplete: backups run
// one at a time per cluster, so anything under .incomplete/ then is stale).
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { BACKUP_CLEANUP_TIMEOUT_MS, underDeadline, type RunDeadline } from './deadline.js';
import { BackupError, classifyS3Error } from './errors.js';
import { SnapshotSource, verifiedSnapshotStream, type MemberInfo, type VerifiedSnapshot } from './snapshot.js';
import { normalizePrefix, objectUri, withAbortSignal } from './store.js';

/** Multipart part size (S3: at least 5 MiB; at most 10,000 parts, so this allows 160 GiB). */
export const PART_BYTES = 16 * 1024 * 1024;
/** Parts uploaded at once; with the part being filled, memory ≤ (QUEUE_PARTS + 1) × PART_BYTES. */
export const QUEUE_PARTS = 2;
/** A progress line every this many uploaded bytes (and at the end). */
export const PROGRESS_EVERY_BYTES = 64 * 1024 * 1024;
/** S3's limit of one CopyObject; larger objects are copied part by part (UploadPartCopy). */
export const COPY_OBJECT_MAX_BYTES = 5 * 1024 * 1024 * 1024;
/** Part size of a multipart copy. */
export const COPY_PART_BYTES = 512 * 1024 * 1024;
/** Objects listed per page (S3's maximum). */
const LIST_PAGE = 1000;
/** Most pages read when listing one cluster's backups or incomplete uploads (bounded loops). */
const LIST_PAGES_MAX = 100;

export const INCOMPLETE_DIR = '.incomplete/';
export const SNAPSHOT_SUFFIX = '.snapshot';

/** Object metadata keys (x-amz-meta-*). */
export const META = {
  cluster: 'cairn-cluster',
  member: 'cairn-member',
  version: 'cairn-server-version',
  revision: 'cairn-revision',
  sha256: 'cairn-sha256',
  size: 'cairn-size',
  start: 'cairn-start',
  end: 'cairn-end',
} as const;

export type LogLine = (line: Record<string, unknown>) => void;
export const jsonStderr: LogLine = (line) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`);

export interface BackupRecord {
  readonly uri: string;
  readonly bucket: string;
  readonly key: string;
  readonly sizeBytes: number;
  /** SHA-256 (hex) of the object's bytes (the snapshot's data and its 32-byte trailer). */
  readonly sha256: string;
  /**
   * The member's revision when the snapshot was requested: the snapshot holds at least this
   * revision (it is taken after; the exact one is in the file: `cairn snapshot status`).
   */
  readonly revision: number;
  /** Hex member id of the member streamed from. */
  readonly memberId: string;
  readonly serverVersion: string;
  readonly start: Date;
  readonly end: Date;
}

export interface BackupOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly prefix?: string;
  /** Names the folder under the prefix: the EtcdCluster's namespace/name, e.g. "default-main". */
  readonly cluster: string;
  /** The member to stream from (a healthy voter; prefer a follower: chooseSource). */
  readonly source: SnapshotSource;
  readonly now: () => Date;
  readonly log?: LogLine;
  readonly partSizeBytes?: number;
  readonly queueParts?: number;
  readonly progressEveryBytes?: number;
  /** Above this size the final copy goes part by part (default S3's 5 GiB CopyObject limit). */
  readonly copyObjectMaxBytes?: number;
  readonly copyPartBytes?: number;
  /**
   * The run's overall deadline, shared by every member a run tries (backupCluster's, or the
   * controller's armed before it observed the members). Absent: the run arms its own of `deadlineMs`.
   */
  readonly deadline?: RunDeadline;
  /** Limit of a deadline the run arms itself (default BACKUP_RUN_TIMEOUT_MS). */
  readonly deadlineMs?: number;
  /** Limit of the cleanup after a failure (default BACKUP_CLEANUP_TIMEOUT_MS). */
  readonly cleanupTimeoutMs?: number;
}

/** "2026-12-06T16:36:31.123Z" → "20261206T163631123Z": sorts as time, safe in a key. */
export function stampOf(d: Date): string {
  return d.toISOString().replace(/[-:.]/g, '');
}

export function parseStamp(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(s);
  if (m === null) return undefined;
  const d = new Date(`${m[1] ?? ''}-${m[2] ?? ''}-${m[3] ?? ''}T${m[4] ?? ''}:${m[5] ?? ''}:${m[6] ?? ''}.${m[7] ?? ''}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

export function clusterPrefix(prefix: string | undefined, cluster: string): string {
  return `${normalizePrefix(prefix)}${cluster}/`;
}

export function backupKey(prefix: string | undefined, cluster: string, start: Date): string {
  return `${clusterPrefix(prefix, cluster)}${stampOf(start)}${SNAPSHOT_SUFFIX}`;
}

function incompleteKey(prefix: string | undefined, cluster: string, start: Date): string {
  return `${clusterPrefix(prefix, cluster)}${INCOMPLETE_DIR}${stampOf(start)}${SNAPSHOT_SUFFIX}`;
}

/** Whether the bucket exists and these credentials reach it; a BackupError naming the failure if not. */
export async function checkBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (e) {
    const status = Number((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode);
    if (status === 404) throw new BackupError('BucketMissing', `check bucket s3://${bucket}: bucket "${bucket}" does not exist`, { cause: e });
    throw classifyS3Error(e, `check bucket s3://${bucket}`, bucket);
  }
}

/**
 * Aborts every multipart upload under the cluster's folder (the .incomplete/ upload, or a final copy
 * made part by part, of a backup that failed while the store was unreachable or at its deadline:
 * backups run one at a time per cluster, so none is live) and deletes every object under its
 * .incomplete/ folder. Returns how many it removed.
 */
export async function sweepIncomplete(s3: S3Client, bucket: string, prefix: string | undefined, cluster: string): Promise<number> {
  const dir = `${clusterPrefix(prefix, cluster)}${INCOMPLETE_DIR}`;
  let removed = 0;
  try {
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (let page = 0; page < LIST_PAGES_MAX; page++) {
      const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: clusterPrefix(prefix, cluster), KeyMarker: keyMarker, UploadIdMarker: idMarker, MaxUploads: LIST_PAGE }));
      for (const u of r.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined) continue;
        await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
        removed++;
      }
      if (r.IsTruncated !== true) break;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
    let token: string | undefined;
    for (let page = 0; page < LIST_PAGES_MAX; page++) {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: dir, ContinuationToken: token, MaxKeys: LIST_PAGE }));
      for (const o of r.Contents ?? []) {
        if (o.Key === undefined) continue;
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
        removed++;
      }
      if (r.IsTruncated !== true) break;
      token = r.NextContinuationToken;
    }
  } catch (e) {
    throw classifyS3Error(e, `clean up incomplete uploads under s3://${bucket}/${dir}`, bucket);
  }
  return removed;
}

export interface StoredBackup {
  readonly key: string;
  readonly start: Date;
  readonly sizeBytes: number;
}

/** The cluster's complete backups, oldest first (from the key names; no request per object). */
export async function listBackups(s3: S3Client, bucket: string, prefix: string | undefined, cluster: string): Promise<StoredBackup[]> {
  const dir = clusterPrefix(prefix, cluster);
  const out: StoredBackup[] = [];
  try {
    let token: string | undefined;
    for (let page = 0; page < LIST_PAGES_MAX; page++) {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: dir, Delimiter: '/', ContinuationToken: token, MaxKeys: LIST_PAGE }));
      for (const o of r.Contents ?? []) {
        const key = o.Key ?? '';
        if (!key.endsWith(SNAPSHOT_SUFFIX)) continue;
        const start = parseStamp(key.slice(dir.length, -SNAPSHOT_SUFFIX.length));
        if (start !== undefined) out.push({ key, start, sizeBytes: o.Size ?? 0 });
      }
      if (r.IsTruncated !== true) break;
      token = r.NextContinuationToken;
    }
  } catch (e) {
    throw classifyS3Error(e, `list backups under s3://${bucket}/${dir}`, bucket);
  }
  return out.sort((a, b) => a.start.getTime() - b.start.getTime());
}

export async function deleteBackup(s3: S3Client, bucket: string, key: string): Promise<void> {
  try {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  } catch (e) {
    throw classifyS3Error(e, `delete ${objectUri(bucket, key)}`, bucket);
  }
}

function metadataOf(info: MemberInfo, cluster: string, start: Date, v?: VerifiedSnapshot, end?: Date): Record<string, string> {
  return {
    [META.cluster]: cluster,
    [META.member]: info.memberId,
    [META.version]: info.version,
    [META.revision]: String(info.revision),
    [META.start]: start.toISOString(),
    ...(v !== undefined ? { [META.sha256]: v.objectSha256, [META.size]: String(v.objectBytes) } : {}),
    ...(end !== undefined ? { [META.end]: end.toISOString() } : {}),
  };
}

/**
 * Copies `from` to `to` replacing the metadata; part by part above copyMax (S3's CopyObject limit).
 * `o.s3` carries the run's deadline; a multipart copy that fails is aborted within the cleanup's bound.
 */
async function copyWithMetadata(o: BackupOptions, from: string, to: string, etag: string, bytes: number, meta: Record<string, string>, cleanupS3: () => S3Client): Promise<void> {
  const source = `${o.bucket}/${encodeURIComponent(from).replace(/%2F/g, '/')}`;
  if (bytes <= (o.copyObjectMaxBytes ?? COPY_OBJECT_MAX_BYTES)) {
    await o.s3.send(
      new CopyObjectCommand({ Bucket: o.bucket, Key: to, CopySource: source, CopySourceIfMatch: etag, MetadataDirective: 'REPLACE', Metadata: meta, ContentType: 'application/octet-stream' }),
    );
    return;
  }
  const part = o.copyPartBytes ?? COPY_PART_BYTES;
  const mpu = await o.s3.send(new CreateMultipartUploadCommand({ Bucket: o.bucket, Key: to, Metadata: meta, ContentType: 'application/octet-stream' }));
  const uploadId = mpu.UploadId ?? '';
  try {
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let at = 0, n = 1; at < bytes; at += part, n++) {
      const r = await o.s3.send(
        new UploadPartCopyCommand({ Bucket: o.bucket, Key: to, UploadId: uploadId, PartNumber: n, CopySource: source, CopySourceIfMatch: etag, CopySourceRange: `bytes=${at}-${Math.min(at + part, bytes) - 1}` }),
      );
      parts.push({ PartNumber: n, ETag: r.CopyPartResult?.ETag ?? '' });
    }
    await o.s3.send(new CompleteMultipartUploadCommand({ Bucket: o.bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
  } catch (e) {
    await cleanupS3().send(new AbortMultipartUploadCommand({ Bucket: o.bucket, Key: to, UploadId: uploadId })).catch(() => undefined);
    throw e;
  }
}

/** o.s3 bounded by the cleanup's own limit (a failed run's deadline may have passed). */
function cleanupClient(o: BackupOptions): S3Client {
  return withAbortSignal(o.s3, AbortSignal.timeout(o.cleanupTimeoutMs ?? BACKUP_CLEANUP_TIMEOUT_MS));
}

/**
 * Removes the temporary upload, within its own bound (the run's deadline may have passed); never
 * throws (the next backup's sweep retries what fails here).
 */
async function cleanUp(o: BackupOptions, tmp: string, upload: Upload | undefined, log: LogLine): Promise<void> {
  try {
    await upload?.abort();
  } catch {
    // lib-storage aborts its multipart upload itself on a failure; this only stops it
  }
  try {
    await sweepIncomplete(cleanupClient(o), o.bucket, o.prefix, o.cluster);
  } catch (e) {
    log({ level: 'warn', msg: 'backup: could not clean up the incomplete upload; the next backup sweeps it', key: tmp, error: e instanceof Error ? e.message : String(e) });
  }
}

/**
 * Takes one backup. Resolves with its record once the object is under its final key, complete and
 * verified; rejects with a BackupError (reason for the BackupHealthy condition) otherwise, after
 * cleaning up what it uploaded. Bounded by its deadline (o.deadline, or its own): when that passes,
 * everything in flight is aborted and it rejects with BackupError('Timeout').
 */
export function runBackup(o: BackupOptions): Promise<BackupRecord> {
  return underDeadline(o.deadline, `backup of cluster ${o.cluster}`, o.deadlineMs, (d) => runUnder(o, d));
}

async function runUnder(o: BackupOptions, d: RunDeadline): Promise<BackupRecord> {
  const log = o.log ?? jsonStderr;
  const start = o.now();
  // Every S3 request of the run carries the deadline's signal; the cleanup uses o.s3 with its own.
  const s3 = withAbortSignal(o.s3, d.signal);
  const info = await d.run(`Status of the member at ${o.source.endpoint}`, (signal) => o.source.status(signal));
  if (info.isLearner) throw new BackupError('SnapshotFailed', `member ${info.memberId} at ${o.source.endpoint} is a learner: backups come from voting members`);
  await d.run('bucket check', () => checkBucket(s3, o.bucket));
  const swept = await d.run('sweep of earlier incomplete uploads', () => sweepIncomplete(s3, o.bucket, o.prefix, o.cluster));
  if (swept > 0) log({ level: 'info', msg: 'backup: removed leftovers of an earlier failed backup', cluster: o.cluster, removed: swept });

  const key = backupKey(o.prefix, o.cluster, start);
  const tmp = incompleteKey(o.prefix, o.cluster, start);
  const { stream, cancel } = verifiedSnapshotStream(o.source);
  const every = o.progressEveryBytes ?? PROGRESS_EVERY_BYTES;
  let nextProgress = every;
  const upload = new Upload({
    client: s3,
    params: { Bucket: o.bucket, Key: tmp, Body: stream, ContentType: 'application/octet-stream', Metadata: metadataOf(info, o.cluster, start) },
    partSize: o.partSizeBytes ?? PART_BYTES,
    queueSize: o.queueParts ?? QUEUE_PARTS,
    leavePartsOnError: false,
  });
  upload.on('httpUploadProgress', (p) => {
    const loaded = p.loaded ?? 0;
    if (loaded < nextProgress) return;
    nextProgress = loaded + every;
    const secs = Math.max(0.001, (o.now().getTime() - start.getTime()) / 1000);
    log({ level: 'info', msg: 'backup: progress', cluster: o.cluster, member: info.memberId, key: tmp, uploadedBytes: loaded, 'MB/s': Math.round(loaded / 1e6 / secs) });
  });
  // At the deadline: the member's stream cancelled (the verifier errors with the Timeout), the upload stopped.
  const expire = (): void => {
    stream.destroy(d.error);
    cancel();
    void upload.abort();
  };
  d.signal.addEventListener('abort', expire, { once: true });
  log({ level: 'info', msg: 'backup: started', cluster: o.cluster, member: info.memberId, endpoint: o.source.endpoint, revision: info.revision, key });

  let verified: VerifiedSnapshot | undefined;
  try {
    let uploaded: { ETag?: string | undefined };
    try {
      uploaded = await d.run(`snapshot upload from ${o.source.endpoint}`, () => upload.done());
    } catch (e) {
      // The snapshot's own failure (the member died, a bad trailer) is the cause, not the upload it broke.
      const own = stream.errored;
      throw d.error ?? (own instanceof BackupError ? own : classifyS3Error(e, `upload to ${objectUri(o.bucket, tmp)}`, o.bucket));
    }
    verified = stream.result();
    if (verified === undefined) throw new BackupError('SnapshotFailed', `snapshot from ${o.source.endpoint}: the upload finished before the snapshot verified`);
    const head = await d.run('size check', () => s3.send(new HeadObjectCommand({ Bucket: o.bucket, Key: tmp }))).catch((e: unknown) => {
      throw classifyS3Error(e, `check ${objectUri(o.bucket, tmp)}`, o.bucket);
    });
    if (head.ContentLength !== verified.objectBytes) {
      throw new BackupError('UploadFailed', `${objectUri(o.bucket, tmp)} holds ${String(head.ContentLength)} bytes, the snapshot was ${verified.objectBytes}`);
    }
    const end = o.now();
    const etag = head.ETag ?? uploaded.ETag ?? '';
    const v = verified;
    await d.run('copy to the final key', () => copyWithMetadata({ ...o, s3 }, tmp, key, etag, v.objectBytes, metadataOf(info, o.cluster, start, v, end), () => cleanupClient(o))).catch((e: unknown) => {
      throw classifyS3Error(e, `copy to ${objectUri(o.bucket, key)}`, o.bucket);
    });
    d.signal.removeEventListener('abort', expire);
    await cleanUp(o, tmp, undefined, log);
    const secs = Math.max(0.001, (end.getTime() - start.getTime()) / 1000);
    log({ level: 'info', msg: 'backup: done', cluster: o.cluster, member: info.memberId, uri: objectUri(o.bucket, key), bytes: verified.objectBytes, sha256: verified.objectSha256, seconds: secs, 'MB/s': Math.round((verified.objectBytes / 1e6 / secs) * 10) / 10 });
    return { uri: objectUri(o.bucket, key), bucket: o.bucket, key, sizeBytes: verified.objectBytes, sha256: verified.objectSha256, revision: info.revision, memberId: info.memberId, serverVersion: info.version, start, end };
  } catch (e) {
    d.signal.removeEventListener('abort', expire);
    // Past the deadline every failure is the deadline's (an aborted request fails as "aborted").
    const err = d.error ?? (e instanceof BackupError ? e : classifyS3Error(e, `backup to ${objectUri(o.bucket, key)}`, o.bucket));
    cancel();
    stream.destroy();
    await cleanUp(o, tmp, upload, log);
    log({ level: 'error', msg: 'backup: failed', cluster: o.cluster, member: info.memberId, reason: err.reason, phase: d.phase, error: err.message });
    throw err;
  }
}

/**
 * One backup at a time per cluster (two schedules due at once, or a scheduled and an on-demand
 * backup): tryAcquire returns a release function, or undefined while a backup of that cluster runs.
 */
export class BackupSlots {
  private readonly busy = new Set<string>();

  tryAcquire(cluster: string): (() => void) | undefined {
    if (this.busy.has(cluster)) return undefined;
    this.busy.add(cluster);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.busy.delete(cluster);
    };
  }

  running(cluster: string): boolean {
    return this.busy.has(cluster);
  }
}

export { SnapshotSource };
