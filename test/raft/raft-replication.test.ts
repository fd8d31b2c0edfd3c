// Log replication: proposals (incl. forwarded), conflicting suffix repair, Figure 8 (commit only entries of
// the current term), flow control (probe / replicate / batching / in-flight window), proposal limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProposalDroppedError, type Message } from '../../server/raft/index.js';
import { Net, defaultOptions, enc } from './scenarios/net.js';

const three = (): bigint[] => [1n, 2n, 3n];

test('proposals commit on every node in order; a follower forwards its proposals to the leader', () => {
  const net = new Net(three());
  net.elect(1n);
  net.propose(1n, 'a');
  net.propose(2n, 'b');
  net.stabilize();
  net.propose(3n, 'c');
  net.stabilize();
  for (const id of three()) assert.deepEqual(net.node(id).appliedData(), ['a', 'b', 'c']);
  const fwd = net.delivered.filter((m) => m.type === 'prop');
  assert.equal(fwd.length, 2);
  assert.ok(fwd.every((m) => m.to === 1n && m.term === 0), 'forwarded proposals travel to the leader without a term');
  net.assertConsistent();
});

test('proposals without a leader are refused with noLeader', () => {
  const net = new Net(three());
  assert.throws(() => net.propose(1n, 'x'), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'noLeader');
  net.isolate(1n);
  net.node(1n).rn.campaign(); // pre-candidate
  assert.equal(net.node(1n).status().softState.role, 'preCandidate');
  assert.throws(() => net.propose(1n, 'x'), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'noLeader');
});

test('a deposed leader\'s uncommitted suffix is replaced by the new leader\'s log', () => {
  // Without check-quorum: followers would otherwise ignore node 2 during node 1's lease.
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  net.isolate(1n);
  for (const d of ['x1', 'x2', 'x3']) net.propose(1n, d); // never committed
  net.stabilize();
  assert.equal(net.node(1n).storage.lastIndex(), 5);
  net.elect(2n);
  net.propose(2n, 'b');
  net.propose(2n, 'c');
  net.stabilize();
  net.heal();
  net.tickAllStabilize(defaultOptions.heartbeatTicks * 2);
  assert.equal(net.node(1n).status().softState.lead, 2n);
  for (const id of three()) {
    assert.deepEqual(net.node(id).appliedData(), ['a', 'b', 'c']);
    assert.deepEqual(net.node(id).logTerms(), [1, 1, 2, 2, 2]);
  }
  net.assertConsistent();
});

test('a follower with a long conflicting tail is repaired in few round trips (reject hints)', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.isolate(1n);
  for (let i = 0; i < 50; i++) net.propose(1n, `stale${i}`);
  net.stabilize();
  net.elect(2n);
  for (let i = 0; i < 5; i++) net.propose(2n, `new${i}`);
  net.stabilize();
  net.heal();
  net.isolate(2n);
  const before = net.delivered.length;
  net.elect(3n); // term 3 with node 1's vote; node 3's log [1, 2x6, 3] replaces node 1's 50 stale entries
  net.tickAllStabilize(defaultOptions.heartbeatTicks);
  const rejects = net.delivered.slice(before).filter((m) => m.type === 'appResp' && m.reject && m.from === 1n);
  assert.ok(rejects.length <= 2, `node 1 rejected ${rejects.length} times`);
  assert.deepEqual(net.node(1n).logTerms(), net.node(3n).logTerms());
  net.assertConsistent();
});

