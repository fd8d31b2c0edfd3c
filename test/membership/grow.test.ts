// Growing a cluster from ONE member, as the operator does, on Cairn and on etcd 3.4 and 3.6 (the
// oracle): a voter added to a one-member cluster (etcd's IsReadyToAddVotingMember accepts a second
// voter beside one started member), the new member started with --initial-cluster-state existing,
// both healthy and writes working; then to three voters. And 1 → learner → promote → 3 through
// learners. Along the way the refusals of etcd's strict reconfiguration check: another voter while
// the added one has not started (not enough started members), a learner or a removal while a voter
// is not connected (unhealthy cluster), a promotion of a learner that has not caught up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import type { Cluster } from '../harness/cluster.js';
import {
  LEARNER_NOT_READY,
  NOT_ENOUGH_STARTED,
  UNHEALTHY,
  addAndStart,
  addedId,
  initialClusterAfterAdd,
  memberAdd,
  memberPromote,
  memberRemove,
  outcome,
  promoteWhenReady,
  retryWhile,
  expectRoster,
  TARGETS,
  clusterOpts,
  writeAndReadEverywhere,
} from './lib.js';

const TIMEOUT_MS = 180_000;

/** A peer URL nobody listens on (a reserved member never started), for calls that must be refused. */
async function unusedPeerUrl(c: Cluster, name: string): Promise<string> {
  const m = await c.reserve(name);
  c.forget(name);
  return m.peerUrl;
}

for (const t of TARGETS) {
  const size = 1;

  test(`${t.label}: a one-member cluster takes a second voter, which starts with --initial-cluster-state existing; then a third`, { timeout: TIMEOUT_MS }, async (tc) => {
    const opts = clusterOpts(tc, t, { size });
    if (opts === undefined) return;
    await withCluster(t.kind, opts, async (c) => {
      await writeAndReadEverywhere(c, 'm1', 'before', 'one');
      const m2 = await c.reserve('m2');
      const add = await memberAdd(c, 'm1', m2.peerUrl, false);
      assert.equal(outcome(add), 'ok', 'MemberAdd of a voter to a one-member cluster (etcd accepts it)');
      const m2id = addedId(add);
      await expectRoster(c, ['<unstarted>', 'm1']);

      // Two voters, one started: a third voter would leave 1 started of 3.
      const probe = await unusedPeerUrl(c, 'probe');
      assert.equal(outcome(await memberAdd(c, 'm1', probe, false)), NOT_ENOUGH_STARTED, 'a third voter while the second has not started');
      // A learner needs every voter connected.
      assert.equal(outcome(await memberAdd(c, 'm1', probe, true)), UNHEALTHY, 'a learner while a voter is not connected');
      // Removing the started member would leave only the unstarted one.
      assert.equal(outcome(await memberRemove(c, 'm1', await c.idOf('m1'))), NOT_ENOUGH_STARTED, 'removing the only started voter');
      await expectRoster(c, ['<unstarted>', 'm1'], 'the refusals changed nothing');

      await c.startNew('m2', await initialClusterAfterAdd(c, 'm2', m2.peerUrl), 'existing');
      await c.leader();
      await expectRoster(c, ['m1', 'm2']);
      assert.equal(await c.idOf('m2'), m2id);
      await writeAndReadEverywhere(c, 'm2', 'after-two', 'two');

      await addAndStart(c, 'm2', 'm3', false);
      await c.leader();
      await expectRoster(c, ['m1', 'm2', 'm3']);
      await writeAndReadEverywhere(c, 'm3', 'after-three', 'three');
      await c.waitConverged(30_000);
    });
  });

  test(`${t.label}: one member → learner → promote → learner → promote: three voters`, { timeout: TIMEOUT_MS }, async (tc) => {
    const opts = clusterOpts(tc, t, { size });
    if (opts === undefined) return;
    await withCluster(t.kind, opts, async (c) => {
      const m2 = await c.reserve('m2');
      const add = await memberAdd(c, 'm1', m2.peerUrl, true);
      assert.equal(outcome(add), 'ok', 'MemberAdd --learner to a one-member cluster');
      const m2id = addedId(add);
      assert.equal(outcome(await memberPromote(c, 'm1', m2id)), LEARNER_NOT_READY, 'promoting a learner that never started');
      // A learner does not count for quorum: the one voter still serves writes.
      await writeAndReadEverywhere(c, 'm1', 'with-learner', 'l');
      await c.startNew('m2', await initialClusterAfterAdd(c, 'm2', m2.peerUrl), 'existing');
      await expectRoster(c, ['m1', 'm2 (learner)']);
      await promoteWhenReady(c, 'm1', 'm2', m2id);
      await expectRoster(c, ['m1', 'm2']);
      await c.leader();
      await writeAndReadEverywhere(c, 'm2', 'two-voters', '2');

      const { id: m3id } = await addAndStart(c, 'm1', 'm3', true);
      await expectRoster(c, ['m1', 'm2', 'm3 (learner)']);
      await promoteWhenReady(c, 'm2', 'm3', m3id);
      await expectRoster(c, ['m1', 'm2', 'm3']);
      await c.leader();
      await writeAndReadEverywhere(c, 'm3', 'three-voters', '3');
      await c.waitConverged(30_000);
    });
  });
}

