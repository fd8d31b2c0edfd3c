// Quorum-loss recovery (pure), opt-in and approved, never automatic. After a loss is confirmed
// (status.quorumLoss.confirmedAt: Available=False/QuorumLost), the user approves starting over from
// the best survivor with the annotation cairn.dev/approve-quorum-recovery=<that survivor's pod name>.
//   - The approval must name the survivor status.quorumLoss shows as best AND this observation still
//     ranks best; anything else (another member, a loss not confirmed yet, no loss at all, a ranking
//     changed since it was shown, a learner) is refused: status.recoveryRefusal, Recovered=False and
//     Degraded with reason RecoveryRefused, one Warning Event. A refused value stays refused until the
//     annotation is removed (it is never acted on later, whatever the ranking becomes).
//   - Accepted: status.recovery (stage Approved: survivor, member id, the old and a NEW cluster token)
//     is written before anything else; status.operation is dropped (the cluster is rebuilt).
//   - Approved: the survivor's member agent streams its own Maintenance.Snapshot (served without
//     quorum, by etcd 3.4/3.6 as by Cairn) onto its data volume (recovery/<token>.snapshot, verified,
//     fsynced); act/ records file, size, SHA-256 and revision. Until the next stage nothing has been
//     changed: quorum seen again, or the annotation removed or changed, cancels the recovery.
//   - The point of no return: status.clusterToken becomes the new token (stage Restarting). The
//     StatefulSet template changes (CAIRN_CLUSTER_TOKEN, CAIRN_RECOVER); the other members' claims
//     are deleted (fresh volumes: the approval said they are lost) and every pod is restarted on the
//     new template; every volume holding the old token's data moves it aside (never starts it: the old
//     members can never rejoin the old cluster id); the survivor, granted with the new token, verifies
//     its snapshot file and restores it (--bump-revision, --mark-compacted) as a one-member cluster.
//   - Growing: once the new cluster answers (a new cluster id) the ordinary ScaleUp operations add the
//     others as learners and promote them; when every member is a healthy voter the recovery is
//     Completed (Recovered=True naming the revision kept) and the annotation is removed.
//   - Unsupported: on a cluster with auth (spec.auth, or status.auth.enabled) the survivor's agent
//     cannot take its snapshot (it needs the root role; no token is obtained without quorum), so an
//     approval is refused up front (Recovered=False/RecoveryUnsupported, one Warning Event) and an
//     approved recovery without its snapshot yet is cancelled. Client TLS is supported.
// Each stage is derived from status.recovery and the observation, so a restarted operator resumes it;
// a destructive step (a claim or pod deletion) only ever targets objects older than restartAt, so it
// is never repeated on what the recovery itself created.
import { RECOVERY_APPROVAL_ANNOTATION, type Condition, type EtcdClusterStatus, type QuorumLossStatus, type RecoveryStatus } from '../api/index.js';
import { waiting, type Decision } from './decision.js';
import { clusterToken, names, ordinalOfName } from './desired.js';
import { quorumLossRecord } from './quorum.js';
import type { Step } from './types.js';
import { hasQuorum, podAt, type View } from './view.js';

export const RECOVERY_REFUSED = 'RecoveryRefused';
/** The Recovered reason of an approval refused because this cluster's setup cannot be recovered this way. */
export const RECOVERY_UNSUPPORTED = 'RecoveryUnsupported';
/** How status.recoveryRefusal.reason marks such a refusal (its type has no reason code). */
const UNSUPPORTED_PREFIX = 'unsupported on this cluster: ';

const ANN = RECOVERY_APPROVAL_ANNOTATION;

/** The approval annotation's value (trimmed; undefined when absent or empty). */
export function approvalOf(v: View): string | undefined {
  const a = v.o.cluster.metadata.annotations?.[ANN]?.trim();
  return a === undefined || a === '' ? undefined : a;
}

/** Whether a recovery is past its approval and not finished (it decides the next step). */
export function recoveryActive(r: RecoveryStatus | undefined): boolean {
  return r !== undefined && (r.stage === 'Approved' || r.stage === 'Restarting');
}

