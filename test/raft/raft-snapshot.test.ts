// Snapshots: a follower behind the leader's compaction catches up by snapshot; the follower-side rules
// (already held, stale, restore); a failed send is retried; restart from a compacted storage.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message, SnapshotMeta } from '../../server/raft/index.js';
import { Net, defaultOptions } from './scenarios/net.js';

const three = (): bigint[] => [1n, 2n, 3n];

/** Leader 1 with 10 entries that node 3 missed, compacted away on the leader. */
function behindCompaction(): Net {
  const net = new Net(three());
  net.elect(1n);
  net.propose(1n, 'a');
  net.stabilize();
  net.crash(3n);
  for (let i = 0; i < 10; i++) net.propose(1n, `e${i}`);
  net.stabilize();
  const l = net.node(1n);
  l.storage.compact(l.appliedIndex, l.status().confState);
  assert.equal(l.storage.firstIndex(), 13);
  return net;
}

test('a follower behind the leader\'s compaction gets a snapshot, installs it and catches up', () => {
  const net = behindCompaction();
  net.restart(3n);
  net.tickAllStabilize(3);
  const n3 = net.node(3n);
  assert.equal(n3.snapshots.length, 1);
  const snap = n3.snapshots[0];
  assert.ok(snap);
  assert.deepEqual([snap.index, snap.term, snap.confState.voters], [12, 1, [1n, 2n, 3n]]);
  assert.equal(n3.storage.firstIndex(), 13);
  net.propose(1n, 'after');
  net.stabilize();
  assert.deepEqual(n3.applied.map((e) => e.index), [1, 2, 13]);
  assert.equal(n3.status().hardState.commit, 13);
  const pr = net.node(1n).status().progress.get(3n);
  assert.deepEqual([pr?.state, pr?.match], ['replicate', 13]);
  net.assertConsistent();
});

test('the leader waits in snapshot state; a failed send (reportSnapshot false) is retried', () => {
  const net = behindCompaction();
  net.snapshotReport = 'none';
  net.restart(3n);
  net.drop = (m): boolean => m.type === 'snap'; // lost on the wire
  net.tickAllStabilize(3);
  assert.equal(net.node(1n).status().progress.get(3n)?.state, 'snapshot');
  const sent = net.delivered.filter((m) => m.type === 'snap').length;
  net.tickAllStabilize(3);
  assert.equal(net.delivered.filter((m) => m.type === 'snap').length, sent, 'no new snapshot while one is pending');
  net.node(1n).rn.reportSnapshot(3n, false);
  assert.equal(net.node(1n).status().progress.get(3n)?.state, 'probe');
  net.drop = undefined;
  net.snapshotReport = 'ok';
  net.tickAllStabilize(3);
  assert.equal(net.node(3n).snapshots.length, 1);
  assert.equal(net.node(1n).status().progress.get(3n)?.state, 'replicate');
});

test('follower: a snapshot it already holds only moves the commit index; a stale one is answered with the commit', () => {
  const net = new Net(three(), { ...defaultOptions, checkQuorum: false });
  net.elect(1n);
  net.drop = (m): boolean => m.to === 2n && m.commit >= 2;
  net.propose(1n, 'a');
  net.propose(1n, 'b');
  net.stabilize();
  net.drop = undefined;
  const f = net.node(2n);
  assert.equal(f.status().hardState.commit, 1);
  const snapMsg = (meta: SnapshotMeta): Message => ({
    type: 'snap', from: 1n, to: 2n, term: 1, index: 0, logTerm: 0, commit: 0,
    entries: [], reject: false, rejectHint: 0, snapshot: meta, context: new Uint8Array(0),
  });
  const confState = { voters: [1n, 2n, 3n], learners: [] };
  f.rn.step(snapMsg({ index: 2, term: 1, confState }));
  let rd = f.rn.ready();
  assert.equal(rd.snapshot, undefined, 'held already: no restore');
  assert.equal(rd.hardState?.commit, 2);
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [['appResp', 2]]);
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [2]);
  f.rn.advance(rd);
  f.rn.step(snapMsg({ index: 1, term: 1, confState }));
  rd = f.rn.ready();
  assert.equal(rd.snapshot, undefined, 'stale: ignored');
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [['appResp', 2]]);
  f.rn.advance(rd);
  // A newer snapshot that does not match our log: restore, answer with its index.
  f.rn.step(snapMsg({ index: 9, term: 1, confState }));
  rd = f.rn.ready();
  assert.deepEqual(rd.snapshot, { index: 9, term: 1, confState });
  assert.equal(rd.hardState?.commit, 9);
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [['appResp', 9]]);
  assert.equal(f.rn.status().lastIndex, 9);
  f.storage.applySnapshot({ index: 9, term: 1, confState }); // the host installs it before advance()
  f.rn.advance(rd);
  assert.equal(f.rn.status().applied, 9);
});

test('a node restarts from a compacted storage with applied = the snapshot index', () => {
  const net = behindCompaction();
  net.restart(3n);
  net.tickAllStabilize(3);
  net.crash(1n);
  net.restart(1n);
  const st = net.node(1n).status();
  assert.equal(st.hardState.commit, 12);
  assert.equal(st.lastIndex, 12);
  assert.equal(net.node(1n).rn.hasReady(), false, 'nothing re-applied after a restart with applied = commit');
  net.tickAllStabilize(4 * defaultOptions.electionTicks);
  net.propose(net.leader(), 'z');
  net.stabilize();
  for (const id of three()) assert.equal(net.node(id).appliedData().at(-1), 'z');
  net.assertConsistent();
});
