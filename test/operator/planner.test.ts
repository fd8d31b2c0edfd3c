// Planner properties (fast-check; a failure prints its seed and the shrunk counterexample):
//  1. over random observations: every step keeps quorum (judged here independently of the
//     planner's own isSafe), membership changes come one at a time (no add while a learner is
//     pending) and every membership or volume step acts on the member the journal names;
//  2. over random histories of a simulated world (test/operator/world.ts) with random spec
//     changes, faults (pods killed, pods and volumes lost), and an operator that dies between
//     writing its status and acting (the step is lost): no step loses quorum, the world server
//     never refuses a step as unsafe, and once the faults stop the cluster converges to the spec.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { names, ordinalOfPeerUrl, peerUrl, plan, quorum, DEFAULT_SETTINGS, type Observed, type ObservedMember, type ObservedPod, type Step } from '../../operator/plan/index.js';
import { withDefaults, type Operation, type OperationType } from '../../operator/api/index.js';
import { DEFAULT_IMAGE, StepRefused, World } from './world.js';

const NOW = '2026-01-01T01:00:00.000Z';
const EARLIER = '2026-01-01T00:00:00.000Z';

const MEMBER_STEPS = new Set<Step['kind']>(['memberAddLearner', 'memberPromote', 'memberRemove', 'moveLeader', 'deletePod', 'deletePvc', 'scaleStatefulSet']);

// ---------- random observations ----------

interface Shape {
  replicas: number;
  stsReplicas: number;
  members: Array<{ learner: boolean; healthy: boolean; started: boolean }>;
  pods: Array<{ outdated: boolean; deleting: boolean }>;
  leader: number;
  op: { type: OperationType; ordinal: number } | null;
  image: string;
  unhealthyLong: boolean;
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  replicas: fc.constantFrom(1, 3, 5, 7),
  stsReplicas: fc.integer({ min: 0, max: 8 }),
  members: fc.array(fc.record({ learner: fc.boolean(), healthy: fc.boolean(), started: fc.boolean() }), { maxLength: 8 }),
  pods: fc.array(fc.record({ outdated: fc.boolean(), deleting: fc.boolean() }), { maxLength: 8 }),
  leader: fc.integer({ min: -1, max: 7 }),
  op: fc.option(fc.record({ type: fc.constantFrom<OperationType>('Create', 'ScaleUp', 'ScaleDown', 'Replace', 'Upgrade'), ordinal: fc.integer({ min: 0, max: 7 }) }), { nil: null }),
  image: fc.constantFrom(DEFAULT_IMAGE, 'localhost/cairn:v2'),
  unhealthyLong: fc.boolean(),
});

function observedOf(s: Shape): Observed {
  const w = new World({ replicas: s.replicas, image: s.image });
  // A settled world with the objects applied, then overwritten by the random shape.
  const base = w.observe();
  const stsPlan = plan(base); // Create journal
  w.writeStatus(stsPlan.status);
  for (let i = 0; i < 10; i++) {
    const p = plan(w.observe());
    w.writeStatus(p.status);
    if (p.step.kind !== 'apply') break;
    w.apply(p.step);
  }
  const hash = w.sts?.hash ?? 'h';
  const leaderId = s.leader >= 0 && s.leader < s.members.length ? (s.leader + 1).toString(16) : '0';
  const members: ObservedMember[] = s.members.map((m, i) => {
    const base: ObservedMember = { id: (i + 1).toString(16), name: m.started ? names.pod('c', i) : '', peerURL: peerUrl('c', 'ns', i), learner: m.learner };
    return m.healthy ? { ...base, status: { leader: leaderId, raftIndex: 100, raftAppliedIndex: 100, dbSize: 1, dbSizeInUse: 1, revision: 1, errors: [] } } : base;
  });
  const pods: ObservedPod[] = s.pods.map((p, i) => ({
    name: names.pod('c', i),
    ordinal: i,
    phase: 'Running',
    ready: true,
    image: p.outdated ? 'localhost/cairn:old' : s.image,
    revision: p.outdated ? 'old' : hash,
    restarts: 0,
    deleting: p.deleting,
    createdAt: EARLIER,
  }));
  const status = { ...w.status, clusterId: 'c1', members: s.members.map((m, i) => ({ name: names.pod('c', i), id: (i + 1).toString(16), learner: m.learner, leader: false, healthy: m.healthy, ...(m.healthy ? {} : { unhealthySince: s.unhealthyLong ? EARLIER : NOW }) })) };
  if (s.op === null) delete status.operation;
  else {
    const op: Operation = { type: s.op.type, member: names.pod('c', s.op.ordinal), ordinal: s.op.ordinal, startedAt: EARLIER, reason: 'test', image: s.image };
    const id = members[s.op.ordinal]?.id;
    if (id !== undefined) op.memberId = id;
    status.operation = op;
  }
  const o: Observed = {
    ...w.observe(),
    now: NOW,
    cluster: { ...w.cluster, spec: withDefaults({ replicas: s.replicas, image: s.image }), status },
    pods,
    pvcs: pods.flatMap((p) => (['data', 'wal'] as const).map((volume) => ({ name: names.pvc('c', volume, p.ordinal), ordinal: p.ordinal, volume, requestBytes: 2 ** 30, deleting: false, createdAt: EARLIER }))),
    members,
    clusterId: 'c1',
    settings: DEFAULT_SETTINGS,
  };
  if (w.sts !== undefined) o.statefulSet = { replicas: s.stsReplicas, hash, updateRevision: hash, claimSizes: w.sts.claimSizes };
  return o;
}

