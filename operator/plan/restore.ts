// Restore gating (pure): a cluster with spec.bootstrap.fromBackup creates nothing until its backup
// object has been read whole and matched its size and SHA-256 (the verifyBackup step; act/ records
// the outcome in status.restore). A refused object leaves the cluster without a StatefulSet,
// Restored=False/RestoreRefused with the reason, and is not read again (a store that could not be
// read is, after RESTORE_RETRY_MS). Once verified, pod 0 restores the object (member/) and the
// cluster grows as usual; status.restore.finishedAt is set when the first member answers.
import type { Condition, EtcdClusterStatus, RestoreStatus } from '../api/index.js';
import { waiting, type Decision } from './decision.js';
import { names } from './desired.js';
import type { View } from './view.js';

/**
 * Longest act/ spends reading one backup object (a 1 GiB object from a local store takes seconds;
 * from a remote one minutes). While a verification started less than this (plus a grace) ago has no
 * outcome in status, the planner waits instead of starting another.
 */
export const RESTORE_VERIFY_DEADLINE_MS = 10 * 60_000;
const VERIFY_GRACE_MS = 30_000;
/** A verification that failed because the store could not be read is tried again after this. */
export const RESTORE_RETRY_MS = 60_000;

/** Whether the cluster restores from a backup and has not been created yet. */
export function restorePending(v: View): boolean {
  return v.spec.bootstrap !== undefined && v.o.statefulSet === undefined && v.o.cluster.status?.clusterId === undefined;
}

const since = (v: View, at: string | undefined): number => (at === undefined ? Infinity : v.nowMs - Date.parse(at));

/** The decision while a restore is not verified yet; undefined: verified (or not a restore). */
export function restoreGate(v: View, s: EtcdClusterStatus): Decision | undefined {
  if (!restorePending(v)) return undefined;
  const r = s.restore;
  if (r?.verifiedAt !== undefined) return undefined;
  if (r?.refusal !== undefined && !(r.retryable === true && since(v, r.refusedAt) >= RESTORE_RETRY_MS)) {
    const msg = r.refusal;
    if (r.retryable === true) return { ...waiting(v, s, `${msg}; reading it again in ${String(RESTORE_RETRY_MS / 1000)} s`, { reason: 'RestoreRefused', message: msg }), step: { kind: 'wait', requeueMs: RESTORE_RETRY_MS } };
    return { step: { kind: 'none' }, reason: msg, status: s, degraded: { reason: 'RestoreRefused', message: msg } };
  }
  if (r?.verifyStartedAt !== undefined && r.refusal === undefined && since(v, r.verifyStartedAt) < RESTORE_VERIFY_DEADLINE_MS + VERIFY_GRACE_MS) {
    return waiting(v, s, `waiting for the verification of ${r.uri}`);
  }
  const src = v.o.restoreSource;
  if (src === undefined || !src.ok) return waiting(v, s, `waiting for the backup to restore: ${src?.why ?? 'not resolved'}`);
  const restore: RestoreStatus = {
    uri: src.uri,
    sha256: src.expect?.sha256 ?? '',
    size: src.expect?.sizeBytes ?? 0,
    revision: src.expect?.revision ?? 0,
    source: src.location,
    verifyStartedAt: v.o.now,
  };
  return { step: { kind: 'verifyBackup', source: src }, reason: `verify ${src.uri} before any member is created`, status: { ...s, restore } };
}

/** status.restore.finishedAt once the restored cluster's first member answers. */
export function restoreFinished(v: View, s: EtcdClusterStatus): EtcdClusterStatus {
  const r = s.restore;
  if (v.spec.bootstrap === undefined || r?.verifiedAt === undefined || r.finishedAt !== undefined) return s;
  if (s.clusterId === undefined || v.members === undefined || v.members.length === 0) return s;
  return { ...s, restore: { ...r, finishedAt: v.o.now } };
}

/** The Restored condition's status, reason and message (undefined: the cluster is not a restore). */
export function restoredCondition(v: View, s: EtcdClusterStatus): Pick<Condition, 'status' | 'reason' | 'message'> | undefined {
  if (v.spec.bootstrap === undefined) return undefined;
  const r = s.restore;
  if (r?.finishedAt !== undefined) {
    return { status: 'True', reason: 'RestoredFromBackup', message: `restored from ${r.uri} (revision ${String(r.revision)}, ${String(r.size)} bytes, sha256 ${r.sha256})` };
  }
  if (r?.refusal !== undefined) return { status: 'False', reason: 'RestoreRefused', message: r.refusal };
  // Verified, but pod 0's restore failed (its entrypoint exits with the reason; the kubelet restarts it).
  const failed = r?.verifiedAt !== undefined && s.clusterId === undefined ? v.o.pods.find((p) => p.ordinal === 0)?.lastTermination : undefined;
  if (r !== undefined && failed !== undefined && failed.message !== '') return { status: 'False', reason: 'RestoreFailed', message: `${r.uri} verified, but ${names.pod(v.name, 0)}'s restore failed (exit ${String(failed.exitCode)}; retried as the pod restarts): ${failed.message}` };
  if (r?.verifiedAt !== undefined) return { status: 'False', reason: 'Restoring', message: `${r.uri} verified; the first member restores it` };
  if (r !== undefined) return { status: 'False', reason: 'Restoring', message: `verifying ${r.uri}` };
  return { status: 'False', reason: 'Restoring', message: v.o.restoreSource?.ok === false ? v.o.restoreSource.why : 'resolving the backup' };
}
