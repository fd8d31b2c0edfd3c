// Starts and stops server processes for tests: the reference etcd and Cairn.
// Every process gets its own free ports and (by default) a fresh temp data dir,
// so several can run at once. Children are killed when the test process exits.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdBin, etcdctlBin, identifyEtcd, onPath } from './bins.js';

export interface ServerOpts {
  /** Data directory; default a fresh temp dir. */
  dataDir?: string;
  walDir?: string;
  /** Appended to the command line as given. */
  extraArgs?: string[];
  /** Merged over process.env. */
  env?: Record<string, string>;
  /** Readiness timeout; default 20 s. */
  readyTimeoutMs?: number;
  /** --name; default a unique one. Pass the old name (and dataDir) to restart a server. */
  name?: string;
  /** Run the server through this command, e.g. ['ip', 'netns', 'exec', 'ns1'] (it must exec the server so the pid stays the server's). */
  commandPrefix?: string[];
  /** Client TLS: the client URL becomes https:// and --cert-file/--key-file/--trusted-ca-file/--client-cert-auth are passed. */
  tls?: TlsServerFiles;
  /** Peer TLS of the single member: its peer URL becomes https:// and the --peer-* equivalents are passed. */
  peerTls?: TlsServerFiles;
  /** The server's working directory (default: the test's); unix:// URLs name socket files relative to it. */
  cwd?: string;
  /** startEtcd only: the etcd binary (default: the reference etcd 3.4 from bins.ts); the kube tests pass etcd 3.6 (bins.ts etcd36Bin). */
  etcdBin?: string;
}

/** A server's certificate files (etcd's --cert-file etc. or their --peer-* equivalents). */
export interface TlsServerFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** --trusted-ca-file (etcd 3.4 then requires client certificates, as with clientCertAuth). */
  readonly caFile?: string;
  readonly clientCertAuth?: boolean;
}

/** The flags for one side's TLS files ('' = client side, 'peer-' = peer side). */
export function tlsFlags(prefix: '' | 'peer-', f: TlsServerFiles | undefined): string[] {
  if (f === undefined) return [];
  return [
    `--${prefix}cert-file`, f.certFile,
    `--${prefix}key-file`, f.keyFile,
    ...(f.caFile !== undefined ? [`--${prefix}trusted-ca-file`, f.caFile] : []),
    ...(f.clientCertAuth === true ? [`--${prefix}client-cert-auth`] : []),
  ];
}

/** etcdctl's TLS flags: --cacert, and the client certificate (--cert/--key) when given. */
export function etcdctlTlsArgs(f: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string }): string[] {
  return [
    ...(f.caFile !== undefined ? ['--cacert', f.caFile] : []),
    ...(f.certFile !== undefined ? ['--cert', f.certFile] : []),
    ...(f.keyFile !== undefined ? ['--key', f.keyFile] : []),
  ];
}

export interface ServerProc {
  readonly name: string;
  /** "127.0.0.1:port", what gRPC clients and etcdctl --endpoints take. */
  readonly endpoint: string;
  /** "http://127.0.0.1:port" ("https://..." with ServerOpts.tls) */
  readonly clientUrl: string;
  readonly pid: number;
  readonly dataDir: string;
  /** Everything the process wrote on stderr so far, one entry per line. */
  stderrLines(): string[];
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Resolves when the process exits by itself (e.g. a fail-stop); rejects after timeoutMs. */
  exited(timeoutMs: number): Promise<void>;
  /** SIGKILL, then wait for exit. */
  kill9(): Promise<void>;
  /** The exit status once the process has exited (null if a signal ended it); undefined while it runs. */
  exitCode(): number | null | undefined;
  /** VmHWM of the process in KiB (last value read while it was alive). */
  peakRssKb(): number;
}

export const READY_MSG = 'ready to serve client requests';
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 10_000;
const STDERR_LINES_MAX = 20_000;

const here = dirname(fileURLToPath(import.meta.url));
/** Repo root: this file runs from dist/test/harness/. */
export const REPO_ROOT = resolve(here, '..', '..', '..');
export const CAIRN_MAIN = join(REPO_ROOT, 'dist', 'server', 'main.js');
/**
 * @deprecated The path etcdBin() (bins.ts) would take, without its version check: for code that
 * needs a string before any test runs. Prefer etcdBin(), or leave ServerOpts.etcdBin unset.
 */
