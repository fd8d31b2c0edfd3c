// Maintenance.Snapshot as a byte stream, verified on the way through. The server sends the database
// in chunks (Cairn: 32 KiB, like etcd) whose remaining_bytes count down to 0, then one more message
// (remaining_bytes 0 too) whose blob is the SHA-256 of every byte before it. SnapshotVerifier passes the
// bytes through (the object is exactly what `etcdctl snapshot save` writes: data, then the 32-byte
// trailer) and holds the trailer back until it matches, so a consumer sees the end of the stream only
// after the snapshot verified; anything else (a gap in the count, a wrong or missing trailer, the
// member gone) destroys the stream with a BackupError('SnapshotFailed').
//
// Memory: grpc-js reads the next message only when the consumer pulls (objectMode highWaterMark
// SNAPSHOT_QUEUE_MESSAGES), and HTTP/2 flow control stops the member beyond that: at most
// SNAPSHOT_QUEUE_MESSAGES chunks (32 KiB each) wait here.
import * as grpc from '@grpc/grpc-js';
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { MaintenanceService, type SnapshotResponse } from '../../proto/gen/etcdserverpb.js';
import { BackupError } from './errors.js';

export const SHA256_BYTES = 32;
/** A snapshot's data is a whole number of these; with the trailer, size % 512 == 32 (etcd's rule). */
export const SECTOR_BYTES = 512;
/** Chunks buffered between the gRPC stream and the consumer. */
export const SNAPSHOT_QUEUE_MESSAGES = 64;
/** A stream that delivers nothing for this long while the consumer waits is cancelled. */
export const SNAPSHOT_IDLE_TIMEOUT_MS = 60_000;
/** Deadline of the unary Status call. */
export const STATUS_TIMEOUT_MS = 5_000;
/** Largest gRPC message accepted (a chunk is 32 KiB; etcd's server may send up to its request limit). */
const MAX_MESSAGE_BYTES = 16 << 20;

export interface MemberInfo {
  /** Hex member id, as etcdctl prints it. */
  readonly memberId: string;
  readonly leaderId: string;
  readonly revision: number;
  readonly version: string;
  readonly isLearner: boolean;
  readonly dbSizeBytes: number;
}

/** A connection to one member's client endpoint ("host:port") for Status and Snapshot. */
export class SnapshotSource {
  private readonly client: grpc.Client;

