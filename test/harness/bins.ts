// The one place that finds the reference binaries Cairn is compared against, for the tests, the bench
// and the installers (hack/install-test-peers.sh runs this file as a command):
//   etcd, etcdctl   3.4.x, Debian's etcd-server / etcd-client: $ETCD_BIN / $ETCDCTL_BIN if set, else
//                   the first on PATH. Another version is refused: the tests encode 3.4's answers.
//   etcd-3.6        the kube tests' reference: bin/etcd of the Kubernetes cache that
//                   hack/install-kube.sh builds ($CAIRN_KUBE_DIR if set, else what the script prints).
//   etcdutl-3.6,    the snapshot tests' oracles, in the same bin dir: hack/install-etcd36-tools.sh
//   etcdctl-3.6     builds them when missing (under flock /tmp/cairn-go.lock) and prints the dir.
//   helm            Helm 4 for the chart tests (helmBin()): $CAIRN_HELM, else what
//                   hack/install-helm.sh prints (it builds Helm from Go modules when missing).
// Each binary is resolved once per process and reported on stderr with its path and version. A
// missing or wrong binary is a MissingPrerequisite naming the fix.
//
// As a command: node dist/test/harness/bins.js <name>... prints "<name> <version> <path> (<source>)"
// per name and exits 1 with the reasons when one is missing. It never builds: etcd-3.6 is looked up
// in $CAIRN_KUBE_DIR or install-kube.sh's default cache directory.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TestContext } from 'node:test';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from './prereq.js';

export type RefBinName = 'etcd' | 'etcdctl' | 'etcd-3.6' | 'etcdutl-3.6' | 'etcdctl-3.6';
export const REF_BIN_NAMES: readonly RefBinName[] = ['etcd', 'etcdctl', 'etcd-3.6', 'etcdutl-3.6', 'etcdctl-3.6'];

export interface RefBin {
  readonly name: RefBinName;
  readonly path: string;
  /** e.g. "3.4.23" */
  readonly version: string;
  /** How it was found: "ETCD_BIN", "PATH", "kube cache ...". */
  readonly source: string;
}