/** Independent judgement: does the step keep quorum and change one journaled member at a time? */
function judge(o: Observed, step: Step, op: Operation | undefined): string | undefined {
  const ms = o.members ?? [];
  const healthy = (m: ObservedMember): boolean => m.status !== undefined && m.status.leader !== '0';
  const voters = ms.filter((m) => !m.learner);
  const hv = voters.filter(healthy).length;
  const ordinalOf = (m: ObservedMember): number | undefined => ordinalOfPeerUrl('c', 'ns', m.peerURL);
  const at = (i: number): ObservedMember | undefined => ms.find((m) => ordinalOf(m) === i);
  if (MEMBER_STEPS.has(step.kind) && op === undefined) return `${step.kind} outside a journaled operation`;
  switch (step.kind) {
    case 'memberAddLearner':
      if (ms.some((m) => m.learner)) return 'add while a learner is pending';
      if (hv < quorum(voters.length)) return 'add without quorum';
      if (step.member !== op?.member) return 'add of a member the journal does not name';
      return undefined;
    case 'memberPromote': {
      const m = ms.find((x) => x.id === step.id);
      if (m === undefined || !m.learner || !healthy(m)) return 'promote of an unhealthy or non-learner';
      if (hv + 1 < quorum(voters.length + 1)) return 'promote loses quorum';
      return step.member === op?.member ? undefined : 'promote of a member the journal does not name';
    }
    case 'memberRemove': {
      const m = ms.find((x) => x.id === step.id);
      if (m === undefined) return 'remove of an unknown member';
      if (!m.learner && hv - (healthy(m) ? 1 : 0) < quorum(voters.length - 1)) return 'remove loses quorum';
      return ordinalOf(m) === op?.ordinal ? undefined : 'remove of a member the journal does not name';
    }
    case 'deletePod': {
      const pod = o.pods.find((p) => p.name === step.pod);
      if (pod === undefined) return 'delete of an unknown pod';
      const m = at(pod.ordinal);
      // A lone voter may be restarted whatever the spec asks next: it has no quorum to keep.
      const single = voters.length === 1;
      if (m !== undefined && !m.learner && healthy(m) && hv - 1 < quorum(voters.length) && !single) return 'pod delete loses quorum';
      return pod.ordinal === op?.ordinal ? undefined : 'pod delete of a member the journal does not name';
    }
    case 'scaleStatefulSet':
      if (ms.some((m) => (ordinalOf(m) ?? -1) >= step.replicas && !(step.replicas >= (o.statefulSet?.replicas ?? 0)))) return 'shrink below a listed member';
      return undefined;
    case 'deletePvc': {
      const pvc = o.pvcs.find((p) => p.name === step.pvc);
      if (pvc === undefined) return 'delete of an unknown claim';
      return at(pvc.ordinal) === undefined ? undefined : 'claim delete of a listed member';
    }
    default:
      return undefined;
  }
}