test('Figure 8: an old-term entry on a majority is not committed by counting; a later leader may overwrite it', () => {
  // One entry per app so that we can let an old-term entry through without the new leader's own entry.
  const net = new Net([1n, 2n, 3n, 4n, 5n], { ...defaultOptions, preVote: false, checkQuorum: false, maxSizePerMsg: 0 });
  net.elect(1n); // term 1, index 1
  // (a) node 1 replicates X (index 2, term 1) to node 2 only.
  net.partition([1n, 2n], [3n, 4n, 5n]);
  net.propose(1n, 'X');
  net.stabilize();
  assert.equal(net.node(2n).storage.lastIndex(), 2);
  // (b) node 5 wins term 2 with votes of 3 and 4; its entry (index 2, term 2) reaches nobody.
  net.heal();
  net.isolate(1n);
  net.cutLink(5n, 2n);
  net.drop = (m): boolean => m.from === 5n && m.type === 'app';
  net.elect(5n);
  assert.equal(net.node(5n).status().hardState.term, 2);
  // (c) node 1 restarts and wins term 3 (votes of 2, 3, 4); it sends X to 3 and 4 but not its term-3 entry.
  net.crash(1n);
  net.restart(1n);
  net.heal();
  net.isolate(5n);
  // (Probes a follower must reject still pass, so that node 1 backs off to X.)
  net.drop = (m): boolean =>
    m.from === 1n && m.type === 'app' && m.entries.some((e) => e.term === 3) && net.node(m.to).storage.lastIndex() >= 2;
  net.node(1n).rn.campaign();
  net.stabilize();
  if (net.node(1n).status().softState.role !== 'leader') {
    net.node(1n).rn.campaign(); // term 2 was taken by node 5's voters: try term 3
    net.stabilize();
  }
  const st1 = net.node(1n).status();
  assert.equal(st1.softState.role, 'leader');
  assert.equal(st1.hardState.term, 3);
  for (const id of [2n, 3n, 4n]) assert.equal(net.node(id).storage.term(2), 1, `node ${id} holds X`);
  assert.equal(st1.progress.get(3n)?.match, 2);
  assert.equal(st1.hardState.commit, 1, 'X (term 1) is on a majority but must not be committed by counting');
  for (const id of net.ids()) assert.deepEqual(net.node(id).appliedData(), [], `node ${id} applied nothing`);
  // (d) node 5 (log ends at term 2) wins term 4 with 2, 3, 4 and overwrites X everywhere.
  net.drop = undefined;
  net.crash(5n);
  net.restart(5n);
  net.heal();
  net.isolate(1n);
  for (let i = 0; i < 3 && net.node(5n).status().softState.role !== 'leader'; i++) {
    net.node(5n).rn.campaign();
    net.stabilize();
  }
  assert.equal(net.node(5n).status().softState.role, 'leader');
  net.propose(5n, 'Y');
  net.stabilize();
  net.heal();
  net.tickAllStabilize(defaultOptions.electionTicks);
  for (const id of net.ids()) {
    assert.notEqual(net.node(id).storage.term(2), 1, `X overwritten on ${id}`);
    assert.deepEqual(net.node(id).appliedData(), ['Y']);
  }
  net.assertConsistent();
});

test('an entry of the current term commits older entries with it (Figure 8 (e))', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.partition([1n], [2n, 3n]);
  net.propose(1n, 'old'); // index 2, term 1, only on node 1
  net.stabilize();
  net.crash(1n);
  net.restart(1n);
  net.heal();
  assert.equal(net.node(1n).status().hardState.commit, 1);
  // Node 1 (longest log) wins term 2; its empty entry (index 3) commits index 2 with it.
  net.elect(1n);
  assert.equal(net.node(1n).status().hardState.term, 2);
  for (const id of three()) {
    assert.deepEqual(net.node(id).appliedData(), ['old']);
    assert.deepEqual(net.node(id).logTerms(), [1, 1, 2]);
  }
});