const note = (type: 'Normal' | 'Warning', reason: string, text: string): Step => ({ kind: 'note', type, reason, note: text });

function withoutRefusal(s: EtcdClusterStatus): EtcdClusterStatus {
  const out = { ...s };
  delete out.recoveryRefusal;
  return out;
}

/**
 * Why no recovery can finish on this cluster, whatever is approved (undefined: it can). spec.auth:
 * the survivor's Maintenance.Snapshot needs the root role, the member agent holds no etcd
 * credentials, and without quorum none can be obtained (Authenticate goes through raft); so the
 * approval is refused up front rather than a recovery started that could never take its snapshot.
 * Client TLS alone is supported (the agent dials its server with the mounted member certificate).
 */
export function recoveryUnsupported(v: View, s: EtcdClusterStatus): string | undefined {
  if (v.spec.auth === undefined && s.auth?.enabled !== true) return undefined;
  return `${UNSUPPORTED_PREFIX}auth is enabled (spec.auth): the survivor's snapshot needs the root role, its member agent has no etcd credentials, and without quorum no token can be obtained (Authenticate goes through raft); bring a lost member back, or restore from a backup (spec.restore)`;
}

/** Why this approval cannot be acted on (undefined: it can). */
function refusalOf(v: View, s: EtcdClusterStatus, value: string): string | undefined {
  const shown = s.quorumLoss;
  if (shown === undefined) return 'no quorum loss is reported (status.quorumLoss is empty): a recovery is only approved for a loss the operator reports';
  if (shown.confirmedAt === undefined) return `the quorum loss since ${shown.since} is not confirmed yet (Available=False/QuorumLost after ${String(v.o.settings.quorumLossAfterMs / 1000)} s); an approval given before it is never acted on`;
  const best = shown.survivors[0];
  if (best === undefined) return 'no survivor answers: there is nothing to recover from (bring a member back or restore from a backup)';
  if (value !== best.name) return `it names ${value}, but the best survivor shown in status.quorumLoss is ${best.name} (applied index ${String(best.raftAppliedIndex)}, revision ${String(best.revision)})`;
  const now = quorumLossRecord(v, s);
  if (now === undefined) return 'quorum is no longer lost in this observation';
  const fresh = now.survivors[0];
  if (fresh === undefined || fresh.name !== best.name || fresh.id !== best.id) return `stale: the ranking changed since it was shown (now ${fresh === undefined ? 'no survivor answers' : `${fresh.name} ranks best`})`;
  if (best.learner) return `the best survivor ${best.name} is a learner: a recovery starts from a voting member`;
  const ordinal = ordinalOfName(v.name, best.name);
  if (ordinal === undefined) return `${best.name} is not one of this cluster's pods`;
  const pod = podAt(v, ordinal);
  if (pod === undefined || pod.deleting) return `the pod of ${best.name} is gone`;
  return undefined;
}

/** The members whose volumes the recovery replaces: every member of the loss record but the survivor. */
function rejoiningOf(q: QuorumLossStatus, survivor: string): string[] {
  const all = [...q.lost, ...q.survivors.map((m) => m.name)].filter((n) => n !== survivor);
  return [...new Set(all)].sort();
}

/** A token unique to this recovery (from the observation time: pure and never the previous one). */
function newToken(v: View, previous: string): string {
  const base = clusterToken(v.o.cluster);
  const t = `${base}-r${v.nowMs.toString(36)}`;
  return t === previous ? `${t}x` : t;
}

export interface ApprovalOutcome {
  decision?: Decision;
  status: EtcdClusterStatus;
}

/**
 * The approval annotation against the status: accept it (journal status.recovery, an Event), refuse
 * it (status.recoveryRefusal, a Warning Event: once per value), or nothing to do (the status then has
 * a stale refusal dropped once the annotation is gone).
 */
