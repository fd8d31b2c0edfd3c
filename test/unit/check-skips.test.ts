// hack/check-skips.ts: which skips and environment-guarded exits it finds in small sources, the
// allow-list format, and that the real allow-list parses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AllowListError, findSkips, formatJudgement, judge, parseAllowList } from '../../hack/check-skips.js';
import { REPO_ROOT } from '../harness/procs.js';

function kinds(text: string): string[] {
  return findSkips('test/x.test.ts', text).map((f) => `${String(f.line)} ${f.kind}`);
}

test('skip and todo calls and options are found; skip: false and non-test objects are not', () => {
  const src = [
    "test('a', (t) => { t.skip('why'); });", // 1
    "describe.skip('b', () => {});", // 2
    "it.todo('c');", // 3
    "test('d', { skip: process.env['X'] === '1' }, () => {});", // 4
    "test('e', { skip: false, timeout: 10 }, () => {});", // 5
    'const skip = true; test("f", { skip }, () => {});', // 6
    'out.push({ pkg, skip });', // 7: not a test's options
    "const o = { skip: 'x' };", // 8: not a test's options
    "// t.skip('in a comment')", // 9
    "const s = 't.skip()';", // 10
  ].join('\n');
  assert.deepEqual(kinds(src), ['1 skip call', '2 skip call', '3 skip call', '4 skip option', '6 skip option']);
});

test('an early exit guarded by the environment is found; one through skipOrFail() or not about the environment is not', () => {
  const src = [
    "test('a', async (t) => {", // 1
    "  if (!existsSync('/usr/bin/etcdctl')) return;", // 2
    "  if (net.mode === 'proxy') { console.log('note'); return; }", // 3
    "  if (process.env['CI'] !== 'true') process.exit(0);", // 4
    "  if (missing !== undefined && ciMode() === false) { skipOrFail(t, missing); return; }", // 5
    '  if (x === 1) return;', // 6: the test's own state
    "  if (process.env['DEBUG'] === '1') console.log('x');", // 7: no exit
    "  for (const f of fs) { if (existsSync(f)) continue; }", // 8
    "  if (existsSync(f)) { const g = () => { return; }; g(); }", // 9: the return is in a nested function
    "  if (process.platform !== 'linux') return 'needs Linux';", // 10: a probe's answer, not an exit
    '});',
  ].join('\n');
  assert.deepEqual(kinds(src), ['2 env-guarded exit', '3 env-guarded exit', '4 env-guarded exit', '8 env-guarded exit']);
});

test('findings are judged against the allow-list: listed ones pass, unlisted and stale entries are reported', () => {
  const findings = findSkips('test/a.test.ts', "test('x', (t) => { t.skip('no foo'); });\ntest('y', (t) => { t.skip('no bar'); });");
  const allow = parseAllowList("# comment\n\ntest/a.test.ts | t.skip('no foo') | foo is optional | really\ntest/b.test.ts | t.skip( | gone\n");
  assert.equal(allow[0]?.reason, 'foo is optional | really');
  const j = judge(findings, allow);
  assert.deepEqual(j.unlisted.map((f) => f.line), [2]);
  assert.deepEqual(j.stale.map((e) => e.file), ['test/b.test.ts']);
  const text = formatJudgement(j);
  assert.match(text, /^test\/a\.test\.ts:2: skip call not in hack\/skips-allowed\.txt: /m);
  assert.match(text, /hack\/skips-allowed\.txt:4: stale entry/);
  assert.match(text, /skipOrFail\(t, new MissingPrerequisite/, 'the message tells how to comply');
  assert.equal(formatJudgement(judge([], [])), '');
});

test('a malformed allow-list line is refused with its line number; the real allow-list parses', () => {
  assert.throws(() => parseAllowList('test/a.test.ts | t.skip('), (e) => e instanceof AllowListError && /skips-allowed\.txt:1: want/.test(e.message));
  assert.throws(() => parseAllowList('\ntest/a.test.ts | t.skip( |   '), /skips-allowed\.txt:2:/);
  const real = parseAllowList(readFileSync(join(REPO_ROOT, 'hack', 'skips-allowed.txt'), 'utf8'));
  assert.ok(real.length > 0 && real.every((e) => e.reason.length >= 20), 'every entry has a reason');
});
