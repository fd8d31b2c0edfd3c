// Faults on a 3-member cluster under write load (the npm `etcd3` client and etcdctl, both with
// every member's endpoint):
// - kill -9 of the leader: a new leader within a few election timeouts, both clients make progress
//   after it, the killed member rejoins after a restart, no acknowledged write is lost on any member;
// - a follower down while the log is compacted past it (--snapshot-count 100, thousands of writes):
//   it catches up by a snapshot from the leader;
// - SIGSTOP of the leader for longer than the election timeout: a new leader; after SIGCONT the old
//   leader steps down, serves again and catches up.
// Every test ends with all members converged (same applied index and revision) and HashKV equal.
//
// CAIRN_DIFF_TARGET=etcd runs it against the reference etcd (validates the test itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetKind } from '../harness/procs.js';
import { withCluster } from '../harness/cluster.js';
import type { Cluster, ClusterMember } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { ctl } from './ctl.js';
import { WriteLoad, lostWrites } from './load.js';

const TARGET = targetKind();
const ELECTION_MS = 1_000;
const HEARTBEAT_MS = 100;
/** "A few election timeouts": from the fault to a leader every running member agrees on. */
const NEW_LEADER_MAX_MS = 6 * ELECTION_MS;
const CONVERGE_MS = 60_000;

async function converge(c: Cluster, what: string): Promise<void> {
  await c.waitConverged(CONVERGE_MS);
  const hashes = await c.hashKV();
  const distinct = new Set([...hashes.values()].map((h) => h.hash));
  assert.equal(hashes.size, c.running().length, `${what}: HashKV from every running member`);
  assert.equal(distinct.size, 1, `${what}: HashKV differs: ${[...hashes].map(([n, h]) => `${n}=${String(h.hash)}@${String(h.revision)}`).join(' ')}`);
}

async function assertNoLoss(c: Cluster, load: WriteLoad, prefix: string): Promise<void> {
  assert.ok(load.acked.size > 0, 'some writes were acknowledged');
  const problems = await lostWrites(c, prefix, load.acked);
  assert.deepEqual(problems, [], `acknowledged writes lost:\n${problems.join('\n')}`);
}

function other(c: Cluster, not: ClusterMember): ClusterMember {
  const m = c.running().find((x) => x.name !== not.name);
  if (m === undefined) throw new Error('no other running member');
  return m;
}

test(`kill -9 of the leader under write load (${TARGET})`, { timeout: 170_000 }, async (t) => {
  await withCluster(TARGET, { size: 3, electionMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS, name: 'k' }, async (c) => {
    const prefix = 'kill/';
    const load = new WriteLoad(c.allEndpoints(), { prefix });
    try {
      load.start();
      await load.waitProgress(0, 20, 30_000);
      const old = await c.leader();
      const tKill = Date.now();
      await c.kill9(old.name);
      const next = await c.leader(NEW_LEADER_MAX_MS);
      const tLeader = Date.now();
      assert.notEqual(next.name, old.name);
      t.diagnostic(`new leader ${next.name} ${String(tLeader - tKill)} ms after kill -9 of ${old.name}`);
      // Both clients carry on once there is a leader again.
      await load.waitProgress(tLeader, 20, 20_000);
      const errs = load.errorsBetween(tKill, Date.now());
      t.diagnostic(`client errors since the kill: ${String(errs.length)} (${errs.slice(0, 3).map((e) => `${e.source} ${e.what}`).join(' || ')})`);

      // The killed member rejoins (under load) and follows the new leader.
      const tRestart = Date.now();
      await c.start(old.name);
      await pollUntil(
        `${old.name} following the leader after its restart`,
        async () => {
          const [s, l] = await Promise.all([c.status(old.name), c.status(next.name)]);
          return s !== undefined && l !== undefined && s.leader === l.leader && s.leader !== '0' && s.raftAppliedIndex > 0 && s.raftTerm === l.raftTerm;
        },
        30_000,
        100,
      );
      t.diagnostic(`${old.name} rejoined ${String(Date.now() - tRestart)} ms after its restart`);
      await load.waitProgress(Date.now(), 10, 20_000);
    } finally {
      await load.stop();
      load.close();
    }
    t.diagnostic(`load: ${load.summary()}`);
    await converge(c, 'after kill -9 and restart');
    await assertNoLoss(c, load, prefix);
  });
});

