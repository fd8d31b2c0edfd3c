// test-tier: unit
// Quorum-loss reporting (plan/quorum.ts), read-only: a 3-member world (test/operator/world.ts)
// loses the pods and volumes of two members; the observation is what observe/ gives without quorum
// (no linearizable member list: members undefined; the list a survivor knows, with Statuses, as
// localMembers). Before the threshold: Available=False/NoQuorum and status.quorumLoss; after it:
// Available=False and Degraded=True with reason QuorumLost, one Warning Event step, survivors ranked
// by applied index; at no point a step that changes membership, pods or volumes. Quorum seen again
// drops the record; a majority answering without a leader (an election) is no loss.
// The approved recovery (plan/recover.ts) in the same world: an approval naming the best survivor
// runs snapshot -> new token -> restore -> the others rejoin as learners -> Completed with the
// annotation removed; a mismatched approval, one given before the loss was confirmed or with no loss
// at all is refused (one Warning, the Recovered condition) and never acted on until removed; withdrawn
// before the restart it is cancelled with nothing changed; the operator dying at any stage (status
// written, step not done) or the snapshot's status patch lost is resumed without repeating anything
// destructive (the survivor's claims never deleted, each other claim once). The member entrypoint's
// recovery decisions and CAIRN_RECOVER parsing (decide.ts, member/recover.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { names, peerUrl, plan, rankSurvivors, type Observed, type ObservedMember, type Plan } from '../../operator/plan/index.js';
import { RECOVERY_APPROVAL_ANNOTATION, type Condition, type QuorumLossSurvivor } from '../../operator/api/index.js';
import { decide } from '../../operator/member/decide.js';
import { readRecoverOrder } from '../../operator/member/recover.js';
import { StepRefused, World } from './world.js';

const AFTER_MS = 60_000;

/** The World as observe/ reports it: without quorum no linearizable list, only a survivor's own list. */
class LossyWorld extends World {
  override observe(): Observed {
    const o = super.observe();
    if (this.hasQuorum() || o.members === undefined) return o;
    const { members, clusterId: _c, ...rest } = o;
    void _c;
    return { ...rest, localMembers: members };
  }
}

function cond(p: Plan, type: string): Condition {
  const c = p.status.conditions?.find((x) => x.type === type);
  assert.ok(c !== undefined, `no ${type} condition`);
  return c;
}

/** Reconcile (plan, write status, act, tick) until converged at `replicas` healthy voters. */
function converge(w: World, replicas: number): void {
  for (let i = 0; i < 400; i++) {
    const p = plan(w.observe());
    w.writeStatus(p.status);
    w.apply(p.step);
    w.tick(1000);
    if (p.step.kind === 'none' && p.status.phase === 'Running' && w.voters().length === replicas && w.serving().length === replicas) return;
  }
  assert.fail(`no convergence: ${JSON.stringify(plan(w.observe()).status.conditions)}`);
}

const CHANGES = new Set(['memberAddLearner', 'memberPromote', 'memberRemove', 'moveLeader', 'deletePod', 'deletePvc', 'scaleStatefulSet', 'grantBootstrap', 'resizePvc', 'compact', 'defragment', 'disarmAlarm']);

/** Reconciles for `ms` of world time; returns the plans. Fails on any step that changes the world. */
function run(w: World, ms: number): Plan[] {
  const out: Plan[] = [];
  for (let t = 0; t < ms; t += 1000) {
    const p = plan(w.observe());
    assert.ok(!CHANGES.has(p.step.kind), `a ${p.step.kind} step during quorum loss: ${p.reason}`);
    w.writeStatus(p.status);
    w.apply(p.step);
    out.push(p);
    w.tick(1000);
  }
  return out;
}