describe('planner over random observations', () => {
  it('never a step that loses quorum; one journaled membership change at a time', () => {
    fc.assert(
      fc.property(shapeArb, (s) => {
        const o = observedOf(s);
        const p = plan(o);
        const why = judge(o, p.step, p.status.operation);
        assert.equal(why, undefined, `${String(why)}: step ${JSON.stringify(p.step)} (${p.reason})`);
      }),
      { numRuns: 3000 },
    );
  });

  it('the reported status is well-formed (conditions, counts, observed generation)', () => {
    fc.assert(
      fc.property(shapeArb, (s) => {
        const p = plan(observedOf(s));
        const types = (p.status.conditions ?? []).map((c) => c.type).sort();
        assert.deepEqual(types, ['Available', 'Degraded', 'Maintenance', 'Progressing']);
        assert.equal(p.status.observedGeneration, 1);
        assert.equal(p.status.members?.length, s.members.length);
        assert.ok(p.reason.length > 0);
      }),
      { numRuns: 500 },
    );
  });
});

// ---------- random histories ----------

type Event =
  | { t: 'spec'; replicas?: number; image?: string }
  | { t: 'kill'; ordinal: number }
  | { t: 'lose'; ordinal: number }
  | { t: 'drop' }
  | { t: 'run'; n: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('spec' as const), replicas: fc.constantFrom(1, 3, 5, 7) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('spec' as const), image: fc.constantFrom(DEFAULT_IMAGE, 'localhost/cairn:v2', 'localhost/cairn:v3') }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('kill' as const), ordinal: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('lose' as const), ordinal: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'drop' as const }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('run' as const), n: fc.integer({ min: 1, max: 40 }) }) },
);

interface Trace {
  steps: string[];
  refused: string[];
}

/** One reconcile: plan, write the status, act (unless the operator "dies" first), tick. */
function reconcile(w: World, trace: Trace, drop: boolean): ReturnType<typeof plan> {
  const o = w.observe();
  const p = plan(o);
  const why = judge(o, p.step, p.status.operation);
  assert.equal(why, undefined, `${String(why)}: ${JSON.stringify(p.step)} (${p.reason})\n${trace.steps.slice(-30).join('\n')}`);
  w.writeStatus(p.status);
  trace.steps.push(`${p.step.kind} ${p.reason}`);
  if (!drop) {
    try {
      w.apply(p.step);
    } catch (e) {
      if (!(e instanceof StepRefused)) throw e;
      trace.refused.push(`${p.step.kind}: ${e.message}`);
    }
  }
  w.tick(1000);
  return p;
}

function converged(w: World, image: string): boolean {
  const o = w.observe();
  const spec = withDefaults(w.cluster.spec);
  const p = plan(o);
  return (
    p.step.kind === 'none' &&
    p.status.operation === undefined &&
    w.voters().length === spec.replicas &&
    w.members.length === spec.replicas &&
    w.serving().length === spec.replicas &&
    [...w.pods.values()].every((x) => x.image === image) &&
    w.pods.size === spec.replicas &&
    p.status.phase === 'Running'
  );
}

function settle(w: World, trace: Trace, image: string, maxReconciles: number): number {
  for (let i = 0; i < maxReconciles; i++) {
    if (converged(w, image)) return i;
    reconcile(w, trace, false);
  }
  assert.fail(`no convergence in ${maxReconciles} reconciles: ${JSON.stringify(plan(w.observe()).status.conditions)}\n${trace.steps.slice(-40).join('\n')}\nrefused: ${trace.refused.slice(-10).join('\n')}`);
}

