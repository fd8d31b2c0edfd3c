// test-file-timeout: 8 min
// Storage upkeep through the admin API, end to end on localkube with the operator in the cluster:
//   - NOSPACE: a 3-member cluster with a 16 MiB quota (auto-compaction kept out of the way) is filled
//     by overwriting one key until writes fail with "database space exceeded"; the operator raises
//     Maintenance=True/NoSpaceAlarm, compacts at the current revision, defragments every member (the
//     leader last, after moving leadership off it), disarms: the alarm is gone and writes are
//     accepted again; Maintenance back to False/Idle.
//   - scheduled defragmentation (spec.defrag every minute, minFragmentation 1): after a compaction
//     leaves free pages on every member, the operator defragments them one at a time, followers
//     first, the leader after leadership moved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { localkube } from '../../harness/localkube.js';
import { pollUntil } from '../../harness/poll.js';
import { EtcdAdmin, EtcdCallError } from '../../../operator/etcd/index.js';
import { asObj, availableWith, clusterManifest, condOf, eventsOf, needLocalkube, waitStatus, type ClusterEvent, type Obj } from './lk-status.js';

const QUOTA_BYTES = 16 * 1024 * 1024;
const VALUE_BYTES = 256 * 1024;
const FILL_WRITES_MAX = 400;

function manifest(ns: string, name: string): string {
  // Revision mode with a retention far above this test's writes: only the operator compacts.
  return clusterManifest(ns, name, 'Delete', { quotaBackendBytes: QUOTA_BYTES, compaction: { mode: 'revision', retention: '1000000' } });
}

/** Leader name and the members' names by id, from the status. */
function membersOf(st: Obj): { leader: string; byId: Map<string, string> } {
  const ms = (st['members'] ?? []) as Array<{ id: string; name: string; leader: boolean }>;
  return { leader: ms.find((m) => m.leader)?.name ?? '', byId: new Map(ms.map((m) => [m.id, m.name])) };
}

/** The Defragmented events' member names in order, and where LeaderMoved falls. */
function defragOrder(events: readonly ClusterEvent[]): { defragged: string[]; moved: number[]; defragAt: number[] } {
  const defragged: string[] = [];
  const defragAt: number[] = [];
  const moved: number[] = [];
  events.forEach((e, i) => {
    if (e.reason === 'Defragmented') {
      defragged.push(/^defragmented (\S+)/.exec(e.note)?.[1] ?? '?');
      defragAt.push(i);
    }
    if (e.reason === 'LeaderMoved') moved.push(i);
  });
  return { defragged, moved, defragAt };
}

