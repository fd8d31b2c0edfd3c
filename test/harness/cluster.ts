// Multi-member clusters of real processes on loopback, for the reference etcd and Cairn alike,
// configured by etcd's flags (--initial-cluster, --initial-cluster-state, ...): start, kill -9,
// stop, restart with the same data dir, SIGSTOP/SIGCONT, member add/remove, HashKV on every
// member, convergence. Every member keeps its client and peer ports for life, so clients given
// all endpoints find a restarted member where it was.
//
// Each member process is started through procs.ts (startEtcd/startCairn: stderr capture, ready
// detection, cleanup at exit) with a --config-file holding the whole configuration: both etcd and
// Cairn take a config file *instead of* the command line, which lets the harness choose the client
// port itself (procs.ts picks one per start). ServerProc.endpoint of a member's process is
// therefore not meaningful; use ClusterMember.endpoint.
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdClient, statusName } from './client.js';
import type { CallResult, Msg } from './client.js';
import { freePort, startCairn, startEtcd, tempDir } from './procs.js';
import type { ServerProc, TargetKind } from './procs.js';
import { pollUntil } from './poll.js';

export interface ClusterMember {
  readonly name: string;
  /** "http://host:port" of the peer listener. */
  readonly peerUrl: string;
  /** "http://host:port" of the client listener. */
  readonly clientUrl: string;
  /** "host:port": what gRPC clients and etcdctl --endpoints take. */
  readonly endpoint: string;
  /** "https://host:port" of the TLS client listener (ClusterOptions.clientTls only). */
  readonly tlsEndpoint: string | undefined;
  readonly dataDir: string;
  /** The running process; undefined while the member is down (never started, killed, stopped, removed). */
  proc: ServerProc | undefined;
}

export interface ClusterOptions {
  size: number;
  /** --initial-cluster-token; default a unique one. */
  token?: string;
  /** Further flags for every member, "--flag=value" or "--flag value" (bare "--flag" = true); they go into the config file. */
  extraArgs?: string[];
  snapshotCount?: number;
  electionMs?: number;
  heartbeatMs?: number;
  /** Member name prefix; members are <prefix>1..<prefix>N. Default "m". */
  name?: string;
  /** Host of member i's listeners (0-based; added members continue the count); default 127.0.0.1. */
  hostFor?: (i: number) => string;
  /** Readiness timeout of one member start; default 30 s. */
  readyTimeoutMs?: number;
  /** Peer TLS: https peer URLs and etcd's --peer-* settings, each member with its own certificate. */
  peerTls?: ClusterTls;
  /**
   * Client TLS: every member also listens on an https client URL (ClusterMember.tlsEndpoint, the one
   * advertised) with these settings; the cleartext one (endpoint) stays for the harness's own client.
   */
  clientTls?: ClusterTls;
  /** kind 'etcd' only: the etcd binary (default Debian's 3.4; the kube tests use etcd 3.6). */
  etcdBin?: string;
}

/** TLS settings of one side for every member of a cluster. */
export interface ClusterTls {
  readonly caFile: string;
  /** The member's certificate and key (e.g. issued by test/harness/certs.ts, SAN 127.0.0.1). */
  certFor(name: string): { readonly certFile: string; readonly keyFile: string };
  readonly clientCertAuth?: boolean;
}

export interface MemberStatus {
  readonly name: string;
  readonly id: string;
  readonly leader: string;
  readonly raftIndex: number;
  readonly raftTerm: number;
  readonly raftAppliedIndex: number;
  readonly isLearner: boolean;
  readonly revision: number;
}

export interface MemberHash {
  hash: number;
  /** The revision hashed. */
  revision: number;
  /** The member's current revision (response header). */
  headerRevision: number;
  compactRevision: number;
}

/** What Cluster.MemberList says about one member. */
export interface ListedMember {
  readonly id: string;
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
}

