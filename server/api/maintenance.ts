// The Maintenance service (E v3rpc/maintenance.go, v3_server.go): Status, Alarm, Defragment, Hash,
// HashKV, Snapshot, MoveLeader and Downgrade.
//
// Downgrade: Cairn supports no downgrade target (its storage is not an older etcd's), so it refuses
// as etcd 3.5 refuses an unsupported target: a malformed version gets 'wrong downgrade target
// version format', any well-formed one 'invalid downgrade target version'; CANCEL gets 'no inflight
// downgrade job'. (etcd 3.4, the reference binary here, has no Downgrade RPC at all.)
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import {
  AlarmType,
  DowngradeRequest_DowngradeAction,
  encodeDefragmentResponse,
  encodeHashKVResponse,
  encodeHashResponse,
  encodeMoveLeaderResponse,
  encodeSnapshotResponse,
  encodeStatusResponse,
  type AlarmRequest,
  type DowngradeRequest,
  type HashKVRequest,
  type MoveLeaderRequest,
} from '../../proto/gen/etcdserverpb.js';
import { ClientError, ServerRefusal } from '../base/errors.js';
import { CLIENT_SNAPSHOT_STALL_MS, DEFAULT_QUOTA_BYTES, SNAPSHOT_CHUNK_BYTES } from '../base/limits.js';
import type { Logger } from '../base/log.js';
import type { MaintenancePath, WritePath } from '../node/index.js';
import { toGrpcError } from './errors.js';
import type { ServerStream, ServerStreamHandler } from './grpc/index.js';
import { GrpcError } from './grpc/index.js';
import { currentHeader, type HeaderSource } from './header.js';

export interface MaintenanceApiOptions {
  /**
   * The etcd version this server reports as Status.version. Clients parse it: the Go client's
   * RejectOldCluster wants >= 3.2, kube-apiserver enables RequestWatchProgress only for a semver
   * >= 3.4.31 outside [3.5.0, 3.5.13).
   */
  readonly version: string;
  /** --quota-backend-bytes (0 = etcd's 2 GiB default), reported as dbSizeQuota. */
  readonly backendQuotaBytes: number;
  /** Alarm requests go through the log (as etcd's, GET included). */
  readonly writes?: WritePath;
  /**
   * The image Maintenance.Snapshot streams for a copy of the database (main.ts: snap/image.ts
   * boltImage, etcd's bbolt format); without it, the copy's own bytes (Cairn's LMDB file).
   */
  readonly snapshotImage?: (copyPath: string) => Promise<SnapshotImage>;
  readonly log?: Logger;
}

export interface MaintenanceApi {
  readonly status: () => Uint8Array;
  readonly moveLeader: (r: MoveLeaderRequest) => Promise<Uint8Array>;
  readonly hashKV: (r: HashKVRequest) => Promise<Uint8Array>;
  readonly hash: () => Promise<Uint8Array>;
  readonly alarm: (r: AlarmRequest) => Promise<Uint8Array>;
  readonly defragment: () => Promise<Uint8Array>;
  readonly downgrade: (r: DowngradeRequest) => Uint8Array;
  readonly snapshot: ServerStreamHandler;
}

const ALARM_NAMES: Record<number, string> = { [AlarmType.NONE]: 'NONE', [AlarmType.NOSPACE]: 'NOSPACE', [AlarmType.CORRUPT]: 'CORRUPT' };

/** An alarm as etcd's Status.errors shows it (gogoproto's compact text of AlarmMember). */
export function alarmText(a: { readonly memberID: bigint; readonly alarm: number }): string {
  return `memberID:${a.memberID} alarm:${ALARM_NAMES[a.alarm] ?? String(a.alarm)} `;
}

/**
 * A version as etcd 3.5's convertToClusterVersion accepts it: go-semver's NewVersion (dotted-tri
 * MAJOR.MINOR.PATCH of decimal numbers, leading zeros allowed, no "v"; optional -prerelease and
 * +metadata), tried as given and then with ".0" appended (so "3.4" passes).
 */