const DEBIAN_INSTALL = 'bash hack/install-test-peers.sh (as root: apt-get install etcd-server etcd-client)';
const KUBE_INSTALL = 'bash hack/install-kube.sh (needs Go; builds into ~/.cache/cairn, ~10 min the first time)';
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The first executable `name` in the directories of PATH. */
export function onPath(name: string, path = process.env['PATH'] ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const f = join(dir, name);
    try {
      accessSync(f, fsConstants.X_OK);
      return f;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The x.y.z after `prefix` in the output of `bin args` (undefined when it cannot run or says no such line). */
function versionOf(bin: string, args: readonly string[], prefix: RegExp): string | undefined {
  const r = spawnSync(bin, [...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 });
  if (r.error !== undefined) return undefined;
  const m = new RegExp(`${prefix.source}\\s*(\\d+\\.\\d+\\.\\d+)`, 'm').exec(`${r.stdout}\n${r.stderr}`);
  return m?.[1];
}

interface Spec {
  readonly env: string;
  readonly file: string;
  readonly versionArgs: readonly string[];
  readonly versionPrefix: RegExp;
  readonly want: RegExp;
  readonly wantText: string;
  readonly install: string;
}

const DEBIAN: Record<'etcd' | 'etcdctl', Spec> = {
  etcd: { env: 'ETCD_BIN', file: 'etcd', versionArgs: ['--version'], versionPrefix: /^etcd Version:/, want: /^3\.4\./, wantText: '3.4.x', install: DEBIAN_INSTALL },
  etcdctl: { env: 'ETCDCTL_BIN', file: 'etcdctl', versionArgs: ['version'], versionPrefix: /^etcdctl version:/, want: /^3\.4\./, wantText: '3.4.x', install: DEBIAN_INSTALL },
};

function checked(name: RefBinName, spec: Spec, path: string, source: string): RefBin {
  const version = versionOf(path, spec.versionArgs, spec.versionPrefix);
  if (version === undefined) throw new MissingPrerequisite(`${name}: ${path} (${source}) does not run or print its version`, spec.install);
  if (!spec.want.test(version)) {
    throw new MissingPrerequisite(`${name}: ${path} (${source}) is version ${version}, the tests need ${spec.wantText}; point ${spec.env} at one`, spec.install);
  }
  return { name, path, version, source };
}

function resolveDebian(name: 'etcd' | 'etcdctl'): RefBin {
  const spec = DEBIAN[name];
  const given = process.env[spec.env];
  if (given !== undefined && given !== '') {
    if (!existsSync(given)) throw new MissingPrerequisite(`${name}: ${spec.env}=${given} does not exist`, spec.install);
    return checked(name, spec, given, spec.env);
  }
  const found = onPath(spec.file);
  if (found === undefined) throw new MissingPrerequisite(`${name} ${spec.wantText}: none on PATH and ${spec.env} unset`, spec.install);
  return checked(name, spec, found, 'PATH');
}

/** The Kubernetes cache directory: CAIRN_KUBE_DIR, else what hack/install-kube.sh prints (it builds what is missing). */
export function kubeDir(): string {
  const env = process.env['CAIRN_KUBE_DIR'];
  if (env !== undefined && env !== '') return env;
  const out = execFileSync('bash', [join(REPO_ROOT, 'hack', 'install-kube.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 << 20,
  });
  return out.trim().split('\n').pop() ?? '';
}

/**
 * Where hack/install-kube.sh puts its cache with its default settings, without building anything
 * (the command below uses it; tests use kubeDir(), which builds what is missing).
 */
function kubeDirNoBuild(): string {
  const env = process.env['CAIRN_KUBE_DIR'];
  if (env !== undefined && env !== '') return env;
  const cache = process.env['CAIRN_CACHE'] ?? join(homedir(), '.cache', 'cairn');
  return join(cache, `kube-${process.env['CAIRN_KUBE_VERSION'] ?? 'v1.34.4'}`);
}

function resolveEtcd36(dir = kubeDir()): RefBin {
  const spec: Spec = { env: 'CAIRN_KUBE_DIR', file: 'etcd', versionArgs: ['--version'], versionPrefix: /^etcd Version:/, want: /^3\.6\./, wantText: '3.6.x', install: KUBE_INSTALL };
  const path = join(dir, 'bin', 'etcd');
  if (!existsSync(path)) throw new MissingPrerequisite(`etcd-3.6: ${path} missing`, KUBE_INSTALL);
  return checked('etcd-3.6', spec, path, `kube cache ${dir}`);
}

const TOOLS36_INSTALL = 'bash hack/install-etcd36-tools.sh (needs Go; builds etcdutl and etcdctl 3.6.8 into the kube cache)';

/** The bin dir of etcdutl/etcdctl 3.6: what hack/install-etcd36-tools.sh prints (it builds what is missing). */
function tools36Dir(build: boolean): string {
  if (!build) return join(kubeDirNoBuild(), 'bin');
  try {
    const out = execFileSync('bash', [join(REPO_ROOT, 'hack', 'install-etcd36-tools.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 });
    return out.trim().split('\n').pop() ?? '';
  } catch (e) {
    throw new MissingPrerequisite(`etcdutl/etcdctl 3.6: hack/install-etcd36-tools.sh failed (${e instanceof Error ? e.message : String(e)})`, TOOLS36_INSTALL, { cause: e });
  }
}

function resolveTool36(name: 'etcdutl-3.6' | 'etcdctl-3.6', dir: string): RefBin {
  const file = name === 'etcdutl-3.6' ? 'etcdutl' : 'etcdctl';
  const spec: Spec = { env: 'CAIRN_CACHE', file, versionArgs: ['version'], versionPrefix: new RegExp(`^${file} version:`), want: /^3\.6\./, wantText: '3.6.x', install: TOOLS36_INSTALL };
  const path = join(dir, file);
  if (!existsSync(path)) throw new MissingPrerequisite(`${name}: ${path} missing`, TOOLS36_INSTALL);
  return checked(name, spec, path, `cache ${dir}`);
}

function resolveAny(name: RefBinName, build: boolean): RefBin {
  if (name === 'etcd-3.6') return resolveEtcd36(build ? kubeDir() : kubeDirNoBuild());
  if (name === 'etcdutl-3.6' || name === 'etcdctl-3.6') return resolveTool36(name, tools36Dir(build));
  return resolveDebian(name);
}

const resolved = new Map<RefBinName, RefBin>();

/** Resolves a reference binary (once per process; reported on stderr); throws MissingPrerequisite. */
export function refBin(name: RefBinName): RefBin {
  const had = resolved.get(name);
  if (had !== undefined) return had;
  const b = resolveAny(name, true);
  resolved.set(name, b);
  process.stderr.write(`reference ${describeBin(b)}\n`);
  return b;
}

export function describeBin(b: RefBin): string {
  let real = b.path;
  try {
    real = realpathSync(b.path);
  } catch {
    // keep the path as given
  }
  return `${b.name} ${b.version} ${b.path}${real !== b.path ? ` -> ${real}` : ''} (${b.source})`;
}

const identified = new Map<string, RefBin>();

/**
 * An etcd binary a caller chose itself (any version): its version, reported on stderr once per
 * path; a MissingPrerequisite when it does not run.
 */
export function identifyEtcd(path: string, source: string): RefBin {
  const had = identified.get(path) ?? [...resolved.values()].find((b) => b.path === path);
  if (had !== undefined) return had;
  const version = versionOf(path, ['--version'], /^etcd Version:/);
  if (version === undefined) throw new MissingPrerequisite(`etcd: ${path} (${source}) does not run or print its version`, DEBIAN_INSTALL);
  const b: RefBin = { name: 'etcd', path, version, source };
  identified.set(path, b);
  process.stderr.write(`reference ${describeBin(b)}\n`);
  return b;
}

/** The reference etcd 3.4 (Debian's). */
export function etcdBin(): string {
  return refBin('etcd').path;
}

/** etcdctl 3.4 (Debian's). */
export function etcdctlBin(): string {
  return refBin('etcdctl').path;
}

/** etcdutl 3.6 (built by hack/install-etcd36-tools.sh when missing). */
export function etcdutl36Bin(): string {
  return refBin('etcdutl-3.6').path;
}

/** etcdctl 3.6 (built by hack/install-etcd36-tools.sh when missing). */
export function etcdctl36Bin(): string {
  return refBin('etcdctl-3.6').path;
}

/** etcd 3.6 from the Kubernetes cache (the kube tests' reference). */
export function etcd36Bin(): string {
  return refBin('etcd-3.6').path;
}

const HELM_INSTALL = 'bash hack/install-helm.sh (needs Go; builds Helm 4 into ~/.cache/cairn, a few minutes the first time)';
let helmResolved: string | undefined;

/**
 * Helm 4 for the chart tests: $CAIRN_HELM if set, else what hack/install-helm.sh prints (it builds
 * Helm when missing). Resolved once per process and reported on stderr; a MissingPrerequisite when
 * it cannot be had or is not Helm 4.
 */
export function helmBin(): string {
  if (helmResolved !== undefined) return helmResolved;
  const given = process.env['CAIRN_HELM'];
  let path = given ?? '';
  if (given === undefined || given === '') {
    try {
      path = execFileSync('bash', [join(REPO_ROOT, 'hack', 'install-helm.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop() ?? '';
    } catch (e) {
      throw new MissingPrerequisite(`helm: hack/install-helm.sh failed (${e instanceof Error ? e.message : String(e)})`, HELM_INSTALL, { cause: e });
    }
  }
  const version = versionOf(path, ['version', '--short'], /^v?/);
  if (version === undefined || !version.startsWith('4.')) throw new MissingPrerequisite(`helm: ${path} is not Helm 4 (version ${String(version)})`, HELM_INSTALL);
  process.stderr.write(`reference helm ${version} ${path} (${given !== undefined && given !== '' ? 'CAIRN_HELM' : 'install-helm.sh cache'})\n`);
  helmResolved = path;
  return path;
}

function main(args: readonly string[]): number {
  const names = args.length > 0 ? args : ['etcd', 'etcdctl'];
  let failed = 0;
  for (const n of names) {
    if (!(REF_BIN_NAMES as readonly string[]).includes(n)) {
      process.stderr.write(`bins: unknown binary ${JSON.stringify(n)} (known: ${REF_BIN_NAMES.join(', ')})\n`);
      failed += 1;
      continue;
    }
    try {
      const b = resolveAny(n as RefBinName, false);
      process.stdout.write(`${describeBin(b)}\n`);
    } catch (e) {
      process.stderr.write(`bins: ${e instanceof Error ? e.message : String(e)}\n`);
      failed += 1;
    }
  }
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));

/** A reference binary's path for a test, or undefined once skipOrFail has skipped it (fails under CI=true). */
export function refBinOrSkip(t: TestContext, name: RefBinName): string | undefined {
  let path = '';
  const missing = missingPrerequisite(() => (path = refBin(name).path));
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return undefined;
  }
  return path;
}
