// Renders the generated parts of the Helm chart charts/cairn-operator and the one-file install, so
// that none of them can drift from its one source:
//   charts/cairn-operator/crds/*.yaml          copies of crds/*.yaml (rendered from operator/api/)
//   charts/cairn-operator/templates/rbac.yaml  from operator/manifests/01-rbac.yaml (the one source of
//                                              the operator's and the members' RBAC rules), with the
//                                              release's names and namespace templated
//   deploy/cairn-operator.yaml                 the Namespace cairn-system + `helm template cairn-operator
//                                              charts/cairn-operator -n cairn-system --include-crds`
//                                              (default values); Helm from hack/install-helm.sh
//                                              ($CAIRN_HELM wins)
//   node dist/operator/tools/render-chart.js           writes them
//   node dist/operator/tools/render-chart.js --check   exit 1 naming each file that differs
//   --no-deploy                                         leaves out deploy/ (no Helm needed)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import yaml from 'js-yaml';

export const CHART_DIR = 'charts/cairn-operator';
export const RBAC_SOURCE = 'operator/manifests/01-rbac.yaml';
export const RBAC_TEMPLATE = `${CHART_DIR}/templates/rbac.yaml`;
export const DEPLOY_FILE = 'deploy/cairn-operator.yaml';
/** The release name and namespace of the one-file install (the same names as operator/manifests/). */
export const DEPLOY_RELEASE = 'cairn-operator';
export const DEPLOY_NAMESPACE = 'cairn-system';
/** The ServiceAccount and name prefix operator/manifests/ use, templated in the chart. */
const SOURCE_NAME = 'cairn-operator';
const SOURCE_NAMESPACE = 'cairn-system';

type Obj = Record<string, unknown>;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A generated file: its path under the repo and its text. */
export interface Rendered {
  readonly path: string;
  readonly text: string;
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function crdCopies(repo: string): Rendered[] {
  const header = '# Copied from crds/ by operator/tools/render-chart.ts (do not edit; re-render).\n';
  return readdirSync(join(repo, 'crds'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ path: `${CHART_DIR}/crds/${f}`, text: header + readFileSync(join(repo, 'crds', f), 'utf8') }));
}

// Placeholders dumped by js-yaml as plain scalars, then replaced by template expressions.
const FULLNAME = '__CAIRN_FULLNAME__';
const NAMESPACE = '__CAIRN_NAMESPACE__';
const SA_NAME = '__CAIRN_SERVICE_ACCOUNT__';
const TEMPLATE_OF: Record<string, string> = {
  [FULLNAME]: '{{ include "cairn-operator.fullname" . }}',
  [NAMESPACE]: '{{ .Release.Namespace }}',
  [SA_NAME]: '{{ include "cairn-operator.serviceAccountName" . }}',
};

/** Names of the release's own objects: cairn-operator[-suffix] -> <fullname>[-suffix]; others kept. */
const releaseName = (n: unknown): unknown => (typeof n === 'string' && (n === SOURCE_NAME || n.startsWith(`${SOURCE_NAME}-`)) ? FULLNAME + n.slice(SOURCE_NAME.length) : n);

function templatedSubjects(subjects: unknown): unknown {
  if (!Array.isArray(subjects)) return subjects;
  return subjects.map((s: unknown) => {
    if (!isObj(s) || s['kind'] !== 'ServiceAccount') return s;
    if (s['name'] !== SOURCE_NAME || s['namespace'] !== SOURCE_NAMESPACE) throw new Error(`${RBAC_SOURCE}: a subject other than ServiceAccount ${SOURCE_NAMESPACE}/${SOURCE_NAME}: ${JSON.stringify(s)}`);
    return { ...s, name: SA_NAME, namespace: NAMESPACE };
  });
}

const RBAC_KINDS = new Set(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

/** One RBAC object of the source as a chart template (guarded by its values switch). */
function rbacObjectTemplate(o: Obj): string {
  const kind = String(o['kind']);
  const meta = isObj(o['metadata']) ? o['metadata'] : {};
  const name = String(meta['name']);
  const own = releaseName(name) !== name;
  if (!own && kind !== 'ClusterRole') throw new Error(`${RBAC_SOURCE}: ${kind}/${name} is neither the operator's (${SOURCE_NAME}*) nor a ClusterRole; teach operator/tools/render-chart.ts about it`);
  if (meta['namespace'] !== undefined && meta['namespace'] !== SOURCE_NAMESPACE) throw new Error(`${RBAC_SOURCE}: ${kind}/${name} in namespace ${JSON.stringify(meta['namespace'])}, not ${SOURCE_NAMESPACE}`);
  const body: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'apiVersion' || k === 'kind' || k === 'metadata') continue;
    if (k === 'subjects') body[k] = templatedSubjects(v);
    else if (k === 'roleRef' && isObj(v)) body[k] = { ...v, name: releaseName(v['name']) };
    else body[k] = v;
  }
  const lines = [
    own ? '{{- if .Values.rbac.create }}' : '{{- if .Values.rbac.createMemberClusterRole }}',
    `apiVersion: ${String(o['apiVersion'])}`,
    `kind: ${kind}`,
    'metadata:',
    `  name: ${String(releaseName(name))}`,
    ...(meta['namespace'] !== undefined ? [`  namespace: ${NAMESPACE}`] : []),
    '  labels:',
    '    {{- include "cairn-operator.labels" . | nindent 4 }}',
    yaml.dump(body, { lineWidth: -1, noRefs: true, sortKeys: false, flowLevel: 3 }).trimEnd(),
    '{{- end }}',
  ];
  let text = lines.join('\n');
  for (const [ph, tpl] of Object.entries(TEMPLATE_OF)) text = text.split(ph).join(tpl);
  return text;
}

