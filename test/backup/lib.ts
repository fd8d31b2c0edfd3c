// Shared pieces of the backup tests: the S3 server and a Cairn cluster, loading data, reading the
// whole keyspace at a revision, choosing the snapshot source as the operator does, and starting a
// member from a restored data dir.
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { SnapshotSource, restoreMember, s3Client, sourceOrder, type BackupRecord, type LogLine, type RestoreMember, type RestoreResult, type SourceCandidate } from '../../operator/backup/index.js';
import type { Cluster } from '../harness/cluster.js';
import type { EtcdClient, Msg } from '../harness/client.js';
import { freePort, REPO_ROOT, startCairn, tempDir, type ServerProc } from '../harness/procs.js';
import { S3_ADMIN, S3_REGION, type S3Keys, type S3Server } from '../harness/s3.js';

export const CAIRN_BIN = join(REPO_ROOT, 'server', 'bin', 'cairn');

export function clientFor(s3: S3Server, keys: S3Keys = S3_ADMIN, endpoint = s3.endpoint): S3Client {
  return s3Client({ bucket: '', endpoint, region: S3_REGION, forcePathStyle: true }, keys);
}

/** Collects the JSON log lines of a backup (and echoes progress to stderr for the reader). */
export function logSink(): { log: LogLine; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    log: (l) => {
      lines.push(l);
      if (l['msg'] !== 'backup: progress') console.error(JSON.stringify(l));
    },
  };
}

/** Puts `count` values of `bytes` random-ish bytes under prefix, `inFlight` at a time. */
export async function load(c: EtcdClient, prefix: string, count: number, bytes: number, inFlight = 4): Promise<void> {
  let next = 0;
  const value = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) value[i] = (i * 2654435761) >>> 24;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      value.writeUInt32BE(i, 0);
      const r = await c.put({ key: Buffer.from(`${prefix}${String(i).padStart(8, '0')}`), value }, { timeoutMs: 30_000 });
      if (!r.ok) throw new Error(`put ${prefix}${i}: ${r.details}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
}

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
}

/** Every key (and a digest of its value) at `revision` (0: current), and the header revision. */
export async function keyspace(c: EtcdClient, revision = 0): Promise<{ kvs: KeyValue[]; headerRevision: number; error?: string }> {
  const r = await c.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), revision, serializable: true }, { timeoutMs: 60_000 });
  if (!r.ok) return { kvs: [], headerRevision: 0, error: r.details };
  const kvs = (r.value['kvs'] as Msg[]).map((kv) => {
    const v = kv['value'] as Buffer;
    return { key: (kv['key'] as Buffer).toString('utf8'), value: v.length > 64 ? `${v.length}:${v.subarray(0, 8).toString('hex')}` : v.toString('utf8'), modRevision: Number(kv['mod_revision']) };
  });
  return { kvs, headerRevision: Number((r.value['header'] as Msg)['revision']) };
}

/** The members as the operator sees them, in the order a backup tries them. */
export async function candidates(c: Cluster): Promise<SourceCandidate[]> {
  const out: SourceCandidate[] = [];
  for (const m of c.running()) {
    const s = await c.status(m.name);
    if (s === undefined) continue;
    // The harness prints ids in decimal; the operator (and etcdctl) in hex.
    out.push({ endpoint: m.endpoint, memberId: BigInt(s.id).toString(16), leaderId: BigInt(s.leader).toString(16), isLearner: s.isLearner, healthy: true, revision: s.revision });
  }
  return sourceOrder(out);
}

export function sourceFor(endpoint: string): SnapshotSource {
  return new SnapshotSource(endpoint);
}

/** Everything under the cluster's .incomplete/ folder: multipart uploads and objects. */
export async function incomplete(s3: S3Client, bucket: string, prefix: string): Promise<{ uploads: number; objects: number }> {
  const u = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  const o = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const uploads = (u.Uploads ?? []).filter((x) => (x.Key ?? '').includes('.incomplete/')).length;
  const objects = (o.Contents ?? []).filter((x) => (x.Key ?? '').includes('.incomplete/')).length;
  return { uploads, objects };
}

export async function exists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw e;
  }
}

export interface RestoreTarget {
  readonly name: string;
  readonly token: string;
  readonly peerUrl: string;
  readonly dataDir: string;
}

/** Ports and a (not yet existing) data dir for a one-member cluster restored from a backup. */
export async function restoreTarget(name: string): Promise<RestoreTarget> {
  const peerUrl = `http://127.0.0.1:${String(await freePort())}`;
  return { name, token: `restored-${process.pid}-${name}`, peerUrl, dataDir: join(tempDir('cairn-restore-'), name) };
}

export function startRestored(t: RestoreTarget): Promise<ServerProc> {
  return startCairn({
    name: t.name,
    dataDir: t.dataDir,
    extraArgs: ['--listen-peer-urls', t.peerUrl, '--initial-advertise-peer-urls', t.peerUrl, '--initial-cluster', `${t.name}=${t.peerUrl}`, '--initial-cluster-token', t.token],
  });
}

/**
 * The operator's restore path for one member from a backup's record: download (to a fresh temp dir)
 * verified against the record's size and SHA-256, then `cairn snapshot restore` (bumpRevision
 * undefined: the operator's default bump and compaction mark; 0: neither).
 */
export function restoreFromRecord(s3: S3Client, bucket: string, rec: BackupRecord, member: RestoreMember, bumpRevision?: number): Promise<RestoreResult> {
  return restoreMember({
    s3,
    bucket,
    key: rec.key,
    expect: { sizeBytes: rec.sizeBytes, sha256: rec.sha256 },
    downloadPath: join(tempDir('cairn-download-'), 'backup.snapshot'),
    member,
    cairnBin: CAIRN_BIN,
    ...(bumpRevision !== undefined ? { bumpRevision } : {}),
  });
}
