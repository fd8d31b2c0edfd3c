// hack/check-layers.ts: the import rules between server/ folders on small synthetic trees, and that
// the real hack/layers.json parses (whether every server/ file is in a layer is the checker's job).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFile, formatViolation, importsOf, layerOf, parseRules, RulesError, type LayerRules } from '../../hack/check-layers.js';

const RULES = parseRules({
  root: 'server',
  shared: ['proto'],
  layers: [
    { name: 'low', paths: ['low/'], mayImport: [] },
    { name: 'db', paths: ['db/'], mayImport: ['low'] },
    { name: 'db/keys', paths: ['db/keys/'], mayImport: [] },
    { name: 'top', paths: ['top/'], mayImport: ['low', 'db'] },
    { name: 'main', paths: ['main.ts'], mayImport: ['*'] },
  ],
  packages: { lmdb: ['db'], '@grpc/grpc-js': [] },
});

function problems(path: string, text: string, rules: LayerRules = RULES): string[] {
  return checkFile(rules, { path, text }).map(formatViolation);
}

test('imports within a layer, into allowed layers, shared folders and node builtins pass', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../low/b.js';",
    "import { KeyValue } from '../../proto/gen/mvccpb.js';",
    "import { open } from 'lmdb';",
    "import { join } from 'node:path';",
    "import fs from 'fs';",
  ].join('\n');
  assert.deepEqual(problems('server/db/x.ts', text), []);
});

test('an import into a layer not allowed is reported with file, line, specifier and both layers', () => {
  const text = "// header\nimport { Top } from '../top/index.js';\n";
  assert.deepEqual(problems('server/db/x.ts', text), ['server/db/x.ts:2 imports ../top/index.js (layer db may not import top)']);
  assert.deepEqual(problems('server/low/x.ts', "export * from '../db/y.js';"), ['server/low/x.ts:1 imports ../db/y.js (layer low may not import db)']);
});

test('a file belongs to the longest matching folder', () => {
  assert.equal(layerOf(RULES, 'db/keys/k.ts')?.name, 'db/keys');
  assert.equal(layerOf(RULES, 'db/store.ts')?.name, 'db');
  assert.deepEqual(problems('server/db/keys/k.ts', "import { open } from '../store.js';"), [
    'server/db/keys/k.ts:1 imports ../store.js (layer db/keys may not import db)',
  ]);
  assert.deepEqual(problems('server/db/keys/k.ts', "import { open } from 'lmdb';"), [
    'server/db/keys/k.ts:1 imports lmdb (layer db/keys may not import package lmdb)',
  ]);
});

test('packages: only the listed layers; unlisted packages nowhere; deep and scoped names', () => {
  assert.deepEqual(problems('server/top/x.ts', "import { status } from '@grpc/grpc-js/build/src/constants.js';"), [
    'server/top/x.ts:1 imports @grpc/grpc-js/build/src/constants.js (layer top may not import package @grpc/grpc-js)',
  ]);
  assert.deepEqual(problems('server/top/x.ts', "import yaml from 'js-yaml';"), ['server/top/x.ts:1 imports js-yaml (package js-yaml is not listed in the rules)']);
});

test('every kind of import is seen: multi-line, export-from, type-only, dynamic, side effect; comments and strings are not', () => {
  const text = [
    '// import { no } from "../top/comment.js";',
    'import {',
    '  a,',
    "} from '../top/multi.js';",
    "export { b } from '../top/reexport.js';",
    "import type { C } from '../top/type.js';",
    "const d = await import('../top/dynamic.js');",
    "import '../top/side.js';",
    "const s = \"import x from '../top/string.js'\";",
  ].join('\n');
  const specs = importsOf(text).map((r) => `${r.line}:${r.specifier}`);
  assert.deepEqual(specs, ['4:../top/multi.js', '5:../top/reexport.js', '6:../top/type.js', '7:../top/dynamic.js', '8:../top/side.js']);
  assert.equal(problems('server/low/x.ts', text).length, 5);
});

test('files and imports outside every layer are reported; a file layer matches its .js import', () => {
  assert.deepEqual(problems('server/other/x.ts', ''), ['server/other/x.ts (in no layer of the rules)']);
  assert.deepEqual(problems('server/top/x.ts', "import { h } from '../../test/harness/procs.js';"), [
    'server/top/x.ts:1 imports ../../test/harness/procs.js (outside server/ and the shared folders proto)',
  ]);
  assert.deepEqual(problems('server/top/x.ts', "import { m } from '../nowhere/m.js';"), [
    'server/top/x.ts:1 imports ../nowhere/m.js (server/nowhere/m.js is in no layer of the rules)',
  ]);
  assert.deepEqual(problems('server/main.ts', "import { a } from './top/index.js';\nimport { b } from './db/keys/k.js';"), []);
  assert.deepEqual(problems('server/top/x.ts', "import { main } from '../main.js';"), ['server/top/x.ts:1 imports ../main.js (layer top may not import main)']);
});

test('rules naming an unknown layer, or a layer twice, are refused', () => {
  const base = { root: 'server', shared: [], packages: {} };
  assert.throws(() => parseRules({ ...base, layers: [{ name: 'a', paths: ['a/'], mayImport: ['b'] }] }), RulesError);
  assert.throws(() => parseRules({ ...base, layers: [{ name: 'a', paths: ['a/'], mayImport: [] }, { name: 'a', paths: ['b/'], mayImport: [] }] }), RulesError);
  assert.throws(() => parseRules({ ...base, packages: { lmdb: ['nope'] }, layers: [] }), RulesError);
  assert.throws(() => parseRules({ ...base, layers: [{ name: 'a', paths: 'a/', mayImport: [] }] }), RulesError);
});

test('hack/layers.json parses', () => {
  const repo = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
  const rules = parseRules(JSON.parse(readFileSync(join(repo, 'hack', 'layers.json'), 'utf8')) as unknown);
  assert.equal(rules.root, 'server');
  assert.equal(layerOf(rules, 'storage/backend/backend.ts')?.name, 'storage/backend');
  assert.deepEqual(rules.packages['lmdb'], ['storage/backend']);
});
