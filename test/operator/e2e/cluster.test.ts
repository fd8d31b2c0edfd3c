// End to end on localkube (a real one-node Kubernetes of processes, hack/localkube.ts), with the
// operator running as the Deployment cairn-operator inside it, as users run it:
//   create 1 and 3 members -> Available (apply -> Available timed); writes through the client
//   Service from a pod and from the host; scale 3 -> 5 -> 3 under a write load, every acknowledged
//   write read back after (time per step); delete a pod (the same member returns); kill -9 the
//   leader's container under a write load (the same member returns, nothing acknowledged lost); kill the operator
//   mid-scale (it resumes from the journal); pause; delete (everything collected, volumes per
//   reclaimPolicy). Operator memory and CPU, idle and while reconciling, in the diagnostics.
// Under CI=true a missing localkube prerequisite fails the test with the reason (skipOrFail).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { localkube, localkubeMissing, type LocalKube } from '../../harness/localkube.js';
import { pollUntil, quietWindow } from '../../harness/poll.js';
import { skipOrFail } from '../../harness/prereq.js';
import { EtcdAdmin } from '../../../operator/etcd/index.js';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

const AVAILABLE_TIMEOUT_MS = 300_000;

function manifest(ns: string, name: string, replicas: number, extra: Obj = {}): string {
  return JSON.stringify({
    apiVersion: 'cairn.dev/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name, namespace: ns },
    spec: { replicas, storage: { data: { size: '256Mi' }, wal: { size: '256Mi', storageClassName: 'local-nvme' }, reclaimPolicy: 'Delete' }, ...extra },
  });
}

async function clusterObj(lk: LocalKube, ns: string, name: string): Promise<Obj> {
  return JSON.parse(await lk.kubectlOk(['get', 'etcdcluster', '-n', ns, name, '-o', 'json'])) as Obj;
}

function statusOf(c: Obj): Obj {
  return o(c['status']);
}

/** Available, `voters` healthy voters, no operation in progress. */
async function waitAvailable(lk: LocalKube, ns: string, name: string, voters: number, timeoutMs = AVAILABLE_TIMEOUT_MS): Promise<Obj> {
  let last: Obj = {};
  await pollUntil(
    `${ns}/${name} Available with ${String(voters)} voters`,
    async () => {
      last = statusOf(await clusterObj(lk, ns, name));
      const conds = (last['conditions'] ?? []) as Obj[];
      const avail = conds.find((c) => c['type'] === 'Available')?.['status'] === 'True';
      const members = (last['members'] ?? []) as Obj[];
      return avail && last['operation'] === undefined && last['phase'] === 'Running' && members.length === voters && members.every((m) => m['healthy'] === true && m['learner'] === false);
    },
    timeoutMs,
    500,
  ).catch(async (e: unknown) => {
    const ops = await lk.kubectl(['-n', 'cairn-system', 'logs', 'deploy/cairn-operator', '--tail=30']);
    throw new Error(`${String(e)}\nstatus: ${JSON.stringify(last)}\noperator log tail:\n${ops.stdout}`);
  });
  return last;
}

