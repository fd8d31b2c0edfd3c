// test-tier: unit
// Quorum-loss reporting (plan/quorum.ts), read-only: a 3-member world (test/operator/world.ts)
// loses the pods and volumes of two members; the observation is what observe/ gives without quorum
// (no linearizable member list: members undefined; the list a survivor knows, with Statuses, as
// localMembers). Before the threshold: Available=False/NoQuorum and status.quorumLoss; after it:
// Available=False and Degraded=True with reason QuorumLost, one Warning Event step, survivors ranked
// by applied index; at no point a step that changes membership, pods or volumes. Quorum seen again
// drops the record; a majority answering without a leader (an election) is no loss.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { names, peerUrl, plan, rankSurvivors, type Observed, type ObservedMember, type Plan } from '../../operator/plan/index.js';
import type { Condition, QuorumLossSurvivor } from '../../operator/api/index.js';
import { World } from './world.js';

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