export function approval(v: View, s: EtcdClusterStatus): ApprovalOutcome {
  const r = s.recovery;
  if (recoveryActive(r)) return { status: s };
  const value = approvalOf(v);
  if (value === undefined) return { status: s.recoveryRefusal === undefined ? s : withoutRefusal(s) };
  // Done, but the annotation is still there (its removal failed or has not been seen): remove it again.
  if (r?.stage === 'Completed' && value === r.survivor && s.quorumLoss === undefined) {
    return { decision: { step: { kind: 'consumeApproval', value, note: `recovery from ${r.survivor} completed earlier: its approval removed` }, reason: `remove the consumed approval ${ANN}=${value}`, status: s }, status: s };
  }
  // The approval of the recovery still growing: its own, removed when it completes.
  if (r?.stage === 'Growing' && value === r.survivor) return { status: s };
  if (s.recoveryRefusal?.approval === value) return { status: s };
  const unsupported = recoveryUnsupported(v, s);
  const why = unsupported ?? refusalOf(v, s, value);
  if (why !== undefined) {
    const code = unsupported !== undefined ? RECOVERY_UNSUPPORTED : RECOVERY_REFUSED;
    const msg = `approval ${ANN}=${value} refused: ${why}. It is never acted on: remove the annotation${unsupported !== undefined ? '' : ', and set it again to the best survivor once QuorumLost reports it'}`;
    return {
      decision: { step: note('Warning', code, msg), reason: `recovery approval refused: ${why}`, status: { ...s, recoveryRefusal: { approval: value, reason: why, at: v.o.now } }, degraded: { reason: code, message: msg } },
      status: s,
    };
  }
  const q = s.quorumLoss;
  const best = q?.survivors[0];
  const ordinal = best === undefined ? undefined : ordinalOfName(v.name, best.name);
  if (q === undefined || best === undefined || ordinal === undefined) return { status: s };
  const previousToken = s.clusterToken ?? clusterToken(v.o.cluster);
  const rec: RecoveryStatus = {
    stage: 'Approved',
    survivor: best.name,
    survivorId: best.id,
    ordinal,
    approvedAt: v.o.now,
    previousToken,
    token: newToken(v, previousToken),
    rejoining: rejoiningOf(q, best.name),
  };
  if (s.clusterId !== undefined) rec.previousClusterId = s.clusterId;
  if (q.lastKnownRevision !== undefined) rec.lastKnownRevision = q.lastKnownRevision;
  const status = withoutRefusal({ ...s, recovery: rec });
  delete status.operation;
  const text = `recovery from ${best.name} (member ${best.id}, applied index ${String(best.raftAppliedIndex)}, revision ${String(best.revision)}) approved: its snapshot first, then a new one-member cluster (new cluster token) from it; ${rec.rejoining.join(', ')} rejoin as learners on new volumes${s.operation !== undefined ? `; the interrupted ${s.operation.type} of ${s.operation.member} is dropped` : ''}`;
  return { decision: { step: note('Normal', 'RecoveryApproved', text), reason: text, status, degraded: { reason: 'RecoveryApproved', message: text } }, status };
}

function cancel(v: View, s: EtcdClusterStatus, r: RecoveryStatus, why: string): Decision {
  const msg = `recovery from ${r.survivor} cancelled before anything was changed: ${why}`;
  return { step: note('Normal', 'RecoveryCancelled', msg), reason: msg, status: { ...s, recovery: { ...r, stage: 'Cancelled', finishedAt: v.o.now, message: why } } };
}

const keptText = (r: RecoveryStatus): string => {
  const snap = r.snapshot;
  if (snap === undefined) return '';
  const lost = r.lastKnownRevision !== undefined && r.lastKnownRevision > snap.revision ? `; revisions ${String(snap.revision + 1)}..${String(r.lastKnownRevision)} reached only the lost members` : '';
  return `revision ${String(snap.revision)} kept (the survivor's snapshot, ${String(snap.sizeBytes)} bytes, sha256 ${snap.sha256})${lost}`;
};