/** templates/rbac.yaml from operator/manifests/01-rbac.yaml (its ServiceAccount is serviceaccount.yaml's). */
export function renderRbacTemplate(sourceText: string): string {
  const docs = yaml.loadAll(sourceText).filter(isObj);
  const parts = docs.filter((d) => RBAC_KINDS.has(String(d['kind']))).map(rbacObjectTemplate);
  const others = docs.filter((d) => !RBAC_KINDS.has(String(d['kind'])) && d['kind'] !== 'ServiceAccount');
  if (others.length > 0) throw new Error(`${RBAC_SOURCE}: objects the chart does not render: ${others.map((d) => String(d['kind'])).join(', ')}`);
  if (parts.length === 0) throw new Error(`${RBAC_SOURCE}: no RBAC objects`);
  const header = `# Generated by operator/tools/render-chart.ts from ${RBAC_SOURCE} (do not edit; re-render).\n`;
  return `${header}${parts.join('\n---\n')}\n`;
}

/** The Helm binary: $CAIRN_HELM, else what hack/install-helm.sh prints (it builds Helm when missing). */
export function helmBinary(repo = REPO): string {
  const env = process.env['CAIRN_HELM'];
  if (env !== undefined && env !== '') return env;
  const out = execFileSync('bash', [join(repo, 'hack', 'install-helm.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').pop() ?? '';
}

/** deploy/cairn-operator.yaml: the Namespace, then `helm template` of the chart with default values. */
export function renderDeploy(helm: string, repo = REPO): string {
  const rendered = execFileSync(helm, ['template', DEPLOY_RELEASE, join(repo, CHART_DIR), '--namespace', DEPLOY_NAMESPACE, '--include-crds'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const ns = yaml.dump({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: DEPLOY_NAMESPACE, labels: { 'app.kubernetes.io/name': DEPLOY_RELEASE } } });
  return [
    '# The Cairn operator in one file: kubectl apply -f deploy/cairn-operator.yaml',
    `# Generated by operator/tools/render-chart.ts: helm template ${DEPLOY_RELEASE} ${CHART_DIR} -n ${DEPLOY_NAMESPACE} --include-crds`,
    '# (default values; do not edit, re-render).',
    '---',
    ns.trimEnd(),
    rendered.trimEnd(),
    '',
  ].join('\n');
}

/** Every generated file with its fresh text (deploy/ only when a Helm binary is given). */
export function renderAll(opts: { helm?: string; repo?: string } = {}): Rendered[] {
  const repo = opts.repo ?? REPO;
  const out = [...crdCopies(repo), { path: RBAC_TEMPLATE, text: renderRbacTemplate(readFileSync(join(repo, RBAC_SOURCE), 'utf8')) }];
  // The rbac template and the CRD copies must be on disk before Helm renders the chart.
  return opts.helm === undefined ? out : [...out, { path: DEPLOY_FILE, text: renderDeploy(opts.helm, repo) }];
}

/** The generated files whose committed text differs from a fresh render (and stale CRD copies). */
export function staleFiles(opts: { helm?: string; repo?: string } = {}): string[] {
  const repo = opts.repo ?? REPO;
  const fresh = renderAll(opts);
  const differ = fresh.filter((r) => !existsSync(join(repo, r.path)) || readFileSync(join(repo, r.path), 'utf8') !== r.text).map((r) => r.path);
  const extra = readdirSync(join(repo, CHART_DIR, 'crds'))
    .map((f) => `${CHART_DIR}/crds/${f}`)
    .filter((p) => !fresh.some((r) => r.path === p));
  return [...differ, ...extra];
}

function write(repo: string, files: readonly Rendered[]): void {
  for (const r of files) {
    mkdirSync(dirname(join(repo, r.path)), { recursive: true });
    writeFileSync(join(repo, r.path), r.text);
  }
  const keep = new Set(files.map((r) => r.path));
  for (const f of readdirSync(join(repo, CHART_DIR, 'crds'))) if (!keep.has(`${CHART_DIR}/crds/${f}`)) rmSync(join(repo, CHART_DIR, 'crds', f));
}

function main(): number {
  const check = process.argv.includes('--check');
  const withDeploy = !process.argv.includes('--no-deploy');
  if (check) {
    const stale = staleFiles(withDeploy ? { helm: helmBinary() } : {});
    for (const p of stale) console.error(`${p} differs from a fresh render: run node dist/operator/tools/render-chart.js`);
    return stale.length === 0 ? 0 : 1;
  }
  // The chart's own parts first: deploy/ is rendered by Helm from them.
  write(REPO, renderAll());
  if (withDeploy) write(REPO, renderAll({ helm: helmBinary() }));
  console.log(`wrote ${CHART_DIR}/crds/, ${RBAC_TEMPLATE}${withDeploy ? ` and ${DEPLOY_FILE}` : ''}`);
  return 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) process.exitCode = main();
