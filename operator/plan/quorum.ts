// Quorum loss (pure, read-only): a created cluster whose voting members are, for a majority, not
// answering at all. Seen only through the fallback member list (Observed.localMembers: nobody
// answered the linearizable list); the survivors are the members that still answer their own
// Status, ranked by applied index (then revision, then lowest ordinal). The record lives in
// status.quorumLoss from the first observation of the loss until quorum is seen again; once it has
// lasted settings.quorumLossAfterMs the loss is confirmed: Available=False and Degraded=True with
// reason QuorumLost, one Warning Event. Nothing else: the operator takes no step because of it
// (a recovery needs the user's approval: plan/recover.ts).
import type { Condition, EtcdClusterStatus, QuorumLossStatus, QuorumLossSurvivor } from '../api/index.js';
import type { Decision } from './decision.js';
import { names, ordinalOfPeerUrl, quorum } from './desired.js';
import type { ObservedMember } from './types.js';
import { hasQuorum, type View } from './view.js';

export const QUORUM_LOST = 'QuorumLost';

function memberName(v: View, m: ObservedMember): string {
  const ordinal = ordinalOfPeerUrl(v.name, v.namespace, m.peerURL);
  return ordinal !== undefined ? names.pod(v.name, ordinal) : m.name || m.id;
}

const ordinalOf = (n: string): number => Number(/-(\d+)$/.exec(n)?.[1] ?? Number.MAX_SAFE_INTEGER);
const byOrdinal = (a: string, b: string): number => ordinalOf(a) - ordinalOf(b) || a.localeCompare(b);

/** Survivors best first: the highest applied index, then revision, then the lowest ordinal (name). */
export function rankSurvivors(survivors: readonly QuorumLossSurvivor[]): QuorumLossSurvivor[] {
  return [...survivors].sort((a, b) => b.raftAppliedIndex - a.raftAppliedIndex || b.revision - a.revision || byOrdinal(a.name, b.name));
}

/** What this observation shows: a majority of the voters not answering; undefined: no such loss seen. */
function lossSeen(v: View): { lost: string[]; survivors: QuorumLossSurvivor[] } | undefined {
  const local = v.o.localMembers;
  if (v.members !== undefined || local === undefined) return undefined;
  const voters = local.filter((m) => !m.learner);
  const answering = voters.filter((m) => m.status !== undefined);
  if (voters.length === 0 || answering.length >= quorum(voters.length)) return undefined;
  const survivors = local.flatMap((m): QuorumLossSurvivor[] =>
    m.status === undefined ? [] : [{ name: memberName(v, m), id: m.id, learner: m.learner, raftAppliedIndex: m.status.raftAppliedIndex, raftIndex: m.status.raftIndex, revision: m.status.revision }],
  );
  return { lost: voters.filter((m) => m.status === undefined).map((m) => memberName(v, m)).sort(byOrdinal), survivors: rankSurvivors(survivors) };
}

const maxOf = (xs: ReadonlyArray<number | undefined>): number | undefined => {
  const ns = xs.filter((x): x is number => x !== undefined);
  return ns.length === 0 ? undefined : Math.max(...ns);
};

/**
 * The quorum-loss record after this observation: started when a loss is first seen (with the highest
 * revision the previous status knew), updated while it lasts, kept as it was while nobody answers at
 * all (every survivor then counted lost), dropped once quorum is seen.
 */
export function quorumLossRecord(v: View, s: EtcdClusterStatus): QuorumLossStatus | undefined {
  const prev = s.quorumLoss;
  if (s.clusterId === undefined) return undefined;
  if (v.members !== undefined && hasQuorum(v)) return undefined;
  const seen = lossSeen(v);
  if (seen === undefined) {
    // A majority answers its own Status (an election, say): no majority is lost.
    if (v.o.localMembers !== undefined) return undefined;
    // The list answered but not every Status did: nothing new is known.
    if (prev === undefined || v.members !== undefined) return prev;
    // Nobody answers: the loss goes on, with no survivor left.
    return { ...prev, lost: [...prev.lost, ...prev.survivors.filter((m) => !m.learner && !prev.lost.includes(m.name)).map((m) => m.name)].sort(byOrdinal), survivors: [] };
  }
  const known = maxOf([prev?.lastKnownRevision, ...(v.o.cluster.status?.members ?? []).map((m) => m.revision), ...seen.survivors.map((m) => m.revision)]);
  const out: QuorumLossStatus = { since: prev?.since ?? v.o.now, lost: seen.lost, survivors: seen.survivors };
  if (known !== undefined) out.lastKnownRevision = known;
  if (prev?.confirmedAt !== undefined) out.confirmedAt = prev.confirmedAt;
  return out;
}

