// The cluster planner: one observation -> ONE next step, its reason, and the status to report.
// Ordered checks; the first that applies decides. A multi-step operation is journaled in status
// (a `journal` step: the controller writes the status before acting) and then continued from what
// is observed, so every step is idempotent and a restarted operator resumes the operation.
import { problemsOf, type Condition, type ConditionType, type EtcdClusterStatus, type Operation, type OperationType } from '../api/index.js';
import {
  clusterToken,
  names,
  objectKey,
  peerUrl,
  sizeBytes,
  specHashOf,
  statefulSet,
  supportObjects,
} from './desired.js';
import { peerScheme } from './tls.js';
import { guarded, moveLeaderOff, waiting, type Decision } from './decision.js';
import { withQuorumLoss } from './quorum.js';
import { approval, recoveredCondition, recoveryStep } from './recover.js';
import { restoredCondition, restoreFinished, restoreGate } from './restore.js';
import { condition, reportStatus, type Verdict } from './status.js';
import type { Observed, Plan, Step } from './types.js';
import { upkeep, maintenanceCondition } from './upkeep.js';
import { caughtUp, hasQuorum, isSafe, memberAt, memberById, podAt, viewOf, type MemberView, type View } from './view.js';

/** The planner-owned part of the previous status (token, cluster id, journal, stopped rollout). */
function carried(v: View): EtcdClusterStatus {
  const s = v.o.cluster.status ?? {};
  const out: EtcdClusterStatus = {};
  if (s.clusterToken !== undefined) out.clusterToken = s.clusterToken;
  if (s.clusterId !== undefined) out.clusterId = s.clusterId;
  if (s.operation !== undefined) out.operation = s.operation;
  if (s.stoppedRollout !== undefined) out.stoppedRollout = s.stoppedRollout;
  if (s.maintenance !== undefined) out.maintenance = s.maintenance;
  if (s.restore !== undefined) out.restore = s.restore;
  if (s.quorumLoss !== undefined) out.quorumLoss = s.quorumLoss;
  if (s.recovery !== undefined) out.recovery = s.recovery;
  if (s.recoveryRefusal !== undefined) out.recoveryRefusal = s.recoveryRefusal;
  return out;
}

function without(s: EtcdClusterStatus, key: 'operation' | 'stoppedRollout'): EtcdClusterStatus {
  const out = { ...s };
  delete out[key];
  return out;
}

function journal(v: View, s: EtcdClusterStatus, type: OperationType, ordinal: number, reason: string, extra: Partial<Operation> = {}): Decision {
  const operation: Operation = { type, member: names.pod(v.name, ordinal), ordinal, startedAt: v.o.now, reason, ...extra };
  return { step: { kind: 'journal', operation }, reason: `start ${type} of ${operation.member}: ${reason}`, status: { ...s, operation } };
}

const rolloutStopped = (v: View): { reason: string; message: string } => ({
  reason: 'RolloutStopped',
  message: `a member did not become healthy on ${v.image}; set the previous version or image to roll back`,
});

function end(s: EtcdClusterStatus, reason: string, extra: EtcdClusterStatus = {}): Decision {
  return { step: { kind: 'endOperation' }, reason, status: { ...without(s, 'operation'), ...extra } };
}

/** How long the member has been reported unhealthy (0 when healthy or never reported). */
function unhealthyForMs(v: View, member: string, id: string): number {
  const since = v.o.cluster.status?.members?.find((p) => p.name === member && p.id === id)?.unhealthySince;
  return since === undefined ? 0 : v.nowMs - Date.parse(since);
}

function olderThan(createdAt: string, startedAt: string): boolean {
  return Date.parse(createdAt) < Date.parse(startedAt);
}

// ---------- the operations ----------

function continueCreate(v: View, s: EtcdClusterStatus): Decision {
  if (v.members !== undefined && v.members.length > 0) {
    return end(s, 'the first member answers: the cluster exists', v.o.clusterId !== undefined ? { clusterId: v.o.clusterId } : {});
  }
  const pod = podAt(v, 0);
  if (pod === undefined) return waiting(v, s, 'waiting for pod 0');
  const token = s.clusterToken ?? clusterToken(v.o.cluster);
  if (pod.bootstrapGrant !== token) return { step: { kind: 'grantBootstrap', pod: pod.name, token }, reason: `let ${pod.name} bootstrap the cluster alone`, status: s };
  return waiting(v, s, 'waiting for the first member to start');
}

