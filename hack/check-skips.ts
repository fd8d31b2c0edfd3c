// Finds every way a test can skip, or quietly pass, because of the machine it runs on, and fails
// unless each is listed with its reason in hack/skips-allowed.txt. Run by `npm run lint`:
// `node dist/hack/check-skips.js`. Exit 0: clean; 1: unlisted findings or stale entries.
//
// What counts (test files: every .ts under test/ and every *.test.ts elsewhere; read with
// TypeScript's parser, so comments and strings never count):
//   - a call of .skip() or .todo() (t.skip, test.skip, describe.skip, it.todo, ...);
//   - a `skip` or `todo` option of test()/it()/describe()/... whose value is not the literal false
//     ({ skip: cond ? '...' : false });
//   - an early exit guarded by the environment: an `if` whose condition reads the environment
//     (process.env, CI, existsSync/accessSync, getuid, process.platform, a net's .mode, PATH
//     lookups: see ENV_RE) and whose then-branch returns without a value (`return;`), continues,
//     breaks or calls process.exit. A return with a value is a probe's answer (e.g. "why this machine
//     cannot run it"), not an exit from a test.
// Not counted: an if-branch that calls skipOrFail() (test/harness/prereq.ts): it fails under CI=true
// and skips with the reason elsewhere, which is the sanctioned way to handle a missing prerequisite.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export type FindingKind = 'skip call' | 'skip option' | 'env-guarded exit';

export interface Finding {
  /** Repository-relative path with '/' separators. */
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  readonly kind: FindingKind;
  /** The flagged source line, trimmed. */
  readonly text: string;
}

export interface AllowEntry {
  readonly file: string;
  /** Text that appears on the flagged line. */
  readonly snippet: string;
  readonly reason: string;
  /** 1-based line in the allow-list file. */
  readonly at: number;
}

