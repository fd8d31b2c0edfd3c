// The member entrypoint: runs in every member pod (node dist/operator/member/main.js), decides how
// this member starts (decide.ts), then runs the server as a child with the computed flags and
// forwards SIGTERM. It serves /livez on the agent port: green while it waits to be added (so the
// kubelet does not restart a waiting pod), the server's own /livez once the server runs.
//   - data on the volume: start the server; if the server refuses it as a removed member's data,
//     move the data aside and take the join path (no crash-loop);
//   - no data: bootstrap alone only with the operator's grant on this Pod (read through the API
//     each time, no volume sync delay) and a volume that never held a member; otherwise wait with
//     backoff until the member list (through the client Service) lists this pod's peer URL unstarted.
// Environment (set by the StatefulSet template): POD_NAME, POD_NAMESPACE, CAIRN_CLUSTER,
// CAIRN_PEER_SERVICE, CAIRN_CLIENT_SERVICE, CAIRN_CLUSTER_TOKEN, CAIRN_DATA_DIR, CAIRN_WAL_DIR,
// CAIRN_AGENT_PORT, CAIRN_SERVER_ARGS (JSON list), and for a cluster restored from a backup
// CAIRN_RESTORE (JSON: the object) with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and
// CAIRN_RESTORE_CA_PEM) from the destination's Secrets. For runs outside Kubernetes (tests):
// CAIRN_PEER_URL, CAIRN_CLIENT_URL, CAIRN_LISTEN_PEER_URL, CAIRN_LISTEN_CLIENT_URL,
// CAIRN_MEMBERS_ENDPOINTS (host:port,...), KUBECONFIG.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get as httpGet, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { accessFromTlsDir, EtcdAdmin, type ListedMember } from '../etcd/index.js';
import { decide, isRemovedMessage, type Decision } from './decide.js';
import { readRecoverOrder, RecoveryRefused, restoreFromRecovery, takeRecoverySnapshot, type RecoverOrder } from './recover.js';
import { cairnCommand, readRestoreOrder, restoreFromBackup, type RestoreOrder } from './restore.js';

const BOOTSTRAP_ANNOTATION = 'cairn.dev/bootstrap-token';
const WAIT_BACKOFF_MIN_MS = 500;
const WAIT_BACKOFF_MAX_MS = 5000;
const LOG_LINE_BYTES_MAX = 64 * 1024;
const TERMINATION_LOG = '/dev/termination-log';

interface Env {
  pod: string;
  namespace: string;
  token: string;
  dataMount: string;
  walMount: string;
  agentPort: number;
  serverArgs: string[];
  peerURL: string;
  clientURL: string;
  listenPeer: string;
  listenClient: string;
  membersEndpoints: string[];
  /** The backup pod 0 restores (CAIRN_RESTORE), when the cluster is restored from one. */
  restore: RestoreOrder | undefined;
  /** A quorum-loss recovery's order (CAIRN_RECOVER), once the operator passed its point of no return. */
  recover: RecoverOrder | undefined;
}

function need(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`member: environment variable ${name} is required`);
  return v;
}

function readEnv(): Env {
  const pod = need('POD_NAME');
  const namespace = need('POD_NAMESPACE');
  const peerSvc = need('CAIRN_PEER_SERVICE');
  const host = `${pod}.${peerSvc}.${namespace}.svc`;
  const opt = (n: string, d: string): string => process.env[n] ?? d;
  const args = JSON.parse(opt('CAIRN_SERVER_ARGS', '[]')) as unknown;
  if (!Array.isArray(args) || !args.every((a): a is string => typeof a === 'string')) throw new Error('member: CAIRN_SERVER_ARGS must be a JSON list of strings');
  return {
    pod,
    namespace,
    token: need('CAIRN_CLUSTER_TOKEN'),
    dataMount: need('CAIRN_DATA_DIR'),
    walMount: need('CAIRN_WAL_DIR'),
    agentPort: Number(opt('CAIRN_AGENT_PORT', '2381')),
    serverArgs: args,
    peerURL: opt('CAIRN_PEER_URL', `http://${host}:2380`),
    clientURL: opt('CAIRN_CLIENT_URL', `http://${host}:2379`),
    listenPeer: opt('CAIRN_LISTEN_PEER_URL', 'http://0.0.0.0:2380'),
    listenClient: opt('CAIRN_LISTEN_CLIENT_URL', 'http://0.0.0.0:2379'),
    membersEndpoints: opt('CAIRN_MEMBERS_ENDPOINTS', `${need('CAIRN_CLIENT_SERVICE')}.${namespace}.svc:2379`).split(','),
    restore: readRestoreOrder(process.env),
    recover: readRecoverOrder(process.env),
  };
}