function addOrPromote(v: View, s: EtcdClusterStatus, op: Operation): Decision {
  const i = op.ordinal;
  const m = memberAt(v, i);
  if (m === undefined) {
    const stale = v.o.pvcs.find((p) => p.ordinal === i && !p.deleting && olderThan(p.createdAt, op.startedAt) && podAt(v, i) === undefined);
    if (stale !== undefined) return guarded(v, s, { kind: 'deletePvc', pvc: stale.name }, `delete the stale claim ${stale.name} before ${op.member} joins`);
    return guarded(v, s, { kind: 'memberAddLearner', member: op.member, peerURL: peerUrl(v.name, v.namespace, i, peerScheme(v.o.cluster.spec)) }, `add ${op.member} as a learner`);
  }
  if (v.stsReplicas < i + 1) return guarded(v, s, { kind: 'scaleStatefulSet', replicas: i + 1 }, `start the pod of ${op.member}`);
  if (m.learner) {
    if (caughtUp(v, m)) return guarded(v, s, { kind: 'memberPromote', member: op.member, id: m.id }, `promote ${op.member}: caught up`);
    // A learner that started once and then stayed down too long (its volume lost, say) is removed
    // and added again: removing a learner never touches quorum.
    if (m.name !== '' && unhealthyForMs(v, op.member, m.id) > v.o.settings.replaceAfterMs) {
      return guarded(v, s, { kind: 'memberRemove', member: op.member, id: m.id }, `learner ${op.member} down for over ${String(v.o.settings.replaceAfterMs / 1000)} s: remove it and add it again`);
    }
    return waiting(v, s, `waiting for learner ${op.member} to start and catch up`);
  }
  // A voter now: its health from here on is the Replace check's business.
  return end(s, `${op.member} is a voter${m.healthy ? ' and healthy' : ''}`);
}

function continueScaleUp(v: View, s: EtcdClusterStatus, op: Operation): Decision {
  const m = memberAt(v, op.ordinal);
  if (op.ordinal >= v.spec.replicas && (m === undefined || m.learner)) return end(s, `${op.member} is no longer wanted (replicas ${String(v.spec.replicas)})`);
  return addOrPromote(v, s, op);
}

function continueScaleDown(v: View, s: EtcdClusterStatus, op: Operation): Decision {
  const i = op.ordinal;
  const m = memberAt(v, i);
  if (m !== undefined) {
    const remove: Step = { kind: 'memberRemove', member: op.member, id: m.id };
    // Nothing is done yet and removing it now would lose quorum: give the operation up (a failed
    // member is replaced first; the scale-down is planned again when it is safe).
    if (!isSafe(v, remove)) return end(s, `removing ${op.member} would lose quorum now: scale-down postponed`);
    if (m.id === v.leaderId && v.voters > 1) return moveLeaderOff(v, s, m, `${op.member} leads`);
    return { step: remove, reason: `remove ${op.member} from the cluster`, status: s };
  }
  if (v.stsReplicas > i) return guarded(v, s, { kind: 'scaleStatefulSet', replicas: i }, `shrink the StatefulSet to ${String(i)}`);
  if (podAt(v, i) !== undefined) return waiting(v, s, `waiting for pod ${op.member} to go`);
  const pvc = v.o.pvcs.find((p) => p.ordinal === i && !p.deleting);
  if (pvc !== undefined) return guarded(v, s, { kind: 'deletePvc', pvc: pvc.name }, `delete ${pvc.name} so a later scale-up starts clean`);
  return end(s, `${op.member} removed`);
}

function continueReplace(v: View, s: EtcdClusterStatus, op: Operation): Decision {
  const i = op.ordinal;
  const old = op.memberId === undefined ? undefined : memberById(v, op.memberId);
  if (old !== undefined) return guarded(v, s, { kind: 'memberRemove', member: op.member, id: old.id }, `remove the failed member ${op.member} (${old.id})`);
  const oldPvc = v.o.pvcs.find((p) => p.ordinal === i && !p.deleting && olderThan(p.createdAt, op.startedAt));
  if (oldPvc !== undefined) return guarded(v, s, { kind: 'deletePvc', pvc: oldPvc.name }, `delete the failed member's claim ${oldPvc.name}`);
  const pod = podAt(v, i);
  // The pod on the old claims must go: one created before the Replace began, or one holding a claim
  // this Replace deleted (the StatefulSet may recreate it in the very second the Replace starts, and
  // creation times have one-second resolution; a deleting claim stays while a pod uses it).
  const holdsDeletedClaim = v.o.pvcs.some((p) => p.ordinal === i && p.deleting);
  if (pod !== undefined && (olderThan(pod.createdAt, op.startedAt) || holdsDeletedClaim)) {
    if (pod.deleting) return waiting(v, s, `waiting for the old pod ${pod.name} to go`);
    return guarded(v, s, { kind: 'deletePod', pod: pod.name }, `restart ${pod.name} on a fresh volume`);
  }
  return addOrPromote(v, s, op);
}

