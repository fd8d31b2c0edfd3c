// A small seeded fuzz over the scenario network (the thorough one is the simulation, test/raft/sim*): random
// ticks, proposals, reads, partitions, message loss, crashes/restarts, compaction and leadership transfers.
// Checked after every step: one leader per term, log matching, same entry applied at each index; after
// healing, a leader is elected and a proposal commits everywhere. Node 6 joins as a learner, is promoted
// and removed along the way. Replay: RAFT_FUZZ_SEED=<seed>; longer: RAFT_FUZZ_FIRST=<seed> RAFT_FUZZ_SEEDS=<n> RAFT_FUZZ_STEPS=<n>.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProposalDroppedError, type ConfChange, type NodeId } from '../../server/raft/index.js';
import { Net, defaultOptions, seededRandomInt } from './scenarios/net.js';

function ignoreDropped(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ProposalDroppedError)) throw e;
  }
}

const cc = (type: ConfChange['type'], nodeId: NodeId): ConfChange => ({ type, nodeId, context: new Uint8Array(0) });
/** Node 6 goes through these membership steps, one proposal at a time (it starts outside the cluster). */
const memberSteps: readonly ConfChange[] = [cc('addLearner', 6n), cc('addNode', 6n), cc('removeNode', 6n)];

function runSeed(seed: number, steps: number): void {
  const r = seededRandomInt(seed);
  const ids: NodeId[] = [1n, 2n, 3n, 4n, 5n, 6n];
  const net = new Net([1n, 2n, 3n, 4n, 5n], { ...defaultOptions, preVote: r(2) === 0, checkQuorum: r(2) === 0, maxSizePerMsg: r(3) * 8, maxInflightMsgs: 1 + r(4) });
  net.addNode(6n, { voters: [1n, 2n, 3n, 4n, 5n], learners: [] });
  const gone = new Set<NodeId>(); // removed members, stopped by their host
  let lossPct = 0;
  net.drop = (): boolean => r(100) < lossPct;
  const leaderOfTerm = new Map<number, NodeId>();
  let seq = 0;
  // A removed member is stopped by its host once any member applied the removal (etcd's peers refuse a
  // removed member, which then stops); it may never receive the entry itself.
  const stopRemoved = (): void => {
    for (const id of ids) {
      const removed = ids.some((o) => net.node(o).confChanges.some((c) => c.type === 'removeNode' && c.nodeId === id));
      if (removed && !gone.has(id)) {
        gone.add(id);
        net.crash(id);
      }
    }
  };
  const check = (): void => {
    for (const id of net.leaders()) {
      const term = net.node(id).status().hardState.term;
      const prev = leaderOfTerm.get(term);
      assert.ok(prev === undefined || prev === id, `two leaders in term ${term}: ${prev} and ${id}`);
      leaderOfTerm.set(term, id);
    }
    net.assertConsistent();
  };
  for (let step = 0; step < steps; step++) {
    const pick = ids[r(ids.length)] ?? 1n;
    switch (r(13)) {
      case 0:
      case 1:
      case 2:
        net.tickAll();
        break;
      case 3:
      case 4:
        if (!net.down.has(pick)) ignoreDropped(() => net.propose(pick, `v${seq++}`));
        break;
      case 5:
        if (r(3) === 0) net.heal();
        else net.isolate(pick);
        break;
      case 6:
        lossPct = [0, 0, 10, 30][r(4)] ?? 0;
        break;
      case 7:
        if (gone.has(pick)) break;
        if (net.down.has(pick)) net.restart(pick);
        else if (net.down.size < 2) net.crash(pick);
        break;
      case 11: {
        // The next membership step of node 6, proposed wherever (a pending one makes the leader refuse).
        const applied = net.node(1n).confChanges.length;
        const next = memberSteps[applied];
        if (next !== undefined && !net.down.has(pick)) ignoreDropped(() => net.node(pick).rn.proposeConfChange(next));
        break;
      }
      case 8: {
        const n = net.node(pick);
        if (!net.down.has(pick) && n.appliedIndex > n.storage.firstIndex() + 2) n.storage.compact(n.appliedIndex - 1, n.status().confState);
        break;
      }
      case 9:
        if (!net.down.has(pick)) net.node(pick).rn.transferLeader(ids[r(ids.length)] ?? 1n);
        break;
      case 10:
        if (!net.down.has(pick)) ignoreDropped(() => net.node(pick).rn.readIndex(new TextEncoder().encode(`r${seq++}`)));
        break;
      default:
        net.tick(pick);
    }
    net.processReadies();
    net.deliverQueued();
    stopRemoved();
    check();
  }
  // Heal everything: progress must resume.
  net.heal();
  lossPct = 0;
  for (const id of ids) if (net.down.has(id) && !gone.has(id)) net.restart(id);
  // Without pre-vote, candidates with stale logs keep raising the term and resetting everyone's timer:
  // elections may take a while (as in etcd); a healthy cluster must get there eventually.
  for (let t = 0; t < 6 * defaultOptions.electionTicks || net.leaders().length !== 1; t++) {
    assert.ok(t < 100 * defaultOptions.electionTicks, 'no leader within 100 election timeouts of healing');
    net.tickAllStabilize(1);
    stopRemoved();
  }
  const l = net.leader();
  net.propose(l, 'final');
  net.stabilize();
  net.tickAllStabilize(2);
  check();
  const cs = net.node(l).status().confState; // a removed node may never hear of its removal (etcd's host stops it)
  for (const id of ids) {
    if (gone.has(id) || !(cs.voters.includes(id) || cs.learners.includes(id))) continue;
    assert.equal(net.node(id).appliedData().at(-1), 'final', `node ${id} did not apply the final write`);
  }
}

test('fuzz: safety under faults, liveness after healing (seeded)', () => {
  const only = process.env['RAFT_FUZZ_SEED'];
  const steps = Number(process.env['RAFT_FUZZ_STEPS'] ?? 400);
  const count = Number(process.env['RAFT_FUZZ_SEEDS'] ?? 60);
  const first = Number(process.env['RAFT_FUZZ_FIRST'] ?? 1);
  const seeds = only !== undefined ? [Number(only)] : Array.from({ length: count }, (_, i) => i + first);
  for (const seed of seeds) {
    try {
      runSeed(seed, steps);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`seed ${seed} failed (replay: RAFT_FUZZ_SEED=${seed} node --test dist/test/raft/raft-fuzz.test.js): ${msg}`, { cause: e });
    }
  }
});
