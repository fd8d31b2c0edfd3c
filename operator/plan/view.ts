// Derived facts of one observation, computed once: members by ordinal with their health, the
// leader, quorum arithmetic, and the safety judgement every step must pass (isSafe), which the
// property tests also apply to every step the planner returns.
import { withDefaults, type EtcdClusterSpec } from '../api/index.js';
import { ordinalOfPeerUrl, quorum, targetImage } from './desired.js';
import type { Observed, ObservedMember, ObservedPod, Step } from './types.js';

export interface MemberView extends ObservedMember {
  /** The pod ordinal its peer URL names; undefined for a foreign member. */
  ordinal: number | undefined;
  healthy: boolean;
}

export interface View {
  readonly o: Observed;
  readonly spec: EtcdClusterSpec;
  readonly name: string;
  readonly namespace: string;
  readonly nowMs: number;
  readonly image: string;
  /** undefined: no member answered. */
  readonly members: readonly MemberView[] | undefined;
  readonly leaderId: string | undefined;
  readonly leaderIndex: number;
  readonly voters: number;
  readonly healthyVoters: number;
  readonly stsReplicas: number;
}

export function isHealthy(m: ObservedMember): boolean {
  return m.status !== undefined && m.status.leader !== '0' && m.status.leader !== '';
}

function leaderOf(members: readonly ObservedMember[]): string | undefined {
  const votes = new Map<string, number>();
  for (const m of members) if (m.status !== undefined && isHealthy(m)) votes.set(m.status.leader, (votes.get(m.status.leader) ?? 0) + 1);
  let best: string | undefined;
  let n = 0;
  for (const [id, c] of votes) if (c > n || (c === n && best !== undefined && id < best)) [best, n] = [id, c];
  return best;
}

export function viewOf(o: Observed): View {
  const c = o.cluster;
  const spec = withDefaults(c.spec);
  const members = o.members?.map((m) => ({ ...m, ordinal: ordinalOfPeerUrl(c.metadata.name, c.metadata.namespace, m.peerURL), healthy: isHealthy(m) }));
  const leaderId = members === undefined ? undefined : leaderOf(members);
  const leader = members?.find((m) => m.id === leaderId);
  const voters = members?.filter((m) => !m.learner) ?? [];
  return {
    o,
    spec,
    name: c.metadata.name,
    namespace: c.metadata.namespace,
    nowMs: Date.parse(o.now),
    image: targetImage(spec, o.defaultImage),
    members,
    leaderId,
    leaderIndex: leader?.status?.raftIndex ?? 0,
    voters: voters.length,
    healthyVoters: voters.filter((m) => m.healthy).length,
    stsReplicas: o.statefulSet?.replicas ?? 0,
  };
}

export function memberAt(v: View, ordinal: number): MemberView | undefined {
  return v.members?.find((m) => m.ordinal === ordinal);
}

export function memberById(v: View, id: string): MemberView | undefined {
  return v.members?.find((m) => m.id === id);
}

export function podAt(v: View, ordinal: number): ObservedPod | undefined {
  return v.o.pods.find((p) => p.ordinal === ordinal);
}

export function caughtUp(v: View, m: MemberView): boolean {
  return m.healthy && m.status !== undefined && m.status.raftAppliedIndex + v.o.settings.catchUpEntriesMax >= v.leaderIndex;
}

/** Quorum holds now. */
export function hasQuorum(v: View): boolean {
  return v.voters > 0 && v.healthyVoters >= quorum(v.voters);
}

/**
 * Whether a step keeps quorum: after it, the healthy voters still make a majority of the voters.
 * The one exception is restarting the only member of a 1-member cluster (its upgrade has no other
 * way). Member-list steps that need the list (promote, remove, move leader) are unsafe without it.
 */
export function isSafe(v: View, step: Step): boolean {
  switch (step.kind) {
    case 'memberAddLearner':
      // One membership change at a time: no learner may be pending, and the add needs quorum.
      return v.members !== undefined && v.members.every((m) => !m.learner) && hasQuorum(v) && !v.members.some((m) => m.peerURL === step.peerURL);
    case 'memberPromote': {
      const m = memberById(v, step.id);
      return m !== undefined && m.learner && caughtUp(v, m) && v.healthyVoters + 1 >= quorum(v.voters + 1);
    }
    case 'memberRemove': {
      const m = memberById(v, step.id);
      if (m === undefined) return false;
      if (m.learner) return true;
      return v.voters > 1 && v.healthyVoters - (m.healthy ? 1 : 0) >= quorum(v.voters - 1);
    }
    case 'moveLeader': {
      const to = memberById(v, step.to);
      return to !== undefined && !to.learner && caughtUp(v, to) && v.leaderId === step.from;
    }
    case 'deletePod': {
      const pod = v.o.pods.find((p) => p.name === step.pod);
      if (pod === undefined) return false;
      // With no member answering, only the single member of a 1-member cluster may be restarted.
      if (v.members === undefined) return v.spec.replicas === 1 && v.stsReplicas === 1;
      const m = memberAt(v, pod.ordinal);
      if (m === undefined || m.learner || !m.healthy) return true;
      // A lone voter has no quorum to keep: restarting it (an upgrade) costs the same brief outage
      // whatever replicas the spec asks for next; refusing it would deadlock an upgrade that began
      // at 1 member against a scale-up that waits for the operation to end.
      if (v.voters === 1) return true;
      return v.healthyVoters - 1 >= quorum(v.voters);
    }
    case 'scaleStatefulSet':
      return v.members !== undefined && v.members.every((m) => m.ordinal === undefined || m.ordinal < step.replicas || step.replicas >= v.stsReplicas);
    case 'deletePvc': {
      const pvc = v.o.pvcs.find((p) => p.name === step.pvc);
      return pvc !== undefined && v.members !== undefined && memberAt(v, pvc.ordinal) === undefined;
    }
    default:
      return true;
  }
}