function continueUpgrade(v: View, s: EtcdClusterStatus, op: Operation): Decision {
  if (op.image !== v.image) return end(s, `the target image changed from ${String(op.image)} to ${v.image}`);
  const pod = podAt(v, op.ordinal);
  if (pod === undefined) return waiting(v, s, `waiting for ${op.member} to be recreated`);
  if (pod.deleting) return waiting(v, s, `waiting for ${op.member} to stop`);
  const m = memberAt(v, op.ordinal);
  if (pod.revision !== v.o.statefulSet?.updateRevision) {
    if (m !== undefined && m.id === v.leaderId && v.voters > 1) return moveLeaderOff(v, s, m, `${op.member} leads; it is upgraded last`);
    return guarded(v, s, { kind: 'deletePod', pod: pod.name }, `restart ${pod.name} on ${v.image}`);
  }
  if (m !== undefined && m.healthy && caughtUp(v, m)) return end(s, `${op.member} runs ${v.image} and is healthy`);
  if (pod.memberState === 'dataLost') return end(s, `${op.member} lost its data (not the image's fault): Replace takes over`);
  if (v.nowMs - Date.parse(op.startedAt) > v.o.settings.upgradeHealthyTimeoutMs) {
    // Degraded from the very status write that records the stop (not one reconcile later).
    return { ...end(s, `${op.member} did not become healthy on ${v.image}: rollout stopped`, { stoppedRollout: v.image }), degraded: rolloutStopped(v) };
  }
  return waiting(v, s, `waiting for ${op.member} to become healthy on ${v.image}`);
}

function continueOperation(v: View, s: EtcdClusterStatus, op: Operation): Decision {
  switch (op.type) {
    case 'Create':
      return continueCreate(v, s);
    case 'ScaleUp':
      return continueScaleUp(v, s, op);
    case 'ScaleDown':
      return continueScaleDown(v, s, op);
    case 'Replace':
      return continueReplace(v, s, op);
    case 'Upgrade':
      return continueUpgrade(v, s, op);
  }
}

// ---------- choosing the next operation ----------

function replaceCandidate(v: View): MemberView | undefined {
  if (v.members === undefined || v.voters < 2) return undefined;
  const prev = v.o.cluster.status?.members ?? [];
  const stopped = v.o.cluster.status?.stoppedRollout !== undefined;
  return v.members.find((m) => {
    if (m.healthy || m.ordinal === undefined || m.ordinal >= v.stsReplicas) return false;
    // The pod says its member's data is gone: replace now, whatever the rollout state.
    if (podAt(v, m.ordinal)?.memberState === 'dataLost') return isSafe(v, { kind: 'memberRemove', member: m.name, id: m.id });
    if (stopped) return false;
    const since = prev.find((p) => p.name === names.pod(v.name, m.ordinal ?? 0) && p.id === m.id)?.unhealthySince;
    if (since === undefined || v.nowMs - Date.parse(since) < v.o.settings.replaceAfterMs) return false;
    // A member broken by an image is the rollout's business, not Replace's: no Replace while a
    // rollout is stopped (checked above) or in progress (an operation runs), and an outdated pod is
    // restarted on the current template (a rollback) before anything is removed.
    const pod = podAt(v, m.ordinal);
    if (pod === undefined || pod.revision !== v.o.statefulSet?.updateRevision) return false;
    return isSafe(v, { kind: 'memberRemove', member: m.name, id: m.id });
  });
}

function upgradeCandidate(v: View): number | undefined {
  const rev = v.o.statefulSet?.updateRevision;
  if (rev === undefined || v.members === undefined) return undefined;
  const outdated = v.o.pods.filter((p) => !p.deleting && p.revision !== rev && p.ordinal < v.stsReplicas).sort((a, b) => b.ordinal - a.ordinal);
  if (outdated.length === 0) return undefined;
  const broken = outdated.find((p) => !(memberAt(v, p.ordinal)?.healthy ?? false));
  if (broken !== undefined) return broken.ordinal;
  const allGood = v.members.every((m) => !m.learner && caughtUp(v, m)) && v.members.length === v.stsReplicas;
  if (!allGood) return undefined;
  const follower = outdated.find((p) => memberAt(v, p.ordinal)?.id !== v.leaderId);
  return (follower ?? outdated[0])?.ordinal;
}