function approvedStage(v: View, s: EtcdClusterStatus, r: RecoveryStatus): Decision {
  if (v.members !== undefined && hasQuorum(v)) return cancel(v, s, r, 'quorum is back (the lost members answer again)');
  // Approved before auth was turned on (or by an operator that did not check): it cannot take its snapshot.
  const unsupported = r.snapshot === undefined ? recoveryUnsupported(v, s) : undefined;
  if (unsupported !== undefined) return cancel(v, s, r, unsupported);
  const value = approvalOf(v);
  if (value !== r.survivor) return cancel(v, s, r, value === undefined ? 'the approval was removed' : `the approval changed to ${value}`);
  const degraded = (message: string): { reason: string; message: string } => ({ reason: 'RecoverySnapshotting', message });
  if (r.snapshot === undefined) {
    const pod = podAt(v, r.ordinal);
    if (pod === undefined || pod.deleting) return waiting(v, s, `waiting for the pod of ${r.survivor} to take its snapshot`, degraded(`recovery from ${r.survivor}: its pod is gone; waiting for it`));
    const why = `take the snapshot of ${r.survivor} onto its own volume (${names.pvc(v.name, 'data', r.ordinal)})`;
    return { step: { kind: 'recoverySnapshot', pod: pod.name, memberId: r.survivorId, token: r.token }, reason: why, status: s, degraded: degraded(`recovery from ${r.survivor}: ${why}`) };
  }
  const next: RecoveryStatus = { ...r, stage: 'Restarting', restartAt: v.o.now };
  const text = `recovery from ${r.survivor}: snapshot ${r.snapshot.file} on ${r.snapshot.pvc} taken (${keptText(r)}); the cluster token is now ${r.token}: the pods restart, ${r.rejoining.join(', ')} on new volumes`;
  return { step: note('Normal', 'RecoveryRestarting', text), reason: text, status: { ...s, clusterToken: r.token, recovery: next }, degraded: { reason: 'RecoveryRestarting', message: text } };
}

function restartingStage(v: View, s: EtcdClusterStatus, r: RecoveryStatus): Decision {
  const restartMs = Date.parse(r.restartAt ?? v.o.now);
  const older = (at: string): boolean => Date.parse(at) < restartMs;
  const deg = (reason: string, message: string): { reason: string; message: string } => ({ reason, message: `recovery from ${r.survivor}: ${message}` });
  if (v.members !== undefined && v.members.length > 0 && v.o.clusterId !== undefined && v.o.clusterId !== r.previousClusterId) {
    const text = `recovery from ${r.survivor}: it answers as the new one-member cluster ${v.o.clusterId} (token ${r.token}); ${keptText(r)}; the others rejoin as learners`;
    return { step: note('Normal', 'RecoveryRestored', text), reason: text, status: { ...s, clusterId: v.o.clusterId, recovery: { ...r, stage: 'Growing', restoredAt: v.o.now } }, degraded: deg('RecoveryGrowing', 'restored; the others rejoin') };
  }
  const rev = v.o.statefulSet?.updateRevision;
  if (rev === undefined) return waiting(v, s, 'waiting for the StatefulSet to take the new template', deg('RecoveryRestarting', 'waiting for the StatefulSet to take the new template'));
  // The survivor first (its restart is the longest wait), then the others' claims and pods.
  const pod = podAt(v, r.ordinal);
  if (pod !== undefined && !pod.deleting && (older(pod.createdAt) || pod.revision !== rev)) return { step: { kind: 'deletePod', pod: pod.name }, reason: `recovery: restart ${pod.name} to restore its snapshot`, status: s, degraded: deg('RecoveryRestarting', `restarting ${pod.name} to restore its snapshot`) };
  const pvc = v.o.pvcs.find((p) => p.ordinal !== r.ordinal && !p.deleting && older(p.createdAt));
  if (pvc !== undefined) return { step: { kind: 'deletePvc', pvc: pvc.name }, reason: `recovery: delete ${pvc.name} (its member rejoins on a new volume)`, status: s, degraded: deg('RecoveryRestarting', `replacing the volumes of ${r.rejoining.join(', ')}`) };
  const stale = v.o.pods.filter((p) => p.ordinal !== r.ordinal && !p.deleting && (older(p.createdAt) || p.revision !== rev)).sort((a, b) => a.ordinal - b.ordinal)[0];
  if (stale !== undefined) return { step: { kind: 'deletePod', pod: stale.name }, reason: `recovery: restart ${stale.name} on the new template`, status: s, degraded: deg('RecoveryRestarting', `restarting ${stale.name} on the new cluster token`) };
  if (pod === undefined || pod.deleting) return waiting(v, s, `waiting for the pod of ${r.survivor}`, deg('RecoveryRestarting', `waiting for ${r.survivor} to restart`));
  const failed = pod.lastTermination;
  if (pod.bootstrapGrant === r.token && failed !== undefined && failed.message !== '') {
    const msg = `${pod.name}'s restore of its snapshot failed (exit ${String(failed.exitCode)}; retried as the pod restarts): ${failed.message}`;
    return waiting(v, s, msg, deg('RecoveryRestoreFailed', msg));
  }
  if (pod.bootstrapGrant !== r.token) return { step: { kind: 'grantBootstrap', pod: pod.name, token: r.token }, reason: `recovery: let ${pod.name} restore its snapshot as a new one-member cluster`, status: s, degraded: deg('RecoveryRestoring', `${pod.name} restores its snapshot`) };
  return waiting(v, s, `waiting for ${pod.name} to restore its snapshot and answer`, deg('RecoveryRestoring', `${pod.name} restores its snapshot (${keptText(r)})`));
}

