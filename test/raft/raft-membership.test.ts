// Membership: learners (replicated to, never vote or campaign, promotable), adding and removing voters
// (incl. the leader), one pending conf change at a time, quorum changes re-checking the commit index.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProposalDroppedError, type ConfChange, type NodeId } from '../../server/raft/index.js';
import { Net, defaultOptions } from './scenarios/net.js';

const cc = (type: ConfChange['type'], nodeId: NodeId): ConfChange => ({ type, nodeId, context: new Uint8Array(0) });

test('learners: replicated to, never counted, never campaign; addNode promotes them', () => {
  const net = new Net([1n, 2n, 3n], defaultOptions, [4n]);
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  assert.deepEqual(net.node(4n).appliedData(), ['a']);
  assert.equal(net.node(1n).status().progress.get(4n)?.isLearner, true);
  // Not counted for commit: with 2 and 3 down, the learner's ack does not commit.
  net.crash(2n);
  net.crash(3n);
  net.propose(1n, 'b');
  net.stabilize();
  assert.equal(net.node(4n).storage.lastIndex(), 3);
  assert.equal(net.node(1n).status().hardState.commit, 2);
  // Never campaigns, neither by ticks nor by campaign().
  net.isolate(4n);
  net.tick(4n, 5 * defaultOptions.electionTicks);
  net.node(4n).rn.campaign();
  net.stabilize();
  assert.equal(net.node(4n).status().softState.role, 'follower');
  assert.equal(net.node(4n).status().hardState.term, 1);
  net.heal();
  net.restart(2n);
  net.restart(3n);
  net.tickAllStabilize(2);
  assert.equal(net.node(1n).status().hardState.commit, 3);
  // Promote: the learner becomes a voter everywhere and can now lead.
  net.node(1n).rn.proposeConfChange(cc('addNode', 4n));
  net.stabilize();
  for (const id of [1n, 2n, 3n, 4n]) assert.deepEqual(net.node(id).status().confState, { voters: [1n, 2n, 3n, 4n], learners: [] });
  assert.equal(net.node(1n).status().progress.get(4n)?.isLearner, false);
  net.node(1n).rn.transferLeader(4n);
  net.stabilize();
  assert.equal(net.leader(), 4n);
});

test('a learner\'s vote does not count', () => {
  const net = new Net([1n, 2n, 3n], { ...defaultOptions, preVote: false, checkQuorum: false }, [4n]);
  net.crash(3n);
  net.cutLink(1n, 2n);
  net.node(1n).rn.campaign();
  net.stabilize();
  assert.equal(net.node(1n).status().softState.role, 'candidate');
  assert.ok(net.delivered.every((m) => m.type !== 'vote' || m.to !== 4n), 'no vote request to a learner');
  // A grant from the learner (e.g. one that does not know it is a learner yet) does not make a quorum.
  const grant = { from: 4n, to: 1n, term: 1, index: 0, logTerm: 0, commit: 0, entries: [], reject: false, rejectHint: 0, context: new Uint8Array(0) };
  net.node(1n).rn.step({ ...grant, type: 'voteResp' });
  assert.equal(net.node(1n).status().softState.role, 'candidate');
  net.node(1n).rn.step({ ...grant, type: 'voteResp', from: 2n });
  assert.equal(net.node(1n).status().softState.role, 'leader');
});

test('adding a voter: the new node catches up from an empty log and quorum grows to 3 of 4', () => {
  const net = new Net([1n, 2n, 3n]);
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  // A joining member starts from the cluster's bootstrap state (index 0, the founders' ConfState) and
  // replays the log from there, its own addNode included.
  net.addNode(4n, { voters: [1n, 2n, 3n], learners: [] });
  net.node(1n).rn.proposeConfChange(cc('addNode', 4n));
  net.stabilize();
  net.tickAllStabilize(2);
  const n4 = net.node(4n);
  assert.deepEqual(n4.appliedData(), ['a']);
  assert.deepEqual(n4.status().confState.voters, [1n, 2n, 3n, 4n]);
  net.crash(3n);
  net.crash(4n);
  net.propose(1n, 'b');
  net.stabilize();
  assert.equal(net.node(2n).appliedData().includes('b'), false, '2 of 4 acks do not commit');
  net.restart(4n);
  net.tickAllStabilize(2);
  assert.deepEqual(net.node(4n).appliedData(), ['a', 'b']);
  net.assertConsistent();
});

