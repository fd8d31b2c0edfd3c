// The Helm chart, the one-file install and the examples on localkube (a real one-node Kubernetes,
// hack/localkube.ts; Helm 4 from hack/install-helm.sh):
//   - `helm template` of the chart (CRDs, RBAC, Deployment, metrics Service, dashboard) passes a
//     server-side dry run of the real kube-apiserver;
//   - the chart's CRDs applied (the step NOTES.txt names before upgrades; localkube may hold an older
//     render and Helm 4 applies crds/ server-side without forcing);
//   - a values file breaking the schema fails `helm install` naming the field, and installs nothing;
//   - `helm install` in a namespace of its own: the operator Deployment Available, and that operator
//     (watching its namespace) reconciles examples/cluster-dev.yaml to Available, which its own
//     /metrics show (read through the API server's service proxy);
//   - `helm upgrade` (2 replicas, a changed flag): rolled out, one leader, the cluster still Available;
//   - `helm uninstall`: the release's objects gone, cluster-scoped ones too; the CRDs kept (Helm);
//   - `kubectl apply -f deploy/cairn-operator.yaml` (what users run) succeeds and the operator in
//     cairn-system is Available after it (the same objects localkube runs: no rollout);
//   - examples/cluster-dev.yaml and cluster-production.yaml pass a server-side dry run.
// localkube is shared: the release has its own name and namespace; the cairn-system operator
// localkube runs watches every namespace, so it sees this test's cluster too (two operators on one
// cluster: both converge on the same objects). That the chart's operator reconciled it is read from
// the chart operator's own metrics. ClusterRole cairn-member (a fixed name the operator binds member
// pods to) already exists from localkube's operator/manifests: the release is installed with
// rbac.createMemberClusterRole=false, and the dry run checks the chart's own copy.
// Under CI=true a missing localkube prerequisite fails the test with the reason (skipOrFail).
// test-file-timeout: 12 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { helmBin } from '../harness/bins.js';
import { localkube, localkubeMissing, type LocalKube } from '../harness/localkube.js';
import { pollUntil } from '../harness/poll.js';
import { skipOrFail } from '../harness/prereq.js';
import { REPO_ROOT } from '../harness/procs.js';
import { CHART_DIR, DEPLOY_FILE, staleFiles } from '../../operator/tools/render-chart.js';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const CHART = join(REPO_ROOT, CHART_DIR);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function helm(lk: LocalKube, args: readonly string[], timeoutMs = 300_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(helmBin(), [...args], { env: { ...process.env, KUBECONFIG: lk.kubeconfig }, maxBuffer: 64 << 20, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function helmOk(lk: LocalKube, args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await helm(lk, args, timeoutMs);
  assert.equal(r.code, 0, `helm ${args.join(' ')}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** An example's object with its namespace replaced. */
function example(file: string, ns: string): Obj {
  const doc = o(yaml.load(readFileSync(join(REPO_ROOT, 'examples', file), 'utf8')));
  return { ...doc, metadata: { ...o(doc['metadata']), namespace: ns } };
}

async function waitAvailable(lk: LocalKube, ns: string, name: string, timeoutMs = 300_000): Promise<Obj> {
  let last: Obj = {};
  await pollUntil(
    `${ns}/${name} Available`,
    async () => {
      const r = await lk.kubectl(['get', 'etcdcluster', '-n', ns, name, '-o', 'json']);
      if (r.code !== 0) return false;
      last = o(o(JSON.parse(r.stdout))['status']);
      const conds = (last['conditions'] ?? []) as Obj[];
      return conds.some((c) => c['type'] === 'Available' && c['status'] === 'True') && last['phase'] === 'Running';
    },
    timeoutMs,
    500,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\nstatus: ${JSON.stringify(last)}`);
  });
  return last;
}

/** The release operator's /metrics through the API server's service proxy. */
async function operatorMetrics(lk: LocalKube, ns: string, service: string): Promise<string> {
  return lk.kubectlOk(['get', '--raw', `/api/v1/namespaces/${ns}/services/http:${service}:8080/proxy/metrics`]);
}

test('the Helm chart, the one-file install and the examples on localkube', { timeout: 12 * 60_000 }, async (t) => {
  const missing = localkubeMissing();
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return;
  }
  const lk = await localkube();
  const id = randomBytes(3).toString('hex');
  const ns = `pk-${id}`;
  const release = `pk${id}`;
  const full = `${release}-cairn-operator`;
  await lk.createNamespace(ns);
  t.after(async () => {
    await helm(lk, ['uninstall', release, '-n', ns]);
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  await t.test('helm template output passes a server-side dry run of the kube-apiserver', async () => {
    const rendered = await helmOk(lk, ['template', release, CHART, '-n', ns, '--include-crds', '--set', 'grafanaDashboard.enabled=true', '--set', `watchNamespace=${ns}`]);
    const kinds = yaml.loadAll(rendered).map(o).filter((d) => d['kind'] !== undefined).map((d) => String(d['kind']));
    for (const k of ['CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service', 'Deployment', 'ConfigMap']) assert.ok(kinds.includes(k), `${k} rendered`);
    const out = await lk.kubectlOk(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { stdin: rendered });
    const lines = out.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, kinds.length, `one line per object:\n${out}`);
    assert.ok(lines.every((l) => /\((server dry run)\)$/.test(l)), out);
  });

  await t.test("the chart's CRDs applied as NOTES.txt says before an upgrade (kubectl apply --server-side)", async () => {
    // Helm 4 installs crds/ by server-side apply without forcing: a CRD that localkube applied
    // with other content (an older render) would conflict; the same content does not.
    const out = await lk.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', join(CHART, 'crds')]);
    assert.match(out, /customresourcedefinition\.apiextensions\.k8s\.io\/etcdclusters\.cairn\.dev serverside-applied/, out);
  });

  await t.test('a values file breaking the schema fails helm install naming the field; nothing installed', async () => {
    const f = join(mkdtempSync(join(tmpdir(), 'cairn-values-')), 'bad.yaml');
    writeFileSync(f, yaml.dump({ replicaCount: 'three', leaderElection: { enabled: 'yes' } }));
    const r = await helm(lk, ['install', release, CHART, '-n', ns, '-f', f]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /values don't meet the specifications of the schema/, r.stderr);
    assert.match(r.stderr, /replicaCount/, r.stderr);
    assert.match(r.stderr, /leaderElection/, r.stderr);
    assert.equal((await helmOk(lk, ['list', '-n', ns, '-q'])).trim(), '', 'no release');
    assert.equal((await lk.kubectl(['get', 'deployment', '-n', ns, full])).code, 1, 'no Deployment');
  });

  await t.test('helm install: the operator Available, reconciling examples/cluster-dev.yaml to Available', async () => {
    const t0 = Date.now();
    await helmOk(lk, ['install', release, CHART, '-n', ns, '--set', `watchNamespace=${ns}`, '--set', 'rbac.createMemberClusterRole=false', '--wait', '--timeout', '4m']);
    t.diagnostic(`helm install --wait: ${String(Date.now() - t0)} ms`);
    assert.equal((await lk.kubectlOk(['get', 'deployment', '-n', ns, full, '-o', 'jsonpath={.status.availableReplicas}'])).trim(), '1');
    const cr = JSON.parse(await lk.kubectlOk(['get', 'clusterrole', full, '-o', 'json'])) as Obj;
    assert.equal(o(o(cr['metadata'])['annotations'])['meta.helm.sh/release-name'], release, 'the ClusterRole belongs to the release');
    await pollUntil(`Lease ${ns}/cairn-operator held`, async () => (await lk.kubectl(['get', 'lease', '-n', ns, 'cairn-operator', '-o', 'jsonpath={.spec.holderIdentity}'])).stdout.startsWith(full), 60_000, 500);
    const t1 = Date.now();
    await lk.apply(JSON.stringify(example('cluster-dev.yaml', ns)));
    const st = await waitAvailable(lk, ns, 'dev');
    t.diagnostic(`examples/cluster-dev.yaml -> Available: ${String(Date.now() - t1)} ms`);
    assert.equal(((st['members'] ?? []) as Obj[]).length, 1);
    await pollUntil(
      "the chart's operator reports the cluster's healthy member",
      async () => (await operatorMetrics(lk, ns, `${full}-metrics`)).includes(`cairn_operator_cluster_healthy_members{namespace="${ns}",name="dev"} 1`),
      60_000,
      1000,
    );
  });

  await t.test('helm upgrade: 2 replicas and a changed flag rolled out; one leader; the cluster still Available', async () => {
    await helmOk(lk, ['upgrade', release, CHART, '-n', ns, '--reuse-values', '--set', 'replicaCount=2', '--set', 'replaceAfterSeconds=90', '--wait', '--timeout', '4m']);
    const dep = JSON.parse(await lk.kubectlOk(['get', 'deployment', '-n', ns, full, '-o', 'json'])) as Obj;
    const c = ((o(o(o(dep['spec'])['template'])['spec'])['containers'] ?? []) as Obj[])[0] ?? {};
    const env = new Map(((c['env'] ?? []) as Obj[]).map((e) => [e['name'], e['value']]));
    assert.equal(env.get('CAIRN_REPLACE_AFTER_S'), '90');
    assert.equal(env.get('CAIRN_WATCH_NAMESPACE'), ns, '--reuse-values kept the install values');
    assert.equal(o(dep['status'])['readyReplicas'], 2);
    const status = JSON.parse(await helmOk(lk, ['status', release, '-n', ns, '-o', 'json'])) as Obj;
    assert.equal(status['version'], 2, 'release revision 2');
    const pods = (await lk.kubectlOk(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/name=${full}`, '-o', 'jsonpath={.items[*].metadata.name}'])).split(' ').filter((p) => p !== '');
    let holder = '';
    await pollUntil(
      'the Lease held by a pod of the new revision',
      async () => {
        holder = (await lk.kubectl(['get', 'lease', '-n', ns, 'cairn-operator', '-o', 'jsonpath={.spec.holderIdentity}'])).stdout.trim();
        return pods.includes(holder);
      },
      90_000,
      1000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}: holder ${holder}, pods ${pods.join(' ')}`);
    });
    await waitAvailable(lk, ns, 'dev', 60_000);
  });

  await t.test('helm uninstall: the release objects gone, cluster-scoped ones too; CRDs kept', async () => {
    await lk.kubectlOk(['delete', 'etcdcluster', '-n', ns, 'dev', '--wait=true', '--timeout=120s']);
    await helmOk(lk, ['uninstall', release, '-n', ns, '--wait', '--timeout', '3m']);
    for (const [kind, name, nsArgs] of [
      ['deployment', full, ['-n', ns]],
      ['service', `${full}-metrics`, ['-n', ns]],
      ['clusterrole', full, []],
      ['clusterrolebinding', full, []],
      ['role', `${full}-leader-election`, ['-n', ns]],
    ] as const) {
      const r = await lk.kubectl(['get', kind, name, ...nsArgs]);
      assert.notEqual(r.code, 0, `${kind}/${name} deleted`);
      assert.match(r.stderr, /NotFound/);
    }
    assert.equal((await lk.kubectl(['get', 'crd', 'etcdclusters.cairn.dev'])).code, 0, 'the CRD stays (Helm never deletes crds/)');
    assert.equal((await helmOk(lk, ['list', '-n', ns, '-q'])).trim(), '');
  });

  await t.test('deploy/cairn-operator.yaml equals a fresh render; kubectl apply -f of it works', async () => {
    assert.deepEqual(staleFiles({ helm: helmBin() }).filter((p) => p === DEPLOY_FILE), [], 'run node dist/operator/tools/render-chart.js');
    const gen0 = (await lk.kubectlOk(['get', 'deployment', '-n', 'cairn-system', 'cairn-operator', '-o', 'jsonpath={.metadata.generation}'])).trim();
    const out = await lk.kubectlOk(['apply', '-f', join(REPO_ROOT, DEPLOY_FILE)], { timeoutMs: 120_000 });
    for (const obj of ['namespace/cairn-system', 'customresourcedefinition.apiextensions.k8s.io/etcdclusters.cairn.dev', 'clusterrole.rbac.authorization.k8s.io/cairn-operator', 'deployment.apps/cairn-operator']) {
      assert.match(out, new RegExp(`^${obj.replace(/\./g, '\\.')} (created|configured|unchanged)$`, 'm'), out);
    }
    await lk.kubectlOk(['rollout', 'status', '-n', 'cairn-system', 'deployment/cairn-operator', '--timeout=180s'], { timeoutMs: 200_000 });
    const gen1 = (await lk.kubectlOk(['get', 'deployment', '-n', 'cairn-system', 'cairn-operator', '-o', 'jsonpath={.metadata.generation}'])).trim();
    t.diagnostic(`cairn-system/cairn-operator generation ${gen0} -> ${gen1} (the spec is 02-deployment.yaml's: chart.test.ts; other tests may restart it meanwhile)`);
  });

  await t.test('examples/cluster-dev.yaml and cluster-production.yaml pass a server-side dry run', async () => {
    for (const f of ['cluster-dev.yaml', 'cluster-production.yaml']) {
      const out = await lk.kubectlOk(['apply', '--dry-run=server', '-f', '-'], { stdin: JSON.stringify(example(f, ns)) });
      assert.match(out, /etcdcluster\.cairn\.dev\/\S+ created \(server dry run\)/, `${f}: ${out}`);
    }
    const prod = example('cluster-production.yaml', ns);
    const bad = { ...prod, spec: { ...o(prod['spec']), replicas: 2 } };
    const r = await lk.kubectl(['apply', '--dry-run=server', '-f', '-'], { stdin: JSON.stringify(bad) });
    assert.notEqual(r.code, 0, 'the dry run really validates: 2 replicas refused');
    assert.match(r.stderr, /replicas/);
  });
});