  constructor(
    readonly endpoint: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    this.client = new grpc.Client(endpoint, credentials, {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  /** Status of the member; `signal` (a run's deadline) cancels the call. */
  status(signal?: AbortSignal): Promise<MemberInfo> {
    const m = MaintenanceService.Status;
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        m.path,
        (x: object) => m.encodeRequest(x),
        (b: Buffer) => m.decodeResponse(b),
        {},
        new grpc.Metadata(),
        { deadline: Date.now() + STATUS_TIMEOUT_MS },
        (err, r) => {
          signal?.removeEventListener('abort', cancel);
          if (err !== null || r === undefined) {
            reject(new BackupError('SnapshotFailed', `Status of member at ${this.endpoint}: ${err?.details ?? 'empty response'}`, { cause: err }));
            return;
          }
          resolve({
            memberId: (r.header?.memberId ?? 0n).toString(16),
            leaderId: r.leader.toString(16),
            revision: r.header?.revision ?? 0,
            version: r.version,
            isLearner: r.isLearner,
            dbSizeBytes: r.dbSize,
          });
        },
      );
      const cancel = (): void => call.cancel();
      if (signal?.aborted === true) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /** The raw message stream; pipe it through a SnapshotVerifier. */
  snapshot(): grpc.ClientReadableStream<SnapshotResponse> {
    const m = MaintenanceService.Snapshot;
    return this.client.makeServerStreamRequest(
      m.path,
      (x: object) => m.encodeRequest(x),
      (b: Buffer) => m.decodeResponse(b),
      {},
      new grpc.Metadata(),
      {},
    );
  }

  close(): void {
    this.client.close();
  }
}

export interface VerifiedSnapshot {
  /** Bytes of the object: data and trailer. */
  readonly objectBytes: number;
  /** SHA-256 (hex) of the object bytes (data and trailer). */
  readonly objectSha256: string;
  /** The trailer: SHA-256 (hex) of the data. */
  readonly dataSha256: string;
}

/**
 * SnapshotResponse messages in, the snapshot file's bytes out; ends only after the trailer matched.
 * `result()` is defined once the stream has ended.
 */
export class SnapshotVerifier extends Transform {
  private readonly dataHash: Hash = createHash('sha256');
  private readonly objectHash: Hash = createHash('sha256');
  private dataBytes = 0;
  /** remaining_bytes announced by the first chunk + its length: the data size. */
  private expectedDataBytes: number | undefined;
  private trailer: Buffer | undefined;
  private done: VerifiedSnapshot | undefined;

  constructor(private readonly source: string) {
    super({ writableObjectMode: true, readableObjectMode: false, writableHighWaterMark: SNAPSHOT_QUEUE_MESSAGES });
  }

  result(): VerifiedSnapshot | undefined {
    return this.done;
  }

  private fail(msg: string): BackupError {
    return new BackupError('SnapshotFailed', `snapshot from ${this.source}: ${msg}`);
  }

  override _transform(m: SnapshotResponse, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.trailer !== undefined) {
      cb(this.fail('a chunk arrived after the SHA-256 trailer'));
      return;
    }
    if (this.expectedDataBytes !== undefined && this.dataBytes === this.expectedDataBytes) {
      // The data is complete (the last data chunk says 0 remain, as etcd's does): this is the trailer,
      // checked in _flush once the stream says it ended.
      if (m.remainingBytes !== 0 || m.blob.length !== SHA256_BYTES) {
        cb(this.fail(`after the last data chunk came ${m.blob.length} bytes (remaining ${m.remainingBytes}), not a ${SHA256_BYTES}-byte SHA-256`));
        return;
      }
      this.trailer = Buffer.from(m.blob);
      cb();
      return;
    }
    if (this.expectedDataBytes === undefined) this.expectedDataBytes = m.remainingBytes + m.blob.length;
    this.dataBytes += m.blob.length;
    if (m.blob.length === 0 || this.dataBytes + m.remainingBytes !== this.expectedDataBytes) {
      cb(this.fail(`chunk at byte ${this.dataBytes} says ${m.remainingBytes} bytes remain; the first chunk announced ${this.expectedDataBytes} in all`));
      return;
    }
    this.dataHash.update(m.blob);
    this.objectHash.update(m.blob);
    cb(null, m.blob);
  }

  override _flush(cb: TransformCallback): void {
    if (this.trailer === undefined) {
      cb(this.fail(`the stream ended after ${this.dataBytes} bytes without its SHA-256 trailer`));
      return;
    }
    if (this.expectedDataBytes !== undefined && this.dataBytes !== this.expectedDataBytes) {
      cb(this.fail(`the stream ended after ${this.dataBytes} of ${this.expectedDataBytes} bytes`));
      return;
    }
    if (this.dataBytes % SECTOR_BYTES !== 0) {
      cb(this.fail(`${this.dataBytes} bytes of data is not a whole number of ${SECTOR_BYTES}-byte sectors`));
      return;
    }
    const computed = this.dataHash.digest();
    if (!computed.equals(this.trailer)) {
      cb(this.fail(`SHA-256 mismatch: the trailer says ${this.trailer.toString('hex')}, the data hashes to ${computed.toString('hex')}`));
      return;
    }
    this.objectHash.update(this.trailer);
    this.done = { objectBytes: this.dataBytes + SHA256_BYTES, objectSha256: this.objectHash.digest('hex'), dataSha256: computed.toString('hex') };
    cb(null, this.trailer);
  }
}

/**
 * Member's snapshot stream, verified: the gRPC stream piped into a SnapshotVerifier, with gRPC
 * errors and an idle stream turned into BackupError('SnapshotFailed') on the verifier.
 */
export function verifiedSnapshotStream(src: SnapshotSource, idleTimeoutMs = SNAPSHOT_IDLE_TIMEOUT_MS): { stream: SnapshotVerifier; cancel: () => void } {
  const call = src.snapshot();
  const v = new SnapshotVerifier(src.endpoint);
  let idle: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      // Waiting on the consumer (the object store is slow), not on the member: keep waiting.
      if (v.writableLength >= v.writableHighWaterMark || v.readableLength >= v.readableHighWaterMark) {
        arm();
        return;
      }
      call.cancel();
      v.destroy(new BackupError('SnapshotFailed', `snapshot from ${src.endpoint}: no data for ${idleTimeoutMs} ms`));
    }, idleTimeoutMs);
  };
  arm();
  call.on('data', arm);
  call.on('error', (e: grpc.ServiceError) => {
    clearTimeout(idle);
    v.destroy(new BackupError('SnapshotFailed', `snapshot from ${src.endpoint}: ${e.details} (gRPC code ${String(e.code)})`, { cause: e }));
  });
  call.on('end', () => clearTimeout(idle));
  v.on('close', () => clearTimeout(idle));
  call.pipe(v);
  return {
    stream: v,
    cancel: () => {
      clearTimeout(idle);
      call.cancel();
    },
  };
}
