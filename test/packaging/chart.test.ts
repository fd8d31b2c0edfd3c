// The Helm chart charts/cairn-operator without a Kubernetes cluster (Helm 4 from hack/install-helm.sh,
// a real Cairn server for the dashboard's metric names):
//   - its generated parts (CRD copies, templates/rbac.yaml) and deploy/cairn-operator.yaml equal a
//     fresh render (operator/tools/render-chart.ts), so they cannot drift from crds/,
//     operator/manifests/01-rbac.yaml and the chart;
//   - the rendered RBAC rules equal operator/manifests/01-rbac.yaml's, object by object;
//   - `helm lint --strict` is clean with the defaults and with every optional part on;
//   - values breaking values.schema.json fail, naming the field; the Deployment follows the values,
//     and with the defaults its spec is operator/manifests/02-deployment.yaml's;
//   - every metric the Grafana dashboard queries is one a running Cairn server exports.
// test-file-timeout: 10 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { helmBin } from '../harness/bins.js';
import { REPO_ROOT, startCairn } from '../harness/procs.js';
import { CHART_DIR, DEPLOY_NAMESPACE, DEPLOY_RELEASE, RBAC_SOURCE, staleFiles } from '../../operator/tools/render-chart.js';

type Obj = Record<string, unknown>;
const o = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const CHART = join(REPO_ROOT, CHART_DIR);