describe('quorum loss (planner)', () => {
  it('ranks survivors by applied index, then revision, then ordinal', () => {
    const s = (name: string, applied: number, revision: number): QuorumLossSurvivor => ({ name, id: name, learner: false, raftAppliedIndex: applied, raftIndex: applied, revision });
    const ranked = rankSurvivors([s('c-0', 90, 50), s('c-3', 100, 40), s('c-2', 100, 40), s('c-10', 100, 41)]);
    assert.deepEqual(ranked.map((m) => m.name), ['c-10', 'c-2', 'c-3', 'c-0']);
  });

  it('a majority lost: NoQuorum until the threshold, then QuorumLost with one Warning, survivors ranked, nothing changed', () => {
    const w = new LossyWorld({ replicas: 3 }, { quorumLossAfterMs: AFTER_MS });
    converge(w, 3);
    const revisionBefore = Math.max(...(w.status.members ?? []).map((m) => m.revision ?? 0));
    assert.ok(revisionBefore > 0);
    w.losePodAndVolumes(1);
    w.losePodAndVolumes(2);
    w.tick(1000);
    const start = w.nowMs;
    const early = run(w, AFTER_MS - 5000);
    for (const p of early) {
      assert.equal(cond(p, 'Available').status, 'False');
      assert.equal(cond(p, 'Available').reason, 'NoQuorum');
      assert.notEqual(cond(p, 'Degraded').reason, 'QuorumLost');
      assert.notEqual(p.step.kind, 'warn');
    }
    const q = early.at(-1)?.status.quorumLoss;
    assert.ok(q !== undefined);
    assert.equal(q.since, new Date(start).toISOString());
    assert.deepEqual(q.lost, [names.pod('c', 1), names.pod('c', 2)]);
    assert.deepEqual(q.survivors.map((m) => m.name), [names.pod('c', 0)]);
    assert.ok((q.lastKnownRevision ?? 0) >= revisionBefore);
    assert.equal(q.confirmedAt, undefined);

    const later = run(w, 20_000);
    const warns = later.filter((p) => p.step.kind === 'warn');
    assert.equal(warns.length, 1, 'one Warning Event for the confirmed loss');
    const warn = warns[0];
    assert.ok(warn !== undefined && warn.step.kind === 'warn');
    assert.equal(warn.step.reason, 'QuorumLost');
    assert.match(warn.step.note, /2 of 3 voting members lost .*c-1, c-2.*survivors by applied index: c-0 applied \d+/);
    const last = later.at(-1);
    assert.ok(last !== undefined);
    assert.equal(cond(last, 'Available').status, 'False');
    assert.equal(cond(last, 'Available').reason, 'QuorumLost');
    assert.equal(cond(last, 'Degraded').status, 'True');
    assert.equal(cond(last, 'Degraded').reason, 'QuorumLost');
    assert.ok(last.status.quorumLoss?.confirmedAt !== undefined);
    assert.equal(last.status.quorumLoss.since, q.since, 'the threshold counts from the first observation');
    // The two lost members are still listed (nothing removed); pods 1 and 2 run without their data.
    assert.equal(w.members.length, 3);
    assert.equal(w.serving().length, 1);
  });

  it('survivors of a 5-member cluster ranked by applied index in status and message', () => {
    const w = new LossyWorld({ replicas: 5 }, { quorumLossAfterMs: AFTER_MS });
    converge(w, 5);
    const o = w.observe();
    assert.ok(o.members !== undefined);
    const applied = [0, 0, 0, 90, 120];
    const local: ObservedMember[] = o.members.map((m, i) => {
      const ordinal = [0, 1, 2, 3, 4].find((k) => peerUrl('c', 'ns', k) === m.peerURL) ?? i;
      if (ordinal < 3 || m.status === undefined) return { id: m.id, name: m.name, peerURL: m.peerURL, learner: m.learner };
      return { ...m, status: { ...m.status, leader: '0', raftAppliedIndex: applied[ordinal] ?? 0, revision: applied[ordinal] ?? 0, errors: ['etcdserver: no leader'] } };
    });
    const { members: _m, clusterId: _c, ...rest } = o;
    void _m;
    void _c;
    const first = plan({ ...rest, localMembers: local });
    assert.equal(cond(first, 'Available').reason, 'NoQuorum');
    w.writeStatus(first.status);
    const p = plan({ ...rest, cluster: w.cluster, localMembers: local, now: new Date(w.nowMs + AFTER_MS).toISOString() });
    assert.equal(p.step.kind, 'warn');
    assert.deepEqual(p.status.quorumLoss?.survivors.map((m) => [m.name, m.raftAppliedIndex]), [
      ['c-4', 120],
      ['c-3', 90],
    ]);
    assert.deepEqual(p.status.quorumLoss?.lost, ['c-0', 'c-1', 'c-2']);
    assert.match(cond(p, 'Available').message, /3 of 5 voting members lost .*survivors by applied index: c-4 applied 120.*; c-3 applied 90.*Best survivor c-4/);
  });

  it('quorum back drops the record; a majority answering without a leader is no loss; nobody answering keeps it', () => {
    const w = new LossyWorld({ replicas: 3 }, { quorumLossAfterMs: AFTER_MS });
    converge(w, 3);
    const healthy = w.observe();
    assert.ok(healthy.members !== undefined);
    const { members, clusterId: _c, ...rest } = healthy;
    void _c;
    const down = (keep: (i: number) => boolean): ObservedMember[] =>
      members.map((m, i) => (keep(i) && m.status !== undefined ? { ...m, status: { ...m.status, leader: '0' } } : { id: m.id, name: m.name, peerURL: m.peerURL, learner: m.learner }));
    const lost = plan({ ...rest, localMembers: down((i) => i === 0) });
    assert.ok(lost.status.quorumLoss !== undefined);
    w.writeStatus(lost.status);
    // Nobody answers at all: the loss goes on, every member counted lost.
    const silent = plan({ ...rest, cluster: w.cluster, now: new Date(w.nowMs + 1000).toISOString() });
    assert.equal(silent.status.quorumLoss?.since, lost.status.quorumLoss.since);
    assert.equal(silent.status.quorumLoss?.survivors.length, 0);
    assert.equal(silent.status.quorumLoss?.lost.length, 3);
    // Two of three answer without a leader (an election): no majority is lost.
    const election = plan({ ...rest, cluster: w.cluster, localMembers: down((i) => i < 2) });
    assert.equal(election.status.quorumLoss, undefined);
    // Quorum seen again.
    const back = plan({ ...healthy, cluster: w.cluster });
    assert.equal(back.status.quorumLoss, undefined);
    assert.equal(cond(back, 'Available').status, 'True');
  });

  it('a cluster not created yet is never reported as a quorum loss', () => {
    const w = new LossyWorld({ replicas: 3 }, { quorumLossAfterMs: 0 });
    const o = w.observe();
    const m: ObservedMember = { id: '1', name: names.pod('c', 0), peerURL: peerUrl('c', 'ns', 0), learner: false };
    const p = plan({ ...o, localMembers: [m, { ...m, id: '2', name: names.pod('c', 1), peerURL: peerUrl('c', 'ns', 1) }] });
    assert.equal(p.status.quorumLoss, undefined);
    assert.notEqual(p.step.kind, 'warn');
  });
});

