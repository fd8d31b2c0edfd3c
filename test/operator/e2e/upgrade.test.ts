// Rolling upgrades end to end on localkube: a 3-member cluster under a write load moves from
// localhost/cairn:dev to a second locally built tag (localhost/cairn:v2) one pod at a time,
// followers first and the leader last (after a leadership transfer), nothing acknowledged lost;
// then a broken image stops the rollout after one pod with Degraded and the reason, and setting the
// previous image rolls it back to Available. The broken image is a tag that was never built
// (localhost/cairn:missing: the pod never starts, ErrImagePull): `npm run image -- --broken` only
// replaces the image's ENTRYPOINT, which member pods bypass with their own command.
// Under CI=true a missing localkube prerequisite fails the test with the reason (skipOrFail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { localkube, localkubeImage, localkubeMissing, type LocalKube } from '../../harness/localkube.js';
import { pollUntil } from '../../harness/poll.js';
import { skipOrFail } from '../../harness/prereq.js';
import { EtcdAdmin } from '../../../operator/etcd/index.js';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});
const UPGRADE_TIMEOUT_S = 40;

async function status(lk: LocalKube, ns: string, name: string): Promise<Obj> {
  return o((JSON.parse(await lk.kubectlOk(['get', 'etcdcluster', '-n', ns, name, '-o', 'json'])) as Obj)['status']);
}

async function waitAvailable(lk: LocalKube, ns: string, name: string, voters: number, image: string, timeoutMs = 400_000): Promise<Obj> {
  let last: Obj = {};
  await pollUntil(
    `${name} Available with ${String(voters)} members on ${image}`,
    async () => {
      last = await status(lk, ns, name);
      const avail = ((last['conditions'] ?? []) as Obj[]).find((c) => c['type'] === 'Available')?.['status'] === 'True';
      const ms = (last['members'] ?? []) as Obj[];
      return avail && last['operation'] === undefined && last['phase'] === 'Running' && ms.length === voters && ms.every((m) => m['healthy'] === true) && last['currentImage'] === image;
    },
    timeoutMs,
    500,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\nstatus: ${JSON.stringify(last)}`);
  });
  return last;
}

test('operator rolling upgrades on localkube', { timeout: 60 * 60_000 }, async (t) => {
  const missing = localkubeMissing();
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return;
  }
  const lk = await localkube();
  t.diagnostic(`image localhost/cairn:v2 built and imported in ${String(await localkubeImage('localhost/cairn:v2'))} s`);
  // A short rollout timeout for this test (restored at the end).
  await lk.kubectlOk(['-n', 'cairn-system', 'set', 'env', 'deploy/cairn-operator', `CAIRN_UPGRADE_TIMEOUT_S=${String(UPGRADE_TIMEOUT_S)}`]);
  await lk.kubectlOk(['-n', 'cairn-system', 'rollout', 'status', 'deploy/cairn-operator', '--timeout=180s'], { timeoutMs: 200_000 });
  const ns = `up-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  try {
    await lk.apply(JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'u', namespace: ns }, spec: { replicas: 3, image: 'localhost/cairn:dev', storage: { data: { size: '256Mi' }, wal: { size: '256Mi' } } } }));
    const st0 = await waitAvailable(lk, ns, 'u', 3, 'localhost/cairn:dev');
    const leader = ((st0['members'] ?? []) as Obj[]).find((m) => m['leader'] === true)?.['name'];
    const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'u-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();

    await t.test('dev -> v2 under load: one pod at a time, leader last, nothing acknowledged lost', async () => {
      const acked = new Map<string, string>();
      let running = true;
      const load = (async (): Promise<void> => {
        let c = new EtcdAdmin(`${ip}:2379`, 5000);
        for (let i = 0; running; i++) {
          const k = `up/${String(i).padStart(6, '0')}`;
          const v = randomBytes(6).toString('hex');
          try {
            await c.put(k, v);
            acked.set(k, v);
          } catch {
            c.close();
            c = new EtcdAdmin(`${ip}:2379`, 5000);
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        c.close();
      })();
      const t0 = Date.now();
      await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'u', '--type=merge', '-p', '{"spec":{"image":"localhost/cairn:v2"}}']);
      await waitAvailable(lk, ns, 'u', 3, 'localhost/cairn:v2');
      t.diagnostic(`3-member upgrade dev -> v2: ${String(Date.now() - t0)} ms`);
      running = false;
      await load;
      const c = new EtcdAdmin(`${ip}:2379`, 10_000);
      try {
        for (const [k, v] of acked) assert.equal(await c.get(k), v, `acknowledged ${k} lost`);
      } finally {
        c.close();
      }
      t.diagnostic(`${String(acked.size)} acknowledged writes during the upgrade, all read back`);
      const notes = (await lk.kubectlOk(['get', 'events.events.k8s.io', '-n', ns, '--field-selector', 'regarding.kind=EtcdCluster', '--sort-by=.eventTime', '-o', 'jsonpath={range .items[*]}{.reason} {.note}{"\\n"}{end}']))
        .split('\n')
        .filter((l) => l.startsWith('PodDeleted') || l.startsWith('LeaderMoved'));
      const deleted = notes.filter((l) => l.startsWith('PodDeleted'));
      assert.equal(deleted.length, 3, notes.join('\n'));
      assert.ok(deleted[2]?.includes(`deleted pod ${String(leader)} `), `the old leader ${String(leader)} restarted last:\n${notes.join('\n')}`);
      assert.ok(notes.some((l) => l.startsWith('LeaderMoved')), 'leadership moved before the leader restarted');
    });

    await t.test('a broken image stops the rollout Degraded; the previous image rolls it back', async () => {
      await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'u', '--type=merge', '-p', '{"spec":{"image":"localhost/cairn:missing"}}']);
      let st: Obj = {};
      await pollUntil(
        'rollout stopped',
        async () => {
          st = await status(lk, ns, 'u');
          return st['stoppedRollout'] === 'localhost/cairn:missing';
        },
        (UPGRADE_TIMEOUT_S + 180) * 1000,
        1000,
      );
      const degraded = ((st['conditions'] ?? []) as Obj[]).find((c) => c['type'] === 'Degraded');
      assert.equal(degraded?.['status'], 'True');
      assert.equal(degraded?.['reason'], 'RolloutStopped');
      const images = (await lk.kubectlOk(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/instance=u', '-o', 'jsonpath={.items[*].spec.containers[0].image}'])).split(' ');
      assert.equal(images.filter((i) => i === 'localhost/cairn:missing').length, 1, `only one pod tried the broken image: ${images.join(' ')}`);
      const avail = ((st['conditions'] ?? []) as Obj[]).find((c) => c['type'] === 'Available');
      assert.equal(avail?.['status'], 'True', 'quorum kept while stopped');
      const t0 = Date.now();
      await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'u', '--type=merge', '-p', '{"spec":{"image":"localhost/cairn:v2"}}']);
      await waitAvailable(lk, ns, 'u', 3, 'localhost/cairn:v2');
      t.diagnostic(`rollback to v2: ${String(Date.now() - t0)} ms`);
    });
  } finally {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
    await lk.kubectl(['-n', 'cairn-system', 'set', 'env', 'deploy/cairn-operator', 'CAIRN_UPGRADE_TIMEOUT_S-']);
  }
});
