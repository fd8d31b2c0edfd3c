// A running localkube (hack/localkube.ts: a one-node Kubernetes of real processes) for tests.
//
// localkube() starts it if it is not up in the state dir (CAIRN_LOCALKUBE_DIR, default
// <repo>/.localkube) and returns the kubeconfig, kubectl and helpers; test files after the first reuse
// the running one (the stack runs as daemons, outside the test process). Bringing it down at the end
// of a run is the runner's job: `node dist/hack/localkube.js down --dir "$CAIRN_LOCALKUBE_DIR"`
// (localkubeDown() here does the same).
//
// localkubeMissing() says what this machine lacks (root, cgroups, a Go toolchain to build the
// binaries the first time); tests hand it to skipOrFail() (test/harness/prereq.ts): skipped with the
// reason outside CI, failed under CI=true.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kubeBins, runKubectl, type KubectlRun } from './kube.js';
import { pollUntil } from './poll.js';
import { MissingPrerequisite } from './prereq.js';
import { REPO_ROOT } from './procs.js';

export function localkubeDir(): string {
  const env = process.env['CAIRN_LOCALKUBE_DIR'];
  return env !== undefined && env !== '' ? env : join(REPO_ROOT, '.localkube');
}

const LOCALKUBE_JS = join(REPO_ROOT, 'dist', 'hack', 'localkube.js');

/** What this machine lacks to run localkube, or undefined when it can (tests pass it to skipOrFail). */
export function localkubeMissing(): MissingPrerequisite | undefined {
  if (process.platform !== 'linux') return new MissingPrerequisite('Linux (localkube runs Kubernetes as processes)', 'run the tests on Linux');
  if (process.getuid?.() !== 0) return new MissingPrerequisite('root (localkube makes network interfaces, mounts and cgroups)', 'run the tests as root');
  if (!existsSync('/sys/fs/cgroup')) return new MissingPrerequisite('cgroups at /sys/fs/cgroup', 'mount the cgroup hierarchies (cgroup v1 or v2)');
  if (!existsSync(LOCALKUBE_JS)) return new MissingPrerequisite(LOCALKUBE_JS, 'npx tsc -p tsconfig.json');
  const cached = join(process.env['CAIRN_CACHE'] ?? join(process.env['HOME'] ?? '/root', '.cache', 'cairn'), 'localkube-v1.34.4', 'bin', 'kubelet');
  const hasGo = existsSync('/usr/local/go/bin/go') || spawnOk('go', ['version']);
  if (!existsSync(cached) && !hasGo) return new MissingPrerequisite('a Go toolchain >= 1.24 (localkube builds Kubernetes from Go modules the first time)', 'install Go, then bash hack/install-localkube.sh');
  return undefined;
}