// ---------- the approved recovery (plan/recover.ts) ----------

const APPROVE = RECOVERY_APPROVAL_ANNOTATION;

function annotate(w: World, value: string | undefined): void {
  const a = { ...(w.cluster.metadata.annotations ?? {}) };
  if (value === undefined) delete a[APPROVE];
  else a[APPROVE] = value;
  w.cluster = { ...w.cluster, metadata: { ...w.cluster.metadata, annotations: a } };
}

/** A converged 3-member world that lost c-1 and c-2 with their volumes, reconciled past the threshold (QuorumLost announced). */
function confirmedLoss(): { w: LossyWorld; revisionBefore: number } {
  const w = new LossyWorld({ replicas: 3 }, { quorumLossAfterMs: AFTER_MS });
  converge(w, 3);
  const revisionBefore = Math.max(...(w.status.members ?? []).map((m) => m.revision ?? 0));
  w.losePodAndVolumes(1);
  w.losePodAndVolumes(2);
  w.tick(1000);
  run(w, AFTER_MS + 5000);
  assert.ok(w.status.quorumLoss?.confirmedAt !== undefined);
  return { w, revisionBefore };
}

interface Trace {
  plans: Plan[];
  /** Steps whose act was skipped (a crash after the status write). */
  skipped: number;
}

