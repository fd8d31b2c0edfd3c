// One scheduled or on-demand backup of a cluster, as the controller runs it: try the members in
// sourceOrder() until one snapshot uploads (a member failing mid-snapshot is skipped, the next one
// tried; an object-store failure ends the attempt at once since another member would meet the same
// store), then apply the retention policy to the cluster's objects. The caller holds the cluster's
// BackupSlots slot and turns the outcome into status (BackupHealthy, lastSuccessfulBackup), Events
// and metrics. One deadline (deadline.ts: the caller's, or its own of BACKUP_RUN_TIMEOUT_MS) bounds
// every attempt and the pruning together; when it passes the whole run fails with reason Timeout (no
// further member is tried), so the caller's slot is released.
import type * as grpc from '@grpc/grpc-js';
import { deleteBackup, listBackups, runBackup, type BackupOptions, type BackupRecord } from './backup.js';
import { underDeadline, type RunDeadline } from './deadline.js';
import { BackupError } from './errors.js';
import { toDelete, type RetentionPolicy } from './retention.js';
import { SnapshotSource } from './snapshot.js';
import { sourceOrder, type SourceCandidate } from './source.js';
import { withAbortSignal } from './store.js';

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

export function backupCluster(o: ClusterBackupOptions): Promise<ClusterBackupResult> {
  return underDeadline(o.deadline, `backup of cluster ${o.cluster}`, o.deadlineMs, (d) => attemptMembers(o, d));
}

async function attemptMembers(o: ClusterBackupOptions, d: RunDeadline): Promise<ClusterBackupResult> {
  const order = sourceOrder(o.members).slice(0, SOURCE_ATTEMPTS_MAX);
  if (order.length === 0) throw new BackupError('SnapshotFailed', `cluster ${o.cluster}: no healthy voting member to take a snapshot from`);
  const attempts: Attempt[] = [];
  for (const m of order) {
    const source = new SnapshotSource(m.endpoint, o.memberCredentials);
    try {
      const record = await runBackup({ ...o, source, deadline: d });
      attempts.push({ endpoint: m.endpoint, memberId: m.memberId, error: undefined });
      const policy = o.retention;
      const pruned = policy === undefined ? [] : await d.run('retention', (signal) => prune({ ...o, s3: withAbortSignal(o.s3, signal) }, policy));
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