function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ level, ts: new Date().toISOString(), caller: 'member', msg, ...fields })}\n`);
}

const dataDirOf = (e: Env): string => join(e.dataMount, 'member-data');
const walDirOf = (e: Env): string => join(e.walMount, 'wal');
const markerOf = (e: Env): string => join(e.dataMount, '.cairn-member');

function hasData(e: Env): boolean {
  return existsSync(join(dataDirOf(e), 'member'));
}

/**
 * Moves a member's data and WAL aside as `<kind>-<time>` on the same volumes (keeping only the
 * latest such copy of each kind): a removed member's, or another cluster's (with its marker).
 */
function moveAside(e: Env, kind: 'removed' | 'foreign'): void {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  for (const [dir, mount] of [
    [dataDirOf(e), e.dataMount],
    [walDirOf(e), e.walMount],
  ] as const) {
    for (const old of readdirSync(mount).filter((n) => n.startsWith(`${kind}-`))) rmSync(join(mount, old), { recursive: true, force: true });
    if (existsSync(dir)) renameSync(dir, join(mount, `${kind}-${stamp}`));
  }
  if (kind === 'foreign' && existsSync(markerOf(e))) {
    mkdirSync(join(e.dataMount, `${kind}-${stamp}`), { recursive: true });
    renameSync(markerOf(e), join(e.dataMount, `${kind}-${stamp}`, '.cairn-member'));
  }
  if (kind === 'removed') log('warn', 'moved the data of a removed member aside; joining anew', { stamp });
  else log('warn', `moved another cluster's data aside (not deleted): ${join(e.dataMount, `${kind}-${stamp}`)} and ${join(e.walMount, `${kind}-${stamp}`)}; older such copies were deleted`, { stamp });
}

/** The cluster token the volume's marker records ('' for a marker of a version without one). */
function markerToken(e: Env): string | undefined {
  if (!existsSync(markerOf(e))) return undefined;
  try {
    const m = JSON.parse(readFileSync(markerOf(e), 'utf8')) as { token?: unknown };
    return typeof m.token === 'string' ? m.token : '';
  } catch {
    return '';
  }
}

/** The volume holds a member (data or marker) that is not of this cluster. */
function foreign(e: Env): boolean {
  const token = markerToken(e);
  return (token !== undefined && token !== e.token) || (token === undefined && (hasData(e) || existsSync(walDirOf(e))));
}