/** Reconciles until `done`; `crash(i, p)` true: the status is written but the step is not performed (the operator died). */
function reconcileUntil(w: World, done: (p: Plan) => boolean, crash: (i: number, p: Plan) => boolean = () => false, limit = 600): Trace {
  const t: Trace = { plans: [], skipped: 0 };
  for (let i = 0; i < limit; i++) {
    const p = plan(w.observe());
    t.plans.push(p);
    w.writeStatus(p.status);
    if (crash(i, p)) t.skipped++;
    else {
      try {
        w.apply(p.step);
      } catch (e) {
        if (!(e instanceof StepRefused)) throw e;
      }
    }
    if (done(p)) return t;
    w.tick(1000);
  }
  assert.fail(`not done after ${String(limit)} reconciles: ${JSON.stringify(plan(w.observe()).status.conditions)}`);
}

const recovered = (w: World) => (p: Plan): boolean =>
  p.status.recovery?.stage === 'Completed' && p.step.kind === 'none' && w.voters().length === 3 && w.serving().length === 3 && w.cluster.metadata.annotations?.[APPROVE] === undefined;

/** The note of the one Warning Event with this reason among the plans (one per refused value). */
function oneWarning(plans: Plan[], reason: string): string {
  const found = plans.filter((p) => p.step.kind === 'note' && p.step.reason === reason);
  assert.equal(found.length, 1, `one Warning Event ${reason}`);
  const first = found[0];
  assert.ok(first !== undefined && first.step.kind === 'note');
  assert.equal(first.step.type, 'Warning');
  return first.step.note;
}

const notes = (t: Trace): string[] => t.plans.flatMap((p) => (p.step.kind === 'note' || p.step.kind === 'consumeApproval' ? [p.step.kind === 'note' ? p.step.reason : 'consumeApproval'] : []));