describe('planner in a simulated world', () => {
  it('creates 1, 3, 5 and 7 members from one, one learner at a time', () => {
    for (const replicas of [1, 3, 5, 7]) {
      const w = new World({ replicas }, { replaceAfterMs: 20_000 });
      const trace: Trace = { steps: [], refused: [] };
      const n = settle(w, trace, DEFAULT_IMAGE, 400);
      assert.equal(trace.refused.length, 0, trace.refused.join('\n'));
      assert.equal(trace.steps.filter((s) => s.startsWith('memberAddLearner')).length, replicas - 1);
      assert.equal(trace.steps.filter((s) => s.startsWith('memberPromote')).length, replicas - 1);
      assert.equal(trace.steps.filter((s) => s.startsWith('grantBootstrap')).length, 1);
      assert.ok(n < 40 * replicas, `${n} reconciles for ${replicas}`);
      assert.deepEqual(w.quorumLosses, []);
    }
  });

  it('upgrades followers first and the leader last, after moving leadership', () => {
    const w = new World({ replicas: 3 });
    const trace: Trace = { steps: [], refused: [] };
    settle(w, trace, DEFAULT_IMAGE, 400);
    const leader = w.leaderId;
    w.setSpec({ image: 'localhost/cairn:v2' });
    trace.steps.length = 0;
    settle(w, trace, 'localhost/cairn:v2', 400);
    const deletes = trace.steps.filter((s) => s.startsWith('deletePod'));
    assert.equal(deletes.length, 3);
    const leaderPod = w.members.find((m) => m.id === leader)?.name ?? '';
    const moveIdx = trace.steps.findIndex((s) => s.startsWith('moveLeader'));
    const lastDelete = trace.steps.lastIndexOf(deletes[2] ?? '');
    assert.ok(moveIdx >= 0 && moveIdx < lastDelete, 'leadership moved before the last restart');
    assert.ok((deletes[2] ?? '').includes(leaderPod), `the old leader ${leaderPod} is restarted last: ${deletes.join(' | ')}`);
    assert.deepEqual(w.quorumLosses, []);
  });

  it('a broken image stops the rollout Degraded; the old image rolls it back', () => {
    const w = new World({ replicas: 3 }, { upgradeHealthyTimeoutMs: 30_000 });
    const trace: Trace = { steps: [], refused: [] };
    settle(w, trace, DEFAULT_IMAGE, 400);
    w.brokenImages.add('localhost/cairn:broken');
    w.setSpec({ image: 'localhost/cairn:broken' });
    let p = reconcile(w, trace, false);
    for (let i = 0; i < 200 && p.status.stoppedRollout === undefined; i++) p = reconcile(w, trace, false);
    assert.equal(p.status.stoppedRollout, 'localhost/cairn:broken');
    for (let i = 0; i < 5; i++) p = reconcile(w, trace, false);
    assert.equal(p.status.conditions?.find((c) => c.type === 'Degraded')?.reason, 'RolloutStopped');
    assert.equal(p.status.phase, 'Degraded');
    assert.equal([...w.pods.values()].filter((x) => x.image === 'localhost/cairn:broken').length, 1, 'only one pod was tried');
    assert.ok(w.hasQuorum());
    w.setSpec({ image: DEFAULT_IMAGE });
    settle(w, trace, DEFAULT_IMAGE, 400);
    assert.deepEqual(w.quorumLosses, []);
  });

  it('replaces a member whose volume is lost (new member id), only while quorum holds', () => {
    const w = new World({ replicas: 3 }, { replaceAfterMs: 20_000 });
    const trace: Trace = { steps: [], refused: [] };
    settle(w, trace, DEFAULT_IMAGE, 400);
    const old = w.members.find((m) => m.name === names.pod('c', 1))?.id;
    w.losePodAndVolumes(1);
    trace.steps.length = 0;
    settle(w, trace, DEFAULT_IMAGE, 400);
    const now = w.members.find((m) => m.name === names.pod('c', 1))?.id;
    assert.ok(now !== undefined && now !== old, `member 1 has a new id (${String(old)} -> ${String(now)})`);
    assert.ok(trace.steps.some((s) => s.startsWith('journal') && s.includes('Replace')));
    assert.deepEqual(w.quorumLosses, []);
  });

  it('scales 3 -> 5 -> 3 -> 1 and removes the claims of removed members', () => {
    const w = new World({ replicas: 3 });
    const trace: Trace = { steps: [], refused: [] };
    settle(w, trace, DEFAULT_IMAGE, 400);
    for (const r of [5, 3, 1]) {
      w.setSpec({ replicas: r });
      settle(w, trace, DEFAULT_IMAGE, 600);
      assert.equal(new Set([...w.pvcs.values()].map((p) => p.ordinal)).size, r, 'claims only for current members');
    }
    assert.deepEqual(w.quorumLosses, []);
    assert.deepEqual(trace.refused, []);
  });

  it('a 1-member upgrade under way when replicas goes to 3 finishes, then scales (fast-check seed 453379887)', () => {
    const w = new World({ replicas: 1 }, { replaceAfterMs: 15_000, upgradeHealthyTimeoutMs: 60_000 });
    const trace: Trace = { steps: [], refused: [] };
    for (let i = 0; i < 9; i++) reconcile(w, trace, false);
    const image = 'localhost/cairn:v3';
    w.setSpec({ image });
    for (let i = 0; i < 2; i++) reconcile(w, trace, false);
    w.setSpec({ replicas: 3, image });
    settle(w, trace, image, 1500);
    assert.equal(w.voters().length, 3);
    assert.deepEqual(w.quorumLosses, []);
  });

  it('a lost volume, a dropped step, replicas 5 -> 7 and the replaced pod killed converge (fast-check seed -457206064)', () => {
    const w = new World({ replicas: 5 }, { replaceAfterMs: 15_000, upgradeHealthyTimeoutMs: 60_000 });
    const trace: Trace = { steps: [], refused: [] };
    for (let i = 0; i < 28; i++) reconcile(w, trace, false);
    w.losePodAndVolumes(1);
    reconcile(w, trace, true);
    w.setSpec({ replicas: 7, image: DEFAULT_IMAGE });
    w.killPod(1);
    settle(w, trace, DEFAULT_IMAGE, 1500);
    assert.equal(w.voters().length, 7);
    assert.deepEqual(w.quorumLosses, []);
  });

  it('random histories: never loses quorum, resumes after lost steps, converges once faults stop', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 3, 5), fc.array(eventArb, { maxLength: 25 }), (replicas, events) => {
        const w = new World({ replicas }, { replaceAfterMs: 15_000, upgradeHealthyTimeoutMs: 60_000 });
        const trace: Trace = { steps: [], refused: [] };
        let image = DEFAULT_IMAGE;
        for (const e of events) {
          if (e.t === 'spec') {
            if (e.image !== undefined) image = e.image;
            w.setSpec({ ...(e.replicas !== undefined ? { replicas: e.replicas } : {}), image });
          } else if (e.t === 'kill') w.killPod(e.ordinal);
          else if (e.t === 'lose') {
            // A lost volume is survivable only while the rest hold quorum; the test world keeps it so.
            const others = w.voters().filter((m) => m.name !== names.pod('c', e.ordinal));
            const up = new Set(w.serving().map((m) => m.id));
            if (others.filter((m) => up.has(m.id)).length >= quorum(w.voters().length)) w.losePodAndVolumes(e.ordinal);
          } else if (e.t === 'drop') reconcile(w, trace, true);
          else for (let i = 0; i < e.n; i++) reconcile(w, trace, false);
          assert.deepEqual(w.quorumLosses, [], trace.steps.slice(-20).join('\n'));
        }
        settle(w, trace, image, 1500);
        assert.deepEqual(w.quorumLosses, []);
      }),
      { numRuns: 150 },
    );
  });
});

