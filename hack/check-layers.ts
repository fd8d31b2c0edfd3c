// Checks the import rules between the folders of server/ (shared/DESIGN.md section 1, "Layers") as
// written in hack/layers.json. Every import, export-from, dynamic import() and import type in
// server/**/*.ts (and, with hack/operator-layers.json, operator/**/*.ts) is read with TypeScript's own import scanner (so comments and strings never count)
// and judged: a relative import must land in the importer's layer, a layer it may import, or a
// shared folder (proto/); a bare import must be a node builtin or a package listed for the layer.
// Run after building: `node dist/hack/check-layers.js`. Exit 0: clean; 1: violations; 2: bad rules.
import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export interface Layer {
  readonly name: string;
  /** Paths relative to the root: a folder ends with '/', anything else is one file. */
  readonly paths: readonly string[];
  /** Layer names, or '*' for all. */
  readonly mayImport: readonly string[];
}

export interface LayerRules {
  /** The folder whose .ts files are checked, relative to the repository, e.g. "server". */
  readonly root: string;
  /** Folders (relative to the repository) that every layer may import, e.g. "proto". */
  readonly shared: readonly string[];
  readonly layers: readonly Layer[];
  /** npm package name -> the layers that may import it. */
  readonly packages: Readonly<Record<string, readonly string[]>>;
}

export interface SourceFile {
  /** Repository-relative path with '/' separators, e.g. "server/api/kv.ts". */
  readonly path: string;
  readonly text: string;
}

export interface Violation {
  readonly file: string;
  /** 1-based line of the import; absent when the violation is about the file itself. */
  readonly line?: number;
  readonly specifier?: string;
  readonly reason: string;
}

/** `server/x/y.ts:3 imports ../z/w.js (layer x may not import z)`. */
export function formatViolation(v: Violation): string {
  if (v.specifier === undefined) return `${v.file} (${v.reason})`;
  return `${v.file}${v.line === undefined ? '' : `:${v.line}`} imports ${v.specifier} (${v.reason})`;
}

export class RulesError extends Error {
  override readonly name = 'RulesError';
}

// ---------- rules ----------

function stringList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) throw new RulesError(`${what} must be a list of strings`);
  return v;
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RulesError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function parseLayer(v: unknown, i: number): Layer {
  const o = record(v, `layers[${i}]`);
  if (typeof o['name'] !== 'string' || o['name'] === '') throw new RulesError(`layers[${i}].name must be a non-empty string`);
  return { name: o['name'], paths: stringList(o['paths'], `layers[${i}].paths`), mayImport: stringList(o['mayImport'], `layers[${i}].mayImport`) };
}

function checkReferences(rules: LayerRules): void {
  const names = new Set<string>();
  for (const l of rules.layers) {
    if (names.has(l.name)) throw new RulesError(`layer ${l.name} is defined twice`);
    names.add(l.name);
  }
  const known = (n: string): boolean => n === '*' || names.has(n);
  for (const l of rules.layers) for (const n of l.mayImport) if (!known(n)) throw new RulesError(`layer ${l.name} may import unknown layer ${n}`);
  for (const [p, ls] of Object.entries(rules.packages)) for (const n of ls) if (!known(n)) throw new RulesError(`package ${p} is allowed to unknown layer ${n}`);
}

/** Validates the parsed JSON of hack/layers.json. */
export function parseRules(json: unknown): LayerRules {
  const o = record(json, 'the rules');
  if (typeof o['root'] !== 'string' || o['root'] === '') throw new RulesError('root must be a non-empty string');
  if (!Array.isArray(o['layers'])) throw new RulesError('layers must be a list');
  const pk = record(o['packages'], 'packages');
  const packages: Record<string, string[]> = {};
  for (const [name, v] of Object.entries(pk)) packages[name] = stringList(v, `packages.${name}`);
  const layers = (o['layers'] as unknown[]).map(parseLayer);
  const rules: LayerRules = { root: o['root'], shared: stringList(o['shared'], 'shared'), layers, packages };
  checkReferences(rules);
  return rules;
}

// ---------- classification ----------

/** `main.ts`, `main.js` (how ESM imports name it) -> `main`. */
function withoutExtension(path: string): string {
  return path.replace(/\.(d\.)?[cm]?[jt]s$/, '');
}

/** The layer owning a path relative to the root: the longest matching folder, or an exact file. */
export function layerOf(rules: LayerRules, pathInRoot: string): Layer | undefined {
  let best: Layer | undefined;
  let bestLength = -1;
  for (const layer of rules.layers) {
    for (const p of layer.paths) {
      const hit = p.endsWith('/') ? pathInRoot.startsWith(p) : withoutExtension(pathInRoot) === withoutExtension(p);
      if (hit && p.length > bestLength) {
        best = layer;
        bestLength = p.length;
      }
    }
  }
  return best;
}