describe('quorum-loss recovery (planner, approved)', () => {
  it('an approval naming the best survivor: snapshot, new token, restore, the others rejoin as learners; Completed and the annotation removed', () => {
    const { w, revisionBefore } = confirmedLoss();
    const oldToken = w.status.clusterToken;
    const oldId = w.status.clusterId;
    const oldSurvivorId = w.members.find((m) => m.name === 'c-0')?.id;
    annotate(w, 'c-0');
    const t = reconcileUntil(w, recovered(w));
    assert.deepEqual(notes(t), ['RecoveryApproved', 'RecoveryRestarting', 'RecoveryRestored', 'consumeApproval']);
    const kinds = t.plans.map((p) => p.step.kind);
    assert.ok(kinds.indexOf('recoverySnapshot') < kinds.indexOf('deletePvc'), 'the snapshot before anything destructive');
    assert.equal(w.snapshotsTaken, 1);
    const r = w.status.recovery;
    assert.ok(r !== undefined && r.snapshot !== undefined);
    assert.equal(r.survivor, 'c-0');
    assert.equal(r.survivorId, oldSurvivorId);
    assert.deepEqual(r.rejoining, ['c-1', 'c-2']);
    assert.ok(r.snapshot.revision >= revisionBefore, 'the survivor had every write acknowledged before the loss');
    assert.notEqual(w.status.clusterToken, oldToken, 'a new cluster token');
    assert.equal(w.status.clusterToken, r.token);
    assert.notEqual(w.status.clusterId, oldId, 'a new cluster id');
    assert.equal(w.status.quorumLoss, undefined);
    // The survivor's claims kept; the others' replaced (each once).
    assert.ok(!w.deletedClaims.some((n) => n.endsWith('-c-0')), `survivor claims deleted: ${w.deletedClaims.join(', ')}`);
    assert.deepEqual([...w.deletedClaims].sort(), ['data-c-1', 'data-c-2', 'wal-c-1', 'wal-c-2']);
    // The old members never came back: every member is of the new cluster (joined as learners, promoted).
    assert.ok(!w.members.some((m) => m.id === oldSurvivorId));
    assert.ok(kinds.includes('memberAddLearner') && kinds.includes('memberPromote'));
    const last = t.plans.at(-1);
    assert.ok(last !== undefined);
    assert.equal(cond(last, 'Recovered').status, 'True');
    assert.equal(cond(last, 'Recovered').reason, 'RecoveryCompleted');
    assert.match(cond(last, 'Recovered').message, new RegExp(`recovered from c-0 .*revision ${String(r.snapshot.revision)} kept`));
    assert.equal(cond(last, 'Available').status, 'True');
    assert.deepEqual(w.quorumLosses, []);
  });

  it('stage reasons in the Recovered and Degraded conditions while it runs', () => {
    const { w } = confirmedLoss();
    annotate(w, 'c-0');
    const t = reconcileUntil(w, recovered(w));
    const reasons = [...new Set(t.plans.map((p) => cond(p, 'Recovered').reason))];
    for (const r of ['RecoverySnapshotting', 'RecoveryRestarting', 'RecoveryGrowing', 'RecoveryCompleted']) assert.ok(reasons.includes(r), `${r} in ${reasons.join(', ')}`);
    const degraded = new Set(t.plans.map((p) => cond(p, 'Degraded').reason));
    for (const r of ['RecoveryApproved', 'RecoverySnapshotting', 'RecoveryRestarting']) assert.ok(degraded.has(r), `Degraded ${r} in ${[...degraded].join(', ')}`);
  });

  it('a mismatched approval (not the best survivor) is refused with one Warning and the condition, and never acted on', () => {
    const { w } = confirmedLoss();
    annotate(w, 'c-1');
    const plans = run(w, 30_000);
    assert.match(oneWarning(plans, 'RecoveryRefused'), /approve-quorum-recovery=c-1 refused: it names c-1, but the best survivor shown in status.quorumLoss is c-0/);
    const last = plans.at(-1);
    assert.ok(last !== undefined);
    assert.equal(cond(last, 'Recovered').status, 'False');
    assert.equal(cond(last, 'Recovered').reason, 'RecoveryRefused');
    assert.equal(last.status.recovery, undefined);
    assert.equal(w.snapshotsTaken, 0);
    // Changed to the right survivor: accepted.
    annotate(w, 'c-0');
    reconcileUntil(w, recovered(w));
  });

  it('on a cluster with spec.auth an approval is refused up front (RecoveryUnsupported, naming auth): no snapshot, no recovery', () => {
    const { w } = confirmedLoss();
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, auth: { rootSecretRef: { name: 'root-pw', key: 'password' } } } };
    annotate(w, 'c-0');
    const plans = run(w, 30_000);
    assert.match(oneWarning(plans, 'RecoveryUnsupported'), /approve-quorum-recovery=c-0 refused: unsupported on this cluster: auth is enabled \(spec.auth\)/);
    assert.ok(!plans.some((p) => p.step.kind === 'note' && p.step.reason === 'RecoveryRefused'));
    const last = plans.at(-1);
    assert.ok(last !== undefined);
    assert.equal(cond(last, 'Recovered').status, 'False');
    assert.equal(cond(last, 'Recovered').reason, 'RecoveryUnsupported');
    assert.match(cond(last, 'Recovered').message, /auth is enabled \(spec.auth\).*without quorum no token can be obtained/);
    assert.equal(last.status.recovery, undefined);
    assert.ok(!plans.some((p) => p.step.kind === 'recoverySnapshot'));
    assert.equal(w.snapshotsTaken, 0);
    assert.equal(w.status.clusterToken ?? 'c-uid-1', 'c-uid-1', 'the cluster token unchanged');
  });

  it('spec.auth set while an approved recovery has no snapshot yet: cancelled before anything changed', () => {
    const { w } = confirmedLoss();
    annotate(w, 'c-0');
    const t = reconcileUntil(w, (p) => p.status.recovery?.stage === 'Approved');
    assert.ok(!t.plans.some((p) => p.step.kind === 'recoverySnapshot'));
    w.cluster = { ...w.cluster, spec: { ...w.cluster.spec, auth: { rootSecretRef: { name: 'root-pw', key: 'password' } } } };
    const c = reconcileUntil(w, (p) => p.status.recovery?.stage === 'Cancelled');
    assert.ok(!c.plans.some((p) => p.step.kind === 'recoverySnapshot'));
    assert.equal(w.snapshotsTaken, 0);
    assert.match(w.status.recovery?.message ?? '', /unsupported on this cluster: auth is enabled/);
    assert.equal(w.status.clusterToken, w.status.recovery?.previousToken);
    const p = plan(w.observe());
    assert.equal(cond(p, 'Recovered').reason, 'RecoveryUnsupported');
  });

  it('an approval given before the loss was confirmed (or with no loss) stays refused, even once the loss is confirmed', () => {
    const healthy = new LossyWorld({ replicas: 3 }, { quorumLossAfterMs: AFTER_MS });
    converge(healthy, 3);
    annotate(healthy, 'c-0');
    const p = plan(healthy.observe());
    assert.equal(p.step.kind, 'note');
    assert.match(JSON.stringify(p.step), /no quorum loss is reported/);
    assert.equal(cond(p, 'Recovered').reason, 'RecoveryRefused');

    const w = new LossyWorld({ replicas: 3 }, { quorumLossAfterMs: AFTER_MS });
    converge(w, 3);
    w.losePodAndVolumes(1);
    w.losePodAndVolumes(2);
    w.tick(1000);
    run(w, 5000);
    annotate(w, 'c-0');
    // Past the threshold with the early approval still there: QuorumLost is reported, nothing recovers.
    const plans = run(w, AFTER_MS + 20_000);
    assert.ok(plans.some((x) => x.step.kind === 'note' && /not confirmed yet/.test(x.step.note)));
    assert.ok(plans.some((x) => x.step.kind === 'warn'), 'QuorumLost still announced');
    assert.equal(w.snapshotsTaken, 0);
    assert.equal(w.status.recovery, undefined);
    assert.equal(w.status.recoveryRefusal?.approval, 'c-0');
    // Removed (the refusal goes with it), then set again: now acted on.
    annotate(w, undefined);
    run(w, 2000);
    assert.equal(w.status.recoveryRefusal, undefined);
    annotate(w, 'c-0');
    reconcileUntil(w, recovered(w));
  });

  it('withdrawn before the restart, or quorum back: cancelled with nothing changed', () => {
    const { w } = confirmedLoss();
    annotate(w, 'c-0');
    reconcileUntil(w, () => w.status.recovery?.snapshot !== undefined);
    annotate(w, undefined);
    const t = reconcileUntil(w, (p) => p.status.recovery?.stage === 'Cancelled');
    assert.ok(!t.plans.some((p) => ['deletePvc', 'deletePod', 'grantBootstrap'].includes(p.step.kind)));
    assert.equal(w.status.clusterToken, w.status.recovery?.previousToken);
    assert.deepEqual(w.deletedClaims, []);
    assert.equal(cond(t.plans.at(-1) ?? assert.fail(), 'Recovered').reason, 'RecoveryCancelled');
  });

  for (const at of ['RecoveryApproved', 'recoverySnapshot', 'RecoveryRestarting', 'deletePvc', 'deletePod', 'grantBootstrap', 'RecoveryRestored'] as const) {
    it(`resumes after the operator died at ${at} (status written, step not done) and repeats nothing destructive`, () => {
      const { w } = confirmedLoss();
      annotate(w, 'c-0');
      let crashed = false;
      const key = (p: Plan): string => (p.step.kind === 'note' ? p.step.reason : p.step.kind);
      const t = reconcileUntil(w, recovered(w), (_i, p) => {
        if (crashed || key(p) !== at) return false;
        crashed = true;
        return true;
      });
      assert.ok(crashed, `no ${at} step`);
      assert.equal(t.skipped, 1);
      // The survivor's claims never touched, each other claim replaced once, the snapshot taken once.
      assert.ok(!w.deletedClaims.some((n) => n.endsWith('-c-0')));
      assert.deepEqual([...w.deletedClaims].sort(), ['data-c-1', 'data-c-2', 'wal-c-1', 'wal-c-2']);
      assert.equal(w.snapshotsTaken, 1);
    });
  }

  it('resumes when the snapshot was taken but its status patch was lost: the agent answers with the same file', () => {
    const { w } = confirmedLoss();
    annotate(w, 'c-0');
    let lost = false;
    reconcileUntil(w, (p) => {
      if (!lost && p.step.kind === 'recoverySnapshot') {
        lost = true;
        const r = w.status.recovery;
        assert.ok(r?.snapshot !== undefined);
        const { snapshot: _s, ...rest } = r;
        void _s;
        w.writeStatus({ ...w.status, recovery: rest });
      }
      return recovered(w)(p);
    });
    assert.ok(lost);
    assert.equal(w.snapshotsTaken, 2, 'asked twice; the real agent answers with the file it has');
    assert.deepEqual([...w.deletedClaims].sort(), ['data-c-1', 'data-c-2', 'wal-c-1', 'wal-c-2']);
  });
});