for (const t of TARGETS) {
  // etcd's e2e TestRuntimeReconfigGrowClusterSize asks the promoted member for `endpoint health` right
  // after MemberPromote answers: the member must have applied its promotion by then, so the commit of
  // the promotion must reach it at once, not with the leader's next heartbeat. A long heartbeat
  // interval (1 s) makes a commit that waits for a heartbeat visible: half of the time it waits over 500 ms.
  test(`${t.label}: a promoted learner applies its promotion without waiting for a heartbeat (1 s)`, { timeout: TIMEOUT_MS }, async (tc) => {
    const opts = clusterOpts(tc, t, { size: 1, heartbeatMs: 1000, electionMs: 10_000, readyTimeoutMs: 60_000 });
    if (opts === undefined) return;
    await withCluster(t.kind, opts, async (c) => {
      const { id } = await addAndStart(c, 'm1', 'm2', true);
      assert.equal((await c.status('m2'))?.isLearner, true, 'm2 starts as a learner');
      const r = await retryWhile([LEARNER_NOT_READY], () => memberPromote(c, 'm1', id));
      assert.equal(outcome(r), 'ok', 'MemberPromote m2');
      const acked = Date.now();
      await pollUntil('m2 applying its promotion', async () => (await c.status('m2'))?.isLearner === false, 10_000, 5);
      const tookMs = Date.now() - acked;
      assert.ok(tookMs < 500, `m2 applied its promotion ${tookMs} ms after the leader acknowledged it`);
      assert.equal(outcome(await c.client('m2').range({ key: Buffer.from('k') })), 'ok', 'a linearizable Range on the promoted member');
    });
  });
}

// --strict-reconfig-check=false (Cairn only: the harness writes flag values into the config file as
// strings, which etcd's config file does not take for a bool): with a voter down, a learner is
// added (it commits with the two others); with the check on (the default) it is refused.
test('cairn: --strict-reconfig-check=false lets a learner in while a voter is down; the default refuses', { timeout: TIMEOUT_MS }, async () => {
  for (const strict of [true, false]) {
    await withCluster('cairn', { size: 3, extraArgs: strict ? [] : ['--strict-reconfig-check=false'] }, async (c) => {
      await c.stop('m3');
      const probe = await unusedPeerUrl(c, 'probe');
      const r = await memberAdd(c, 'm1', probe, true);
      assert.equal(outcome(r), strict ? UNHEALTHY : 'ok', `strict-reconfig-check=${String(strict)}: MemberAdd --learner with m3 down`);
    });
  }
});
