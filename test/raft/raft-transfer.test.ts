// Leadership transfer: caught-up and lagging transferees, the lease bypass, proposals refused while
// transferring, abort after an election timeout, and requests that are ignored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProposalDroppedError } from '../../server/raft/index.js';
import { Net, defaultOptions } from './scenarios/net.js';

const three = (): bigint[] => [1n, 2n, 3n];

test('a caught-up transferee gets timeoutNow at once and wins the next term despite the lease', () => {
  const net = new Net(three()); // check-quorum on: the transfer's vote context bypasses the lease
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  net.node(1n).rn.transferLeader(2n);
  net.stabilize();
  assert.equal(net.leader(), 2n);
  assert.equal(net.node(2n).status().hardState.term, 2);
  assert.ok(net.delivered.some((m) => m.type === 'timeoutNow' && m.to === 2n));
  const votes = net.delivered.filter((m) => m.type === 'vote' && m.from === 2n);
  assert.ok(votes.length > 0 && votes.every((m) => new TextDecoder().decode(m.context) === 'CampaignTransfer'));
  assert.equal(net.delivered.filter((m) => m.type === 'preVote' && m.from === 2n).length, 0, 'no pre-vote for a transfer');
  net.propose(2n, 'b');
  net.stabilize();
  for (const id of three()) assert.deepEqual(net.node(id).appliedData(), ['a', 'b']);
});

test('a lagging transferee is caught up first; proposals are refused meanwhile', () => {
  const net = new Net(three());
  net.elect(1n);
  net.cutLink(1n, 3n);
  for (let i = 0; i < 5; i++) net.propose(1n, `e${i}`);
  net.stabilize();
  net.heal();
  net.node(1n).rn.reportUnreachable(3n);
  net.node(1n).rn.transferLeader(3n);
  assert.equal(net.node(1n).status().leadTransferee, 3n);
  assert.throws(() => net.propose(1n, 'x'), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'transferring');
  net.processReadies();
  assert.equal(net.pending().filter((m) => m.type === 'timeoutNow').length, 0, 'no timeoutNow before it caught up');
  net.stabilize();
  assert.equal(net.leader(), 3n);
  assert.deepEqual(net.node(3n).appliedData(), ['e0', 'e1', 'e2', 'e3', 'e4']);
  assert.equal(net.node(1n).status().leadTransferee, 0n);
});

test('a transfer that cannot finish is abandoned after an election timeout; proposals resume', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.isolate(3n);
  net.node(1n).rn.transferLeader(3n);
  assert.equal(net.node(1n).status().leadTransferee, 3n);
  net.tick(1n, defaultOptions.electionTicks);
  net.stabilize();
  const st = net.node(1n).status();
  assert.equal(st.softState.role, 'leader');
  assert.equal(st.leadTransferee, 0n);
  net.propose(1n, 'after');
  net.stabilize();
  assert.deepEqual(net.node(2n).appliedData(), ['after']);
});

test('transfer requests to self, to a learner or to an unknown node are ignored; a follower forwards them', () => {
  const net = new Net(three(), defaultOptions, [4n]);
  net.elect(1n);
  for (const to of [1n, 4n, 9n]) {
    net.node(1n).rn.transferLeader(to);
    assert.equal(net.node(1n).status().leadTransferee, 0n, `transfer to ${to} ignored`);
  }
  net.node(2n).rn.transferLeader(3n); // follower: forwarded to the leader
  net.stabilize();
  assert.equal(net.leader(), 3n);
});
