// kube-apiserver and kubectl (built from Go modules by hack/install-kube.sh into a cache outside the
// repo) as real processes on loopback, backed by a Cairn cluster or by the reference etcd 3.6 (built
// by the same script; Kubernetes 1.34 is developed against 3.6). Used by test/kube, the bench
// (`npm run bench:kube`) and `npm run kube` (hack/kube.ts).
//
// Everything an apiserver needs is generated per start: a CA and a serving certificate (openssl),
// service-account signing keys (node:crypto), a static admin token (group system:masters, so RBAC
// allows everything) and a kubeconfig for kubectl.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { etcd36Bin, kubeDir } from './bins.js';
import { makeCa } from './certs.js';
import { startCluster, type Cluster } from './cluster.js';
import { freePort, tempDir, trackChild, type TargetKind } from './procs.js';
import { pollUntil } from './poll.js';

export interface KubeBins {
  /** The cache directory of this Kubernetes version. */
  readonly dir: string;
  readonly apiserver: string;
  readonly kubectl: string;
  /** etcd 3.6 (the reference backend of the kube tests). */
  readonly etcd: string;
  /** Compiled integration test binaries (<pkg with / as _>.test). */
  readonly itestDir: string;
}

let bins: KubeBins | undefined;

/**
 * The Kubernetes binaries: in CAIRN_KUBE_DIR if set, else in what hack/install-kube.sh prints (it
 * builds what is missing: minutes the first time, nothing once cached); see bins.ts kubeDir().
 */
export function kubeBins(): KubeBins {
  if (bins !== undefined) return bins;
  const dir = kubeDir();
  const b: KubeBins = {
    dir,
    apiserver: join(dir, 'bin', 'kube-apiserver'),
    kubectl: join(dir, 'bin', 'kubectl'),
    etcd: join(dir, 'bin', 'etcd'),
    itestDir: join(dir, 'itest'),
  };
  for (const f of [b.apiserver, b.kubectl]) if (!existsSync(f)) throw new Error(`kube harness: ${f} missing (run hack/install-kube.sh)`);
  bins = b;
  return b;
}

/** A backing store for kube-apiserver: a Cairn cluster, or etcd 3.6 from the kube cache. */
export async function startBackend(kind: TargetKind, size: number, extraArgs: string[] = []): Promise<Cluster> {
  return startCluster(kind, {
    size,
    name: kind === 'etcd' ? 'etcd' : 'cairn',
    extraArgs,
    ...(kind === 'etcd' ? { etcdBin: etcd36Bin() } : {}),
  });
}


export interface KubectlRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface HttpReply {
  readonly status: number;
  readonly body: string;
}

export interface KubeApiserverOpts {
  /** http://host:port of every backend member (--etcd-servers). */
  readonly etcdServers: readonly string[];
  /** Further kube-apiserver flags (e.g. --etcd-compaction-interval=10s, --event-ttl=5s). */
  readonly extraArgs?: readonly string[];
  /** Readiness timeout; default 90 s. */
  readonly readyTimeoutMs?: number;
}

const LOG_LINES_MAX = 50_000;

export class KubeApiserver {
  readonly url: string;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly token: string;
  readonly caFile: string;
  readonly logFile: string;
  private readonly lines: string[] = [];
  private readonly agent: Agent;
  private readonly child: ReturnType<typeof spawn>;
  private exitInfo: string | undefined;
  private readonly exitWaiters: Array<() => void> = [];