function nextOperation(v: View, s: EtcdClusterStatus): Decision {
  if (v.members === undefined) return waiting(v, s, 'no member answers', { reason: 'NoAnswer', message: 'no member answered the member list' });
  const foreign = v.members.filter((m) => m.ordinal === undefined);
  const degradedForeign = foreign.length > 0 ? { reason: 'ForeignMember', message: `members not of this cluster's pods: ${foreign.map((m) => m.id).join(', ')}` } : undefined;
  const ordinals = v.members.flatMap((m) => (m.ordinal === undefined ? [] : [m.ordinal]));
  const top = Math.max(v.stsReplicas - 1, ...ordinals);
  const topMember = memberAt(v, top);
  const scaleDownSafe = topMember === undefined || isSafe(v, { kind: 'memberRemove', member: topMember.name, id: topMember.id });
  if (top >= v.spec.replicas && scaleDownSafe) return journal(v, s, 'ScaleDown', top, `replicas ${String(v.spec.replicas)}`, topMember !== undefined ? { memberId: topMember.id } : {});
  const learner = v.members.find((m) => m.learner && m.ordinal !== undefined);
  if (learner?.ordinal !== undefined && learner.ordinal < v.spec.replicas) return journal(v, s, 'ScaleUp', learner.ordinal, `learner ${names.pod(v.name, learner.ordinal)} is to be promoted`);
  const failed = replaceCandidate(v);
  if (failed?.ordinal !== undefined) return journal(v, s, 'Replace', failed.ordinal, `unhealthy for over ${String(v.o.settings.replaceAfterMs / 1000)} s`, { memberId: failed.id, image: v.image });
  if (top >= v.spec.replicas) return waiting(v, s, `scale-down waits: removing ${names.pod(v.name, top)} would lose quorum`, { reason: 'QuorumAtRisk', message: `removing ${names.pod(v.name, top)} now would lose quorum; a failed member is replaced first` });
  for (let i = 0; i <= top; i++) {
    if (memberAt(v, i) === undefined && hasQuorum(v)) return journal(v, s, 'ScaleUp', i, `member ${names.pod(v.name, i)} is missing`);
  }
  const allHealthy = v.members.every((m) => m.healthy);
  if (top + 1 < v.spec.replicas) {
    if (!allHealthy) return waiting(v, s, 'scale-up waits for every member to be healthy', { reason: 'MembersUnhealthy', message: 'scale-up waits for every member to be healthy' });
    return journal(v, s, 'ScaleUp', top + 1, `replicas ${String(v.spec.replicas)}`);
  }
  if (s.stoppedRollout === v.image) return { step: { kind: 'none' }, reason: `rollout of ${v.image} stopped`, status: s, degraded: rolloutStopped(v) };
  const up = upgradeCandidate(v);
  if (up !== undefined) return journal(v, s, 'Upgrade', up, `roll to ${v.image}`, { image: v.image });
  const small = v.o.pvcs.find((p) => !p.deleting && p.requestBytes < sizeBytes(p.volume === 'data' ? v.spec.storage.data.size : v.spec.storage.wal.size));
  if (small !== undefined) {
    const size = small.volume === 'data' ? v.spec.storage.data.size : v.spec.storage.wal.size;
    return { step: { kind: 'resizePvc', pvc: small.name, size }, reason: `grow ${small.name} to ${size}`, status: s };
  }
  const granted = v.o.pods.find((p) => p.bootstrapGrant !== undefined);
  if (granted !== undefined) return { step: { kind: 'revokeBootstrap', pod: granted.name }, reason: `the cluster exists: ${granted.name} may no longer bootstrap`, status: s };
  if (!allHealthy) {
    const bad = v.members.filter((m) => !m.healthy).map((m) => m.name || m.id);
    return waiting(v, s, 'members unhealthy', { reason: 'MembersUnhealthy', message: `unhealthy: ${bad.join(', ')}` });
  }
  const converged: Decision = { step: { kind: 'none' }, reason: 'converged', status: s, ...(degradedForeign !== undefined ? { degraded: degradedForeign } : {}) };
  const chores = upkeep(v, s);
  return chores === undefined ? converged : { ...chores, ...(degradedForeign !== undefined ? { degraded: degradedForeign } : {}) };
}