/** Condition text that reads the environment (the machine, not the test's own state). */
export const ENV_RE = /process\.env|\bCI\b|ciMode\(|existsSync|accessSync|statSync|getuid|geteuid|process\.platform|platform\(\)|\.mode\b|onPath\(|\bwhich\b|spawnSync|execFileSync|isRoot|hasRoot/;

const ALLOW_FORMAT = [
  'hack/skips-allowed.txt holds one line per allowed finding:',
  '  <file> | <text on the flagged line> | <reason: why this skip/exit is right and what the test does instead>',
  'Prefer not to skip: a missing prerequisite (a binary, root, network namespaces, a local Kubernetes) goes through',
  'skipOrFail(t, new MissingPrerequisite(what, howToInstall)) from test/harness/prereq.ts, which fails under CI=true',
  'and skips with the reason elsewhere; that pattern needs no entry.',
].join('\n');

function lineOf(sf: ts.SourceFile, node: ts.Node): { line: number; text: string } {
  const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
  const lines = sf.text.split('\n');
  return { line: line + 1, text: (lines[line] ?? '').trim() };
}

/** Whether `node` contains (outside nested functions) a node matching `pred`. */
function contains(node: ts.Node, pred: (n: ts.Node) => boolean): boolean {
  let found = false;
  const visit = (n: ts.Node): void => {
    if (found) return;
    if (pred(n)) {
      found = true;
      return;
    }
    if (ts.isFunctionLike(n)) return;
    ts.forEachChild(n, visit);
  };
  visit(node);
  return found;
}

function isCallTo(n: ts.Node, name: string): boolean {
  if (!ts.isCallExpression(n)) return false;
  const e = n.expression;
  return (ts.isIdentifier(e) && e.text === name) || (ts.isPropertyAccessExpression(e) && e.name.text === name);
}

const TEST_FUNCS = new Set(['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach']);

/** Whether n is an object literal given as an argument to test()/it()/describe()/t.test()/... (their options). */
function isTestOptions(n: ts.Node): boolean {
  if (!ts.isObjectLiteralExpression(n) || !ts.isCallExpression(n.parent)) return false;
  const e = n.parent.expression;
  const name = ts.isIdentifier(e) ? e.text : ts.isPropertyAccessExpression(e) ? e.name.text : '';
  return TEST_FUNCS.has(name) && n.parent.arguments.some((a) => a === n);
}

function isSkipOption(n: ts.Node): boolean {
  let named = false;
  if (ts.isShorthandPropertyAssignment(n)) named = n.name.text === 'skip' || n.name.text === 'todo';
  else if (ts.isPropertyAssignment(n) && (ts.isIdentifier(n.name) || ts.isStringLiteral(n.name))) {
    named = (n.name.text === 'skip' || n.name.text === 'todo') && n.initializer.kind !== ts.SyntaxKind.FalseKeyword;
  }
  return named && isTestOptions(n.parent);
}

function isProcessExit(n: ts.Node): boolean {
  return ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && n.expression.name.text === 'exit' && n.expression.expression.getText() === 'process';
}

function exitsEarly(n: ts.Node): boolean {
  return (ts.isReturnStatement(n) && n.expression === undefined) || ts.isContinueStatement(n) || ts.isBreakStatement(n) || isProcessExit(n);
}

/** The findings in one test file. */
export function findSkips(file: string, text: string): Finding[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const out: Finding[] = [];
  const add = (node: ts.Node, kind: FindingKind): void => {
    out.push({ file, kind, ...lineOf(sf, node) });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && (n.expression.name.text === 'skip' || n.expression.name.text === 'todo')) add(n, 'skip call');
    if (isSkipOption(n)) add(n, 'skip option');
    if (ts.isIfStatement(n) && ENV_RE.test(n.expression.getText(sf)) && contains(n.thenStatement, exitsEarly) && !contains(n.thenStatement, (c) => isCallTo(c, 'skipOrFail'))) add(n, 'env-guarded exit');
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

export class AllowListError extends Error {}

/** Parses hack/skips-allowed.txt ('#' comments and blank lines ignored). */
export function parseAllowList(text: string): AllowEntry[] {
  const out: AllowEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(' | ');
    const [file, snippet, ...reasonParts] = parts.map((p) => p.trim());
    const reason = reasonParts.join(' | ').trim();
    if (file === undefined || file === '' || snippet === undefined || snippet === '' || reason === '') {
      throw new AllowListError(`hack/skips-allowed.txt:${String(i + 1)}: want "<file> | <text on the flagged line> | <reason>", got ${JSON.stringify(line)}`);
    }
    out.push({ file, snippet, reason, at: i + 1 });
  });
  return out;
}

export interface Judgement {
  readonly unlisted: readonly Finding[];
  readonly stale: readonly AllowEntry[];
}

export function judge(findings: readonly Finding[], allow: readonly AllowEntry[]): Judgement {
  const used = new Set<AllowEntry>();
  const unlisted: Finding[] = [];
  for (const f of findings) {
    const e = allow.find((a) => a.file === f.file && f.text.includes(a.snippet));
    if (e === undefined) unlisted.push(f);
    else used.add(e);
  }
  return { unlisted, stale: allow.filter((a) => !used.has(a)) };
}

export function formatJudgement(j: Judgement): string {
  const lines: string[] = [];
  for (const f of j.unlisted) lines.push(`${f.file}:${String(f.line)}: ${f.kind} not in hack/skips-allowed.txt: ${f.text}`);
  for (const e of j.stale) lines.push(`hack/skips-allowed.txt:${String(e.at)}: stale entry (nothing in ${e.file} matches ${JSON.stringify(e.snippet)}): remove it`);
  if (lines.length > 0) lines.push('', ALLOW_FORMAT);
  return lines.join('\n');
}

/** Test files under root: every .ts in test/, every *.test.ts elsewhere (not node_modules, dist, dot-dirs). */
export function testFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, inTest: boolean): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === 'node_modules' || e.name === 'dist') continue;
      const p = join(dir, e.name);
      const rel = relative(root, p).split(sep).join('/');
      if (e.isDirectory()) walk(p, inTest || rel === 'test');
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && (inTest || e.name.endsWith('.test.ts'))) out.push(rel);
    }
  };
  walk(root, false);
  return out.sort();
}

function main(): number {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const allow = parseAllowList(readFileSync(join(root, 'hack', 'skips-allowed.txt'), 'utf8'));
  const files = testFiles(root);
  const findings = files.flatMap((f) => findSkips(f, readFileSync(join(root, f), 'utf8')));
  const j = judge(findings, allow);
  if (j.unlisted.length === 0 && j.stale.length === 0) {
    console.log(`check-skips: ${String(files.length)} test files, ${String(findings.length)} skips/guarded exits, all listed with a reason`);
    return 0;
  }
  console.error(formatJudgement(j));
  return 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exitCode = main();
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  }
}