test(`a follower behind log compaction catches up by snapshot (${TARGET})`, { timeout: 170_000 }, async (t) => {
  await withCluster(TARGET, { size: 3, electionMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS, snapshotCount: 100, name: 's' }, async (c) => {
    const prefix = 'snap/';
    const leader = await c.leader();
    const lagging = other(c, leader);
    const load = new WriteLoad(c.allEndpoints(), { prefix, etcd3Workers: 16, etcdctlWorkers: 0 });
    // etcd keeps 5,000 entries behind its snapshot for slow followers (SnapshotCatchUpEntries):
    // write more than that while the follower is down, so only a snapshot can bring it back.
    const writes = 6_000;
    await c.stop(lagging.name);
    const t0 = Date.now();
    try {
      load.start();
      await pollUntil(`${String(writes)} acknowledged writes`, () => Promise.resolve(load.acked.size >= writes), 120_000, 100);
    } finally {
      await load.stop();
      load.close();
    }
    t.diagnostic(`${String(load.acked.size)} writes in ${String(Date.now() - t0)} ms while ${lagging.name} was down (${load.summary()})`);
    const tStart = Date.now();
    const proc = (await c.start(lagging.name)).proc;
    assert.ok(proc !== undefined);
    await converge(c, `after ${lagging.name} came back`);
    t.diagnostic(`${lagging.name} converged ${String(Date.now() - tStart)} ms after its restart`);
    const snapLines = proc
      .stderrLines()
      .filter((l) => /snapshot/i.test(l) && /receiv|appl|install|restor/i.test(l));
    assert.ok(
      snapLines.length > 0,
      `${lagging.name} caught up without a log line about receiving/applying a snapshot; its last lines:\n${proc.stderrLines().slice(-30).join('\n')}`,
    );
    t.diagnostic(`${lagging.name}: ${snapLines[0] ?? ''}`);
    await assertNoLoss(c, load, prefix);
  });
});

test(`SIGSTOP of the leader longer than the election timeout, then SIGCONT (${TARGET})`, { timeout: 170_000 }, async (t) => {
  await withCluster(TARGET, { size: 3, electionMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS, name: 'p' }, async (c) => {
    const prefix = 'pause/';
    const load = new WriteLoad(c.allEndpoints(), { prefix });
    try {
      load.start();
      await load.waitProgress(0, 20, 30_000);
      const old = await c.leader();
      const oldId = await c.idOf(old.name);
      const tPause = Date.now();
      c.pause(old.name);
      const next = await c.leader(NEW_LEADER_MAX_MS); // among the members still running
      const tLeader = Date.now();
      assert.notEqual(next.name, old.name);
      t.diagnostic(`new leader ${next.name} ${String(tLeader - tPause)} ms after SIGSTOP of ${old.name}`);
      await load.waitProgress(tLeader, 20, 20_000);
      assert.ok(Date.now() - tPause > ELECTION_MS, 'paused longer than the election timeout');

      const tResume = Date.now();
      c.resume(old.name);
      // The old leader learns of the new term and follows; no one takes it for the leader.
      const agreed = await c.leader(NEW_LEADER_MAX_MS);
      assert.notEqual(agreed.name, old.name, `${old.name} was leader again after SIGCONT`);
      const st = await c.status(old.name);
      assert.ok(st !== undefined && st.leader !== oldId, `${old.name} still reports itself as leader after SIGCONT`);
      t.diagnostic(`${old.name} follows ${agreed.name} ${String(Date.now() - tResume)} ms after SIGCONT`);
      // It serves writes again (forwarded to the leader).
      const o = await ctl([old.endpoint], ['put', `${prefix}after-resume`, 'x']);
      assert.equal(o.exit, 0, `${o.cmd}: exit ${String(o.exit)} after ${String(o.ms)} ms (${String(Date.now() - tResume)} ms after SIGCONT) ${o.stdout} ${o.stderr}`);
      assert.equal(o.stdout, 'OK\n');
      load.acked.set(`${prefix}after-resume`, 'x');
      await load.waitProgress(Date.now(), 10, 20_000);
    } finally {
      await load.stop();
      load.close();
    }
    t.diagnostic(`load: ${load.summary()}`);
    await converge(c, 'after SIGSTOP/SIGCONT');
    await assertNoLoss(c, load, prefix);
  });
});
