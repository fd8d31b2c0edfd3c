// The backup runner's decisions, pure (unit-tested in test/operator/backups.test.ts): when the
// schedule creates an EtcdBackup (a run missed while the operator was down is ONE backup, not a
// burst), the name it gets (one per due time: creating it twice is an AlreadyExists, not a
// duplicate), which EtcdBackup records retention deletes, and which members a snapshot may come from.
import type { BackupSpec, EtcdBackup, RetentionSpec } from '../api/index.js';
import { nextRun, parseDuration, scheduleProblem, toDelete, type RetentionPolicy, type SourceCandidate } from '../backup/index.js';
import type { Observed } from '../plan/index.js';

/** Due times walked at most to find the latest one missed (a schedule every minute, down ~16 h). */
export const MISSED_RUNS_WALK_MAX = 1000;

export interface ScheduleDecision {
  /** The latest due time in (last, now]: create one EtcdBackup for it. Undefined: nothing due. */
  due?: Date;
  /** The next time after now (undefined: never, or the schedule is refused). */
  next?: Date;
  /** Why the schedule cannot run (croner refused it, unknown time zone). */
  problem?: string;
}

/**
 * `last` is status.backup.lastScheduleTime, or the cluster's creation time before the first run.
 * Suspended: nothing is due, but the next time is still reported.
 */
export function scheduleDecision(spec: Pick<BackupSpec, 'schedule' | 'timeZone' | 'suspend'>, last: Date, now: Date): ScheduleDecision {
  const s = spec.timeZone !== undefined ? { schedule: spec.schedule, timeZone: spec.timeZone } : { schedule: spec.schedule };
  const problem = scheduleProblem(s);
  if (problem !== undefined) return { problem };
  const next = nextRun(s, now) ?? undefined;
  const out: ScheduleDecision = next !== undefined ? { next } : {};
  if (spec.suspend) return out;
  let due: Date | undefined;
  let cur = nextRun(s, last);
  for (let i = 0; cur !== null && cur.getTime() <= now.getTime() && i < MISSED_RUNS_WALK_MAX; i++) {
    due = cur;
    cur = nextRun(s, cur);
  }
  if (due === undefined && cur !== null && cur.getTime() <= now.getTime()) due = now;
  return due !== undefined ? { ...out, due } : out;
}

/** "main-20261206t193000z": one name per cluster and due time (lower case: a DNS subdomain). */
export function scheduledBackupName(cluster: string, due: Date): string {
  return `${cluster}-${due.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'z').toLowerCase()}`;
}

/** The retention policy of the spec (maxAge parsed; the CRD pattern already checked it). */
export function retentionPolicy(r: RetentionSpec): RetentionPolicy {
  const maxAgeMs = r.maxAge !== undefined ? parseDuration(r.maxAge) : undefined;
  return {
    ...(r.keepLast !== undefined ? { keepLast: r.keepLast } : {}),
    ...(r.keepDaily !== undefined ? { keepDaily: r.keepDaily } : {}),
    ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
  };
}

/** When a backup began: its status, else its creation. */
export function startOf(b: EtcdBackup): number {
  const t = Date.parse(b.status?.startTime ?? b.metadata.creationTimestamp ?? '');
  return Number.isNaN(t) ? 0 : t;
}

/**
 * The EtcdBackup records (of one cluster, to the cluster's own destination, finished) the policy
 * deletes, oldest first: never the newest Succeeded one; Failed ones once a newer good one exists.
 * Pending and Running records are never candidates.
 */
export function recordsToDelete(records: readonly EtcdBackup[], policy: RetentionPolicy, nowMs: number): EtcdBackup[] {
  const done = records.filter((b) => b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed');
  const ids = toDelete(
    done.map((b) => ({ id: b.metadata.name, startMs: startOf(b), good: b.status?.phase === 'Succeeded' })),
    policy,
    nowMs,
  );
  const byName = new Map(done.map((b) => [b.metadata.name, b]));
  return ids.map((id) => byName.get(id)).filter((b): b is EtcdBackup => b !== undefined);
}

/** The members a snapshot may come from: client endpoint (pod IP) per member id, with health and role. */
export function candidatesOf(obs: Pick<Observed, 'pods' | 'members'>): SourceCandidate[] {
  const ips = new Map<string, string>();
  // observe() keeps each pod's IP (not part of the planner's type: the planner never dials).
  for (const p of obs.pods as ReadonlyArray<{ name: string; ip?: string; deleting: boolean }>) if (p.ip !== undefined && !p.deleting) ips.set(p.name, p.ip);
  const out: SourceCandidate[] = [];
  for (const m of obs.members ?? []) {
    const pod = [...ips.keys()].find((n) => m.name === n || m.peerURL.includes(`//${n}.`));
    const ip = pod !== undefined ? ips.get(pod) : undefined;
    if (ip === undefined) continue;
    out.push({
      endpoint: `${ip}:2379`,
      memberId: m.id,
      leaderId: m.status?.leader ?? '0',
      isLearner: m.learner,
      healthy: m.status !== undefined && m.status.leader !== '0' && m.status.errors.length === 0,
      revision: m.status?.revision ?? 0,
    });
  }
  return out;
}