export const ETCD_BIN = process.env['ETCD_BIN'] ?? onPath('etcd') ?? 'etcd';

/** A TCP port that was free a moment ago (bound to 127.0.0.1:0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: unexpected address'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Ports this process already gave to a server: never handed out twice. */
const handedOut = new Set<number>();

/** Distinct free ports, none handed out before by this process. */
async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > 1000) throw new Error('freePorts: no unused port found');
    const p = await freePort();
    if (handedOut.has(p)) continue;
    handedOut.add(p);
    ports.push(p);
  }
  return ports;
}

const START_ATTEMPTS = 3;

/** Retries a start whose port was taken between freePort() and the server's bind. */
async function withPortRetry(start: () => Promise<ServerProc>): Promise<ServerProc> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (attempt >= START_ATTEMPTS || !/address already in use|EADDRINUSE/i.test(msg)) throw e;
    }
  }
}

/** Temp dirs made by tempDir(): removed when the test process exits (etcd preallocates 64 MB WAL files). */
const tempDirs = new Set<string>();

/**
 * A fresh directory under the OS temp dir, removed at process exit unless CAIRN_KEEP_DATA=1
 * (to inspect data dirs after a failure).
 */
export function tempDir(prefix: string): string {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// ---- child bookkeeping: kill everything we started when the test process exits ----

const live = new Set<ChildProcess>();
let exitHooked = false;

function removeTempDirs(): void {
  if (process.env['CAIRN_KEEP_DATA'] === '1') return;
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort
    }
  }
  tempDirs.clear();
}

/** Kills `child` (SIGKILL) when the test process exits, as the servers started here are. */
export function trackChild(child: ChildProcess): void {
  hookExit();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    removeTempDirs();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
      process.exit(sig === 'SIGINT' ? 130 : 143); // runs the 'exit' hook: temp dirs go too
    });
  }
}

