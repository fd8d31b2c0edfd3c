// One scheduled or on-demand backup of a cluster, as the controller runs it: try the members in
// sourceOrder() until one snapshot uploads (a member failing mid-snapshot is skipped, the next one
// tried; an object-store failure ends the attempt at once since another member would meet the same
// store), then apply the retention policy to the cluster's objects. The caller holds the cluster's
// BackupSlots slot and turns the outcome into status (BackupHealthy, lastSuccessfulBackup), Events
// and metrics.
import type * as grpc from '@grpc/grpc-js';
import { deleteBackup, listBackups, runBackup, type BackupOptions, type BackupRecord } from './backup.js';
import { BackupError } from './errors.js';
import { toDelete, type RetentionPolicy } from './retention.js';
import { SnapshotSource } from './snapshot.js';
import { sourceOrder, type SourceCandidate } from './source.js';

/** Members tried per backup at most (a 7-member cluster has 6 followers and the leader). */
export const SOURCE_ATTEMPTS_MAX = 7;

export interface ClusterBackupOptions extends Omit<BackupOptions, 'source'> {
  readonly members: readonly SourceCandidate[];
  readonly retention?: RetentionPolicy;
  /** Credentials of the members' client endpoints (default insecure). */
  readonly memberCredentials?: grpc.ChannelCredentials;
}

export interface Attempt {
  readonly endpoint: string;
  readonly memberId: string;
  readonly error: BackupError | undefined;
}

export interface ClusterBackupResult {
  readonly record: BackupRecord;
  readonly attempts: readonly Attempt[];
  /** Keys deleted by the retention policy, oldest first. */
  readonly pruned: readonly string[];
}

export async function backupCluster(o: ClusterBackupOptions): Promise<ClusterBackupResult> {
  const order = sourceOrder(o.members).slice(0, SOURCE_ATTEMPTS_MAX);
  if (order.length === 0) throw new BackupError('SnapshotFailed', `cluster ${o.cluster}: no healthy voting member to take a snapshot from`);
  const attempts: Attempt[] = [];
  for (const m of order) {
    const source = new SnapshotSource(m.endpoint, o.memberCredentials);
    try {
      const record = await runBackup({ ...o, source });
      attempts.push({ endpoint: m.endpoint, memberId: m.memberId, error: undefined });
      const pruned = o.retention === undefined ? [] : await prune(o, o.retention);
      return { record, attempts, pruned };
    } catch (e) {
      const err = e instanceof BackupError ? e : new BackupError('UploadFailed', String(e), { cause: e });
      attempts.push({ endpoint: m.endpoint, memberId: m.memberId, error: err });
      if (err.reason !== 'SnapshotFailed') throw err;
    } finally {
      source.close();
    }
  }
  const last = attempts[attempts.length - 1]?.error;
  throw new BackupError('SnapshotFailed', `cluster ${o.cluster}: every member failed: ${attempts.map((a) => `${a.memberId}: ${a.error?.message ?? '?'}`).join('; ')}`, { cause: last });
}

/** Applies the policy to the cluster's objects; returns the keys deleted, oldest first. */
export async function prune(o: Pick<BackupOptions, 's3' | 'bucket' | 'prefix' | 'cluster' | 'now'>, policy: RetentionPolicy): Promise<string[]> {
  const listed = await listBackups(o.s3, o.bucket, o.prefix, o.cluster);
  const del = toDelete(
    listed.map((b) => ({ id: b.key, startMs: b.start.getTime(), good: true })),
    policy,
    o.now().getTime(),
  );
  for (const k of del) await deleteBackup(o.s3, o.bucket, k);
  return del;
}