  constructor(args: { url: string; dir: string; kubeconfig: string; token: string; caFile: string; logFile: string; child: ReturnType<typeof spawn>; agent: Agent }) {
    this.url = args.url;
    this.dir = args.dir;
    this.kubeconfig = args.kubeconfig;
    this.token = args.token;
    this.caFile = args.caFile;
    this.logFile = args.logFile;
    this.child = args.child;
    this.agent = args.agent;
    const log = createWriteStream(this.logFile);
    let partial = '';
    const onData = (chunk: string): void => {
      log.write(chunk);
      partial += chunk;
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        if (this.lines.length >= LOG_LINES_MAX) this.lines.shift();
        this.lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
      }
    };
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', onData);
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', onData);
    this.child.on('exit', (code, signal) => {
      this.exitInfo = `exit code ${String(code)} signal ${String(signal)}`;
      log.end();
      for (const w of this.exitWaiters.splice(0)) w();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** True while the process runs. */
  alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The apiserver's log lines so far (klog text, stderr). */
  logLines(): string[] {
    return [...this.lines];
  }

  logTail(n = 40): string {
    return this.lines.slice(-n).join('\n');
  }

  /** An HTTPS request with the admin token; body JSON-encoded when an object. */
  request(method: string, path: string, body?: unknown, opts: { timeoutMs?: number; contentType?: string } = {}): Promise<HttpReply> {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const u = new URL(path, this.url);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        u,
        {
          method,
          agent: this.agent,
          headers: {
            authorization: `Bearer ${this.token}`,
            accept: 'application/json',
            ...(data !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
          },
          timeout: opts.timeoutMs ?? 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${opts.timeoutMs ?? 30_000} ms`)));
      req.on('error', reject);
      if (data !== undefined) req.write(data);
      req.end();
    });
  }

  /** Runs kubectl against this apiserver. */
  kubectl(args: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<KubectlRun> {
    return runKubectl(this.kubeconfig, args, opts);
  }

  /** Resolves when the process has exited (or rejects after timeoutMs). */
  exited(timeoutMs: number): Promise<void> {
    if (this.exitInfo !== undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`kube-apiserver ${this.pid} still running after ${timeoutMs} ms`)), timeoutMs);
      this.exitWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** SIGTERM (the apiserver drains for a few seconds), SIGKILL after 20 s. */
  async stop(): Promise<void> {
    if (this.exitInfo !== undefined) return;
    this.child.kill('SIGTERM');
    try {
      await this.exited(20_000);
    } catch {
      this.child.kill('SIGKILL');
      await this.exited(10_000);
    }
    this.agent.destroy();
  }
}

/** kubectl with the given kubeconfig; never throws on a non-zero exit (the result says). */
export function runKubectl(kubeconfig: string, args: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<KubectlRun> {
  const { kubectl } = kubeBins();
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (stdout += c));
    child.stderr.on('data', (c: string) => (stderr += c));
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kubectl ${args.join(' ')}: no exit in ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Starts kube-apiserver on a free loopback port against `etcdServers` and waits for /readyz. */
export async function startKubeApiserver(opts: KubeApiserverOpts): Promise<KubeApiserver> {
  const b = kubeBins();
  const dir = tempDir('cairn-kube-');
  const ca = makeCa('kube-ca', { dir });
  const serving = ca.issue('apiserver', { sans: ['IP:127.0.0.1', 'DNS:localhost'] });
  const sa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const saPub = join(dir, 'sa.pub');
  const saKey = join(dir, 'sa.key');
  writeFileSync(saPub, sa.publicKey);
  writeFileSync(saKey, sa.privateKey, { mode: 0o600 });
  const token = randomBytes(24).toString('hex');
  const tokens = join(dir, 'tokens.csv');
  writeFileSync(tokens, `${token},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  const port = await freePort();
  const url = `https://127.0.0.1:${String(port)}`;
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: cairn',
      '  cluster:',
      `    server: ${url}`,
      `    certificate-authority: ${ca.caFile}`,
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: cairn',
      '  context: {cluster: cairn, user: admin}',
      'current-context: cairn',
      '',
    ].join('\n'),
  );
  const certDir = join(dir, 'certs');
  mkdirSync(certDir);
  const args = [
    `--etcd-servers=${opts.etcdServers.join(',')}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    // Endpoints may not hold a loopback address; nothing here needs the kubernetes service's endpoints.
    '--endpoint-reconciler-type=none',
    `--secure-port=${String(port)}`,
    `--tls-cert-file=${serving.certFile}`,
    `--tls-private-key-file=${serving.keyFile}`,
    `--cert-dir=${certDir}`,
    `--token-auth-file=${tokens}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${saPub}`,
    `--service-account-signing-key-file=${saKey}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--profiling=false',
    '--v=1',
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(b.apiserver, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const agent = new Agent({ keepAlive: true, maxSockets: 64, ca: readFileSync(ca.caFile) });
  const api = new KubeApiserver({ url, dir, kubeconfig, token, caFile: ca.caFile, logFile: join(dir, 'kube-apiserver.log'), child, agent });
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  try {
    await pollUntil(
      'kube-apiserver /readyz',
      async () => {
        if (!api.alive()) throw new Error(`kube-apiserver exited during start:\n${api.logTail(60)}`);
        try {
          const r = await api.request('GET', '/readyz', undefined, { timeoutMs: 5_000 });
          return r.status === 200;
        } catch {
          return false;
        }
      },
      readyTimeoutMs,
      250,
    );
  } catch (e) {
    await api.stop();
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- kube-apiserver log tail ---\n${api.logTail(60)}`);
  }
  return api;
}
