// A rolling upgrade across the typed member-to-member requests (server/node/peer.ts): the previous
// release (one transport kind per request, ad-hoc bodies, JSON answers, refusals as strings) as one
// member of a 3-member cluster of this release, and every request a member forwards, both ways:
// - the old member follows a new leader: its lease KeepAlive and TimeToLive reach the leader in the
//   old forms, which this release still answers;
// - the old member leads: a new follower's typed requests are refused by it ('unknown request kind
//   "peer"'), the follower says so once in its log and uses the old forms (KeepAlive, TimeToLive,
//   MemberPromote of a learner);
// - a new member joining fetches the member list from the old member (its JSON answer).
// The previous release is built from git history (test/harness/previous-release.ts).
// test-file-timeout: 10 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { withCluster } from '../harness/cluster.js';
import { EtcdClient } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';
import { previousRelease } from '../harness/previous-release.js';
import { runEtcdctl, startCairn } from '../harness/procs.js';

async function ctl(endpoint: string, args: readonly string[]): Promise<string> {
  const r = await runEtcdctl([`--endpoints=${endpoint}`, ...args]);
  assert.equal(r.exit, 0, `etcdctl ${args.join(' ')} at ${endpoint}: ${r.stderr}`);
  return r.stdout.trim();
}

async function leaderHex(endpoint: string): Promise<string> {
  const c = new EtcdClient(endpoint);
  try {
    const st = await c.unary('Maintenance', 'Status', {});
    return st.ok ? BigInt(String(st.value['leader'])).toString(16) : '';
  } finally {
    c.close();
  }
}

test('rolling upgrade: member-to-member requests between the previous release and this one, both ways', async () => {
  const prefix = previousRelease();
  await withCluster('cairn', { size: 3 }, async (c) => {
    const leader = await c.leader();
    const [upgrading, other] = c.members.filter((m) => m.name !== leader.name);
    assert.ok(upgrading !== undefined && other !== undefined);
    const oldHex = BigInt(await c.idOf(upgrading.name)).toString(16);
    const leadHex = BigInt(await c.idOf(leader.name)).toString(16);
    await c.stop(upgrading.name);
    const old = await startCairn({ name: upgrading.name, dataDir: upgrading.dataDir, extraArgs: ['--config-file', `${upgrading.dataDir}.conf.yaml`], commandPrefix: prefix, readyTimeoutMs: 30_000 });
    try {
      assert.ok(readFileSync(`/proc/${old.pid}/cmdline`, 'utf8').includes('cairn-previous-release-'), 'the member runs the previous release');
      const lease = /^lease ([0-9a-f]+) granted with TTL\(60s\)$/.exec(await ctl(leader.endpoint, ['lease', 'grant', '60']))?.[1];
      assert.ok(lease !== undefined, 'lease granted');

      // The old member follows the new leader: its forwarded KeepAlive and TimeToLive in the old forms.
      await pollUntil('the old member knows the leader', async () => (await leaderHex(upgrading.endpoint)) === leadHex, 15_000, 100);
      assert.equal(await ctl(upgrading.endpoint, ['lease', 'keep-alive', '--once', lease]), `lease ${lease} keepalived with TTL(60)`);
      assert.match(await ctl(upgrading.endpoint, ['lease', 'timetolive', lease]), new RegExp(`^lease ${lease} granted with TTL\\(60s\\), remaining\\((59|60)s\\)$`));

      // The old member leads: the new follower's typed requests are refused, then sent in the old forms.
      assert.match(await ctl(leader.endpoint, ['move-leader', oldHex]), new RegExp(`Leadership transferred from ${leadHex} to ${oldHex}`));
      await pollUntil('the new follower follows the old leader', async () => (await leaderHex(other.endpoint)) === oldHex, 15_000, 100);
      assert.equal(await ctl(other.endpoint, ['lease', 'keep-alive', '--once', lease]), `lease ${lease} keepalived with TTL(60)`);
      assert.match(await ctl(other.endpoint, ['lease', 'timetolive', lease]), new RegExp(`^lease ${lease} granted with TTL\\(60s\\), remaining\\((59|60)s\\)$`));
      const fallbacks = (other.proc?.stderrLines() ?? []).filter((l) => l.includes('peer refuses typed requests')).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(fallbacks.map((f) => f['remote-peer-id']), [oldHex], 'the follower noted the old leader once');

      // A learner added through the old leader joins by fetching the member list from the old member
      // (its JSON answer); the new follower forwards its promotion to the old leader in the old form.
      const joiner = await c.reserve('joiner');
      let added = '';
      // etcd's strict reconfig check refuses while a voter's peer connection is younger than 5 s.
      await pollUntil('member add through the old leader', async () => {
        const r = await runEtcdctl([`--endpoints=${upgrading.endpoint}`, 'member', 'add', 'joiner', '--learner', `--peer-urls=${joiner.peerUrl}`]);
        added = r.stdout.trim();
        if (r.exit === 0) return true;
        assert.match(r.stderr, /etcdserver: unhealthy cluster/, 'only "unhealthy cluster" may be retried');
        return false;
      }, 20_000, 500);
      const joinerHex = /Member\s+([0-9a-f]+) added/.exec(added)?.[1];
      assert.ok(joinerHex !== undefined, added);
      // The old member first in --initial-cluster: the joiner asks it first.
      const ic = [upgrading, leader, other, joiner].map((m) => `${m.name}=${m.peerUrl}`).join(',');
      const started = await c.startNew('joiner', ic, 'existing');
      const joined = (started.proc?.stderrLines() ?? []).filter((l) => l.includes('joining an existing cluster')).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(joined.length, 1);
      assert.equal(joined[0]?.['fetched-from'], upgrading.peerUrl, 'the member list came from the old member');
      assert.equal(joined[0]?.['member-id'], joinerHex);
      let promoted = '';
      await pollUntil('the learner promoted through the new follower', async () => {
        const r = await runEtcdctl([`--endpoints=${other.endpoint}`, 'member', 'promote', joinerHex]);
        promoted = r.stdout.trim();
        if (r.exit === 0) return true;
        assert.match(r.stderr, /can only promote a learner member which is in sync with leader/, 'only "not in sync yet" may be retried');
        return false;
      }, 30_000, 500);
      assert.match(promoted, new RegExp(`Member\\s+${joinerHex} promoted in cluster`));
      const list = await ctl(upgrading.endpoint, ['member', 'list']);
      assert.match(list, new RegExp(`^${joinerHex}, started, joiner, .*, false$`, 'm'), 'the joiner is a started voter');
    } finally {
      await old.stop();
    }
  });
});