const STATUS_TIMEOUT_MS = 2_000;
const LEADER_TIMEOUT_MS = 30_000;
const REMOVED_EXIT_MS = 15_000;
const LOG_TAIL_LINES = 30;
const RECONFIG_RETRY_MS = 20_000;
const UNHEALTHY = 'etcdserver: unhealthy cluster';

let clusterSeq = 0;

interface MemberState extends ClusterMember {
  /** Index for hostFor. */
  readonly index: number;
  /** Every process this member ran, oldest first (for logs after a failure). */
  readonly procs: ServerProc[];
  paused: boolean;
  /** The config written for the member's first start; restarts reuse it. */
  configPath: string | undefined;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : '';
}
function num(v: unknown): number {
  const n = Number(str(v));
  return Number.isFinite(n) ? n : NaN;
}
function obj(v: unknown): Msg {
  return typeof v === 'object' && v !== null ? (v as Msg) : {};
}
function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(str) : [];
}

/** "--a=b", "--a b", "--flag" → config-file entries (values kept as strings; both servers accept that). */
function argsToConfig(args: readonly string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(a);
    if (m === null) throw new Error(`cluster: extraArgs: '${a}' is not a flag`);
    const key = m[1] ?? '';
    if (m[2] !== undefined) out[key] = m[2];
    else {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith('-')) {
        out[key] = next;
        i++;
      } else out[key] = true;
    }
  }
  return out;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class Cluster {
  readonly kind: TargetKind;
  readonly token: string;
  private readonly opts: ClusterOptions;
  private readonly states: MemberState[] = [];
  private readonly clients = new Map<string, EtcdClient>();
  private readonly ids = new Map<string, string>();
  private closed = false;

  constructor(kind: TargetKind, opts: ClusterOptions) {
    this.kind = kind;
    this.opts = opts;
    clusterSeq += 1;
    this.token = opts.token ?? `cairn-test-${process.pid}-${clusterSeq}`;
  }

  get members(): ClusterMember[] {
    return [...this.states];
  }

  /** Members whose process is alive and not paused. */
  running(): ClusterMember[] {
    return this.states.filter((s) => this.isRunning(s));
  }

  /** Endpoints of the running members. */
  endpoints(): string[] {
    return this.running().map((m) => m.endpoint);
  }

  /** Endpoints of all members ever started (for clients that should keep every address). */
  allEndpoints(): string[] {
    return this.states.map((m) => m.endpoint);
  }

  member(name: string): ClusterMember {
    return this.state(name);
  }

  private state(name: string): MemberState {
    const s = this.states.find((m) => m.name === name);
    if (s === undefined) throw new Error(`cluster: no member ${name} (have ${this.states.map((m) => m.name).join(', ')})`);
    return s;
  }

  private isRunning(s: MemberState): boolean {
    return s.proc !== undefined && !s.paused && isAlive(s.proc.pid);
  }

  /** A gRPC client of a member (cached; survives restarts, the address stays the same). */
  client(name: string): EtcdClient {
    const m = this.state(name);
    let c = this.clients.get(m.endpoint);
    if (c === undefined) {
      c = new EtcdClient(m.endpoint);
      this.clients.set(m.endpoint, c);
    }
    return c;
  }

  /** Allocates ports and a data dir for a new member (not started, not added). */
  async reserve(name: string): Promise<ClusterMember> {
    if (this.states.some((m) => m.name === name)) throw new Error(`cluster: member ${name} exists already`);
    const index = this.states.length;
    const host = this.opts.hostFor?.(index) ?? '127.0.0.1';
    const [clientPort, peerPort, tlsPort] = await distinctFreePorts(this.opts.clientTls !== undefined ? 3 : 2);
    const s: MemberState = {
      name,
      index,
      peerUrl: `${this.opts.peerTls !== undefined ? 'https' : 'http'}://${host}:${String(peerPort)}`,
      clientUrl: `http://${host}:${String(clientPort)}`,
      endpoint: `${host}:${String(clientPort)}`,
      tlsEndpoint: tlsPort === undefined ? undefined : `https://${host}:${String(tlsPort)}`,
      dataDir: join(tempDir(`cairn-cluster-${this.kind}-`), name),
      proc: undefined,
      procs: [],
      paused: false,
      configPath: undefined,
    };
    this.states.push(s);
    return s;
  }

  /** --initial-cluster of the given members. */
  initialCluster(names?: readonly string[]): string {
    const ms = names === undefined ? this.states : names.map((n) => this.state(n));
    return ms.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  private writeConfig(s: MemberState, initialCluster: string, state: 'new' | 'existing'): string {
    const cfg: Record<string, unknown> = {
      name: s.name,
      'data-dir': s.dataDir,
      'listen-client-urls': s.clientUrl,
      'advertise-client-urls': s.clientUrl,
      'listen-peer-urls': s.peerUrl,
      'initial-advertise-peer-urls': s.peerUrl,
      'initial-cluster': initialCluster,
      'initial-cluster-state': state,
      'initial-cluster-token': this.token,
    };
    if (s.tlsEndpoint !== undefined) {
      cfg['listen-client-urls'] = `${s.clientUrl},${s.tlsEndpoint}`;
      cfg['advertise-client-urls'] = s.tlsEndpoint;
    }
    Object.assign(cfg, this.tlsConfig(s.name, 'client', this.opts.clientTls), this.tlsConfig(s.name, 'peer', this.opts.peerTls));
    if (this.opts.snapshotCount !== undefined) cfg['snapshot-count'] = this.opts.snapshotCount;
    if (this.opts.heartbeatMs !== undefined) cfg['heartbeat-interval'] = this.opts.heartbeatMs;
    if (this.opts.electionMs !== undefined) cfg['election-timeout'] = this.opts.electionMs;
    if (this.kind === 'etcd') {
      cfg['logger'] = 'zap';
      cfg['log-outputs'] = ['stderr'];
    }
    Object.assign(cfg, argsToConfig(this.opts.extraArgs ?? []));
    const path = `${s.dataDir}.conf.yaml`;
    // JSON is YAML; both servers read this file.
    writeFileSync(path, `${JSON.stringify(cfg, null, 1)}\n`);
    return path;
  }

  /** etcd's config file nests TLS under client-/peer-transport-security; Cairn's takes the flag names. */
  private tlsConfig(name: string, side: 'client' | 'peer', t: ClusterTls | undefined): Record<string, unknown> {
    if (t === undefined) return {};
    const { certFile, keyFile } = t.certFor(name);
    const cca = t.clientCertAuth === true;
    if (this.kind === 'etcd') {
      return { [`${side}-transport-security`]: { 'cert-file': certFile, 'key-file': keyFile, 'trusted-ca-file': t.caFile, 'client-cert-auth': cca } };
    }
    const p = side === 'peer' ? 'peer-' : '';
    return { [`${p}cert-file`]: certFile, [`${p}key-file`]: keyFile, [`${p}trusted-ca-file`]: t.caFile, [`${p}client-cert-auth`]: cca };
  }

  private async launch(s: MemberState, configPath: string): Promise<ServerProc> {
    const start = this.kind === 'etcd' ? startEtcd : startCairn;
    const proc = await start({
      name: s.name,
      dataDir: s.dataDir,
      extraArgs: ['--config-file', configPath],
      ...(this.opts.etcdBin !== undefined ? { etcdBin: this.opts.etcdBin } : {}),
      readyTimeoutMs: this.opts.readyTimeoutMs ?? 30_000,
    });
    s.procs.push(proc);
    s.proc = proc;
    s.paused = false;
    return proc;
  }

  /** Starts a reserved member for the first time with the given --initial-cluster and state. */
  async startNew(name: string, initialCluster: string, state: 'new' | 'existing'): Promise<ClusterMember> {
    const s = this.state(name);
    if (s.proc !== undefined) throw new Error(`cluster: ${name} is running already`);
    s.configPath = this.writeConfig(s, initialCluster, state);
    await this.launch(s, s.configPath);
    return s;
  }

  /** Starts the initial members concurrently and waits for a leader. */
  async boot(): Promise<void> {
    const prefix = this.opts.name ?? 'm';
    for (let i = 1; i <= this.opts.size; i++) await this.reserve(`${prefix}${String(i)}`);
    const ic = this.initialCluster();
    const results = await Promise.allSettled(this.states.map((s) => this.startNew(s.name, ic, 'new')));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw new Error(`cluster: ${failed.length} member(s) failed to start:\n${failed.map((f) => String(f.reason)).join('\n')}`);
    await this.leader(LEADER_TIMEOUT_MS);
  }

  /** Restarts a member that is down, with its data dir and first config. */
  async start(name: string): Promise<ClusterMember> {
    const s = this.state(name);
    if (s.proc !== undefined && isAlive(s.proc.pid)) throw new Error(`cluster: ${name} is running already`);
    if (s.configPath === undefined) throw new Error(`cluster: ${name} was never started (use startNew)`);
    await this.launch(s, s.configPath);
    return s;
  }

  /** Starts a process for a member without waiting for readiness to succeed: resolves with the error, if any. */
  async tryStart(name: string, readyTimeoutMs: number): Promise<{ proc: ServerProc | undefined; error: string | undefined }> {
    const s = this.state(name);
    if (s.configPath === undefined) throw new Error(`cluster: ${name} was never started`);
    const start = this.kind === 'etcd' ? startEtcd : startCairn;
    try {
      const proc = await start({ name: s.name, dataDir: s.dataDir, extraArgs: ['--config-file', s.configPath], readyTimeoutMs });
      s.procs.push(proc);
      s.proc = proc;
      s.paused = false;
      return { proc, error: undefined };
    } catch (e) {
      return { proc: undefined, error: e instanceof Error ? e.message : String(e) };
    }
  }

  async kill9(name: string): Promise<void> {
    const s = this.state(name);
    const p = s.proc;
    if (p === undefined) return;
    if (s.paused) process.kill(p.pid, 'SIGCONT'); // SIGKILL works on a stopped process, but be tidy
    await p.kill9();
    s.proc = undefined;
    s.paused = false;
  }

  async stop(name: string): Promise<void> {
    const s = this.state(name);
    const p = s.proc;
    if (p === undefined) return;
    if (s.paused) process.kill(p.pid, 'SIGCONT');
    await p.stop();
    s.proc = undefined;
    s.paused = false;
  }

  /**
   * Waits for a member's process to exit by itself (e.g. after its removal); then the member is
   * down. Rejects after timeoutMs with the process's last log lines (the process keeps running).
   */
  async waitExit(name: string, timeoutMs: number): Promise<void> {
    const s = this.state(name);
    const p = s.proc;
    if (p === undefined) return;
    try {
      await p.exited(timeoutMs);
    } catch {
      throw new Error(`cluster: ${name} still runs after ${String(timeoutMs)} ms; last lines:\n${p.stderrLines().slice(-15).join('\n')}`);
    }
    s.proc = undefined;
    s.paused = false;
  }

  /** SIGSTOP: the process keeps its sockets but does nothing. */
  pause(name: string): void {
    const s = this.state(name);
    if (s.proc === undefined) throw new Error(`cluster: ${name} is not running`);
    process.kill(s.proc.pid, 'SIGSTOP');
    s.paused = true;
  }

  resume(name: string): void {
    const s = this.state(name);
    if (s.proc === undefined) throw new Error(`cluster: ${name} is not running`);
    process.kill(s.proc.pid, 'SIGCONT');
    s.paused = false;
  }

  // ---- the Cluster and Maintenance APIs ----

  /** Cluster.MemberList through the first running member that answers. */
  async memberList(): Promise<ListedMember[]> {
    let last = 'no running member';
    for (const m of this.running()) {
      const r = await this.client(m.name).unary('Cluster', 'MemberList', {}, { timeoutMs: 5_000 });
      if (!r.ok) {
        last = `${m.name}: ${statusName(r.code)} ${r.details}`;
        continue;
      }
      const list = (Array.isArray(r.value['members']) ? r.value['members'] : []).map((x): ListedMember => {
        const o = obj(x);
        return { id: str(o['ID']), name: str(o['name']), peerURLs: strings(o['peerURLs']), clientURLs: strings(o['clientURLs']), isLearner: o['isLearner'] === true };
      });
      for (const l of list) if (l.name !== '') this.ids.set(l.name, l.id);
      return list;
    }
    throw new Error(`cluster: MemberList failed: ${last}`);
  }

  /** The member id (decimal string) of a member, from MemberList (cached). */
  async idOf(name: string): Promise<string> {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    const peer = this.state(name).peerUrl;
    const list = await this.memberList();
    const hit = list.find((l) => l.name === name) ?? list.find((l) => l.peerURLs.includes(peer));
    if (hit === undefined) throw new Error(`cluster: ${name} is not in the member list`);
    this.ids.set(name, hit.id);
    return hit.id;
  }

  /** Maintenance.Status of one member plus its current revision; undefined if it does not answer. */
  async status(name: string, timeoutMs = STATUS_TIMEOUT_MS): Promise<MemberStatus | undefined> {
    const r = await this.client(name).unary('Maintenance', 'Status', {}, { timeoutMs });
    if (!r.ok) return undefined;
    const v = r.value;
    const header = obj(v['header']);
    const id = str(header['member_id']);
    this.ids.set(name, id);
    return {
      name,
      id,
      leader: str(v['leader']),
      raftIndex: num(v['raftIndex']),
      raftTerm: num(v['raftTerm']),
      raftAppliedIndex: num(v['raftAppliedIndex']),
      isLearner: v['isLearner'] === true,
      revision: num(header['revision']),
    };
  }

  /** Status of every running member (those that answer). */
  async statuses(): Promise<MemberStatus[]> {
    const all = await Promise.all(this.running().map((m) => this.status(m.name)));
    return all.filter((s): s is MemberStatus => s !== undefined);
  }

  /** Polls Status on the running members until all answer and agree on one leader that is among them. */
  async leader(timeoutMs = LEADER_TIMEOUT_MS): Promise<ClusterMember> {
    let found: ClusterMember | undefined;
    let last = '';
    await pollUntil(
      `agreed leader among ${this.running().map((m) => m.name).join(',')}`,
      async () => {
        const run = this.running();
        const sts = await Promise.all(run.map((m) => this.status(m.name)));
        last = sts.map((s, i) => `${run[i]?.name ?? '?'}:${s === undefined ? 'no answer' : `leader=${s.leader}`}`).join(' ');
        if (sts.length === 0 || sts.some((s) => s === undefined)) return false;
        const leaders = new Set(sts.map((s) => s?.leader));
        if (leaders.size !== 1) return false;
        const lid = sts[0]?.leader;
        if (lid === undefined || lid === '0' || lid === '') return false;
        const hit = sts.find((s) => s?.id === lid);
        if (hit === undefined) return false;
        found = this.state(hit.name);
        return true;
      },
      timeoutMs,
      50,
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; last statuses: ${last}`);
    });
    if (found === undefined) throw new Error('cluster: leader() found none');
    return found;
  }

  /**
   * MemberAdd through a running member, then starts the new member with --initial-cluster-state
   * existing and the full --initial-cluster (as `etcdctl member add` prints it).
   */
  async addMember(name: string, opts: { learner?: boolean } = {}): Promise<ClusterMember> {
    const m = await this.reserve(name);
    const r = await this.reconfigure(`MemberAdd ${name}`, () => this.running().filter((x) => x.name !== name), (via) =>
      this.client(via.name).unary('Cluster', 'MemberAdd', { peerURLs: [m.peerUrl], isLearner: opts.learner === true }, { timeoutMs: 10_000 }),
    ).catch((e: unknown) => {
      this.forget(name);
      throw e;
    });
    const members = Array.isArray(r['members']) ? r['members'].map(obj) : [];
    const ic = members
      .flatMap((x) => {
        const n = str(x['name']);
        const peers = strings(x['peerURLs']);
        const isNew = peers.includes(m.peerUrl);
        return peers.map((p) => `${isNew ? name : n}=${p}`);
      })
      .join(',');
    this.ids.set(name, str(obj(r['member'])['ID']));
    return this.startNew(name, ic, 'existing');
  }

  /**
   * A Cluster API call through the first of `via()` members, retried (for up to RECONFIG_RETRY_MS)
   * while the server answers etcd's strict-reconfig refusal "etcdserver: unhealthy cluster" (a
   * voter's peer connection is younger than 5 s).
   */
  private async reconfigure(what: string, via: () => ClusterMember[], call: (via: ClusterMember) => Promise<CallResult<Msg>>): Promise<Msg> {
    const deadline = Date.now() + RECONFIG_RETRY_MS;
    for (;;) {
      const v = via()[0];
      if (v === undefined) throw new Error(`cluster: ${what}: no running member to ask`);
      const r = await call(v);
      if (r.ok) return r.value;
      if (r.details !== UNHEALTHY || Date.now() > deadline) throw new Error(`cluster: ${what} via ${v.name}: ${statusName(r.code)} ${r.details}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  /**
   * MemberRemove through another running member, then waits for the removed process to exit by
   * itself (as etcd's does) and stops it if it does not within REMOVED_EXIT_MS.
   */
  async removeMember(name: string): Promise<{ exitedByItself: boolean }> {
    const s = this.state(name);
    const id = await this.idOf(name);
    await this.reconfigure(`MemberRemove ${name}`, () => this.running().filter((m) => m.name !== name), (via) =>
      this.client(via.name).unary('Cluster', 'MemberRemove', { ID: id }, { timeoutMs: 10_000 }),
    );
    let exitedByItself = true;
    const p = s.proc;
    if (p !== undefined) {
      try {
        await p.exited(REMOVED_EXIT_MS);
      } catch {
        exitedByItself = false;
        await p.stop();
      }
    }
    s.proc = undefined;
    s.paused = false;
    return { exitedByItself };
  }

  /** Forget a removed member entirely (so endpoints()/members no longer list it). */
  forget(name: string): void {
    const i = this.states.findIndex((m) => m.name === name);
    const s = this.states[i];
    if (s === undefined) return;
    if (s.proc !== undefined) throw new Error(`cluster: forget ${name} while it runs`);
    this.states.splice(i, 1);
  }

  /**
   * Maintenance.HashKV on every running voter at one revision (default: the lowest current
   * revision among them, which all of them have applied). Learners are left out: etcd 3.4 answers
   * HashKV on a learner with "rpc not supported for learner".
   */
  async hashKV(revision?: number): Promise<Map<string, MemberHash>> {
    const run = this.running();
    const sts = await Promise.all(run.map((m) => this.status(m.name)));
    const voters = run.filter((_m, i) => sts[i]?.isLearner !== true);
    let rev = revision;
    if (rev === undefined) {
      const revs = sts.map((s) => s?.revision ?? NaN).filter((x) => Number.isFinite(x));
      if (revs.length === 0) throw new Error('cluster: hashKV: no member answers Status');
      rev = Math.min(...revs);
    }
    const out = new Map<string, MemberHash>();
    const errs: string[] = [];
    await Promise.all(
      voters.map(async (m) => {
        const r = await this.client(m.name).unary('Maintenance', 'HashKV', { revision: String(rev) }, { timeoutMs: 10_000 });
        if (!r.ok) {
          errs.push(`${m.name}: ${statusName(r.code)} ${r.details}`);
          return;
        }
        out.set(m.name, {
          hash: num(r.value['hash']),
          revision: rev,
          headerRevision: num(obj(r.value['header'])['revision']),
          compactRevision: num(r.value['compact_revision']),
        });
      }),
    );
    if (errs.length > 0) throw new Error(`cluster: HashKV at ${String(rev)} failed: ${errs.join('; ')}`);
    return out;
  }

  /**
   * Waits until all running members report the same raft applied index and revision, and the
   * HashKV of every voter at that revision is equal (and so is the compact revision). Throws with
   * the last observations after timeoutMs.
   */
  async waitConverged(timeoutMs: number): Promise<void> {
    let last = '';
    try {
      await pollUntil(
        'converged members',
        async () => {
          const run = this.running();
          const sts = await Promise.all(run.map((m) => this.status(m.name)));
          last = sts.map((s, i) => (s === undefined ? `${run[i]?.name ?? '?'}: no answer` : `${s.name}: applied=${s.raftAppliedIndex} rev=${s.revision}`)).join('; ');
          if (sts.length === 0 || sts.some((s) => s === undefined)) return false;
          const applied = new Set(sts.map((s) => s?.raftAppliedIndex));
          const revs = new Set(sts.map((s) => s?.revision));
          if (applied.size !== 1 || revs.size !== 1) return false;
          const rev = sts[0]?.revision ?? 0;
          const hashes = await this.hashKV(rev).catch((e: unknown) => {
            last += ` | ${e instanceof Error ? e.message : String(e)}`;
            return undefined;
          });
          if (hashes === undefined) return false;
          const distinct = new Set([...hashes.values()].map((h) => `${String(h.hash)}/${String(h.compactRevision)}`));
          last += ` | hashKV@${String(rev)}: ${[...hashes].map(([n, h]) => `${n}=${String(h.hash)}`).join(' ')}`;
          const voters = sts.filter((s) => s?.isLearner !== true).length;
          return distinct.size === 1 && hashes.size === voters;
        },
        timeoutMs,
        200,
      );
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; last: ${last}`);
    }
  }

  /** The last `lines` stderr lines of every process of every member, for failure reports. */
  logTails(lines = LOG_TAIL_LINES): string {
    const parts: string[] = [];
    for (const s of this.states) {
      s.procs.forEach((p, i) => {
        const tail = p.stderrLines().slice(-lines);
        parts.push(`----- ${this.kind} member ${s.name} (process #${String(i + 1)}, pid ${String(p.pid)}${s.proc === p ? ', current' : ''}) last ${tail.length} stderr lines -----\n${tail.join('\n')}`);
      });
    }
    return parts.join('\n');
  }

  /** Kills every member, closes clients, removes data dirs (unless CAIRN_KEEP_DATA=1). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await Promise.all(this.states.map((s) => this.kill9(s.name)));
    if (process.env['CAIRN_KEEP_DATA'] !== '1') {
      for (const s of this.states) {
        rmSync(s.dataDir, { recursive: true, force: true, maxRetries: 3 });
        rmSync(`${s.dataDir}.conf.yaml`, { force: true });
      }
    }
  }
}

/** Ports handed out by this module (never twice). */
const handedOut = new Set<number>();

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > 1000) throw new Error('cluster: no unused port found');
    const p = await freePort();
    if (handedOut.has(p)) continue;
    handedOut.add(p);
    ports.push(p);
  }
  return ports;
}

/** Starts a cluster of opts.size members and waits until it has a leader. */
export async function startCluster(kind: TargetKind, opts: ClusterOptions): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    const c = new Cluster(kind, opts);
    try {
      await c.boot();
      return c;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const logs = c.logTails();
      await c.close();
      // A port taken between freePort() and the bind: start again on new ports.
      if (attempt < 3 && /address already in use|EADDRINUSE/i.test(msg + logs)) continue;
      throw new Error(`${msg}\n${logs}`);
    }
  }
}

/**
 * Runs fn on a fresh cluster; on failure prints the last log lines of every member; always
 * closes the cluster.
 */
export async function withCluster<T>(kind: TargetKind, opts: ClusterOptions, fn: (c: Cluster) => Promise<T>): Promise<T> {
  const c = await startCluster(kind, opts);
  try {
    return await fn(c);
  } catch (e) {
    console.error(`cluster test failed; member logs:\n${c.logTails()}`);
    throw e;
  } finally {
    await c.close();
  }
}