const DOTTED_TRI = /^\d+\.\d+\.\d+(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

function isClusterVersion(v: string): boolean {
  return DOTTED_TRI.test(v) || DOTTED_TRI.test(`${v}.0`);
}

function downgradeRefusal(r: DowngradeRequest): ClientError {
  if (r.action === DowngradeRequest_DowngradeAction.CANCEL) return new ClientError('noInflightDowngrade');
  if (!isClusterVersion(r.version)) return new ClientError('invalidDowngradeTargetFormat');
  return new ClientError('invalidDowngradeTarget');
}

/** Output the stream may hold unsent before the sender waits for it to drain. */
const SNAPSHOT_BUFFER_BYTES = 8 * 1024 * 1024;

/** A progress line every this many bytes of a snapshot stream. */
const SNAPSHOT_PROGRESS_BYTES = 256 * 1024 * 1024;

/**
 * What Maintenance.Snapshot streams: a database image of known size read in chunks (snap/image.ts:
 * the etcd bbolt database of a copy of this member's database, made in a worker thread).
 */
export interface SnapshotImage {
  readonly bytes: number;
  /** SnapshotResponse.version: the image's storage version (etcd 3.6 sends its own). */
  readonly version: string;
  next(): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** The copy's own bytes as an image (no snapshotImage option). */
async function fileImage(path: string): Promise<SnapshotImage> {
  const fh = await open(path, 'r');
  const bytes = (await fh.stat()).size;
  let at = 0;
  return {
    bytes,
    version: '',
    next: async () => {
      if (at >= bytes) return undefined;
      const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, bytes - at));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) throw new Error(`snapshot copy ${path} ended at ${at} of ${bytes} bytes`);
      at += bytesRead;
      return buf.subarray(0, bytesRead);
    },
    close: () => fh.close(),
  };
}

/** Streams an image as SnapshotResponse chunks, then its SHA-256 as the last chunk (remaining 0). */
async function streamSnapshot(image: SnapshotImage, out: ServerStream, signal: AbortSignal, log: Logger | undefined): Promise<void> {
  const { bytes, version } = image;
  const started = Date.now();
  let nextProgress = SNAPSHOT_PROGRESS_BYTES;
  log?.info('sending database snapshot to client', { 'total-bytes': bytes, 'storage-version': version });
  const sha = createHash('sha256');
  let sent = 0;
  for (;;) {
    if (signal.aborted || out.closed) return;
    const buf = await image.next();
    if (buf === undefined) break;
    if (sent + buf.length > bytes) throw new Error(`snapshot image longer than its announced ${bytes} bytes`);
    const messages: Uint8Array[] = [];
    for (let at = 0; at < buf.length; at += SNAPSHOT_CHUNK_BYTES) {
      const chunk = buf.subarray(at, Math.min(at + SNAPSHOT_CHUNK_BYTES, buf.length));
      sha.update(chunk);
      sent += chunk.length;
      messages.push(encodeSnapshotResponse({ remainingBytes: bytes - sent, blob: chunk, version }));
    }
    if (signal.aborted || out.closed) return;
    out.sendMany(messages);
    if (sent >= nextProgress) {
      nextProgress += SNAPSHOT_PROGRESS_BYTES;
      log?.info('sending database snapshot to client: progress', { 'sent-bytes': sent, 'total-bytes': bytes, 'percent': Math.floor((100 * sent) / bytes) });
    }
    if (out.bufferedBytes > SNAPSHOT_BUFFER_BYTES && !out.closed) {
      // A client that stopped reading must not hold the copy (and its CLIENT_SNAPSHOTS_MAX slot) forever.
      let stalled: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        out.onDrain(resolve);
        signal.addEventListener('abort', () => resolve(), { once: true });
        stalled = setTimeout(() => reject(new ServerRefusal('timeout', `snapshot stream: the client read nothing for ${CLIENT_SNAPSHOT_STALL_MS} ms`)), CLIENT_SNAPSHOT_STALL_MS);
      }).finally(() => clearTimeout(stalled));
    }
  }
  if (sent !== bytes) throw new Error(`snapshot image ended at ${sent} of its announced ${bytes} bytes`);
  log?.info('sending database sha256 checksum to client', { 'total-bytes': bytes });
  out.send(encodeSnapshotResponse({ remainingBytes: 0, blob: sha.digest(), version }));
  out.end();
  const tookMs = Date.now() - started;
  log?.info('sent database snapshot to client', { 'total-bytes': bytes, 'took-ms': tookMs, 'MB/s': Math.round(bytes / 1e3 / Math.max(1, tookMs)) });
}

