// The status to report for one observation (pure): members with health and the leader, phase,
// the three conditions with stable transition times, and the scale subresource's fields. The
// planner then sets the operation/stoppedRollout/clusterId fields its step decides.
import type { Condition, ConditionStatus, ConditionType, EtcdClusterStatus, MemberStatus, Phase } from '../api/index.js';
import { imageTag, labelSelector, names, quorum } from './desired.js';
import { quorumLossAvailable } from './quorum.js';
import { hasQuorum, podAt, type View } from './view.js';

function members(v: View): MemberStatus[] {
  const prev = v.o.cluster.status?.members ?? [];
  return (v.members ?? []).map((m) => {
    const name = m.ordinal !== undefined ? names.pod(v.name, m.ordinal) : m.name;
    const out: MemberStatus = { name, id: m.id, learner: m.learner, leader: m.id === v.leaderId, healthy: m.healthy };
    const pod = m.ordinal !== undefined ? podAt(v, m.ordinal) : undefined;
    if (pod !== undefined && imageTag(pod.image) !== '') out.version = imageTag(pod.image);
    if (m.status !== undefined) {
      out.dbSize = m.status.dbSize;
      out.revision = m.status.revision;
    }
    // Carried only for the same member id: a replaced member starts its own clock.
    if (!m.healthy) out.unhealthySince = prev.find((p) => p.name === name && p.id === m.id)?.unhealthySince ?? v.o.now;
    return out;
  });
}

export interface Verdict {
  progressing: { status: boolean; reason: string; message: string };
  degraded: { status: boolean; reason: string; message: string };
}

export function condition(v: View, type: ConditionType, status: boolean | 'Unknown', reason: string, message: string): Condition {
  const s: ConditionStatus = status === 'Unknown' ? 'Unknown' : status ? 'True' : 'False';
  const prev = v.o.cluster.status?.conditions?.find((c) => c.type === type);
  return {
    type,
    status: s,
    reason,
    message,
    observedGeneration: v.o.cluster.metadata.generation,
    lastTransitionTime: prev !== undefined && prev.status === s ? prev.lastTransitionTime : v.o.now,
  };
}

function available(v: View, status: EtcdClusterStatus): Condition {
  const lost = quorumLossAvailable(v, status.quorumLoss);
  if (lost !== undefined) return condition(v, 'Available', false, lost.reason, lost.message);
  if (v.members === undefined) return condition(v, 'Available', false, v.o.cluster.status?.clusterId === undefined ? 'NotCreated' : 'NoAnswer', 'no member answered');
  const msg = `${String(v.healthyVoters)} of ${String(v.voters)} voting members healthy (quorum ${String(quorum(v.voters))})`;
  return condition(v, 'Available', hasQuorum(v), hasQuorum(v) ? 'QuorumHealthy' : 'NoQuorum', msg);
}

function phaseOf(v: View, status: EtcdClusterStatus, verdict: Verdict): Phase {
  if (v.spec.paused) return 'Paused';
  const op = status.operation?.type;
  if (op === 'Create' || status.clusterId === undefined) return 'Creating';
  if (verdict.degraded.status && verdict.degraded.reason !== 'MembersUnhealthy') return 'Degraded';
  if (op === 'ScaleUp' || op === 'ScaleDown') return 'Scaling';
  if (op === 'Upgrade') return 'Upgrading';
  if (op === 'Replace') return 'Replacing';
  if (verdict.degraded.status) return 'Degraded';
  return 'Running';
}

/** Conditions the cluster planner writes; any other type (BackupHealthy) is carried from the previous status. */
export const PLANNER_CONDITIONS: readonly ConditionType[] = ['Available', 'Progressing', 'Degraded', 'Maintenance', 'Restored', 'Recovered'];

/**
 * What another writer owns, carried unchanged from the previous status: BackupHealthy and
 * status.backup (written by the backup runner, controller/backups.ts, with its own resourceVersion-
 * guarded status writes). The planner never computes them, so dropping them here would erase them.
 */
function foreign(v: View, planned: readonly Condition[]): Pick<EtcdClusterStatus, 'backup'> & { conditions: Condition[] } {
  const prev = v.o.cluster.status;
  const conditions = (prev?.conditions ?? []).filter((c) => !PLANNER_CONDITIONS.includes(c.type) && !planned.some((p) => p.type === c.type));
  return prev?.backup !== undefined ? { conditions, backup: prev.backup } : { conditions };
}

/** Fills the observation-derived fields into `status` (which carries the planner's decisions). */
export function reportStatus(v: View, status: EtcdClusterStatus, verdict: Verdict): EtcdClusterStatus {
  const ms = members(v);
  const pods = v.o.pods.filter((p) => !p.deleting);
  const images = new Set(pods.map((p) => p.image));
  const out: EtcdClusterStatus = { ...status };
  out.members = ms;
  out.observedGeneration = v.o.cluster.metadata.generation;
  const only = [...images][0];
  if (images.size === 1 && only !== undefined) {
    out.currentImage = only;
    out.currentVersion = imageTag(only);
  }
  out.readyMembers = `${String(ms.filter((m) => m.healthy && !m.learner).length)}/${String(v.spec.replicas)}`;
  out.replicas = v.voters;
  out.selector = labelSelector(v.o.cluster);
  const planned = [
    available(v, status),
    condition(v, 'Progressing', verdict.progressing.status, verdict.progressing.reason, verdict.progressing.message),
    condition(v, 'Degraded', verdict.degraded.status, verdict.degraded.reason, verdict.degraded.message),
    ...(status.conditions ?? []).filter((c) => c.type === 'Maintenance' || c.type === 'Restored' || c.type === 'Recovered'),
  ];
  const carried = foreign(v, planned);
  out.conditions = [...planned, ...carried.conditions];
  if (carried.backup !== undefined) out.backup = carried.backup;
  out.phase = phaseOf(v, out, verdict);
  return out;
}