// ---------- storage upkeep and restore gating ----------

/** A settled World plus what the upkeep steps act on: each member's file and in-use bytes, alarms. */
class Upkeep {
  readonly w: World;
  readonly sizes = new Map<string, { db: number; inUse: number }>();
  alarms: Array<{ memberId: string; alarm: 'NOSPACE' | 'CORRUPT' }> = [];
  due = false;
  compactedAt: number | undefined;
  readonly log: string[] = [];

  constructor(replicas: number, spec: Record<string, unknown> = {}) {
    this.w = new World({ replicas, ...spec });
    settle(this.w, { steps: [], refused: [] }, DEFAULT_IMAGE, 400);
    for (const m of this.w.members) this.sizes.set(m.id, { db: 100_000, inUse: 40_000 });
  }

  observe(): Observed {
    const o = this.w.observe();
    const members = o.members?.map((m) => (m.status === undefined ? m : { ...m, status: { ...m.status, dbSize: this.sizes.get(m.id)?.db ?? 0, dbSizeInUse: this.sizes.get(m.id)?.inUse ?? 0 } }));
    return { ...o, ...(members !== undefined ? { members } : {}), alarms: this.alarms, defragDue: this.due };
  }

  /** One reconcile; returns the plan. Upkeep steps act here, the rest in the World. */
  step(): ReturnType<typeof plan> {
    const o = this.observe();
    const p = plan(o);
    this.w.writeStatus(p.status);
    const s = p.step;
    if (s.kind === 'defragment') {
      if (this.w.members.length > 1) assert.notEqual(s.id, this.w.leaderId, `the leader ${s.id} is never defragmented in a ${String(this.w.members.length)}-member cluster`);
      const z = this.sizes.get(s.id);
      if (z !== undefined) z.db = z.inUse;
      this.log.push(`defrag ${s.member}`);
    } else if (s.kind === 'compact') {
      this.compactedAt = s.revision;
      this.log.push(`compact ${String(s.revision)}`);
    } else if (s.kind === 'disarmAlarm') {
      this.alarms = this.alarms.filter((a) => !(a.memberId === s.memberId && a.alarm === s.alarm));
      this.log.push(`disarm ${s.memberId}`);
    } else {
      if (s.kind === 'moveLeader') this.log.push(`moveLeader ${s.toMember}`);
      this.w.apply(s);
    }
    this.w.tick(1000);
    return p;
  }