function spawnOk(cmd: string, args: readonly string[]): boolean {
  try {
    execFileSync(cmd, [...args], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface LocalKube {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly kubectlPath: string;
  /** Milliseconds `up` took in this process (0 when it was already up). */
  readonly upMs: number;
  kubectl(args: readonly string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<KubectlRun>;
  /** kubectl that must exit 0; returns stdout. */
  kubectlOk(args: readonly string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<string>;
  /** kubectl apply -f - of a YAML text (server-side when asked). */
  apply(yaml: string, opts?: { namespace?: string; serverSide?: boolean }): Promise<void>;
  /** Polls a jsonpath of an object until pred holds. */
  waitJsonpath(args: { namespace?: string; resource: string; jsonpath: string; pred: (v: string) => boolean; what: string; timeoutMs?: number }): Promise<string>;
  /** Waits until `count` pods match the selector and all are Ready. */
  waitPodsReady(namespace: string, selector: string, count: number, timeoutMs?: number): Promise<void>;
  /** kubectl exec into a pod (container default); never throws on a non-zero exit. */
  exec(namespace: string, pod: string, command: readonly string[], timeoutMs?: number): Promise<KubectlRun>;
  /** Runs a one-off pod with `command` to completion (restartPolicy Never) and returns its log. */
  runPod(namespace: string, name: string, image: string, command: readonly string[], timeoutMs?: number): Promise<{ phase: string; log: string }>;
  /** Creates a namespace and waits for its default ServiceAccount (pods are refused before). */
  createNamespace(name: string): Promise<void>;
}

export function runLocalkubeCli(args: readonly string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOCALKUBE_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const t = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`localkube ${args.join(' ')}: no exit in ${timeoutMs} ms\n${stderr.slice(-4000)}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

let current: LocalKube | undefined;

/** A running localkube: reused when up in localkubeDir(), started otherwise (minutes the very first
 * time on a machine: Go builds; ~15-30 s after). */
export async function localkube(opts: { timeoutMs?: number } = {}): Promise<LocalKube> {
  const dir = localkubeDir();
  if (current !== undefined && current.dir === dir && isUpNow(dir)) return current;
  const t0 = Date.now();
  const r = await runLocalkubeCli(['up', '--dir', dir], opts.timeoutMs ?? 1_800_000);
  if (r.code !== 0) throw new Error(`localkube up failed (exit ${String(r.code)}); logs in ${join(dir, 'logs')}\n${r.stderr.slice(-6000)}`);
  const kubeconfig = r.stdout.trim().split('\n').pop() ?? '';
  const alreadyUp = r.stderr.includes('"localkube":"already up"');
  current = makeHandle(dir, kubeconfig, alreadyUp ? 0 : Date.now() - t0);
  return current;
}

function isUpNow(dir: string): boolean {
  try {
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { ready?: boolean; procs?: Record<string, { pid: number }> };
    return s.ready === true && Object.values(s.procs ?? {}).every((p) => existsSync(`/proc/${String(p.pid)}`));
  } catch {
    return false;
  }
}

/** Takes the localkube in localkubeDir() down; resolves with what down reported left behind. */
export async function localkubeDown(): Promise<{ code: number; stdout: string; stderr: string }> {
  current = undefined;
  return runLocalkubeCli(['down', '--dir', localkubeDir()], 300_000);
}

/**
 * Builds the repo's Dockerfile as `tag` (hack/image.sh: buildah, layers cached) and imports it into
 * the running localkube's containerd; `broken` makes an image whose entrypoint exits 1 at once (for
 * failed-upgrade tests). Resolves with the build's seconds.
 */
export async function localkubeImage(tag: string, opts: { broken?: boolean; timeoutMs?: number } = {}): Promise<number> {
  const t0 = Date.now();
  const args = [join(REPO_ROOT, 'hack', 'image.sh'), '--tag', tag, '--dir', localkubeDir(), ...(opts.broken === true ? ['--broken'] : [])];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const t = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`hack/image.sh --tag ${tag}: no exit in ${String(opts.timeoutMs ?? 600_000)} ms`));
    }, opts.timeoutMs ?? 600_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`hack/image.sh --tag ${tag} failed (exit ${String(code)}):\n${stderr.slice(-4000)}`));
      else if (!stderr.includes('image: imported')) reject(new Error(`hack/image.sh --tag ${tag}: built but not imported (is localkube up in ${localkubeDir()}?)`));
      else resolve();
    });
  });
  return (Date.now() - t0) / 1000;
}

function makeHandle(dir: string, kubeconfig: string, upMs: number): LocalKube {
  const kubectl = (args: readonly string[], o: { stdin?: string; timeoutMs?: number } = {}): Promise<KubectlRun> => runKubectl(kubeconfig, args, o);
  const kubectlOk = async (args: readonly string[], o: { stdin?: string; timeoutMs?: number } = {}): Promise<string> => {
    const r = await kubectl(args, o);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${String(r.code)}\n${r.stderr}`);
    return r.stdout;
  };
  const nsArgs = (ns: string | undefined): string[] => (ns === undefined ? [] : ['-n', ns]);
  const h: LocalKube = {
    dir,
    kubeconfig,
    kubectlPath: kubeBins().kubectl,
    upMs,
    kubectl,
    kubectlOk,
    apply: async (yaml, o = {}) => {
      await kubectlOk(['apply', ...nsArgs(o.namespace), ...(o.serverSide === true ? ['--server-side'] : []), '-f', '-'], { stdin: yaml });
    },
    waitJsonpath: async (a) => {
      let last = '';
      await pollUntil(
        a.what,
        async () => {
          const r = await kubectl(['get', ...nsArgs(a.namespace), a.resource, '-o', `jsonpath=${a.jsonpath}`], { timeoutMs: 15_000 });
          last = r.stdout;
          return r.code === 0 && a.pred(r.stdout);
        },
        a.timeoutMs ?? 120_000,
        250,
      );
      return last;
    },
    waitPodsReady: async (namespace, selector, count, timeoutMs = 180_000) => {
      await pollUntil(
        `${String(count)} Ready pods ${selector} in ${namespace}`,
        async () => {
          const r = await kubectl(
            ['get', 'pods', '-n', namespace, '-l', selector, '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'],
            { timeoutMs: 15_000 },
          );
          const st = r.stdout.split('\n').filter((l) => l !== '');
          return r.code === 0 && st.length === count && st.every((s) => s === 'True');
        },
        timeoutMs,
        250,
      );
    },
    exec: (namespace, pod, command, timeoutMs = 60_000) => kubectl(['exec', '-n', namespace, pod, '--', ...command], { timeoutMs }),
    runPod: async (namespace, name, image, command, timeoutMs = 120_000) => {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace },
        spec: { restartPolicy: 'Never', containers: [{ name: 'main', image, imagePullPolicy: 'IfNotPresent', command }] },
      };
      await kubectlOk(['apply', '-f', '-'], { stdin: JSON.stringify(pod) });
      const phase = await h.waitJsonpath({
        namespace,
        resource: `pod/${name}`,
        jsonpath: '{.status.phase}',
        pred: (v) => v === 'Succeeded' || v === 'Failed',
        what: `pod ${namespace}/${name} to finish`,
        timeoutMs,
      });
      const log = await kubectl(['logs', '-n', namespace, name]);
      return { phase, log: log.stdout + log.stderr };
    },
    createNamespace: async (name) => {
      await kubectlOk(['create', 'namespace', name]);
      await h.waitJsonpath({ resource: 'serviceaccount/default', namespace: name, jsonpath: '{.metadata.name}', pred: (v) => v === 'default', what: `ServiceAccount ${name}/default`, timeoutMs: 60_000 });
    },
  };
  return h;
}
