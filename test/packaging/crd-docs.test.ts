// docs/crd-reference.md is a fresh render of crds/ (operator/tools/render-docs.ts) and names every
// field of both kinds' schemas, with the defaults and CEL messages the API server applies.
// test-tier: unit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { DOCS_FILE, renderDocs } from '../../operator/tools/render-docs.js';
import { REPO_ROOT } from '../harness/procs.js';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});

function fieldPaths(s: Obj, path: string, out: string[]): void {
  for (const [k, v] of Object.entries(obj(s['properties']))) {
    const p = path === '' ? k : `${path}.${k}`;
    out.push(p);
    fieldPaths(obj(v), p, out);
    fieldPaths(obj(obj(v)['items']), `${p}[]`, out);
  }
}

test('docs/crd-reference.md equals a fresh render of crds/ (re-render: node dist/operator/tools/render-docs.js)', () => {
  assert.equal(readFileSync(join(REPO_ROOT, DOCS_FILE), 'utf8'), renderDocs(REPO_ROOT));
});

test('every spec and status field of every CRD has its row, with its default and CEL messages', () => {
  const doc = renderDocs(REPO_ROOT);
  for (const f of readdirSync(join(REPO_ROOT, 'crds')).filter((x) => x.endsWith('.yaml'))) {
    const crd = obj(yaml.load(readFileSync(join(REPO_ROOT, 'crds', f), 'utf8')));
    for (const v of (obj(crd['spec'])['versions'] as unknown[]) ?? []) {
      const root = obj(obj(obj(v)['schema'])['openAPIV3Schema']);
      for (const top of ['spec', 'status']) {
        const paths: string[] = [];
        fieldPaths(obj(obj(root['properties'])[top]), '', paths);
        assert.ok(paths.length > 0, `${f}: ${top} has fields`);
        for (const p of paths) assert.ok(doc.includes(`| \`${p}\` |`), `${f}: ${top}.${p} has no row`);
      }
    }
  }
  assert.match(doc, /\| `replicas` \| integer \| {2}\| `3` \|/);
  assert.match(doc, /rule: replicas must be 1, 3, 5 or 7/);
});
