// The operator as a host process against a real kube-apiserver 1.34 on Cairn, with the credentials
// of its own ServiceAccount (a TokenRequest token) so the least-privilege RBAC of
// operator/manifests is what it runs under. There is no kubelet or controller-manager here, so no
// pod ever runs: this checks the objects it creates (server-side apply, owner references, hashes),
// the status it writes (journal before side effects, conditions), leader election, health and
// metrics endpoints, pause, and a restarted operator resuming the journaled operation.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '../harness/cluster.js';
import { startBackend, startKubeApiserver, type KubeApiserver, type KubectlRun } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { freePort, REPO_ROOT, trackChild } from '../harness/procs.js';

const MAIN = join(REPO_ROOT, 'dist', 'operator', 'main.js');

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

describe('operator process on a real kube-apiserver (no kubelet), under its own RBAC', () => {
  let backend: Cluster;
  let api: KubeApiserver;
  let operator: ChildProcess | undefined;
  let port = 0;
  let kubeconfig = '';
  const out: string[] = [];
  const k = (args: readonly string[], stdin?: string): Promise<KubectlRun> => api.kubectl(args, stdin !== undefined ? { stdin } : {});
  const getJson = async (args: readonly string[]): Promise<Obj> => {
    const r = await k([...args, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Obj;
  };
  const cluster = (name: string): Promise<Obj> => getJson(['get', 'etcdcluster', name]);

  function startOperator(): void {
    const p = spawn(process.execPath, [MAIN, '--health-port', String(port), '--lease-namespace', 'cairn-system', '--namespace', 'default'], {
      env: { ...process.env, KUBECONFIG: kubeconfig, POD_NAME: `op-${String(Date.now())}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(p);
    const take = (c: Buffer): void => {
      out.push(...c.toString('utf8').split('\n').filter((l) => l !== ''));
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    operator = p;
  }

  async function stopOperator(signal: NodeJS.Signals): Promise<void> {
    const p = operator;
    if (p === undefined || p.exitCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    await done;
  }

  before(async () => {
    backend = await startBackend('cairn', 1);
    api = await startKubeApiserver({ etcdServers: backend.members.map((x) => x.clientUrl) });
    for (const f of ['crds/cairn.dev_etcdclusters.yaml', 'operator/manifests/00-namespace.yaml', 'operator/manifests/01-rbac.yaml']) {
      const r = await k(['apply', '--server-side', '-f', join(REPO_ROOT, f)]);
      assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    }
    await pollUntil('CRD established', async () => (await k(['wait', '--for=condition=Established', '--timeout=5s', 'crd/etcdclusters.cairn.dev'])).code === 0, 60_000, 250);
    // The operator's own identity: a token of its ServiceAccount (TokenRequest), so RBAC applies.
    const tr = await api.request('POST', '/api/v1/namespaces/cairn-system/serviceaccounts/cairn-operator/token', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
    assert.equal(tr.status, 201, tr.body);
    const token = String(o(o(JSON.parse(tr.body))['status'])['token']);
    kubeconfig = join(api.dir, 'operator.kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: '${api.url}', certificate-authority: '${api.caFile}'}\nusers:\n- name: op\n  user: {token: '${token}'}\ncontexts:\n- name: c\n  context: {cluster: c, user: op}\ncurrent-context: c\n`,
    );
    port = await freePort();
    startOperator();
    await pollUntil('operator ready', async () => (await fetch(`http://127.0.0.1:${String(port)}/readyz`).catch(() => undefined))?.status === 200 && out.some((l) => l.includes('informers synced')), 60_000, 200);
  });

  after(async () => {
    await stopOperator('SIGTERM');
    await api.stop();
    await backend.close();
  });

  it('holds the leader Lease and serves health and metrics', async () => {
    const lease = await getJson(['-n', 'cairn-system', 'get', 'lease', 'cairn-operator']);
    assert.match(String(o(lease['spec'])['holderIdentity']), /^op-/);
    assert.equal((await fetch(`http://127.0.0.1:${String(port)}/healthz`)).status, 200);
    const m = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
    assert.match(m, /cairn_operator_reconciles_total/);
  });

  it('creates the owned objects and journals Create before the first member', async () => {
    const r = await k(['apply', '--server-side', '-f', '-'], JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'demo', namespace: 'default' }, spec: { replicas: 3, storage: { wal: { size: '256Mi' } } } }));
    assert.equal(r.code, 0, r.stderr);
    await pollUntil('StatefulSet demo', async () => (await k(['get', 'statefulset', 'demo'])).code === 0, 30_000, 200);
    const c = await cluster('demo');
    const uid = String(o(c['metadata'])['uid']);
    for (const [kind, name] of [
      ['serviceaccount', 'demo-member'],
      ['rolebinding', 'demo-member'],
      ['service', 'demo-peer'],
      ['service', 'demo-client'],
      ['pdb', 'demo'],
      ['statefulset', 'demo'],
    ] as const) {
      const x = await getJson(['get', kind, name, '--show-managed-fields']);
      const owners = (o(x['metadata'])['ownerReferences'] ?? []) as Obj[];
      assert.ok(owners.some((w) => w['uid'] === uid && w['controller'] === true), `${kind}/${name} is owned by the EtcdCluster`);
      const managers = (o(x['metadata'])['managedFields'] ?? []) as Obj[];
      assert.ok(managers.some((mf) => mf['manager'] === 'cairn-operator' && mf['operation'] === 'Apply'), `${kind}/${name} server-side applied`);
    }
    const sts = await getJson(['get', 'statefulset', 'demo']);
    const spec = o(sts['spec']);
    assert.equal(spec['replicas'], 1, 'a new cluster starts with one member');
    assert.equal(spec['podManagementPolicy'], 'Parallel');
    assert.deepEqual(spec['updateStrategy'], { type: 'OnDelete' });
    assert.deepEqual(((spec['volumeClaimTemplates'] ?? []) as Obj[]).map((t) => o(t['metadata'])['name']), ['data', 'wal']);
    const pdb = await getJson(['get', 'pdb', 'demo']);
    assert.equal(o(pdb['spec'])['minAvailable'], 2);
    const svc = await getJson(['get', 'service', 'demo-peer']);
    assert.equal(o(svc['spec'])['publishNotReadyAddresses'], true);
    assert.equal(o(svc['spec'])['clusterIP'], 'None');
    const st = o(c['status']);
    assert.equal(o(st['operation'])['type'], 'Create');
    assert.equal(st['phase'], 'Creating');
    assert.match(String(st['clusterToken']), /^demo-/);
    const conds = (st['conditions'] ?? []) as Obj[];
    assert.deepEqual(conds.map((x) => x['type']).sort(), ['Available', 'Degraded', 'Maintenance', 'Progressing']);
    assert.equal(conds.find((x) => x['type'] === 'Available')?.['status'], 'False');
  });

  it('a restarted operator resumes the journaled operation (same token and start time)', async () => {
    const before = o(o(await cluster('demo'))['status']);
    await stopOperator('SIGKILL');
    startOperator();
    await pollUntil('operator back', async () => (await fetch(`http://127.0.0.1:${String(port)}/readyz`).catch(() => undefined))?.status === 200 && out.filter((l) => l.includes('informers synced')).length >= 2, 60_000, 200);
    await pollUntil('a reconcile after the restart', () => Promise.resolve(out.filter((l) => l.includes('"cluster":"default/demo"')).length > 0), 30_000, 200);
    const after = o(o(await cluster('demo'))['status']);
    assert.deepEqual(after['operation'], before['operation']);
    assert.equal(after['clusterToken'], before['clusterToken']);
  });

  it('pause: no action, said in status', async () => {
    assert.equal((await k(['patch', 'etcdcluster', 'demo', '--type=merge', '-p', '{"spec":{"paused":true}}'])).code, 0);
    await pollUntil('phase Paused', async () => o((await cluster('demo'))['status'])['phase'] === 'Paused', 30_000, 200);
    const progressing = ((o((await cluster('demo'))['status'])['conditions'] ?? []) as Obj[]).find((x) => x['type'] === 'Progressing');
    assert.equal(progressing?.['reason'], 'Paused');
    assert.equal((await k(['patch', 'etcdcluster', 'demo', '--type=merge', '-p', '{"spec":{"paused":false}}'])).code, 0);
    await pollUntil('phase Creating again', async () => o((await cluster('demo'))['status'])['phase'] === 'Creating', 30_000, 200);
  });

  it('logs are JSON, one event per line', () => {
    const bad = out.filter((l) => {
      try {
        return typeof (JSON.parse(l) as Obj)['msg'] !== 'string';
      } catch {
        return true;
      }
    });
    assert.deepEqual(bad, []);
  });
});