async function readGrant(e: Env, core: k8s.CoreV1Api | undefined): Promise<string | undefined> {
  if (core === undefined) return undefined;
  try {
    const pod = await core.readNamespacedPod({ name: e.pod, namespace: e.namespace });
    return pod.metadata?.annotations?.[BOOTSTRAP_ANNOTATION];
  } catch (err) {
    log('warn', 'cannot read this pod through the API', { error: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
}

async function memberList(e: Env): Promise<ListedMember[] | undefined> {
  for (const ep of e.membersEndpoints) {
    const c = new EtcdAdmin(ep, 3000, accessFromTlsDir(process.env['CAIRN_CLIENT_TLS_DIR']));
    try {
      return (await c.memberList(false)).members;
    } catch {
      // next endpoint
    } finally {
      c.close();
    }
  }
  return undefined;
}

function kubeClient(): k8s.CoreV1Api | undefined {
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromDefault();
    return kc.getCurrentCluster() === null ? undefined : kc.makeApiClient(k8s.CoreV1Api);
  } catch {
    return undefined;
  }
}

let agentState: AgentState = 'waiting';

async function decideWithBackoff(e: Env, core: k8s.CoreV1Api | undefined, stopping: () => boolean): Promise<Decision | undefined> {
  let delay = WAIT_BACKOFF_MIN_MS;
  let lastWhy = '';
  while (!stopping()) {
    const d = decide({
      podName: e.pod,
      peerURL: e.peerURL,
      token: e.token,
      hasData: hasData(e),
      marker: existsSync(markerOf(e)),
      restore: e.restore !== undefined || e.recover?.survivor === e.pod,
      recovering: e.recover !== undefined,
      foreign: (e.restore !== undefined || e.recover !== undefined) && foreign(e),
      grant: hasData(e) ? undefined : await readGrant(e, core),
      members: hasData(e) ? undefined : await memberList(e),
    });
    if (d.kind !== 'wait') return d;
    agentState = d.dataLost === true ? 'dataLost' : 'waiting';
    if (d.why !== lastWhy) log('info', d.why, { peerURL: e.peerURL });
    lastWhy = d.why;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(WAIT_BACKOFF_MAX_MS, delay * 2);
  }
  return undefined;
}

function serverFlags(e: Env, d: Extract<Decision, { kind: 'start' | 'bootstrap' | 'join' | 'restore' }>): string[] {
  const initialCluster = d.kind === 'start' ? `${e.pod}=${e.peerURL}` : d.initialCluster;
  return [
    `--name=${e.pod}`,
    `--data-dir=${dataDirOf(e)}`,
    `--wal-dir=${walDirOf(e)}`,
    `--listen-client-urls=${e.listenClient}`,
    `--advertise-client-urls=${e.clientURL}`,
    `--listen-peer-urls=${e.listenPeer}`,
    `--initial-advertise-peer-urls=${e.peerURL}`,
    `--initial-cluster=${initialCluster}`,
    `--initial-cluster-state=${d.kind === 'bootstrap' || d.kind === 'restore' ? 'new' : 'existing'}`,
    `--initial-cluster-token=${e.token}`,
    ...e.serverArgs,
  ];
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  removed: boolean;
}

/** Runs the server until it exits; lines pass through, a removal message is noticed. */
function runServer(args: string[], onChild: (c: ChildProcess | undefined) => void): Promise<Run> {
  const main = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'server', 'main.js');
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  onChild(child);
  let removed = false;
  const watch = (stream: NodeJS.ReadableStream, out: NodeJS.WritableStream): void => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      out.write(chunk);
      partial = (partial + chunk).slice(-LOG_LINE_BYTES_MAX);
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      if (lines.some(isRemovedMessage)) removed = true;
    });
  };
  if (child.stdout !== null) watch(child.stdout, process.stdout);
  if (child.stderr !== null) watch(child.stderr, process.stderr);
  return new Promise((resolveRun) => {
    child.on('exit', (code, signal) => {
      onChild(undefined);
      resolveRun({ code, signal, removed });
    });
  });
}

let snapshotting: Promise<unknown> | undefined;

/** POST /recovery-snapshot {token, memberId}: this member's own snapshot onto its volume (member/recover.ts). One at a time. */
function recoverySnapshotRequest(e: Env, running: boolean, req: IncomingMessage, res: ServerResponse): void {
  const answer = (code: number, body: unknown): void => {
    res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  };
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => {
    raw += c;
    if (raw.length > 4096) req.destroy();
  });
  req.on('end', () => {
    if (!running) return answer(409, { error: 'the server is not running here' });
    if (snapshotting !== undefined) return answer(409, { error: 'a recovery snapshot is being taken' });
    let token = '';
    let memberId = '';
    try {
      const b = JSON.parse(raw) as { token?: unknown; memberId?: unknown };
      token = typeof b.token === 'string' ? b.token : '';
      memberId = typeof b.memberId === 'string' ? b.memberId : '';
    } catch {
      return answer(400, { error: 'the body must be JSON {token, memberId}' });
    }
    const port = new URL(e.listenClient).port || '2379';
    const bin = cairnCommand();
    // spec.tls.client: https with this member's own certificate (a client certificate too) and the CA.
    const access = accessFromTlsDir(process.env['CAIRN_CLIENT_TLS_DIR']);
    const p = takeRecoverySnapshot({ dataMount: e.dataMount, clientEndpoint: `127.0.0.1:${port}`, token, memberId, cairnBin: bin, access });
    snapshotting = p;
    p.then(
      (rec) => {
        log('info', 'recovery snapshot on this volume', { ...rec });
        answer(200, rec);
      },
      (err: unknown) => {
        const msg = err instanceof Error ? err.message : String(err);
        log('warn', 'recovery snapshot refused or failed', { error: msg });
        answer(err instanceof RecoveryRefused ? 409 : 500, { error: msg });
      },
    ).finally(() => {
      snapshotting = undefined;
      rmSync(bin, { force: true });
    });
  });
}