/** Status.errors entry while the member knows no leader (etcd's ErrNoLeader text). */
const NO_LEADER = toGrpcError(new ServerRefusal('noLeader')).details;

/**
 * Status.storageVersion (field 11): etcd 3.6 reports its storage schema version, "<major>.<minor>.0"
 * of the server (3.6.8 -> "3.6.0"); etcd 3.5 leaves it empty. Cairn follows the etcd version it reports.
 */
export function storageVersionOf(version: string): string {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 6) ? `${major}.${minor}.0` : '';
}

export function maintenanceApi(m: MaintenancePath, hdr: HeaderSource, opts: MaintenanceApiOptions): MaintenanceApi {
  const dbSizeQuota = opts.backendQuotaBytes > 0 ? opts.backendQuotaBytes : DEFAULT_QUOTA_BYTES;
  return {
    status: () => {
      const s = m.status();
      return encodeStatusResponse({
        header: currentHeader(hdr),
        version: opts.version,
        dbSize: s.dbSizeBytes,
        leader: s.leader,
        raftIndex: s.raftIndex,
        raftTerm: s.raftTerm,
        raftAppliedIndex: s.raftAppliedIndex,
        errors: [...(s.leader === 0n ? [NO_LEADER] : []), ...s.alarms.map(alarmText)],
        dbSizeInUse: s.dbSizeInUseBytes,
        isLearner: s.isLearner,
        storageVersion: storageVersionOf(opts.version),
        dbSizeQuota,
      });
    },
    // etcd answers an empty MoveLeaderResponse (no header) once the target leads.
    moveLeader: async (r) => {
      await m.moveLeader(r.targetID);
      return encodeMoveLeaderResponse({});
    },
    // Header revision = the current revision (etcd's HashByRev returns it), hash_revision = the one hashed.
    hashKV: async (r) => {
      const h = await m.hashKV(r.revision);
      return encodeHashKVResponse({ header: currentHeader(hdr), hash: h.hash, compactRevision: h.compactRevision, hashRevision: h.hashRevision });
    },
    hash: async () => {
      const h = await m.hash();
      return encodeHashResponse({ header: { ...currentHeader(hdr), revision: h.revision }, hash: h.hash });
    },
    alarm: (r) => {
      if (opts.writes === undefined) return Promise.reject(new ServerRefusal('stopped'));
      return opts.writes.write({ alarm: r });
    },
    // etcd answers Defragment with an empty response once the file is rewritten.
    defragment: async () => {
      await m.defragment();
      return encodeDefragmentResponse({});
    },
    downgrade: (r) => {
      throw downgradeRefusal(r);
    },
    snapshot: (_req, out, ctx) => {
      const failed = (err: unknown): void => {
        opts.log?.warn('snapshot stream failed', { error: err });
        const e = toGrpcError(err);
        out.end(new GrpcError(e.code, e.details));
      };
      const run = async (): Promise<void> => {
        const copy = await m.snapshotCopy();
        try {
          const image = await (opts.snapshotImage ?? fileImage)(copy.path);
          try {
            await streamSnapshot(image, out, ctx.signal, opts.log);
          } finally {
            await image.close();
          }
        } finally {
          copy.release();
        }
      };
      run().catch(failed);
    },
  };
}