  run(n: number): ReturnType<typeof plan> {
    let p = this.step();
    for (let i = 1; i < n && (p.step.kind !== 'none' || p.status.maintenance?.round !== undefined); i++) p = this.step();
    return p;
  }

  leaderName(): string {
    return this.w.members.find((m) => m.id === this.w.leaderId)?.name ?? '';
  }
}

const cond = (p: ReturnType<typeof plan>, type: string): { status: string; reason: string; message: string } | undefined => p.status.conditions?.find((c) => c.type === type);

describe('planner: storage upkeep', () => {
  it('NOSPACE: compacts at the current revision, defragments every member followers first, the leader last after moving leadership, then disarms', () => {
    const u = new Upkeep(3);
    const leader = u.leaderName();
    u.alarms = [{ memberId: u.w.leaderId ?? '', alarm: 'NOSPACE' }];
    const first = u.step();
    assert.equal(cond(first, 'Maintenance')?.status, 'True');
    assert.equal(cond(first, 'Maintenance')?.reason, 'NoSpaceAlarm');
    assert.ok(first.status.maintenance?.nospaceSince !== undefined);
    const last = u.run(40);
    const revision = Math.max(...(u.observe().members ?? []).map((m) => m.status?.revision ?? 0));
    assert.ok(u.compactedAt !== undefined && u.compactedAt > 0 && u.compactedAt <= revision, `compacted at a revision the members reached (${String(u.compactedAt)})`);
    assert.match(u.log[0] ?? '', /^compact \d+$/, 'compaction first');
    const defrags = u.log.filter((l) => l.startsWith('defrag'));
    assert.equal(defrags.length, 3, u.log.join('\n'));
    assert.equal(defrags.at(-1), `defrag ${leader}`, `the old leader last: ${u.log.join(', ')}`);
    const move = u.log.findIndex((l) => l.startsWith('moveLeader'));
    assert.ok(move > 0 && move < u.log.indexOf(`defrag ${leader}`), `leadership moved before the leader's defragmentation: ${u.log.join(', ')}`);
    assert.ok(u.log.indexOf(`defrag ${leader}`) < u.log.findIndex((l) => l.startsWith('disarm')), 'disarm after every defragmentation');
    assert.deepEqual(u.alarms, []);
    assert.equal(last.status.maintenance?.round, undefined);
    assert.equal(last.status.maintenance?.nospaceSince, undefined);
    assert.ok(last.status.maintenance?.lastDefragTime !== undefined);
    assert.equal(cond(last, 'Maintenance')?.reason, 'Idle');
    assert.equal(cond(last, 'Maintenance')?.status, 'False');
    assert.deepEqual(u.w.quorumLosses, []);
  });

  it('a round resumes after an operator restart: attempted members are not defragmented twice', () => {
    const u = new Upkeep(3);
    u.alarms = [{ memberId: '1', alarm: 'NOSPACE' }];
    for (let i = 0; i < 3; i++) u.step(); // start, compact, first defrag
    assert.deepEqual(u.log.filter((l) => l.startsWith('defrag')).length, 1);
    // The "restarted operator" sees only the status written so far.
    u.run(40);
    const defrags = u.log.filter((l) => l.startsWith('defrag'));
    assert.equal(new Set(defrags).size, defrags.length, `each member once: ${defrags.join(', ')}`);
    assert.equal(defrags.length, 3);
  });

  it('scheduled defragmentation skips members under minFragmentation and moves leadership before the leader', () => {
    const u = new Upkeep(3, { defrag: { schedule: '0 3 * * *', minFragmentation: 30 } });
    const leaderId = u.w.leaderId ?? '';
    const follower = u.w.members.find((m) => m.id !== leaderId);
    assert.ok(follower !== undefined);
    u.sizes.set(follower.id, { db: 100_000, inUse: 90_000 }); // 10% free: skipped
    const idle = u.step();
    assert.equal(idle.step.kind, 'none', 'nothing while not due');
    assert.equal(cond(idle, 'Maintenance')?.reason, 'Idle');
    u.due = true;
    const start = u.step();
    assert.equal(cond(start, 'Maintenance')?.reason, 'Defragmenting');
    u.due = false;
    u.run(40);
    const defrags = u.log.filter((l) => l.startsWith('defrag'));
    assert.equal(defrags.length, 2, u.log.join(', '));
    assert.ok(!defrags.includes(`defrag ${follower.name}`), 'the 10% member is skipped');
    assert.ok(u.log.some((l) => l.startsWith('moveLeader')), u.log.join(', '));
    assert.equal(u.log.filter((l) => l.startsWith('compact')).length, 0, 'no compaction in a scheduled round');
  });

  it('no upkeep while a member is unhealthy: the round waits', () => {
    const u = new Upkeep(3);
    u.w.killPod(1);
    u.alarms = [{ memberId: '1', alarm: 'NOSPACE' }];
    const p = u.step();
    assert.notEqual(p.step.kind, 'defragment');
    assert.notEqual(p.step.kind, 'compact');
    assert.equal(p.status.maintenance?.round, undefined);
  });

  it('a one-member cluster defragments its only member without moving leadership', () => {
    const u = new Upkeep(1);
    u.alarms = [{ memberId: u.w.leaderId ?? '', alarm: 'NOSPACE' }];
    u.run(20);
    assert.deepEqual(u.log.filter((l) => !l.startsWith('compact')), [`defrag ${names.pod('c', 0)}`, `disarm ${u.w.leaderId ?? ''}`]);
    assert.equal(u.log.filter((l) => l.startsWith('moveLeader')).length, 0);
  });
});

