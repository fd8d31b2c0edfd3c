// Elections: campaign and timeouts, pre-vote, check-quorum, leader lease, the up-to-date rule, stale terms.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NONE, type Message } from '../../server/raft/index.js';
import { Net, defaultOptions } from './scenarios/net.js';

const three = (): bigint[] => [1n, 2n, 3n];

test('campaign: a node wins with a quorum, everyone learns the leader, the empty entry commits', () => {
  const net = new Net(three());
  net.elect(1n);
  for (const id of three()) {
    const st = net.node(id).status();
    assert.equal(st.softState.lead, 1n);
    assert.equal(st.hardState.term, 1);
    assert.equal(st.hardState.commit, 1);
    assert.equal(net.node(id).applied.length, 1);
    assert.equal(net.node(id).applied[0]?.data.byteLength, 0, 'the leader appends an empty entry of its term');
  }
  assert.equal(net.node(2n).status().hardState.vote, 1n);
});

test('ticks alone elect exactly one leader, within a few election timeouts', () => {
  const net = new Net([1n, 2n, 3n, 4n, 5n]);
  let ticks = 0;
  while (net.leaders().length === 0) {
    assert.ok(ticks++ < 5 * defaultOptions.electionTicks, 'no leader elected');
    net.tickAll();
    net.stabilize();
  }
  const l = net.leader();
  for (const id of net.ids()) assert.equal(net.node(id).status().softState.lead, l);
  // The leader stays put while its heartbeats flow.
  const term = net.node(l).status().hardState.term;
  net.tickAllStabilize(10 * defaultOptions.electionTicks);
  assert.equal(net.leader(), l);
  assert.equal(net.node(l).status().hardState.term, term);
});

test('pre-vote: a partitioned follower does not raise its term and does not depose the leader on rejoin', () => {
  const net = new Net(three());
  net.elect(1n);
  net.isolate(3n);
  net.tickAllStabilize(10 * defaultOptions.electionTicks);
  const st3 = net.node(3n).status();
  assert.equal(st3.hardState.term, 1, 'pre-candidate keeps its term');
  assert.notEqual(st3.softState.role, 'leader');
  net.heal();
  net.tickAllStabilize(3 * defaultOptions.electionTicks);
  assert.equal(net.leader(), 1n);
  assert.equal(net.node(1n).status().hardState.term, 1);
  assert.equal(net.node(3n).status().softState.lead, 1n);
});

test('without pre-vote, the same rejoin does depose the leader (the contrast)', () => {
  const net = new Net(three(), { ...defaultOptions, preVote: false, checkQuorum: false });
  net.elect(1n);
  net.isolate(3n);
  net.tickAllStabilize(5 * defaultOptions.electionTicks);
  assert.ok(net.node(3n).status().hardState.term > 1, 'isolated node campaigned with real terms');
  net.heal();
  net.tickAllStabilize(1);
  assert.ok(net.node(1n).status().hardState.term > 1, 'the leader saw the higher term');
  net.tickAllStabilize(5 * defaultOptions.electionTicks);
  assert.equal(net.leaders().length, 1);
  assert.ok(net.node(net.leader()).status().hardState.term > 1);
});

test('check-quorum: an isolated leader steps down within an election timeout; the majority elects anew', () => {
  const net = new Net(three());
  net.elect(1n);
  net.isolate(1n);
  net.tickAllStabilize(2 * defaultOptions.electionTicks);
  assert.equal(net.node(1n).status().softState.role, 'follower');
  assert.equal(net.node(1n).status().softState.lead, NONE);
  net.tickAllStabilize(3 * defaultOptions.electionTicks);
  const l = net.leaders().filter((id) => id !== 1n);
  assert.equal(l.length, 1, 'the majority side elected a leader');
  net.heal();
  net.tickAllStabilize(2 * defaultOptions.electionTicks);
  assert.equal(net.leader(), l[0]);
  assert.equal(net.node(1n).status().softState.lead, l[0]);
});

test('leader lease: with check-quorum, a follower that hears from its leader ignores higher-term votes', () => {
  const net = new Net(three());
  net.elect(1n);
  const vote: Message = {
    type: 'vote', from: 3n, to: 2n, term: 5, index: 100, logTerm: 5, commit: 0,
    entries: [], reject: false, rejectHint: 0, context: new Uint8Array(0),
  };
  const before = net.delivered.length;
  net.node(2n).rn.step(vote);
  net.stabilize();
  assert.equal(net.node(2n).status().hardState.term, 1, 'vote ignored: no term change');
  assert.equal(net.delivered.slice(before).filter((m) => m.type === 'voteResp').length, 0, 'and no answer');
  // Past the election timeout without a leader, the same request is granted.
  net.isolate(2n);
  net.tick(2n, defaultOptions.electionTicks);
  net.node(2n).rn.step(vote);
  assert.equal(net.node(2n).status().hardState.term, 5);
  assert.equal(net.node(2n).status().hardState.vote, 3n);
});

test('a candidate with a shorter log loses: the up-to-date check', () => {
  const net = new Net(three());
  net.elect(1n);
  net.isolate(3n);
  net.propose(1n, 'a');
  net.propose(1n, 'b');
  net.stabilize();
  net.heal();
  net.isolate(1n);
  // Node 3 (behind) campaigns: node 2 refuses (pre-vote) so node 3 never raises its term.
  net.node(3n).rn.campaign();
  net.stabilize();
  assert.notEqual(net.node(3n).status().softState.role, 'leader');
  assert.equal(net.node(3n).status().hardState.term, 1);
  // Node 2 (up to date) wins with node 3's vote.
  net.elect(2n);
  net.stabilize();
  assert.deepEqual(net.node(3n).appliedData(), ['a', 'b']);
});

test('a stale leader learns the new term from a follower answer and steps down', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.isolate(1n);
  net.elect(2n);
  assert.equal(net.node(2n).status().hardState.term, 2);
  net.heal();
  // Old leader 1 still thinks it leads at term 1; its heartbeat earns an appResp at term 2.
  assert.equal(net.node(1n).status().softState.role, 'leader');
  net.tickAllStabilize(defaultOptions.heartbeatTicks);
  assert.equal(net.node(1n).status().softState.role, 'follower');
  assert.equal(net.node(1n).status().hardState.term, 2);
  net.propose(2n, 'x');
  net.stabilize();
  assert.deepEqual(net.node(1n).appliedData(), ['x']);
});

test('a single voter elects itself at once, and a vote is granted once per term', () => {
  const solo = new Net([1n]);
  solo.elect(1n);
  assert.equal(solo.node(1n).status().hardState.commit, 1);
  const net = new Net(three(), { ...defaultOptions, preVote: false, checkQuorum: false });
  const voteFor = (from: bigint): Message => ({
    type: 'vote', from, to: 3n, term: 1, index: 0, logTerm: 0, commit: 0,
    entries: [], reject: false, rejectHint: 0, context: new Uint8Array(0),
  });
  net.node(3n).rn.step(voteFor(1n));
  net.node(3n).rn.step(voteFor(2n));
  net.node(3n).rn.step(voteFor(1n)); // a repeat for the same candidate is granted again
  const rd = net.node(3n).rn.ready();
  const answers = rd.messages.filter((m) => m.type === 'voteResp').map((m) => [m.to, m.reject]);
  assert.deepEqual(answers, [[1n, false], [2n, true], [1n, false]]);
  assert.equal(rd.hardState?.vote, 1n);
  assert.equal(rd.mustSync, true);
  net.node(3n).rn.advance(rd);
});