test('flow control: probe sends one app and waits; replicate pipelines within the in-flight window', () => {
  const net = new Net(three(), { ...defaultOptions, maxSizePerMsg: 0, maxInflightMsgs: 3, checkQuorum: false });
  net.elect(1n);
  let st = net.node(1n).status();
  assert.equal(st.progress.get(2n)?.state, 'replicate', 'an acked follower is in replicate state');
  // Replicate: 5 proposals, one entry per app, at most 3 in flight per follower.
  net.cutLink(1n, 3n);
  for (let i = 0; i < 5; i++) net.propose(1n, `e${i}`);
  net.processReadies();
  const apps = net.pending().filter((m) => m.type === 'app' && m.to === 2n);
  assert.equal(apps.length, 3);
  assert.ok(apps.every((m) => m.entries.length === 1), 'maxSizePerMsg 0: one entry per app');
  net.stabilize();
  assert.deepEqual(net.node(2n).appliedData(), ['e0', 'e1', 'e2', 'e3', 'e4']);
  // Unreachable: back to probe; one app until an answer.
  net.node(1n).rn.reportUnreachable(3n);
  st = net.node(1n).status();
  assert.equal(st.progress.get(3n)?.state, 'probe');
  net.heal();
  net.clearQueue();
  net.propose(1n, 'p1');
  net.propose(1n, 'p2');
  net.processReadies();
  const toThree = net.pending().filter((m) => m.type === 'app' && m.to === 3n);
  assert.equal(toThree.length, 1, 'probe: a single app in flight');
  net.stabilize();
  net.tickAllStabilize(2);
  assert.deepEqual(net.node(3n).appliedData(), ['e0', 'e1', 'e2', 'e3', 'e4', 'p1', 'p2']);
  assert.equal(net.node(1n).status().progress.get(3n)?.state, 'replicate');
});

test('flow control: apps batch entries up to maxSizePerMsg bytes, but always carry at least one', () => {
  const net = new Net(three(), { ...defaultOptions, maxSizePerMsg: 10, checkQuorum: false });
  net.elect(1n);
  net.isolate(2n);
  for (let i = 0; i < 6; i++) net.propose(1n, 'abcd'); // 4 bytes each
  net.node(1n).rn.propose(new Uint8Array(25)); // bigger than a message
  net.stabilize();
  net.heal();
  net.node(1n).rn.reportUnreachable(2n);
  const before = net.delivered.length;
  net.tickAllStabilize(3);
  const apps = net.delivered.slice(before).filter((m: Message) => m.type === 'app' && m.to === 2n && m.entries.length > 0);
  for (const m of apps) {
    const bytes = m.entries.reduce((n, e) => n + e.data.byteLength, 0);
    assert.ok(m.entries.length === 1 || bytes <= 10, `app of ${m.entries.length} entries, ${bytes} bytes`);
  }
  assert.ok(apps.some((m) => m.entries.length > 1), 'small entries are batched');
  assert.equal(net.node(2n).applied.length, net.node(1n).applied.length);
});

test('maxUncommittedEntriesBytes: over-limit proposals are dropped; one proposal always fits when nothing is pending', () => {
  const net = new Net(three(), { ...defaultOptions, maxUncommittedEntriesBytes: 10, checkQuorum: false });
  net.elect(1n);
  net.isolate(1n); // nothing commits
  net.node(1n).rn.propose(new Uint8Array(50)); // alone: allowed even though > limit
  assert.throws(() => net.node(1n).rn.propose(new Uint8Array(1)), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'uncommittedBytes');
  net.node(1n).rn.propose(new Uint8Array(0)); // empty entries count 0
  net.heal();
  net.stabilize();
  net.tickAllStabilize(2);
  // Committed and handed out: room again.
  net.node(1n).rn.propose(new Uint8Array(8));
  net.node(1n).rn.propose(new Uint8Array(2));
  assert.throws(() => net.node(1n).rn.propose(new Uint8Array(1)), ProposalDroppedError);
  net.stabilize();
  assert.equal(net.node(3n).applied.filter((e) => e.data.byteLength > 0).length, 3);
});

test('a follower answers an app below its commit index with its commit index', () => {
  const net = new Net(three());
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  const old: Message = {
    type: 'app', from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, commit: 0,
    entries: [{ index: 1, term: 1, type: 'normal', data: enc('') }], reject: false, rejectHint: 0, context: new Uint8Array(0),
  };
  net.node(2n).rn.step(old);
  const rd = net.node(2n).rn.ready();
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index, m.reject]), [['appResp', 2, false]]);
  net.node(2n).rn.advance(rd);
});