async function clusterIp(lk: LocalKube, ns: string, svc: string): Promise<string> {
  return (await lk.kubectlOk(['get', 'service', '-n', ns, svc, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
}

/** The operator process on this host (containers are host processes): RSS and CPU seconds. */
function operatorUsage(): { rssMiB: number; cpuS: number } | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      if (!cmd.includes('dist/operator/main.js')) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${e}/status`, 'utf8'));
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      const ticks = Number(stat[11] ?? 0) + Number(stat[12] ?? 0);
      return { rssMiB: Math.round(Number(rss?.[1] ?? 0) / 1024), cpuS: ticks / 100 };
    } catch {
      // gone
    }
  }
  return undefined;
}

/** The host pid of a member pod's entrypoint (containers are host processes): found by its POD_NAME/POD_NAMESPACE. */
function memberEntrypointPid(ns: string, pod: string): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (!cmd.includes('dist/operator/member/main.js')) continue;
      const env = readFileSync(`/proc/${e}/environ`, 'utf8').split('\0');
      if (env.includes(`POD_NAME=${pod}`) && env.includes(`POD_NAMESPACE=${ns}`)) return Number(e);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** Sequential writes through one endpoint until stopped; returns the acknowledged keys. */
function writeLoad(endpoint: string, prefix: string): { stop: () => Promise<Map<string, string>>; errors: () => number; acked: () => number } {
  const acked = new Map<string, string>();
  let errors = 0;
  let running = true;
  const loop = (async (): Promise<void> => {
    let c = new EtcdAdmin(endpoint, 5000);
    for (let i = 0; running; i++) {
      const key = `${prefix}/${String(i).padStart(6, '0')}`;
      const value = randomBytes(8).toString('hex');
      try {
        await c.put(key, value);
        acked.set(key, value);
      } catch {
        errors++;
        c.close();
        c = new EtcdAdmin(endpoint, 5000);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    c.close();
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return acked;
    },
    errors: () => errors,
    acked: () => acked.size,
  };
}

async function readBack(endpoint: string, acked: Map<string, string>): Promise<string[]> {
  const c = new EtcdAdmin(endpoint, 10_000);
  const bad: string[] = [];
  try {
    for (const [k, v] of acked) if ((await c.get(k)) !== v) bad.push(k);
  } finally {
    c.close();
  }
  return bad;
}

function setup(t: TestContext): boolean {
  const missing = localkubeMissing();
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return false;
  }
  return true;
}

test('operator e2e on localkube', { timeout: 60 * 60_000 }, async (t) => {
  if (!setup(t)) return;
  const lk = await localkube();
  const ns = `op-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  await lk.waitJsonpath({ namespace: 'cairn-system', resource: 'deploy/cairn-operator', jsonpath: '{.status.availableReplicas}', pred: (v) => v === '1', what: 'operator Available' });
  const idle = operatorUsage();
  t.diagnostic(`operator idle: ${JSON.stringify(idle)}`);

  await t.test('a 1-member cluster becomes Available', async () => {
    const t0 = Date.now();
    await lk.apply(manifest(ns, 'one', 1));
    await waitAvailable(lk, ns, 'one', 1);
    t.diagnostic(`apply -> Available, 1 member: ${String(Date.now() - t0)} ms`);
    const sts = JSON.parse(await lk.kubectlOk(['get', 'statefulset', '-n', ns, 'one', '-o', 'json'])) as Obj;
    assert.equal(o(sts['spec'])['replicas'], 1);
  });

  await t.test('a 3-member cluster grows from one member and becomes Available', async () => {
    const t0 = Date.now();
    await lk.apply(manifest(ns, 'three', 3));
    const st = await waitAvailable(lk, ns, 'three', 3);
    t.diagnostic(`apply -> Available, 3 members: ${String(Date.now() - t0)} ms`);
    const members = (st['members'] ?? []) as Obj[];
    assert.equal(members.filter((m) => m['leader'] === true).length, 1, 'one leader');
    const events = await lk.kubectlOk(['get', 'events.events.k8s.io', '-n', ns, '--field-selector', 'regarding.name=three,regarding.kind=EtcdCluster', '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    assert.equal(events.split('\n').filter((r) => r === 'MemberAdded').length, 2, `two learner adds: ${events}`);
    assert.equal(events.split('\n').filter((r) => r === 'MemberPromoted').length, 2, events);
  });

  await t.test('writes through the client Service, from a pod and from the host', async () => {
    const ip = await clusterIp(lk, ns, 'three-client');
    const c = new EtcdAdmin(`${ip}:2379`);
    try {
      await c.put('from-host', 'h');
    } finally {
      c.close();
    }
    const script = `import('/app/dist/operator/etcd/index.js').then(async ({ EtcdAdmin }) => { const c = new EtcdAdmin('three-client.${ns}.svc:2379'); await c.put('from-pod', 'p'); console.log('got', await c.get('from-host')); c.close(); })`;
    const r = await lk.runPod(ns, 'writer', 'localhost/cairn:dev', ['node', '-e', script]);
    assert.equal(r.phase, 'Succeeded', r.log);
    assert.match(r.log, /got h/);
    const c2 = new EtcdAdmin(`${ip}:2379`);
    try {
      assert.equal(await c2.get('from-pod'), 'p');
    } finally {
      c2.close();
    }
  });

  await t.test('scale 3 -> 5 -> 3 under a write load: every acknowledged write is readable', async () => {
    const ip = await clusterIp(lk, ns, 'three-client');
    const load = writeLoad(`${ip}:2379`, 'scale');
    const cpu0 = operatorUsage();
    let t0 = Date.now();
    await lk.kubectlOk(['scale', 'etcdcluster', '-n', ns, 'three', '--replicas=5']);
    await waitAvailable(lk, ns, 'three', 5);
    t.diagnostic(`scale 3 -> 5: ${String(Date.now() - t0)} ms (${String((Date.now() - t0) / 2)} ms per member)`);
    t0 = Date.now();
    await lk.kubectlOk(['scale', 'etcdcluster', '-n', ns, 'three', '--replicas=3']);
    await waitAvailable(lk, ns, 'three', 3);
    t.diagnostic(`scale 5 -> 3: ${String(Date.now() - t0)} ms`);
    const cpu1 = operatorUsage();
    const acked = await load.stop();
    t.diagnostic(`writes acknowledged during scaling: ${String(acked.size)}, failed (not acknowledged): ${String(load.errors())}`);
    t.diagnostic(`operator while reconciling: rss ${String(cpu1?.rssMiB)} MiB, cpu ${String((cpu1?.cpuS ?? 0) - (cpu0?.cpuS ?? 0))} s`);
    assert.ok(acked.size > 0);
    assert.deepEqual(await readBack(`${ip}:2379`, acked), [], 'every acknowledged write is readable');
    const pvcs = await lk.kubectlOk(['get', 'pvc', '-n', ns, '-l', 'app.kubernetes.io/instance=three', '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.deepEqual(pvcs.split(' ').filter((x) => x !== '').sort(), ['data-three-0', 'data-three-1', 'data-three-2', 'wal-three-0', 'wal-three-1', 'wal-three-2'], 'removed members left no claims');
  });

  await t.test('a deleted pod comes back as the same member', async () => {
    const before = ((statusOf(await clusterObj(lk, ns, 'three'))['members'] ?? []) as Obj[]).find((m) => m['name'] === 'three-1');
    assert.ok(before !== undefined);
    await lk.kubectlOk(['delete', 'pod', '-n', ns, 'three-1', '--wait=false']);
    await pollUntil('pod three-1 recreated', async () => (await lk.kubectl(['get', 'pod', '-n', ns, 'three-1', '-o', 'jsonpath={.metadata.uid}'])).stdout !== '', 60_000, 500);
    const st = await waitAvailable(lk, ns, 'three', 3);
    const after = ((st['members'] ?? []) as Obj[]).find((m) => m['name'] === 'three-1');
    assert.equal(after?.['id'], before['id'], 'same member id');
  });

  await t.test("a member whose claims and pod are deleted is replaced (new member id), the cluster healthy", async () => {
    const before = ((statusOf(await clusterObj(lk, ns, 'three'))['members'] ?? []) as Obj[]).find((m) => m['name'] === 'three-2');
    assert.ok(before !== undefined);
    const t0 = Date.now();
    await lk.kubectlOk(['delete', 'pvc', '-n', ns, 'data-three-2', 'wal-three-2', '--wait=false']);
    await lk.kubectlOk(['delete', 'pod', '-n', ns, 'three-2', '--wait=false']);
    await pollUntil(
      'three-2 replaced by a new member',
      async () => {
        const ms = (statusOf(await clusterObj(lk, ns, 'three'))['members'] ?? []) as Obj[];
        const m = ms.find((x) => x['name'] === 'three-2');
        return m !== undefined && m['id'] !== before['id'];
      },
      AVAILABLE_TIMEOUT_MS,
      500,
    );
    await waitAvailable(lk, ns, 'three', 3);
    t.diagnostic(`lost volume -> replaced and Available: ${String(Date.now() - t0)} ms`);
    const ip = await clusterIp(lk, ns, 'three-client');
    const c = new EtcdAdmin(`${ip}:2379`);
    try {
      assert.equal(await c.get('from-pod'), 'p', 'data written before is still there');
    } finally {
      c.close();
    }
  });

  await t.test('an operator killed mid-scale resumes from the journal', async () => {
    await lk.kubectlOk(['scale', 'etcdcluster', '-n', ns, 'three', '--replicas=5']);
    await pollUntil('a ScaleUp journaled', async () => o(statusOf(await clusterObj(lk, ns, 'three'))['operation'])['type'] === 'ScaleUp', 60_000, 200);
    await lk.kubectlOk(['delete', 'pod', '-n', 'cairn-system', '-l', 'app.kubernetes.io/name=cairn-operator', '--grace-period=0', '--force']);
    await waitAvailable(lk, ns, 'three', 5);
    const ids = ((statusOf(await clusterObj(lk, ns, 'three'))['members'] ?? []) as Obj[]).map((m) => m['name']);
    assert.deepEqual([...ids].sort(), ['three-0', 'three-1', 'three-2', 'three-3', 'three-4']);
  });

  await t.test('pause: no action while paused, said in status', async () => {
    await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'one', '--type=merge', '-p', '{"spec":{"paused":true,"replicas":3}}']);
    await lk.waitJsonpath({ namespace: ns, resource: 'etcdcluster/one', jsonpath: '{.status.phase}', pred: (v) => v === 'Paused', what: 'phase Paused' });
    await quietWindow(5000);
    assert.equal(await lk.kubectlOk(['get', 'statefulset', '-n', ns, 'one', '-o', 'jsonpath={.spec.replicas}']), '1', 'nothing scaled while paused');
    await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'one', '--type=merge', '-p', '{"spec":{"paused":false}}']);
    const t0 = Date.now();
    await waitAvailable(lk, ns, 'one', 3);
    t.diagnostic(`scale 1 -> 3 after unpausing: ${String(Date.now() - t0)} ms`);
  });

  await t.test('delete: owned objects collected, volumes deleted (reclaimPolicy Delete)', async () => {
    await lk.kubectlOk(['delete', 'etcdcluster', '-n', ns, 'one']);
    await pollUntil(
      'StatefulSet, Services, pods and claims of one gone',
      async () => {
        const r = await lk.kubectl(['get', 'statefulset,service,pdb,pod,pvc', '-n', ns, '-l', 'app.kubernetes.io/instance=one', '-o', 'name']);
        return r.code === 0 && r.stdout.trim() === '';
      },
      180_000,
      1000,
    );
  });

  await t.test("kill -9 of the leader's container (5 members) under a write load: the member returns, nothing acknowledged is lost", async () => {
    const st0 = statusOf(await clusterObj(lk, ns, 'three'));
    const leader = ((st0['members'] ?? []) as Obj[]).find((m) => m['leader'] === true);
    assert.ok(leader !== undefined, `a leader in ${JSON.stringify(st0['members'])}`);
    const name = String(leader['name']);
    const restarts = async (): Promise<number> => Number((await lk.kubectlOk(['get', 'pod', '-n', ns, name, '-o', 'jsonpath={.status.containerStatuses[0].restartCount}'])).trim() || '0');
    const restarts0 = await restarts();
    const pid = memberEntrypointPid(ns, name);
    assert.ok(pid !== undefined, `the entrypoint process of ${ns}/${name} on this host`);
    const ip = await clusterIp(lk, ns, 'three-client');
    const load = writeLoad(`${ip}:2379`, 'kill9');
    await pollUntil('20 writes acknowledged before the kill', () => Promise.resolve(load.acked() >= 20), 30_000, 100);
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    await pollUntil(`${name}'s container restarted`, async () => (await restarts()) > restarts0, 120_000, 500);
    await waitAvailable(lk, ns, 'three', 5);
    t.diagnostic(`kill -9 of the leader's container -> restarted and Available: ${String(Date.now() - t0)} ms`);
    const acked = await load.stop();
    const after = ((statusOf(await clusterObj(lk, ns, 'three'))['members'] ?? []) as Obj[]).find((m) => m['name'] === name);
    assert.equal(after?.['id'], leader['id'], `${name} is the same member after the restart`);
    t.diagnostic(`writes acknowledged around the kill: ${String(acked.size)}, failed (not acknowledged): ${String(load.errors())}`);
    assert.ok(acked.size > 0);
    assert.deepEqual(await readBack(`${ip}:2379`, acked), [], 'every acknowledged write is readable');
  });

  t.diagnostic(`operator at the end: ${JSON.stringify(operatorUsage())}`);
  await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
});
