// Storage upkeep (pure), planned only while the cluster is otherwise converged (every member healthy,
// no operation): a defragmentation round, one member at a time, followers first (by ordinal), the
// leader last after its leadership moved to a member already done. Scheduled rounds (spec.defrag,
// due as observe/ evaluates the cron) skip members below minFragmentation. A NOSPACE alarm starts
// (or turns a scheduled round into) the remediation: compact at the current revision, defragment every
// member, then disarm the alarms. The round is in status.maintenance.round, written before each of
// its steps (a member enters `attempted` as its Defragment is sent: a failed call is not retried in
// the round, its Warning Event says why), so a restarted operator resumes it.
import type { Condition, EtcdClusterStatus, MaintenanceRound, MaintenanceStatus } from '../api/index.js';
import { moveLeaderOff, type Decision } from './decision.js';
import type { View, MemberView } from './view.js';

/** Requeue between the steps of a round (the status write of the round itself is the journal). */
export const ROUND_STEP_MS = 100;

/** Percent of the member's database file that is free pages ((dbSize - dbSizeInUse) / dbSize). */
export function fragmentationPercent(m: MemberView): number {
  const st = m.status;
  if (st === undefined || st.dbSize <= 0) return 0;
  return (100 * Math.max(0, st.dbSize - st.dbSizeInUse)) / st.dbSize;
}

function withMaintenance(s: EtcdClusterStatus, m: MaintenanceStatus): EtcdClusterStatus {
  return { ...s, maintenance: m };
}

function withRound(s: EtcdClusterStatus, round: MaintenanceRound): EtcdClusterStatus {
  return withMaintenance(s, { ...(s.maintenance ?? {}), round });
}

const nospaceAlarms = (v: View): Array<{ memberId: string; alarm: 'NOSPACE' | 'CORRUPT' }> => (v.o.alarms ?? []).filter((a) => a.alarm === 'NOSPACE');

/** The members still to defragment in the round, in order: followers by ordinal, the leader last. */
export function defragOrder(v: View, round: MaintenanceRound): MemberView[] {
  const min = round.kind === 'Scheduled' ? (v.spec.defrag?.minFragmentation ?? 0) : 0;
  const todo = (v.members ?? []).filter((m) => !round.attempted.includes(m.id) && (min === 0 || fragmentationPercent(m) >= min));
  const byOrdinal = (a: MemberView, b: MemberView): number => (a.ordinal ?? Number.MAX_SAFE_INTEGER) - (b.ordinal ?? Number.MAX_SAFE_INTEGER);
  return [...todo.filter((m) => m.id !== v.leaderId).sort(byOrdinal), ...todo.filter((m) => m.id === v.leaderId)];
}

function startRound(v: View, s: EtcdClusterStatus, kind: MaintenanceRound['kind'], why: string): Decision {
  const round: MaintenanceRound = { kind, startedAt: v.o.now, attempted: [] };
  const m: MaintenanceStatus = { ...(s.maintenance ?? {}), round };
  if (kind === 'NoSpace' && m.nospaceSince === undefined) m.nospaceSince = v.o.now;
  return { step: { kind: 'wait', requeueMs: ROUND_STEP_MS }, reason: why, status: withMaintenance(s, m) };
}

function endRound(v: View, s: EtcdClusterStatus, round: MaintenanceRound): Decision {
  const m: MaintenanceStatus = { ...(s.maintenance ?? {}), lastDefragTime: v.o.now };
  delete m.round;
  delete m.nospaceSince;
  return { step: { kind: 'wait', requeueMs: ROUND_STEP_MS }, reason: `${round.kind === 'NoSpace' ? 'NOSPACE remediation' : 'scheduled defragmentation'} done (${String(round.attempted.length)} members defragmented)`, status: withMaintenance(s, m) };
}

function continueRound(v: View, s: EtcdClusterStatus, round: MaintenanceRound): Decision {
  const alarms = nospaceAlarms(v);
  if (round.kind === 'NoSpace' && round.compactRevision === undefined) {
    const revision = Math.max(0, ...(v.members ?? []).map((m) => m.status?.revision ?? 0));
    return { step: { kind: 'compact', revision, why: 'NOSPACE remediation' }, reason: `NOSPACE: compact at revision ${String(revision)}`, status: withRound(s, { ...round, compactRevision: revision }) };
  }
  const next = defragOrder(v, round)[0];
  if (next !== undefined) {
    const why = round.kind === 'NoSpace' ? 'NOSPACE remediation' : `scheduled, ${fragmentationPercent(next).toFixed(0)}% free pages`;
    if (next.id === v.leaderId && v.voters > 1) return moveLeaderOff(v, s, next, `${next.name || next.id} leads; it is defragmented last`, round.attempted);
    const step = { kind: 'defragment' as const, member: next.name || next.id, id: next.id, why };
    return { step, reason: `defragment ${step.member} (${why})`, status: withRound(s, { ...round, attempted: [...round.attempted, next.id] }) };
  }
  const alarm = alarms[0];
  if (round.kind === 'NoSpace' && alarm !== undefined) {
    return { step: { kind: 'disarmAlarm', memberId: alarm.memberId, alarm: 'NOSPACE' }, reason: `every member defragmented: disarm the NOSPACE alarm of ${alarm.memberId}`, status: s };
  }
  return endRound(v, s, round);
}

/** The upkeep step for a converged cluster; undefined: nothing to do. */
export function upkeep(v: View, s: EtcdClusterStatus): Decision | undefined {
  const round = s.maintenance?.round;
  const nospace = nospaceAlarms(v).length > 0;
  if (round === undefined) {
    if (nospace) return startRound(v, s, 'NoSpace', 'NOSPACE alarm raised: compact, defragment every member, disarm');
    if (v.spec.defrag !== undefined && v.o.defragDue === true) return startRound(v, s, 'Scheduled', 'scheduled defragmentation is due');
    return undefined;
  }
  if (round.kind === 'Scheduled' && nospace) return startRound(v, s, 'NoSpace', 'NOSPACE alarm raised during a scheduled round: remediation instead');
  return continueRound(v, s, round);
}

/** The Maintenance condition: True while a NOSPACE alarm is raised or a round runs. */
export function maintenanceCondition(v: View, s: EtcdClusterStatus): Pick<Condition, 'status' | 'reason' | 'message'> {
  const alarms = nospaceAlarms(v);
  const round = s.maintenance?.round;
  if (alarms.length > 0 || round?.kind === 'NoSpace') {
    const who = alarms.map((a) => a.memberId).join(', ');
    return { status: 'True', reason: 'NoSpaceAlarm', message: `NOSPACE ${who === '' ? 'remediation finishing' : `raised by ${who}`}: compacting, defragmenting every member, then disarming${round?.compactRevision !== undefined ? ` (compacted at ${String(round.compactRevision)})` : ''}` };
  }
  if (round !== undefined) return { status: 'True', reason: 'Defragmenting', message: `scheduled defragmentation since ${round.startedAt}: ${String(round.attempted.length)} done` };
  const last = s.maintenance?.lastDefragTime;
  return { status: 'False', reason: 'Idle', message: last === undefined ? 'no maintenance running' : `last defragmentation ${last}` };
}