test('removing a follower: it stops campaigning; the leader commits with the smaller quorum', () => {
  const net = new Net([1n, 2n, 3n]);
  net.elect(1n);
  net.node(1n).rn.proposeConfChange(cc('removeNode', 3n));
  net.stabilize();
  assert.deepEqual(net.node(1n).status().confState.voters, [1n, 2n]);
  assert.deepEqual(net.node(3n).status().confState.voters, [1n, 2n]);
  assert.equal(net.node(1n).status().progress.has(3n), false);
  net.isolate(3n);
  net.tick(3n, 5 * defaultOptions.electionTicks);
  net.node(3n).rn.campaign();
  assert.equal(net.node(3n).status().softState.role, 'follower', 'a removed node is not promotable');
  net.heal();
  net.propose(1n, 'x');
  net.stabilize();
  assert.deepEqual(net.node(2n).appliedData(), ['x']);
  assert.deepEqual(net.node(3n).appliedData(), [], 'no longer replicated to');
});

test('removing the leader (etcd 3.5): it leads on, refusing proposals; with stepDownOnRemoval it steps down', () => {
  const net = new Net([1n, 2n, 3n]);
  net.elect(1n);
  net.node(1n).rn.proposeConfChange(cc('removeNode', 1n));
  net.stabilize();
  assert.equal(net.node(1n).status().softState.role, 'leader');
  assert.deepEqual(net.node(1n).status().confState.voters, [2n, 3n]);
  assert.throws(() => net.propose(1n, 'x'), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'notMember');
  // The host stops a removed member; the others then elect a leader among themselves.
  net.crash(1n);
  net.tickAllStabilize(4 * defaultOptions.electionTicks);
  const l = net.leader();
  assert.ok(l === 2n || l === 3n);
  net.propose(l, 'y');
  net.stabilize();
  assert.deepEqual(net.node(2n).appliedData(), ['y']);

  const net2 = new Net([1n, 2n, 3n], { ...defaultOptions, stepDownOnRemoval: true });
  net2.elect(1n);
  net2.node(1n).rn.proposeConfChange(cc('removeNode', 1n));
  net2.stabilize();
  assert.equal(net2.node(1n).status().softState.role, 'follower');
  net2.tickAllStabilize(4 * defaultOptions.electionTicks);
  assert.notEqual(net2.leader(), 1n);
});

test('one conf change at a time: a second local one is refused, a forwarded one becomes an empty entry', () => {
  const net = new Net([1n, 2n, 3n]);
  net.elect(1n);
  net.addNode(4n, { voters: [1n, 2n, 3n], learners: [] });
  net.addNode(5n, { voters: [1n, 2n, 3n], learners: [] });
  net.node(1n).rn.proposeConfChange(cc('addLearner', 4n));
  assert.throws(
    () => net.node(1n).rn.proposeConfChange(cc('addLearner', 5n)),
    (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'confChangePending',
  );
  net.node(2n).rn.proposeConfChange(cc('addLearner', 5n)); // forwarded: dropped into an empty entry
  net.stabilize();
  const types = net.node(3n).applied.map((e) => `${e.type}:${e.data.byteLength}`);
  assert.deepEqual(types.slice(1), [types[1], 'normal:0']);
  assert.equal(types[1]?.startsWith('confChange'), true);
  assert.deepEqual(net.node(1n).status().confState.learners, [4n]);
  // Applied now: the next one goes through.
  net.node(1n).rn.proposeConfChange(cc('addLearner', 5n));
  net.stabilize();
  assert.deepEqual(net.node(1n).status().confState.learners, [4n, 5n]);
});

test('a quorum change makes pending entries committable at once', () => {
  const net = new Net([1n, 2n]);
  net.elect(1n);
  net.deferConfChanges = true;
  net.node(1n).rn.proposeConfChange(cc('removeNode', 2n));
  net.stabilize(); // committed by both, application deferred
  net.cutLink(1n, 2n);
  net.propose(1n, 'x');
  net.stabilize();
  assert.equal(net.node(1n).status().hardState.commit, 2, 'x needs node 2 under {1,2}');
  net.applyDeferred(1n);
  assert.equal(net.node(1n).status().hardState.commit, 3, 'under {1} x is committed');
  net.stabilize();
  assert.deepEqual(net.node(1n).appliedData(), ['x']);
});

test('a node that must apply a committed conf change first does not campaign', () => {
  const net = new Net([1n, 2n, 3n], { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  // Node 2 gets the conf change entry but not its commit.
  net.drop = (m): boolean => m.to === 2n && m.commit >= 2;
  net.node(1n).rn.proposeConfChange(cc('addLearner', 4n));
  net.stabilize();
  assert.equal(net.node(2n).storage.lastIndex(), 2);
  assert.equal(net.node(2n).status().hardState.commit, 1);
  net.drop = undefined;
  net.tick(1n, defaultOptions.heartbeatTicks);
  net.processReadies();
  net.deliverQueued(); // the heartbeat commits index 2 on node 2; its Ready is not handled yet
  assert.equal(net.node(2n).status().hardState.commit, 2);
  net.node(2n).rn.campaign();
  assert.equal(net.node(2n).status().softState.role, 'follower', 'conf change committed but not applied');
  net.processReadies(); // applies it
  net.node(2n).rn.campaign();
  assert.notEqual(net.node(2n).status().softState.role, 'follower');
});