function helm(args: readonly string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(helmBin(), [...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` with --set pairs; throws with Helm's stderr on failure. */
function template(sets: readonly string[] = [], extra: readonly string[] = []): Obj[] {
  const r = helm(['template', 'rel', CHART, '--namespace', 'ns1', ...sets.flatMap((s) => ['--set', s]), ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return yaml.loadAll(r.stdout).map(o).filter((d) => d['kind'] !== undefined);
}

const find = (docs: readonly Obj[], kind: string, name?: string): Obj | undefined =>
  docs.find((d) => d['kind'] === kind && (name === undefined || o(d['metadata'])['name'] === name));

function deploymentEnv(docs: readonly Obj[]): Map<string, unknown> {
  const d = find(docs, 'Deployment');
  const c = (o(o(o(d?.['spec'])['template'])['spec'])['containers'] as Obj[] | undefined)?.[0];
  return new Map(((c?.['env'] ?? []) as Obj[]).map((e) => [String(e['name']), e['value'] ?? e['valueFrom']]));
}

test('the generated chart parts and deploy/cairn-operator.yaml equal a fresh render', () => {
  assert.deepEqual(staleFiles({ helm: helmBin() }), [], 'run node dist/operator/tools/render-chart.js and commit');
});

test(`the chart's RBAC is ${RBAC_SOURCE}'s, rule for rule, under the release's names`, () => {
  const source = yaml.loadAll(readFileSync(join(REPO_ROOT, RBAC_SOURCE), 'utf8')).map(o);
  const docs = template();
  const renamed = (n: string): string => (n.startsWith('cairn-operator') ? `rel-cairn-operator${n.slice('cairn-operator'.length)}` : n);
  const rbacKinds = ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
  const want = source.filter((d) => rbacKinds.includes(String(d['kind'])));
  assert.ok(want.length >= 5, 'the source has the operator, leader-election and member objects');
  for (const s of want) {
    const name = renamed(String(o(s['metadata'])['name']));
    const got = find(docs, String(s['kind']), name);
    assert.ok(got !== undefined, `${String(s['kind'])}/${name} rendered`);
    assert.deepEqual(got['rules'], s['rules'], `${name}: the same rules`);
    if (s['roleRef'] !== undefined) assert.deepEqual(got['roleRef'], { ...o(s['roleRef']), name: renamed(String(o(s['roleRef'])['name'])) });
    if (s['subjects'] !== undefined) assert.deepEqual(got['subjects'], [{ kind: 'ServiceAccount', name: 'rel-cairn-operator', namespace: 'ns1' }]);
    if (o(s['metadata'])['namespace'] !== undefined) assert.equal(o(got['metadata'])['namespace'], 'ns1');
  }
  const rendered = docs.filter((d) => rbacKinds.includes(String(d['kind'])));
  assert.equal(rendered.length, want.length, 'no RBAC object beyond the source');
  const without = template(['rbac.createMemberClusterRole=false']);
  assert.equal(find(without, 'ClusterRole', 'cairn-member'), undefined, 'createMemberClusterRole=false leaves cairn-member out');
});

test('helm lint --strict is clean with the defaults and with every optional part on', () => {
  for (const sets of [[], ['serviceMonitor.enabled=true', 'podMonitor.enabled=true', 'grafanaDashboard.enabled=true', 'watchNamespace=team-a', 'replicaCount=2']]) {
    const r = helm(['lint', '--strict', CHART, ...sets.flatMap((s) => ['--set', s])]);
    assert.equal(r.code, 0, `${sets.join(',')}\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/, r.stdout);
  }
});

test('values that break values.schema.json fail, naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-values-'));
  const cases: Array<[string, Obj, RegExp]> = [
    ['a string replica count', { replicaCount: 'two' }, /replicaCount/],
    ['an unknown key', { replicas: 3 }, /replicas/],
    ['a pull policy Kubernetes does not have', { image: { pullPolicy: 'Sometimes' } }, /pullPolicy/],
    ['a nested typo', { serviceMonitor: { enable: true } }, /enable/],
    ['an invalid namespace name', { watchNamespace: 'Team_A' }, /watchNamespace/],
  ];
  for (const [what, values, field] of cases) {
    const f = join(dir, 'values.yaml');
    writeFileSync(f, yaml.dump(values));
    const r = helm(['template', 'rel', CHART, '-f', f]);
    assert.notEqual(r.code, 0, `${what}: refused`);
    assert.match(r.stderr, /values don't meet the specifications of the schema/, `${what}: ${r.stderr}`);
    assert.match(r.stderr, field, `${what}: names the field: ${r.stderr}`);
  }
  const r = helm(['template', 'rel', CHART, '--set', 'replicaCount=2', '--set', 'leaderElection.enabled=false']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /replicaCount > 1 needs leaderElection\.enabled/);
});

test('the Deployment follows the values (defaults as operator/manifests/02-deployment.yaml)', () => {
  const defaults = template();
  const env = deploymentEnv(defaults);
  assert.equal(env.get('CAIRN_DEFAULT_IMAGE'), 'localhost/cairn:dev');
  assert.equal(env.get('CAIRN_HEALTH_PORT'), '8080');
  assert.equal(env.has('CAIRN_WATCH_NAMESPACE'), false, 'all namespaces by default');
  assert.equal(env.has('CAIRN_LEADER_ELECT'), false, 'leader election on by default');
  assert.deepEqual(o(deploymentEnv(defaults).get('POD_NAMESPACE')), { fieldRef: { fieldPath: 'metadata.namespace' } }, 'the Lease lives in the release namespace');
  const set = template(['watchNamespace=team-a', 'image.repository=registry.example/cairn', 'image.tag=0.2.0', 'replaceAfterSeconds=90', 'quorumLossAfterSeconds=120', 'replicaCount=2']);
  const env2 = deploymentEnv(set);
  assert.equal(env2.get('CAIRN_WATCH_NAMESPACE'), 'team-a');
  assert.equal(env2.get('CAIRN_DEFAULT_IMAGE'), 'registry.example/cairn:0.2.0');
  assert.equal(env2.get('CAIRN_REPLACE_AFTER_S'), '90');
  assert.equal(env2.get('CAIRN_QUORUM_LOSS_AFTER_S'), '120');
  const d = o(find(set, 'Deployment'));
  assert.equal(o(d['spec'])['replicas'], 2);
  const c = (o(o(o(d['spec'])['template'])['spec'])['containers'] as Obj[])[0];
  assert.equal(c?.['image'], 'registry.example/cairn:0.2.0');
  const sa = String(o(o(o(d['spec'])['template'])['spec'])['serviceAccountName']);
  assert.equal(sa, 'rel-cairn-operator');
  assert.ok(find(defaults, 'ServiceAccount', sa) !== undefined);
});

test("the one-file install's Deployment spec is operator/manifests/02-deployment.yaml's (what localkube runs)", () => {
  const r = helm(['template', DEPLOY_RELEASE, CHART, '--namespace', DEPLOY_NAMESPACE]);
  assert.equal(r.code, 0, r.stderr);
  const rendered = o(find(yaml.loadAll(r.stdout).map(o), 'Deployment'));
  const manifest = o(yaml.load(readFileSync(join(REPO_ROOT, 'operator', 'manifests', '02-deployment.yaml'), 'utf8')));
  assert.deepEqual(rendered['spec'], manifest['spec'], 'change charts/cairn-operator/templates/deployment.yaml together with operator/manifests/02-deployment.yaml');
  assert.equal(o(rendered['metadata'])['name'], o(manifest['metadata'])['name']);
  assert.equal(o(rendered['metadata'])['namespace'], o(manifest['metadata'])['namespace']);
});

test('ServiceMonitor, PodMonitor and the dashboard ConfigMap are rendered only when asked', () => {
  const off = template();
  for (const k of ['ServiceMonitor', 'PodMonitor', 'ConfigMap']) assert.equal(find(off, k), undefined, `${k} off by default`);
  const on = template(['serviceMonitor.enabled=true', 'podMonitor.enabled=true', 'grafanaDashboard.enabled=true', 'podMonitor.namespaces={a,b}']);
  const sm = o(find(on, 'ServiceMonitor'));
  const svc = o(find(on, 'Service', 'rel-cairn-operator-metrics'));
  assert.deepEqual(o(o(sm['spec'])['selector'])['matchLabels'], o(svc['spec'])['selector'], 'the ServiceMonitor selects the metrics Service');
  assert.equal(((o(sm['spec'])['endpoints'] as Obj[])[0] ?? {})['port'], 'metrics');
  const pm = o(find(on, 'PodMonitor'));
  assert.deepEqual(o(o(pm['spec'])['selector'])['matchLabels'], { 'app.kubernetes.io/name': 'cairn', 'app.kubernetes.io/managed-by': 'cairn-operator' });
  assert.deepEqual(o(o(pm['spec'])['namespaceSelector'])['matchNames'], ['a', 'b']);
  const cm = o(find(on, 'ConfigMap'));
  assert.equal(o(o(cm['metadata'])['labels'])['grafana_dashboard'], '1');
  const dash = JSON.parse(String(o(cm['data'])['cairn.json'])) as Obj;
  assert.ok(Array.isArray(dash['panels']) && dash['panels'].length > 10);
});

/** The metric names in the dashboard's PromQL (a name before a `{` selector or label_values' comma; histogram suffixes stripped). */
function dashboardMetrics(): Set<string> {
  const dash = JSON.parse(readFileSync(join(CHART, 'files', 'dashboard.json'), 'utf8')) as Obj;
  const exprs = (dash['panels'] as Obj[]).flatMap((p) => (p['targets'] as Obj[]).map((t) => String(t['expr'])));
  exprs.push(String(((o(dash['templating'])['list'] as Obj[]).find((v) => v['name'] === 'cluster') ?? {})['query']));
  const names = new Set<string>();
  for (const e of exprs) for (const m of e.matchAll(/\b((?:etcd|grpc)_[a-z_]+)(?=\{|,)/g)) names.add((m[1] ?? '').replace(/_(bucket|sum|count)$/, ''));
  return names;
}

test("every metric the dashboard queries is exported by a running Cairn server (etcd's names)", async () => {
  const names = dashboardMetrics();
  assert.ok(names.size >= 15, `${String(names.size)} metrics`);
  const p = await startCairn();
  try {
    const text = await (await fetch(`${p.clientUrl}/metrics`)).text();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? ''));
    assert.deepEqual([...names].filter((n) => !exported.has(n)), [], 'metrics the dashboard queries that the server does not export');
  } finally {
    await p.stop();
  }
});