function readOneVmHwmKb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Direct children of a process (from /proc; [] when it is gone). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter((s) => s.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Peak RSS of a process and all its descendants (a server with helper processes counts them all). */
function readVmHwmKb(pid: number): number | undefined {
  const own = readOneVmHwmKb(pid);
  if (own === undefined) return undefined;
  return childPids(pid).reduce((sum, c) => sum + (readVmHwmKb(c) ?? 0), own);
}

interface SpawnSpec {
  name: string;
  cmd: string;
  args: string[];
  port: number;
  /** The client URL uses TLS. */
  secure: boolean;
  dataDir: string;
  env: Record<string, string> | undefined;
  commandPrefix: string[] | undefined;
  readyTimeoutMs: number;
  readyMsgs: ReadonlySet<string>;
  cwd?: string | undefined;
}

/** The `msg` of a JSON log line, if it is one. */
function logMsg(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const msg = (parsed as { msg?: unknown }).msg;
    return typeof msg === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * etcd 3.4 with --logger=zap never logs READY_MSG (it only goes to the capnslog logger); the
 * "serving client traffic ..." lines are logged right after its ReadyNotify, so they count too.
 */
const ETCD_READY_MSGS: ReadonlySet<string> = new Set([
  READY_MSG,
  'serving client traffic insecurely; this is strongly discouraged!',
  'serving client traffic securely',
]);
const CAIRN_READY_MSGS: ReadonlySet<string> = new Set([READY_MSG]);

async function spawnServer(spec: SpawnSpec): Promise<ServerProc> {
  hookExit();
  const prefix = spec.commandPrefix ?? [];
  const child = spawn(prefix[0] ?? spec.cmd, prefix.length > 0 ? [...prefix.slice(1), spec.cmd, ...spec.args] : spec.args, {
    env: { ...process.env, ...(spec.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
  });
  live.add(child);
  const lines: string[] = [];
  let partial = '';
  let peakKb = 0;
  let exited = false;
  let exitInfo = '';
  let exitStatus: number | null | undefined;
  const exitWaiters: Array<() => void> = [];
  const readyWaiters: Array<() => void> = [];
  let ready = false;

  const samplePeak = (): void => {
    if (exited || child.pid === undefined) return;
    const v = readVmHwmKb(child.pid);
    if (v !== undefined && v > peakKb) peakKb = v;
  };
  const sampler = setInterval(samplePeak, 500);
  sampler.unref();

  const onLine = (line: string): void => {
    if (lines.length >= STDERR_LINES_MAX) lines.shift();
    lines.push(line);
    if (!ready && spec.readyMsgs.has(logMsg(line) ?? '')) {
      ready = true;
      for (const w of readyWaiters.splice(0)) w();
    }
  };
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    partial += chunk;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      onLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      nl = partial.indexOf('\n');
    }
  });
  // stdout is drained (and kept with stderr) so a chatty child never blocks.
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    for (const l of chunk.split('\n')) if (l !== '') onLine(`[stdout] ${l}`);
  });
  child.on('exit', (code, signal) => {
    exited = true;
    exitInfo = `exit code ${String(code)}, signal ${String(signal)}`;
    exitStatus = code;
    if (partial !== '') {
      onLine(partial);
      partial = '';
    }
    live.delete(child);
    clearInterval(sampler);
    for (const w of exitWaiters.splice(0)) w();
    for (const w of readyWaiters.splice(0)) w();
  });

  const spawnError = new Promise<Error>((res) => child.once('error', res));
  const waitExit = (): Promise<void> =>
    exited ? Promise.resolve() : new Promise<void>((res) => exitWaiters.push(res));

  const tail = (): string => lines.slice(-30).join('\n');
  const readyOrFail = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => {
      rej(
        new Error(
          `${spec.name}: not ready after ${spec.readyTimeoutMs} ms (no JSON log line with msg in ${JSON.stringify([...spec.readyMsgs])})\n` +
            `command: ${spec.cmd} ${spec.args.join(' ')}\nlast stderr lines:\n${tail()}`,
        ),
      );
    }, spec.readyTimeoutMs);
    readyWaiters.push(() => {
      clearTimeout(timer);
      if (ready) res();
      else
        rej(
          new Error(
            `${spec.name}: exited before ready (${exitInfo})\ncommand: ${spec.cmd} ${spec.args.join(' ')}\n` +
              `last stderr lines:\n${tail()}`,
          ),
        );
    });
    void spawnError.then((e) => {
      clearTimeout(timer);
      rej(new Error(`${spec.name}: cannot spawn ${spec.cmd}: ${e.message}`));
    });
  });

  const pid = child.pid ?? -1;
  const proc: ServerProc = {
    name: spec.name,
    endpoint: `127.0.0.1:${spec.port}`,
    clientUrl: `${spec.secure ? 'https' : 'http'}://127.0.0.1:${spec.port}`,
    pid,
    dataDir: spec.dataDir,
    stderrLines: () => [...lines],
    exitCode: () => exitStatus,
    stop: async () => {
      if (exited) return;
      samplePeak();
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await waitExit();
      clearTimeout(timer);
    },
    exited: (timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${spec.name}: still running after ${timeoutMs} ms`)), timeoutMs);
        void waitExit().then(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
    kill9: async () => {
      if (exited) return;
      samplePeak();
      child.kill('SIGKILL');
      await waitExit();
    },
    peakRssKb: () => {
      samplePeak();
      return peakKb;
    },
  };
  try {
    await readyOrFail;
  } catch (e) {
    await proc.kill9();
    throw e;
  }
  samplePeak();
  return proc;
}

let etcdSeq = 0;

/** Starts the reference etcd on fresh client and peer ports. */
export function startEtcd(opts: ServerOpts = {}): Promise<ServerProc> {
  return withPortRetry(() => startEtcdOnce(opts));
}

async function startEtcdOnce(opts: ServerOpts): Promise<ServerProc> {
  const [clientPort, peerPort] = await freePorts(2);
  if (clientPort === undefined || peerPort === undefined) throw new Error('startEtcd: no ports');
  etcdSeq += 1;
  const name = opts.name ?? `etcd${process.pid}-${etcdSeq}`;
  const dataDir = opts.dataDir ?? tempDir('cairn-test-etcd-');
  const clientUrl = `${opts.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peerUrl = `${opts.peerTls !== undefined ? 'https' : 'http'}://127.0.0.1:${peerPort}`;
  const args = [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--logger=zap',
    '--log-outputs=stderr',
    ...tlsFlags('', opts.tls),
    ...tlsFlags('peer-', opts.peerTls),
  ];
  if (opts.walDir !== undefined) args.push('--wal-dir', opts.walDir);
  args.push(...(opts.extraArgs ?? []));
  return spawnServer({
    name,
    cmd: opts.etcdBin !== undefined ? identifyEtcd(opts.etcdBin, 'chosen by the test').path : etcdBin(),
    args,
    port: clientPort,
    secure: opts.tls !== undefined,
    dataDir,
    env: opts.env,
    commandPrefix: opts.commandPrefix,
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
    readyMsgs: ETCD_READY_MSGS,
    cwd: opts.cwd,
  });
}

export interface EtcdctlRun {
  readonly exit: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const ETCDCTL_RUN_TIMEOUT_MS = 30_000;

/**
 * Runs etcdctl (ETCDCTL_API=3) once with `args` and `stdin`; killed after `timeoutMs`, and when the
 * test process exits first. Output is returned raw: callers normalise it as their comparison needs.
 */
export function runEtcdctl(args: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<EtcdctlRun> {
  hookExit();
  return new Promise((res, rej) => {
    const child = spawn(etcdctlBin(), [...args], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? ETCDCTL_RUN_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      rej(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      live.delete(child);
      res({ exit: code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // EPIPE when etcdctl exits without reading stdin
    child.stdin.end(opts.stdin ?? '');
  });
}

let cairnSeq = 0;

/** Starts Cairn (dist/server/main.js) on a fresh client port. */
export function startCairn(opts: ServerOpts = {}): Promise<ServerProc> {
  return withPortRetry(() => startCairnOnce(opts));
}

async function startCairnOnce(opts: ServerOpts): Promise<ServerProc> {
  if (!existsSync(CAIRN_MAIN)) {
    throw new Error(`startCairn: ${CAIRN_MAIN} does not exist (build with npx tsc -p tsconfig.json)`);
  }
  const [clientPort, peerPort] = await freePorts(2);
  if (clientPort === undefined || peerPort === undefined) throw new Error('startCairn: no port');
  cairnSeq += 1;
  const name = opts.name ?? `cairn${process.pid}-${cairnSeq}`;
  const dataDir = opts.dataDir ?? tempDir('cairn-test-cairn-');
  const clientUrl = `${opts.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const args = [
    CAIRN_MAIN,
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
  ];
  // A single member on its own peer port (etcd's default 2380 would collide between tests); callers
  // that build clusters pass their own peer flags in extraArgs.
  if (!(opts.extraArgs ?? []).some((a) => a.startsWith('--listen-peer-urls'))) {
    const peerUrl = `${opts.peerTls !== undefined ? 'https' : 'http'}://127.0.0.1:${peerPort}`;
    args.push('--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl);
  }
  args.push(...tlsFlags('', opts.tls), ...tlsFlags('peer-', opts.peerTls));
  if (opts.walDir !== undefined) args.push('--wal-dir', opts.walDir);
  args.push(...(opts.extraArgs ?? []));
  return spawnServer({
    name,
    cmd: process.execPath,
    args,
    port: clientPort,
    secure: opts.tls !== undefined,
    dataDir,
    env: opts.env,
    commandPrefix: opts.commandPrefix,
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
    readyMsgs: CAIRN_READY_MSGS,
    cwd: opts.cwd,
  });
}

export type TargetKind = 'etcd' | 'cairn';

/** The server under test: Cairn unless CAIRN_DIFF_TARGET=etcd (to validate tests against etcd itself). */
export function targetKind(): TargetKind {
  const v = process.env['CAIRN_DIFF_TARGET'];
  if (v === undefined || v === '' || v === 'cairn') return 'cairn';
  if (v === 'etcd') return 'etcd';
  throw new Error(`CAIRN_DIFF_TARGET must be "cairn" or "etcd", got ${JSON.stringify(v)}`);
}

export function startTarget(kind: TargetKind, opts: ServerOpts = {}): Promise<ServerProc> {
  return kind === 'etcd' ? startEtcd(opts) : startCairn(opts);
}
