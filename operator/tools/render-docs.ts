// Renders docs/crd-reference.md from the CRDs in crds/ (themselves rendered from operator/api/ by
// render-crds.ts), so the reference cannot drift from the schema the API server enforces: every field
// with its type, default, required-ness, the checks (enum, pattern, bounds, CEL rules with their
// messages) and its description, plus each kind's printer columns.
//   node dist/operator/tools/render-docs.js           writes docs/crd-reference.md
//   node dist/operator/tools/render-docs.js --check   exit 1 if the file differs from a fresh render
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import yaml from 'js-yaml';

export const DOCS_FILE = 'docs/crd-reference.md';

type Obj = Record<string, unknown>;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A Markdown table cell: one line, pipes escaped. */
function cell(s: string): string {
  return s.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|').trim();
}

function typeOf(s: Obj): string {
  if (s['x-kubernetes-int-or-string'] === true) return 'int or string';
  const t = text(s['type']);
  if (t === 'array') {
    const items = obj(s['items']);
    return `[]${typeOf(items) || 'any'}`;
  }
  if (t === 'object' && isObj(s['additionalProperties'])) return `map[string]${typeOf(obj(s['additionalProperties'])) || 'any'}`;
  if (s['x-kubernetes-preserve-unknown-fields'] === true && t === '') return 'any';
  return t;
}

function checksOf(s: Obj): string[] {
  const out: string[] = [];
  if (Array.isArray(s['enum'])) out.push(`one of ${list(s['enum']).map((e) => `\`${String(e)}\``).join(', ')}`);
  if (typeof s['pattern'] === 'string') out.push(`pattern \`${s['pattern']}\``);
  if (typeof s['format'] === 'string') out.push(`format ${s['format']}`);
  for (const [k, label] of [['minimum', '≥'], ['maximum', '≤'], ['minLength', 'length ≥'], ['maxLength', 'length ≤'], ['minItems', 'items ≥'], ['maxItems', 'items ≤'], ['maxProperties', 'keys ≤']] as const) {
    if (typeof s[k] === 'number') out.push(`${label} ${String(s[k])}`);
  }
  for (const r of list(s['x-kubernetes-validations'])) {
    const rule = obj(r);
    const msg = text(rule['message']) || text(rule['messageExpression']);
    out.push(msg !== '' ? `rule: ${msg}` : `rule \`${text(rule['rule'])}\``);
  }
  return out;
}

interface Row {
  path: string;
  type: string;
  required: boolean;
  def: string;
  checks: string;
  description: string;
}

function walk(s: Obj, path: string, required: boolean, rows: Row[]): void {
  if (path !== '') {
    rows.push({
      path,
      type: typeOf(s),
      required,
      def: s['default'] !== undefined ? `\`${JSON.stringify(s['default'])}\`` : '',
      checks: checksOf(s).join('; '),
      description: text(s['description']),
    });
  }
  const req = new Set(list(s['required']).map(String));
  for (const [name, child] of Object.entries(obj(s['properties']))) {
    walk(obj(child), path === '' ? name : `${path}.${name}`, req.has(name), rows);
  }
  // A list of objects: its items' fields under `path[]` (the list itself has its row above).
  const items = obj(s['items']);
  const itemReq = new Set(list(items['required']).map(String));
  for (const [name, child] of Object.entries(obj(items['properties']))) walk(obj(child), `${path}[].${name}`, itemReq.has(name), rows);
}

function renderCrd(crd: Obj): string {
  const spec = obj(crd['spec']);
  const names = obj(spec['names']);
  const kind = text(names['kind']);
  const out: string[] = [];
  for (const v of list(spec['versions'])) {
    const ver = obj(v);
    const schema = obj(obj(ver['schema'])['openAPIV3Schema']);
    out.push(`## ${kind} (\`${text(spec['group'])}/${text(ver['name'])}\`)`, '');
    if (text(schema['description']) !== '') out.push(text(schema['description']), '');
    const short = list(names['shortNames']).map(String);
    out.push(`Plural \`${text(names['plural'])}\`${short.length > 0 ? `, short name${short.length > 1 ? 's' : ''} ${short.map((x) => `\`${x}\``).join(', ')}` : ''}; ${text(spec['scope']).toLowerCase()}; subresources: ${Object.keys(obj(ver['subresources'])).join(', ') || 'none'}.`, '');
    const cols = list(ver['additionalPrinterColumns']).map(obj);
    if (cols.length > 0) {
      out.push('`kubectl get` columns:', '', '| Column | Type | JSONPath | Description |', '|---|---|---|---|');
      for (const c of cols) out.push(`| ${cell(text(c['name']))} | ${cell(text(c['type']))} | \`${cell(text(c['jsonPath']))}\` | ${cell(text(c['description']))} |`);
      out.push('');
    }
    for (const top of ['spec', 'status']) {
      const sub = obj(obj(schema['properties'])[top]);
      if (Object.keys(sub).length === 0) continue;
      const rows: Row[] = [];
      walk(sub, '', false, rows);
      out.push(`### ${kind}.${top}`, '');
      const topRules = checksOf(sub);
      if (topRules.length > 0) out.push(`Checks on the whole \`${top}\`: ${topRules.map(cell).join('; ')}.`, '');
      out.push('| Field | Type | Required | Default | Checks | Description |', '|---|---|---|---|---|---|');
      for (const r of rows) out.push(`| \`${r.path}\` | ${cell(r.type)} | ${r.required ? 'yes' : ''} | ${cell(r.def)} | ${cell(r.checks)} | ${cell(r.description)} |`);
      out.push('');
    }
  }
  return out.join('\n');
}

export function renderDocs(repo = REPO): string {
  const files = readdirSync(join(repo, 'crds'))
    .filter((f) => f.endsWith('.yaml'))
    .sort((a, b) => (a.includes('etcdclusters') ? -1 : b.includes('etcdclusters') ? 1 : a.localeCompare(b)));
  const parts = [
    '# CRD reference',
    '',
    '<!-- Generated by operator/tools/render-docs.ts from crds/ (do not edit; `node dist/operator/tools/render-docs.js`). -->',
    '',
    'The custom resources of the Cairn operator, field by field, as the API server enforces them',
    '(defaults are applied at admission; "rule" lines are CEL checks with the message a refused',
    'manifest gets). Field paths are relative to `spec` or `status`; `[]` marks the items of a list.',
    '',
  ];
  for (const f of files) parts.push(renderCrd(obj(yaml.load(readFileSync(join(repo, 'crds', f), 'utf8')))));
  return `${parts.join('\n').trimEnd()}\n`;
}

function main(): void {
  const check = process.argv.includes('--check');
  const want = renderDocs();
  const file = join(REPO, DOCS_FILE);
  const have = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  if (check) {
    if (have !== want) {
      process.stderr.write(`render-docs: ${DOCS_FILE} differs from a fresh render of crds/ (run: node dist/operator/tools/render-docs.js)\n`);
      process.exit(1);
    }
    return;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, want);
  process.stdout.write(`render-docs: wrote ${DOCS_FILE}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
