// ReadIndex (ReadOnlySafe): answered after a quorum of heartbeat acks, on the leader and via a follower;
// queued until the leader commits an entry of its term; refused without a leader; never by a stale leader.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProposalDroppedError } from '../../server/raft/index.js';
import { Net, dec, defaultOptions, enc } from './scenarios/net.js';

const three = (): bigint[] => [1n, 2n, 3n];

test('leader: the read index is the commit index, released only after a quorum acked a heartbeat', () => {
  const net = new Net(three());
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  const leader = net.node(1n);
  leader.rn.readIndex(enc('r1'));
  net.processReadies();
  assert.equal(leader.readStates.length, 0, 'not before the heartbeat round');
  const hbs = net.pending().filter((m) => m.type === 'heartbeat');
  assert.equal(hbs.length, 2);
  assert.ok(hbs.every((m) => dec(m.context) === 'r1'), 'heartbeats carry the request context');
  net.stabilize();
  assert.deepEqual(leader.readStates.map((r) => [r.index, dec(r.context)]), [[2, 'r1']]);
});

test('leader: one ack besides its own suffices in a 3-node cluster; acks release older requests too', () => {
  const net = new Net(three());
  net.elect(1n);
  net.crash(3n);
  const leader = net.node(1n);
  leader.rn.readIndex(enc('a'));
  net.propose(1n, 'x');
  net.stabilize();
  leader.rn.readIndex(enc('b'));
  net.stabilize();
  assert.deepEqual(leader.readStates.map((r) => [dec(r.context), r.index]), [['a', 1], ['b', 2]]);
  // Two pending requests; the ack for the older is lost: the ack for the newer releases both, in order.
  net.drop = (m): boolean => m.type === 'heartbeatResp' && dec(m.context) === 'c';
  leader.rn.readIndex(enc('c'));
  leader.rn.readIndex(enc('d'));
  net.stabilize();
  assert.deepEqual(leader.readStates.slice(2).map((r) => [dec(r.context), r.index]), [['c', 2], ['d', 2]]);
});

test('via a follower: forwarded to the leader, the answer lands in the follower\'s readStates', () => {
  const net = new Net(three());
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  net.node(3n).rn.readIndex(enc('f1'));
  net.stabilize();
  assert.deepEqual(net.node(3n).readStates.map((r) => [r.index, dec(r.context)]), [[2, 'f1']]);
  assert.equal(net.node(1n).readStates.length, 0);
  assert.ok(net.delivered.some((m) => m.type === 'readIndexResp' && m.to === 3n && m.index === 2));
});

test('a new leader queues reads until an entry of its own term is committed', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  // Node 2 wins term 2, but its empty entry does not reach anyone yet.
  net.drop = (m): boolean => m.from === 2n && m.type === 'app';
  net.elect(2n);
  const l = net.node(2n);
  l.rn.readIndex(enc('q'));
  net.tickAllStabilize(3);
  assert.equal(l.readStates.length, 0, 'no answer before the first commit of the term');
  net.drop = undefined;
  net.tickAllStabilize(3);
  assert.equal(l.status().hardState.commit, 2);
  assert.deepEqual(l.readStates.map((r) => [r.index, dec(r.context)]), [[2, 'q']]);
});

test('a single voter answers at once; no leader means noLeader', () => {
  const solo = new Net([1n]);
  solo.elect(1n);
  solo.node(1n).rn.readIndex(enc('s'));
  const rd = solo.node(1n).rn.ready();
  assert.deepEqual(rd.readStates.map((r) => [r.index, dec(r.context)]), [[1, 's']]);
  solo.node(1n).rn.advance(rd);
  const net = new Net(three());
  assert.throws(() => net.node(2n).rn.readIndex(enc('x')), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'noLeader');
  assert.throws(() => net.node(2n).rn.readIndex(new Uint8Array(0)), /context must not be empty/);
});

test('a leader cut off from the quorum never answers (no stale reads), its successor does', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.isolate(1n);
  net.node(1n).rn.readIndex(enc('stale'));
  net.elect(2n);
  net.propose(2n, 'w');
  net.stabilize();
  net.tickAllStabilize(5);
  assert.equal(net.node(1n).readStates.length, 0);
  net.node(2n).rn.readIndex(enc('fresh'));
  net.stabilize();
  assert.deepEqual(net.node(2n).readStates.map((r) => [r.index, dec(r.context)]), [[3, 'fresh']]);
});
