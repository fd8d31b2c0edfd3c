// Migrating a Kubernetes control plane's store from etcd to Cairn (issue 18): kube-apiserver 1.34 on a
// real etcd (Debian's 3.4 and 3.6.8) creates a namespace, ConfigMaps, Secrets and a CustomResource of
// a CRD; `etcdctl snapshot save` (the etcdctl of the same version); `cairn snapshot restore` x3 into a
// new 3-member Cairn cluster; a new kube-apiserver on it lists every object with the same uid, data and
// resourceVersion (revisions are kept), serves the custom resource through the restored CRD, accepts
// new objects at higher resourceVersions, and a watch from the migrated list's resourceVersion sees them.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startEtcd, tempDir } from '../harness/procs.js';
import { Cluster } from '../harness/cluster.js';
import { startKubeApiserver, type KubeApiserver } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { referenceEtcd, runCairn, runTool } from './helpers.js';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

async function ok(api: KubeApiserver, method: string, path: string, body?: unknown): Promise<Obj> {
  const r = await api.request(method, path, body, { timeoutMs: 30_000 });
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${String(r.status)} ${r.body.slice(0, 300)}`);
  return o(JSON.parse(r.body));
}

const CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } } }],
  },
};

interface Snapshot {
  /** "kind/name" -> uid, resourceVersion and payload. */
  readonly objects: Map<string, { uid: string; rv: string; data: string }>;
}

async function snapshotObjects(api: KubeApiserver): Promise<Snapshot> {
  const objects = new Map<string, { uid: string; rv: string; data: string }>();
  for (const [kind, path, field] of [
    ['configmap', '/api/v1/namespaces/mig/configmaps', 'data'],
    ['secret', '/api/v1/namespaces/mig/secrets', 'data'],
    ['widget', '/apis/example.com/v1/namespaces/mig/widgets', 'spec'],
  ] as const) {
    // A restarted apiserver answers 429 "storage is (re)initializing" for a CRD's objects at first.
    let list: Obj = {};
    await pollUntil(
      `GET ${path}`,
      async () => {
        const r = await api.request('GET', path, undefined, { timeoutMs: 30_000 });
        if (r.status === 429) return false;
        assert.equal(r.status, 200, `GET ${path}: ${String(r.status)} ${r.body.slice(0, 300)}`);
        list = o(JSON.parse(r.body));
        return true;
      },
      60_000,
      250,
    );
    for (const item of (list['items'] ?? []) as Obj[]) {
      const meta = o(item['metadata']);
      objects.set(`${kind}/${String(meta['name'])}`, { uid: String(meta['uid']), rv: String(meta['resourceVersion']), data: JSON.stringify(item[field] ?? null) });
    }
  }
  return { objects };
}

async function migrate(t: TestContext, ver: '3.4' | '3.6'): Promise<void> {
  const ref = referenceEtcd(t, ver);
  if (ref === undefined) return;
  const etcdPath = ref.etcdBin;
  const etcdctl = ref.etcdctl;
  const file = join(tempDir(`cairn-kube-migration-${ver}-`), 'etcd.db');
  let before: Snapshot;
  const etcd = await startEtcd(etcdPath !== undefined ? { etcdBin: etcdPath } : {});
  try {
    const api = await startKubeApiserver({ etcdServers: [`http://${etcd.endpoint}`] });
    try {
      await ok(api, 'POST', '/api/v1/namespaces', { metadata: { name: 'mig' } });
      await ok(api, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', CRD);
      for (let i = 0; i < 40; i++) await ok(api, 'POST', '/api/v1/namespaces/mig/configmaps', { metadata: { name: `cm-${String(i)}` }, data: { i: String(i), v: `value-${String(i)}` } });
      // Overwrites and deletes, so the history has more than creates.
      for (let i = 0; i < 10; i++) await ok(api, 'PUT', `/api/v1/namespaces/mig/configmaps/cm-${String(i)}`, { metadata: { name: `cm-${String(i)}` }, data: { i: String(i), v: 'changed' } });
      for (let i = 30; i < 40; i++) await ok(api, 'DELETE', `/api/v1/namespaces/mig/configmaps/cm-${String(i)}`);
      for (let i = 0; i < 5; i++) await ok(api, 'POST', '/api/v1/namespaces/mig/secrets', { metadata: { name: `s-${String(i)}` }, stringData: { password: `pw-${String(i)}` } });
      await pollUntil(
        'the Widget CRD served',
        async () => (await api.request('GET', '/apis/example.com/v1/namespaces/mig/widgets')).status === 200,
        30_000,
        200,
      );
      for (let i = 0; i < 5; i++) await ok(api, 'POST', '/apis/example.com/v1/namespaces/mig/widgets', { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: `w-${String(i)}` }, spec: { size: i } });
      before = await snapshotObjects(api);
      const count = (kind: string): number => [...before.objects.keys()].filter((k) => k.startsWith(`${kind}/`)).length;
      assert.deepEqual([count('configmap'), count('secret'), count('widget')], [30, 5, 5], 'the objects written (no controllers run here)');
    } finally {
      await api.stop();
    }
    const r = await runTool(etcdctl, [`--endpoints=${etcd.endpoint}`, 'snapshot', 'save', file]);
    assert.equal(r.exit, 0, `etcdctl ${ver} snapshot save: ${r.stderr}`);
  } finally {
    await etcd.stop();
  }

  const cluster = new Cluster('cairn', { size: 3 });
  try {
    for (const n of ['m1', 'm2', 'm3']) await cluster.reserve(n);
    const ic = cluster.initialCluster();
    for (const m of cluster.members) {
      const r = await runCairn(['snapshot', 'restore', file, '--name', m.name, '--initial-cluster', ic, '--initial-cluster-token', cluster.token, '--initial-advertise-peer-urls', m.peerUrl, '--data-dir', m.dataDir]);
      assert.equal(r.exit, 0, r.stderr);
    }
    await Promise.all(cluster.members.map((m) => cluster.startNew(m.name, ic, 'new')));
    const api = await startKubeApiserver({ etcdServers: cluster.members.map((m) => m.clientUrl) });
    try {
      const after = await snapshotObjects(api);
      assert.deepEqual([...after.objects.keys()].sort(), [...before.objects.keys()].sort(), 'the same objects');
      for (const [k, v] of before.objects) assert.deepEqual(after.objects.get(k), v, `${k}: same uid, resourceVersion and data`);
      const list = await ok(api, 'GET', '/api/v1/namespaces/mig/configmaps');
      const listRv = String(o(list['metadata'])['resourceVersion']);
      const maxRv = Math.max(...[...before.objects.values()].map((x) => Number(x.rv)));
      const created = await ok(api, 'POST', '/api/v1/namespaces/mig/configmaps', { metadata: { name: 'after-migration' }, data: { a: 'b' } });
      assert.ok(Number(o(created['metadata'])['resourceVersion']) > maxRv, 'new objects continue past the migrated revisions');
      // A watch from the migrated list's resourceVersion delivers the new object (and nothing stale).
      const w = await api.request('GET', `/api/v1/namespaces/mig/configmaps?watch=1&resourceVersion=${listRv}&timeoutSeconds=2`, undefined, { timeoutMs: 15_000 });
      assert.equal(w.status, 200, w.body.slice(0, 300));
      const events = w.body.split('\n').filter((l) => l !== '').map((l) => o(JSON.parse(l)));
      assert.deepEqual(
        events.map((e) => `${String(e['type'])} ${String(o(o(e['object'])['metadata'])['name'])}`),
        ['ADDED after-migration'],
        'the watch from the migrated resourceVersion sees exactly the new object',
      );
      const widget = await ok(api, 'GET', '/apis/example.com/v1/namespaces/mig/widgets/w-3');
      assert.equal(o(widget['spec'])['size'], 3, 'the custom resource is served through the restored CRD');
      t.diagnostic(`etcd ${ver} -> Cairn: ${String(before.objects.size)} objects with their uids and resourceVersions (up to ${String(maxRv)}); a write after at ${String(o(created['metadata'])['resourceVersion'])}`);
    } finally {
      await api.stop();
    }
  } catch (e) {
    console.error(`kube migration from etcd ${ver} failed; member logs:\n${cluster.logTails()}`);
    throw e;
  } finally {
    await cluster.close();
  }
}

for (const ver of ['3.4', '3.6'] as const) {
  test(`kube-apiserver data on etcd ${ver} -> etcdctl snapshot save -> cairn snapshot restore x3 -> kube-apiserver on a 3-member Cairn cluster`, { timeout: 300_000 }, async (t) => {
    await migrate(t, ver);
  });
}
