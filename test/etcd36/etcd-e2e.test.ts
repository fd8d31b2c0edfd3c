// The fixed subset of etcd's own e2e tests (v3.6.8) that `npm test` runs through hack/etcd-e2e.ts:
// on etcd 3.6.8, then on Cairn; every test passing on etcd passes on Cairn but the listed exceptions
// (test/etcd-e2e/exceptions.json), and no exception passes. `npm run test:etcd-e2e` runs them all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { refBinOrSkip } from '../harness/bins.js';
import { REPO_ROOT } from '../harness/procs.js';
import { judge, leakSpoiled, outcomes } from '../../hack/etcd-e2e.js';

test('judging two runs: regressions, exceptions, exceptions that now pass', () => {
  const etcd = outcomes('--- PASS: TestA (0.1s)\n--- PASS: TestB (0.2s)\n--- PASS: TestC (1s)\n--- FAIL: TestD (1s)\n    --- PASS: TestA/sub (0.1s)\n');
  const cairn = outcomes('--- PASS: TestA (0.1s)\n--- FAIL: TestB (0.2s)\n--- PASS: TestC (1s)\n--- FAIL: TestD (1s)\n');
  assert.deepEqual(judge(etcd, cairn, [{ test: 'TestC', cause: 'x' }]), { regressions: ['TestB (FAIL)'], nowPassing: ['TestC'], excepted: [], flaky: [], passedBoth: 1 });
  assert.deepEqual(judge(etcd, cairn, [{ test: 'TestB', cause: 'y' }]), { regressions: [], nowPassing: [], excepted: ['TestB'], flaky: [], passedBoth: 2 });
  assert.deepEqual(judge(etcd, cairn, [{ test: 'TestB', cause: 'z', flaky: true }]).flaky, ['TestB (FAIL)']);
});

test("a run spoiled by etcd's leak check is named at the test where the leak was first found", () => {
  const out = '=== RUN   TestA\n--- PASS: TestA (1.00s)\n=== RUN   TestB\n    leak.go:103: Found leaked goroutined BEFORE test appears to have leaked :\n--- SKIP: TestB (0.05s)\n=== RUN   TestC\n    leak.go:103: Found leaked goroutined BEFORE test\n';
  assert.equal(leakSpoiled(out), 'TestB');
  assert.equal(leakSpoiled('=== RUN   TestA\n--- PASS: TestA (1.00s)\n'), undefined);
});

test('etcd e2e subset (v3.6.8): what passes on etcd 3.6.8 passes on Cairn, but the listed exceptions', { timeout: 600_000 }, (t) => {
  if (refBinOrSkip(t, 'etcd-3.6') === undefined || refBinOrSkip(t, 'etcdctl-3.6') === undefined || refBinOrSkip(t, 'etcdutl-3.6') === undefined) return;
  const r = spawnSync('node', [join(REPO_ROOT, 'dist', 'hack', 'etcd-e2e.js'), '--subset', '--timeout', '8m'], { encoding: 'utf8', timeout: 590_000 });
  t.diagnostic(r.stdout.trim());
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr.split('\n').slice(-40).join('\n')}`);
});
