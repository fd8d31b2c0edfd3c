// crds/cairn.dev_etcdclusters.yaml is the rendering of operator/api (one source): the committed file
// must equal a fresh render, and the rules the CRD carries are the rules the operator's gate runs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { REPO_ROOT } from '../harness/procs.js';
import { renderCrdYaml, CRD_FILE } from '../../operator/tools/render-crds.js';
import { RULES, crd, withDefaults, problemsOf, parseQuantity, DEFAULTS } from '../../operator/api/index.js';

describe('CRD rendering', () => {
  it('the committed YAML equals a fresh render (re-render: node dist/operator/tools/render-crds.js)', () => {
    assert.equal(readFileSync(join(REPO_ROOT, CRD_FILE), 'utf8'), renderCrdYaml());
  });

  it('parses back to the CRD object and carries every rule once', () => {
    const parsed = yaml.load(renderCrdYaml());
    assert.deepEqual(parsed, crd());
    const text = JSON.stringify(parsed);
    for (const r of RULES) assert.ok(text.includes(JSON.stringify(r.cel).slice(1, -1)), `rule missing: ${r.cel}`);
  });
});

describe('defaults and the TypeScript gate', () => {
  it('an empty spec gets the documented defaults and is valid', () => {
    const s = withDefaults({});
    assert.equal(s.replicas, DEFAULTS.replicas);
    assert.equal(s.storage.reclaimPolicy, 'Retain');
    assert.equal(s.paused, false);
    assert.deepEqual(s.extraArgs, []);
    assert.deepEqual(problemsOf(s), []);
  });

  it('withDefaults is idempotent and keeps what is set', () => {
    const raw = { replicas: 5, image: 'x/y:z', storage: { data: { size: '3Gi', storageClassName: 'a' } }, server: { snapshotCount: 5 } };
    const once = withDefaults(raw);
    assert.deepEqual(withDefaults(once), once);
    assert.equal(once.storage.data.storageClassName, 'a');
    assert.equal(once.server.snapshotCount, 5);
    assert.equal(once.server.electionTimeoutMs, DEFAULTS.server.electionTimeoutMs);
  });

  it('quantities: binary and decimal suffixes, fractions', () => {
    assert.equal(parseQuantity('1Gi'), 2 ** 30);
    assert.equal(parseQuantity('1.5Gi'), 1.5 * 2 ** 30);
    assert.equal(parseQuantity('500M'), 5e8);
    assert.equal(parseQuantity('2048Mi'), parseQuantity('2Gi'));
    assert.throws(() => parseQuantity('1 Gi'));
    assert.throws(() => parseQuantity('-1Gi'));
  });
});