function isBuiltin(spec: string): boolean {
  return spec.startsWith('node:') || builtinModules.includes(spec);
}

/** `@scope/name/sub` -> `@scope/name`; `name/sub` -> `name`. */
export function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec);
}

function mayImport(layer: Layer, target: string): boolean {
  return target === layer.name || layer.mayImport.includes('*') || layer.mayImport.includes(target);
}

// ---------- checking ----------

export interface ImportRef {
  readonly specifier: string;
  readonly line: number;
}

/** Every module specifier a file imports or re-exports (static, dynamic, type-only). */
export function importsOf(text: string): ImportRef[] {
  const info = ts.preProcessFile(text, true, true);
  const lineOf = (pos: number): number => text.slice(0, pos).split('\n').length;
  return info.importedFiles.map((f) => ({ specifier: f.fileName, line: lineOf(f.pos) }));
}

function judgeRelative(rules: LayerRules, file: string, layer: Layer, spec: string): string | undefined {
  const target = posix.normalize(posix.join(posix.dirname(file), spec));
  if (rules.shared.some((s) => target.startsWith(`${s}/`))) return undefined;
  if (!target.startsWith(`${rules.root}/`)) return `outside ${rules.root}/ and the shared folders ${rules.shared.join(', ')}`;
  const to = layerOf(rules, target.slice(rules.root.length + 1));
  if (to === undefined) return `${target} is in no layer of the rules`;
  return mayImport(layer, to.name) ? undefined : `layer ${layer.name} may not import ${to.name}`;
}

function judgeBare(rules: LayerRules, layer: Layer, spec: string): string | undefined {
  if (isBuiltin(spec)) return undefined;
  const name = packageName(spec);
  const allowed = rules.packages[name];
  if (allowed === undefined) return `package ${name} is not listed in the rules`;
  return allowed.includes(layer.name) || allowed.includes('*') ? undefined : `layer ${layer.name} may not import package ${name}`;
}

function judge(rules: LayerRules, file: string, layer: Layer, spec: string): string | undefined {
  if (spec.startsWith('./') || spec.startsWith('../')) return judgeRelative(rules, file, layer, spec);
  if (spec.startsWith('/') || spec.startsWith('#')) return `absolute and '#' imports are not allowed`;
  return judgeBare(rules, layer, spec);
}

/** The violations of one file under the root. */
export function checkFile(rules: LayerRules, file: SourceFile): Violation[] {
  const layer = layerOf(rules, file.path.slice(rules.root.length + 1));
  if (layer === undefined) return [{ file: file.path, reason: 'in no layer of the rules' }];
  const out: Violation[] = [];
  for (const ref of importsOf(file.text)) {
    const why = judge(rules, file.path, layer, ref.specifier);
    if (why !== undefined) out.push({ file: file.path, line: ref.line, specifier: ref.specifier, reason: why });
  }
  return out;
}

// ---------- command line ----------

function tsFilesUnder(repo: string, dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(repo, dir), { withFileTypes: true })) {
    const p = posix.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFilesUnder(repo, p));
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(p);
  }
  return out.sort();
}

/** The rule files checked, each with its own root: the server's and the operator's. */
export const RULE_FILES: readonly string[] = ['hack/layers.json', 'hack/operator-layers.json'];

function checkRules(repo: string, rulesFile: string): number {
  const rulesPath = join(repo, rulesFile);
  let rules: LayerRules;
  try {
    rules = parseRules(JSON.parse(readFileSync(rulesPath, 'utf8')) as unknown);
  } catch (err) {
    console.error(`check-layers: ${relative(repo, rulesPath).split(sep).join('/')}: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
  const files = tsFilesUnder(repo, rules.root).map((path) => ({ path, text: readFileSync(join(repo, path), 'utf8') }));
  const imports = files.reduce((n, f) => n + importsOf(f.text).length, 0);
  const violations = files.flatMap((f) => checkFile(rules, f));
  for (const v of violations) console.error(formatViolation(v));
  const counts = `${files.length} files, ${imports} imports, ${rules.layers.length} layers (${rulesFile})`;
  if (violations.length === 0) {
    console.log(`check-layers: ok: ${counts}`);
    return 0;
  }
  console.error(`check-layers: ${violations.length} violation${violations.length === 1 ? '' : 's'} in ${counts}`);
  return 1;
}

function main(): number {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return RULE_FILES.map((f) => checkRules(repo, f)).reduce((worst, code) => Math.max(worst, code), 0);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) process.exitCode = main();