/**
 * The recovery's own step, when one is due: the Approved and Restarting stages, and the end of
 * Growing (every member a healthy voter again). Undefined: the ordinary checks go on (while Growing,
 * the ScaleUp operations re-add the members).
 */
export function recoveryStep(v: View, s: EtcdClusterStatus): Decision | undefined {
  const r = s.recovery;
  if (r === undefined) return undefined;
  if (r.stage === 'Approved') return approvedStage(v, s, r);
  if (r.stage === 'Restarting') return restartingStage(v, s, r);
  if (r.stage !== 'Growing' || s.operation !== undefined || v.members === undefined) return undefined;
  if (v.members.length < v.spec.replicas || !v.members.every((m) => !m.learner && m.healthy)) return undefined;
  const done: RecoveryStatus = { ...r, stage: 'Completed', finishedAt: v.o.now };
  const text = `recovery from ${r.survivor} completed: ${String(v.members.length)} voting members healthy; ${keptText(r)}`;
  const value = approvalOf(v);
  const step: Step = value !== undefined ? { kind: 'consumeApproval', value, note: text } : note('Normal', 'RecoveryCompleted', text);
  return { step, reason: text, status: { ...s, recovery: done } };
}

/** The Recovered condition (undefined: no recovery and no refused approval). */
export function recoveredCondition(s: EtcdClusterStatus): Pick<Condition, 'status' | 'reason' | 'message'> | undefined {
  const r = s.recovery;
  const refusal = s.recoveryRefusal;
  if (refusal !== undefined && !recoveryActive(r)) return { status: 'False', reason: refusal.reason.startsWith(UNSUPPORTED_PREFIX) ? RECOVERY_UNSUPPORTED : RECOVERY_REFUSED, message: `approval ${ANN}=${refusal.approval} refused at ${refusal.at}: ${refusal.reason}` };
  if (r === undefined) return undefined;
  const kept = keptText(r);
  switch (r.stage) {
    case 'Approved':
      return { status: 'False', reason: r.snapshot === undefined ? 'RecoverySnapshotting' : 'RecoverySnapshotTaken', message: `recovery from ${r.survivor} approved at ${r.approvedAt}${r.snapshot === undefined ? ': taking its snapshot' : `: ${kept}`}` };
    case 'Restarting':
      return { status: 'False', reason: 'RecoveryRestarting', message: `recovery from ${r.survivor}: restarting on the new cluster token ${r.token}; ${kept}` };
    case 'Growing':
      return { status: 'False', reason: 'RecoveryGrowing', message: `recovery from ${r.survivor}: restored at ${r.restoredAt ?? ''} as cluster ${s.clusterId ?? ''}; ${r.rejoining.join(', ')} rejoin as learners; ${kept}` };
    case 'Completed':
      return { status: 'True', reason: 'RecoveryCompleted', message: `recovered from ${r.survivor} at ${r.finishedAt ?? ''}: ${kept}` };
    case 'Cancelled':
      return { status: 'False', reason: 'RecoveryCancelled', message: `recovery from ${r.survivor} cancelled: ${r.message ?? ''}` };
  }
}