/** What the agent's /state says: the planner reads it (operator/plan MemberState). */
type AgentState = 'waiting' | 'dataLost' | 'running';

function agent(e: Env, serverRunning: () => boolean, state: () => AgentState): Server {
  const srv = createServer((req, res) => {
    if (req.url === '/recovery-snapshot' && req.method === 'POST') {
      recoverySnapshotRequest(e, serverRunning(), req, res);
      return;
    }
    if (req.url === '/state') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ state: state() })}\n`);
      return;
    }
    if (req.url !== '/livez') {
      res.writeHead(404).end();
      return;
    }
    if (!serverRunning()) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('waiting to be added\n');
      return;
    }
    // spec.tls.client: the client port wants a client certificate; /livez is on the plaintext metrics listener.
    const port = process.env['CAIRN_HEALTH_PORT'] ?? (new URL(e.listenClient).port || '2379');
    const r = httpGet({ host: '127.0.0.1', port: Number(port), path: '/livez', timeout: 2500 }, (up) => {
      res.writeHead(up.statusCode ?? 503, { 'content-type': 'text/plain' });
      up.pipe(res);
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', () => res.writeHead(503).end('server not answering\n'));
  });
  srv.listen(e.agentPort);
  return srv;
}

async function main(): Promise<number> {
  const e = readEnv();
  mkdirSync(e.dataMount, { recursive: true });
  mkdirSync(e.walMount, { recursive: true });
  const core = kubeClient();
  let child: ChildProcess | undefined;
  let stopping = false;
  const agentServer = agent(e, () => child !== undefined, () => (child !== undefined ? 'running' : agentState));
  const onTerm = (sig: NodeJS.Signals): void => {
    stopping = true;
    log('info', `${sig}: stopping the server`);
    child?.kill('SIGTERM');
  };
  process.on('SIGTERM', () => onTerm('SIGTERM'));
  process.on('SIGINT', () => onTerm('SIGINT'));
  try {
    for (;;) {
      const d = await decideWithBackoff(e, core, () => stopping);
      if (d === undefined || d.kind === 'wait') return 0;
      log('info', d.why, { decision: d.kind });
      if (d.kind === 'moveAside') {
        moveAside(e, 'foreign');
        continue;
      }
      if (d.kind === 'restore' && e.recover !== undefined && e.recover.survivor === e.pod) {
        const bin = cairnCommand();
        try {
          const r = await restoreFromRecovery(e.recover, { name: e.pod, initialCluster: d.initialCluster, initialClusterToken: e.token, initialAdvertisePeerUrls: e.peerURL, dataDir: dataDirOf(e), walDir: walDirOf(e) }, e.dataMount, bin);
          log('info', 'restored the recovery snapshot into this member: a new one-member cluster', { file: e.recover.file, snapshotRevision: r.snapshotRevision, startRevision: r.startRevision, sizeBytes: r.sizeBytes, sha256: r.sha256, tookMs: r.tookMs });
        } finally {
          rmSync(bin, { force: true });
        }
      } else if (d.kind === 'restore' && e.restore !== undefined) {
        const r = await restoreFromBackup(e.restore, { name: e.pod, initialCluster: d.initialCluster, initialClusterToken: e.token, initialAdvertisePeerUrls: e.peerURL, dataDir: dataDirOf(e), walDir: walDirOf(e) }, e.dataMount);
        log('info', 'restored the backup into this member', { uri: e.restore.uri, snapshotRevision: r.snapshotRevision, startRevision: r.startRevision, sizeBytes: r.sizeBytes, sha256: r.sha256, tookMs: r.tookMs });
      }
      writeFileSync(markerOf(e), `${JSON.stringify({ pod: e.pod, peerURL: e.peerURL, token: e.token, decision: d.kind, at: new Date().toISOString() })}\n`);
      const run = await runServer(serverFlags(e, d), (c) => (child = c));
      if (stopping) return run.code ?? 0;
      if (run.removed) {
        moveAside(e, 'removed');
        continue;
      }
      log('error', 'the server exited', { code: run.code, signal: run.signal });
      return run.code ?? 1;
    }
  } finally {
    agentServer.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    log('error', msg);
    // The kubelet shows it in the pod's status (lastState.terminated.message): why a restore failed.
    try {
      writeFileSync(TERMINATION_LOG, msg.slice(0, 4000));
    } catch {
      // not in a pod
    }
    process.exit(1);
  },
);