test('storage upkeep on localkube: NOSPACE remediation and scheduled defragmentation', { timeout: 8 * 60_000 }, async (t) => {
  if (!needLocalkube(t)) return;
  const lk = await localkube();
  const ns = `upkeep-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  await lk.waitJsonpath({ namespace: 'cairn-system', resource: 'deploy/cairn-operator', jsonpath: '{.status.availableReplicas}', pred: (v) => v === '1', what: 'operator Available' });
  try {
    const t0 = Date.now();
    await lk.apply(manifest(ns, 'full'));
    let st = await waitStatus(lk, ns, 'full', 'Available, 3 voters', availableWith(3), 300_000);
    t.diagnostic(`apply -> Available (3 members): ${String(Date.now() - t0)} ms`);
    const args = JSON.parse(await lk.kubectlOk(['get', 'statefulset', '-n', ns, 'full', '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="CAIRN_SERVER_ARGS")].value}'])) as string[];
    assert.ok(args.includes(`--quota-backend-bytes=${String(QUOTA_BYTES)}`), args.join(' '));
    assert.ok(args.includes('--auto-compaction-mode=revision') && args.includes('--auto-compaction-retention=1000000'), args.join(' '));
    const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'full-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const c = new EtcdAdmin(`${ip}:2379`, 10_000);
    try {
      await t.test('NOSPACE: compact, defragment every member (leader last, after moving leadership), disarm', async () => {
        const before = membersOf(st);
        const value = randomBytes(VALUE_BYTES).toString('base64').slice(0, VALUE_BYTES);
        let refusal = '';
        let writes = 0;
        for (; writes < FILL_WRITES_MAX && refusal === ''; writes++) {
          try {
            await c.put('fill', value);
          } catch (e) {
            if (e instanceof EtcdCallError && /database space exceeded/.test(e.details)) refusal = e.details;
            else throw e;
          }
        }
        t.diagnostic(`NOSPACE after ${String(writes)} overwrites of ${String(VALUE_BYTES)} bytes (quota ${String(QUOTA_BYTES)})`);
        assert.match(refusal, /etcdserver: mvcc: database space exceeded/);
        const tAlarm = Date.now();
        // The condition while it lasts (the remediation may be quick: a status seen mid-way, or its Events after).
        let sawCondition = false;
        st = await waitStatus(lk, ns, 'full', 'alarm remediated: Maintenance Idle after a round', (s) => {
          const m = condOf(s, 'Maintenance');
          if (m?.status === 'True' && m.reason === 'NoSpaceAlarm') sawCondition = true;
          return m?.reason === 'Idle' && asObj(s['maintenance'])['lastDefragTime'] !== undefined;
        }, 120_000);
        t.diagnostic(`alarm -> remediated: ${String(Date.now() - tAlarm)} ms (Maintenance=True/NoSpaceAlarm seen while polling: ${String(sawCondition)})`);
        assert.deepEqual(await c.alarmList(), [], 'no alarm left');
        await pollUntil('a write is accepted again', async () => {
          try {
            await c.put('after', 'ok');
            return true;
          } catch {
            return false;
          }
        }, 30_000, 500);
        assert.equal(await c.get('after'), 'ok');
        assert.equal((await c.get('fill'))?.length, VALUE_BYTES, 'the latest value survived the compaction');
        const events = await eventsOf(lk, ns, 'full');
        const reasons = events.map((e) => e.reason);
        const compacted = reasons.indexOf('Compacted');
        const { defragged, moved, defragAt } = defragOrder(events);
        assert.ok(compacted >= 0, `a Compacted event: ${reasons.join(', ')}`);
        assert.equal(new Set(defragged).size, 3, `every member defragmented once: ${defragged.join(', ')}`);
        assert.ok(defragAt.every((i) => i > compacted), 'compaction before the defragmentations');
        assert.ok(reasons.lastIndexOf('AlarmDisarmed') > Math.max(...defragAt), 'disarmed after the last defragmentation');
        assert.equal(defragged.at(-1), before.leader, `the leader (${before.leader}) last: ${defragged.join(', ')}`);
        assert.ok(moved.some((i) => i > compacted && i < (defragAt.at(-1) ?? 0)), `leadership moved before the leader's defragmentation: ${reasons.join(', ')}`);
        const nospace = events.filter((e) => ['Compacted', 'Defragmented', 'AlarmDisarmed'].includes(e.reason)).map((e) => e.note);
        t.diagnostic(`remediation events: ${nospace.join(' | ')}`);
        assert.ok(nospace.every((n) => n.includes('NOSPACE')), 'the Events name the NOSPACE remediation');
      });

      await t.test('scheduled defragmentation: followers first, leadership moved before the leader', async () => {
        // Free pages on every member: delete the big history, then compact at the current revision.
        const rev = await c.put('fill', 'small');
        const admin = new EtcdAdmin(`${ip}:2379`, 30_000);
        try {
          await admin.compact(rev, true);
        } finally {
          admin.close();
        }
        const before = membersOf(await waitStatus(lk, ns, 'full', 'Available', availableWith(3), 60_000));
        const n0 = defragOrder(await eventsOf(lk, ns, 'full')).defragged.length;
        await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'full', '--type=merge', '-p', JSON.stringify({ spec: { defrag: { schedule: '* * * * *', minFragmentation: 1 } } })]);
        const tSched = Date.now();
        let events: ClusterEvent[] = [];
        await pollUntil('three more Defragmented events', async () => {
          events = await eventsOf(lk, ns, 'full');
          return defragOrder(events).defragged.length >= n0 + 3;
        }, 150_000, 1000);
        t.diagnostic(`spec.defrag applied -> 3 members defragmented: ${String(Date.now() - tSched)} ms`);
        const all = defragOrder(events);
        const round = all.defragged.slice(n0, n0 + 3);
        const firstOfRound = all.defragAt[n0] ?? 0;
        assert.equal(new Set(round).size, 3, round.join(', '));
        const leaderAtRound = before.leader;
        assert.equal(round.at(-1), leaderAtRound, `leader last: ${round.join(', ')}`);
        assert.ok(all.moved.some((i) => i > firstOfRound && i < (all.defragAt[n0 + 2] ?? 0)), 'leadership moved during the round, before the leader');
        const s = await waitStatus(lk, ns, 'full', 'round over', (x) => asObj(x['maintenance'])['round'] === undefined && condOf(x, 'Maintenance')?.reason === 'Idle', 60_000);
        assert.ok(typeof asObj(s['maintenance'])['lastDefragTime'] === 'string');
      });
    } finally {
      c.close();
    }
  } finally {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});
