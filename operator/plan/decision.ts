// What each planner check answers (Decision) and the small builders the checks share: wait, wait
// with a Degraded reason, a step guarded by isSafe, and moving leadership off a member.
import type { EtcdClusterStatus } from '../api/index.js';
import { names } from './desired.js';
import type { Step } from './types.js';
import { caughtUp, isSafe, podAt, type MemberView, type View } from './view.js';

export interface Decision {
  step: Step;
  reason: string;
  /** The planner-owned status fields after this step. */
  status: EtcdClusterStatus;
  degraded?: { reason: string; message: string };
}

export const wait = (v: View): Step => ({ kind: 'wait', requeueMs: v.o.settings.waitMs });

export function waiting(v: View, s: EtcdClusterStatus, reason: string, degraded?: { reason: string; message: string }): Decision {
  return { step: wait(v), reason, status: s, ...(degraded !== undefined ? { degraded } : {}) };
}

/** A step that must pass isSafe; otherwise wait and say why (Degraded). */
export function guarded(v: View, s: EtcdClusterStatus, step: Step, reason: string): Decision {
  if (isSafe(v, step)) return { step, reason, status: s };
  return waiting(v, s, `not safe now: ${reason}`, { reason: 'QuorumAtRisk', message: `${reason}: would lose quorum or is not possible yet; waiting` });
}

/**
 * A healthy, caught-up voter other than `not`: the first of `prefer` that qualifies, else one whose
 * pod is on the current revision, else any.
 */
function transferTarget(v: View, not: string, prefer: readonly string[]): MemberView | undefined {
  const rev = v.o.statefulSet?.updateRevision;
  const ok = (v.members ?? []).filter((m) => m.id !== not && !m.learner && caughtUp(v, m));
  const preferred = prefer.flatMap((id) => ok.filter((m) => m.id === id));
  const updated = ok.filter((m) => m.ordinal !== undefined && podAt(v, m.ordinal)?.revision === rev);
  return preferred[0] ?? updated[0] ?? ok[0];
}

export function moveLeaderOff(v: View, s: EtcdClusterStatus, m: MemberView, why: string, prefer: readonly string[] = []): Decision {
  const to = transferTarget(v, m.id, prefer);
  if (to === undefined) return waiting(v, s, `${why}: no healthy voter to take leadership`, { reason: 'NoTransferTarget', message: 'no healthy caught-up voter to move leadership to' });
  return guarded(v, s, { kind: 'moveLeader', from: m.id, to: to.id, toMember: names.pod(v.name, to.ordinal ?? 0) }, `${why}: move leadership from ${m.name || m.id} to ${to.id}`);
}