describe('planner: restore gating', () => {
  const fromS3 = { fromBackup: { s3: { bucket: 'backups', key: 'c/backup.snap', endpoint: 'http://10.0.0.1:8333', forcePathStyle: true, credentialsSecretRef: { name: 's3-creds' } } } };

  function restoreWorld(): World {
    return new World({ replicas: 3, bootstrap: fromS3 });
  }

  function verifyFirst(w: World): ReturnType<typeof plan> {
    let p = plan(w.observe());
    for (let i = 0; i < 5 && p.step.kind !== 'verifyBackup'; i++) {
      w.writeStatus(p.status);
      assert.notEqual(p.step.kind, 'apply', 'nothing is created before the backup is verified');
      p = plan(w.observe());
    }
    return p;
  }

  it('verifies the object before creating anything; a refused object: no StatefulSet, Restored=False RestoreRefused, no retry', () => {
    const w = restoreWorld();
    w.observe = ((orig) => () => ({ ...orig(), restoreSource: { ok: true as const, uri: 's3://backups/c/backup.snap', location: withDefaults({ bootstrap: fromS3 }).bootstrap?.fromBackup.s3 ?? { bucket: '', key: '', region: '', forcePathStyle: false } } }))(w.observe.bind(w));
    const p = verifyFirst(w);
    assert.equal(p.step.kind, 'verifyBackup');
    assert.ok(p.status.restore?.verifyStartedAt !== undefined);
    w.writeStatus(p.status);
    // While the verification runs (its outcome not in status yet): wait, never a second one.
    const inFlight = plan(w.observe());
    assert.equal(inFlight.step.kind, 'wait');
    // act/ records the refusal.
    w.writeStatus({ ...inFlight.status, restore: { uri: 's3://backups/c/backup.snap', sha256: '', size: 0, revision: 0, refusal: 'downloaded 100 bytes, the backup record says 4128 (truncated)', refusedAt: w.observe().now, retryable: false } });
    for (let i = 0; i < 20; i++) {
      const q = plan(w.observe());
      w.writeStatus(q.status);
      assert.ok(q.step.kind === 'none', `refused: nothing more (${q.step.kind})`);
      assert.equal(cond(q, 'Restored')?.status, 'False');
      assert.equal(cond(q, 'Restored')?.reason, 'RestoreRefused');
      assert.match(cond(q, 'Restored')?.message ?? '', /truncated/);
      assert.equal(cond(q, 'Degraded')?.reason, 'RestoreRefused');
      w.tick(60_000);
    }
    assert.equal(w.sts, undefined);
  });

  it('a store that could not be read is tried again after RESTORE_RETRY_MS, not before', () => {
    const w = restoreWorld();
    w.observe = ((orig) => () => ({ ...orig(), restoreSource: { ok: true as const, uri: 's3://backups/k', location: { bucket: 'backups', key: 'k', region: 'us-east-1', forcePathStyle: true } } }))(w.observe.bind(w));
    const p = verifyFirst(w);
    w.writeStatus({ ...p.status, restore: { uri: 's3://backups/k', sha256: '', size: 0, revision: 0, refusal: 'endpoint unreachable', refusedAt: w.observe().now, retryable: true } });
    const soon = plan(w.observe());
    assert.equal(soon.step.kind, 'wait');
    w.writeStatus(soon.status);
    w.tick(61_000);
    assert.equal(plan(w.observe()).step.kind, 'verifyBackup');
  });

  it('once verified: pod 0 gets the object and its credentials as secretKeyRef env; Restored=True when the first member answers', () => {
    const w = restoreWorld();
    const loc = { bucket: 'backups', key: 'c/backup.snap', region: 'us-east-1', forcePathStyle: true, endpoint: 'http://10.0.0.1:8333', credentialsSecretRef: { name: 's3-creds', accessKeyIdKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' } };
    w.observe = ((orig) => () => ({ ...orig(), restoreSource: { ok: true as const, uri: 's3://backups/c/backup.snap', location: loc } }))(w.observe.bind(w));
    const p = verifyFirst(w);
    w.writeStatus({ ...p.status, restore: { uri: 's3://backups/c/backup.snap', sha256: 'ab'.repeat(32), size: 4128, revision: 42, source: loc, verifiedAt: w.observe().now } });
    const trace: Trace = { steps: [], refused: [] };
    let sts: Record<string, unknown> | undefined;
    for (let i = 0; i < 400 && !converged(w, DEFAULT_IMAGE); i++) {
      const q = plan(w.observe());
      if (q.step.kind === 'apply' && q.step.object['kind'] === 'StatefulSet') sts = q.step.object;
      reconcile(w, trace, false);
    }
    assert.ok(converged(w, DEFAULT_IMAGE), trace.steps.slice(-20).join('\n'));
    const spec = (sts?.['spec'] ?? {}) as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string; valueFrom?: unknown }> }> } } };
    const env = spec.template.spec.containers[0]?.env ?? [];
    const order = JSON.parse(env.find((e) => e.name === 'CAIRN_RESTORE')?.value ?? '{}') as Record<string, unknown>;
    assert.deepEqual(order, { uri: 's3://backups/c/backup.snap', bucket: 'backups', key: 'c/backup.snap', region: 'us-east-1', forcePathStyle: true, endpoint: 'http://10.0.0.1:8333', sha256: 'ab'.repeat(32), sizeBytes: 4128 });
    assert.deepEqual(env.find((e) => e.name === 'AWS_SECRET_ACCESS_KEY')?.valueFrom, { secretKeyRef: { name: 's3-creds', key: 'AWS_SECRET_ACCESS_KEY' } });
    assert.deepEqual(env.find((e) => e.name === 'AWS_ACCESS_KEY_ID')?.valueFrom, { secretKeyRef: { name: 's3-creds', key: 'AWS_ACCESS_KEY_ID' } });
    const done = plan(w.observe());
    assert.equal(cond(done, 'Restored')?.status, 'True');
    assert.equal(cond(done, 'Restored')?.reason, 'RestoredFromBackup');
    assert.ok(done.status.restore?.finishedAt !== undefined);
  });

  it('verified, but pod 0\'s restore fails (its entrypoint exits with the reason): Restored=False/RestoreFailed naming it', () => {
    const w = restoreWorld();
    const loc = { bucket: 'backups', key: 'k', region: 'us-east-1', forcePathStyle: true };
    w.observe = ((orig) => () => ({ ...orig(), restoreSource: { ok: true as const, uri: 's3://backups/k', location: loc } }))(w.observe.bind(w));
    const p = verifyFirst(w);
    w.writeStatus({ ...p.status, restore: { uri: 's3://backups/k', sha256: 'ab'.repeat(32), size: 4128, revision: 42, source: loc, verifiedAt: w.observe().now } });
    const o = w.observe();
    const pod0 = { name: 'c-0', ordinal: 0, phase: 'Running', ready: false, image: DEFAULT_IMAGE, revision: 'r', restarts: 3, deleting: false, createdAt: o.now, bootstrapGrant: 'c-uid-1' };
    const failed = plan({ ...o, pods: [{ ...pod0, lastTermination: { exitCode: 1, message: 'cairn snapshot restore of s3://backups/k failed (exit 1): no space left on device' } }] });
    assert.equal(cond(failed, 'Restored')?.status, 'False');
    assert.equal(cond(failed, 'Restored')?.reason, 'RestoreFailed');
    assert.match(cond(failed, 'Restored')?.message ?? '', /c-0's restore failed \(exit 1; retried as the pod restarts\): cairn snapshot restore .*no space left on device/);
    assert.equal(cond(plan({ ...o, pods: [pod0] }), 'Restored')?.reason, 'Restoring');
  });
});