// ---------- the ordered checks ----------

function objectsStep(v: View, s: EtcdClusterStatus): Decision | undefined {
  for (const o of supportObjects(v.o.cluster, v.spec)) {
    if (v.o.objects[objectKey(o)] !== specHashOf(o)) return { step: { kind: 'apply', object: o }, reason: `apply ${objectKey(o)}`, status: s };
  }
  const sts = v.o.statefulSet;
  const creating = s.operation?.type === 'Create';
  if (sts === undefined && !creating && s.clusterId === undefined) return undefined;
  const replicas = sts?.replicas ?? (creating ? 1 : Math.max(1, v.o.cluster.status?.members?.length ?? 1));
  const sizes = sts?.claimSizes ?? { data: v.spec.storage.data.size, wal: v.spec.storage.wal.size };
  const want = statefulSet(v.o.cluster, v.spec, v.image, replicas, sizes);
  if (sts === undefined || sts.hash !== specHashOf(want)) return { step: { kind: 'apply', object: want }, reason: `apply StatefulSet/${v.name} (${v.image})`, status: s };
  return undefined;
}

function decide(v: View): Decision {
  let s = carried(v);
  if (v.o.cluster.metadata.deletionTimestamp !== undefined) return { step: { kind: 'none' }, reason: 'being deleted: owner references collect the objects', status: s };
  const problems = problemsOf(v.spec);
  if (problems.length > 0) return { step: { kind: 'none' }, reason: 'invalid spec', status: s, degraded: { reason: 'InvalidSpec', message: problems.join('; ') } };
  if (v.spec.paused) return { step: { kind: 'none' }, reason: 'paused (spec.paused)', status: s };
  if (s.clusterToken === undefined) {
    s = { ...s, clusterToken: clusterToken(v.o.cluster) };
    if (v.o.statefulSet === undefined && (v.members === undefined || v.members.length === 0)) return journal(v, s, 'Create', 0, 'new cluster: one member first, then grow by learners');
    return waiting(v, s, 'record the cluster token');
  }
  const gate = restoreGate(v, s);
  if (gate !== undefined) return gate;
  const approved = approval(v, s);
  if (approved.decision !== undefined) return approved.decision;
  s = approved.status;
  const objects = objectsStep(v, s);
  if (objects !== undefined) return objects;
  const recovering = recoveryStep(v, s);
  if (recovering !== undefined) return recovering;
  if (s.operation !== undefined) return continueOperation(v, s, s.operation);
  if (s.stoppedRollout !== undefined && s.stoppedRollout !== v.image) return waiting(v, without(s, 'stoppedRollout'), `target changed from the stopped ${s.stoppedRollout} to ${v.image}`);
  return nextOperation(v, s);
}

function verdictOf(v: View, d: Decision): Verdict {
  const op = d.status.operation;
  const moving = !v.spec.paused && (op !== undefined || (d.step.kind !== 'none' && d.step.kind !== 'wait'));
  const progressing = moving
    ? { status: true, reason: op?.type ?? 'Reconciling', message: d.reason }
    : { status: false, reason: v.spec.paused ? 'Paused' : 'Converged', message: d.reason };
  return { progressing, degraded: d.degraded !== undefined ? { status: true, ...d.degraded } : { status: false, reason: 'AsExpected', message: '' } };
}

/** The next step for an observation, its reason, and the status to write before acting. */
export function plan(o: Observed): Plan {
  const v = viewOf(o);
  const d = withQuorumLoss(v, decide(v));
  const status = restoreFinished(v, d.status);
  const out = reportStatus(v, status, verdictOf(v, d));
  return { step: d.step, reason: d.reason, status: { ...out, conditions: conditions(v, status, out.conditions ?? []) } };
}

/** reportStatus's conditions (with the carried ones of other writers) and Maintenance and Restored. */
function conditions(v: View, s: EtcdClusterStatus, base: readonly Condition[]): Condition[] {
  const mine: Array<[ConditionType, Pick<Condition, 'status' | 'reason' | 'message'> | undefined]> = [
    ['Maintenance', maintenanceCondition(v, s)],
    ['Restored', restoredCondition(v, s)],
    ['Recovered', recoveredCondition(s)],
  ];
  const out = base.filter((c) => !mine.some(([t]) => t === c.type));
  for (const [type, c] of mine) if (c !== undefined) out.push(condition(v, type, c.status === 'Unknown' ? 'Unknown' : c.status === 'True', c.reason, c.message));
  return out;
}