function confirmed(v: View, q: QuorumLossStatus): boolean {
  return v.nowMs - Date.parse(q.since) >= v.o.settings.quorumLossAfterMs;
}

function voterCount(q: QuorumLossStatus): number {
  return q.lost.length + q.survivors.filter((m) => !m.learner).length;
}

/** What the QuorumLost condition and Event say: what is lost, the survivors ranked, and what it would cost to start over from the best. */
export function quorumLossMessage(q: QuorumLossStatus): string {
  const n = voterCount(q);
  const head = `${String(q.lost.length)} of ${String(n)} voting members lost since ${q.since} (${q.lost.join(', ')}; quorum ${String(quorum(n))})`;
  const best = q.survivors[0];
  const known = q.lastKnownRevision !== undefined ? `; highest revision known before the loss ${String(q.lastKnownRevision)}` : '';
  if (best === undefined) return `${head}; no member answers${known}. The operator changes nothing: bring the lost members back or restore from a backup (spec.bootstrap.fromBackup)`;
  const ranked = q.survivors.map((m) => `${m.name}${m.learner ? ' (learner)' : ''} applied ${String(m.raftAppliedIndex)}, log ${String(m.raftIndex)}, revision ${String(m.revision)}`).join('; ');
  return `${head}; survivors by applied index: ${ranked}${known}. Best survivor ${best.name} (revision ${String(best.revision)}). The operator changes nothing on its own: bring the lost members back, restore from a backup (spec.bootstrap.fromBackup), or approve starting over from ${best.name} with the annotation cairn.dev/approve-quorum-recovery=${best.name} (the other members rejoin on new volumes)`;
}

/** The Available condition while quorum is lost (undefined: no loss recorded). */
export function quorumLossAvailable(v: View, q: QuorumLossStatus | undefined): Pick<Condition, 'reason' | 'message'> | undefined {
  if (q === undefined) return undefined;
  if (q.confirmedAt !== undefined || confirmed(v, q)) return { reason: QUORUM_LOST, message: quorumLossMessage(q) };
  const left = Math.max(0, Math.ceil((Date.parse(q.since) + v.o.settings.quorumLossAfterMs - v.nowMs) / 1000));
  return { reason: 'NoQuorum', message: `${String(q.lost.length)} of ${String(voterCount(q))} voting members not answering since ${q.since} (${q.lost.join(', ')}); reported as QuorumLost in ${String(left)} s if it lasts` };
}

/**
 * The decision with the quorum-loss record in its status: a confirmed loss makes the cluster
 * Degraded/QuorumLost, and its first confirmation (when the decision only waits) is a Warning Event.
 */
export function withQuorumLoss(v: View, d: Decision): Decision {
  if (v.o.cluster.metadata.deletionTimestamp !== undefined || v.spec.paused) return d;
  const q = quorumLossRecord(v, d.status);
  const status = { ...d.status };
  delete status.quorumLoss;
  if (q === undefined) return { ...d, status };
  if (q.confirmedAt === undefined && !confirmed(v, q)) return { ...d, status: { ...status, quorumLoss: q } };
  // An approved recovery's stage (plan/recover.ts) says more than the loss itself.
  const degraded = d.degraded?.reason.startsWith('Recovery') === true ? d.degraded : { reason: QUORUM_LOST, message: quorumLossMessage(q) };
  if (q.confirmedAt !== undefined || (d.step.kind !== 'wait' && d.step.kind !== 'none')) return { ...d, status: { ...status, quorumLoss: q }, degraded };
  const announced = { ...q, confirmedAt: v.o.now };
  return { step: { kind: 'warn', reason: QUORUM_LOST, note: degraded.message }, reason: `quorum lost for over ${String(v.o.settings.quorumLossAfterMs / 1000)} s`, status: { ...status, quorumLoss: announced }, degraded };
}