describe('quorum-loss recovery in the member pods (decide.ts, CAIRN_RECOVER)', () => {
  const TOKEN = 'c-uid-1-rabc';
  const base = { podName: 'c-0', peerURL: 'http://c-0.c-peer.ns.svc:2380', token: TOKEN, hasData: false, marker: false, grant: undefined, members: undefined };

  it('the old token\'s data is moved aside on every pod under the order, never started', () => {
    assert.equal(decide({ ...base, hasData: true, marker: true, recovering: true, foreign: true }).kind, 'moveAside');
    assert.equal(decide({ ...base, podName: 'c-1', peerURL: 'http://c-1.c-peer.ns.svc:2380', hasData: true, marker: true, recovering: true, foreign: true }).kind, 'moveAside');
    // This token's data (after the restore): started.
    assert.equal(decide({ ...base, hasData: true, marker: true, recovering: true, foreign: false }).kind, 'start');
  });

  it('the granted survivor with an empty volume restores; another pod, or without the grant, waits', () => {
    const d = decide({ ...base, grant: TOKEN, restore: true, recovering: true, foreign: false, members: [] });
    assert.equal(d.kind, 'restore');
    assert.equal(decide({ ...base, restore: true, recovering: true, foreign: false }).kind, 'wait');
    assert.equal(decide({ ...base, podName: 'c-1', peerURL: 'http://c-1.c-peer.ns.svc:2380', restore: false, recovering: true, foreign: false }).kind, 'wait');
  });

  it('CAIRN_RECOVER is parsed at the gate with errors that name the field', () => {
    const ok = { survivor: 'c-0', token: TOKEN, file: `recovery/${TOKEN}.snapshot`, sha256: 'ab'.repeat(32), sizeBytes: 4128 };
    assert.deepEqual(readRecoverOrder({ CAIRN_RECOVER: JSON.stringify(ok) }), ok);
    assert.equal(readRecoverOrder({}), undefined);
    assert.throws(() => readRecoverOrder({ CAIRN_RECOVER: JSON.stringify({ ...ok, file: '../x' }) }), /CAIRN_RECOVER\.file must be a path inside the data volume/);
    assert.throws(() => readRecoverOrder({ CAIRN_RECOVER: JSON.stringify({ ...ok, sizeBytes: 0 }) }), /CAIRN_RECOVER\.sizeBytes must be a positive integer/);
  });

  it('the StatefulSet template carries the new token and the order only from the point of no return', () => {
    const { w } = confirmedLoss();
    annotate(w, 'c-0');
    let before: string | undefined;
    let after: string | undefined;
    reconcileUntil(w, (p) => {
      if (p.step.kind === 'apply' && p.step.object['kind'] === 'StatefulSet') {
        const c = ((((p.step.object['spec'] as Record<string, unknown>)['template'] as Record<string, unknown>)['spec'] as Record<string, unknown>)['containers'] as Array<{ env: Array<{ name: string; value?: string }> }>)[0];
        const env = new Map((c?.env ?? []).map((e) => [e.name, e.value ?? '']));
        after = env.get('CAIRN_RECOVER');
        before = env.get('CAIRN_CLUSTER_TOKEN');
      }
      return w.status.recovery?.stage === 'Growing';
    });
    const r = w.status.recovery;
    assert.ok(r?.snapshot !== undefined);
    assert.equal(before, r.token);
    assert.deepEqual(JSON.parse(after ?? '{}'), { survivor: 'c-0', token: r.token, file: r.snapshot.file, sha256: r.snapshot.sha256, sizeBytes: r.snapshot.sizeBytes });
  });
});
