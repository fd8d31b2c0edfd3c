// A minimal multi-member cluster (reference etcd or Cairn) whose members run inside the network of
// test/harness/netns.ts (one namespace per member, or the loopback proxy fallback), so tests can
// partition them. Members are configured by etcd's flags on the command line. Restarts keep the
// data dir and flags. test/harness/cluster.ts has no hook to spawn members inside a namespace yet;
// once it has, this file can shrink to a thin adapter.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { EtcdClient, statusName } from '../harness/client.js';
import type { Msg } from '../harness/client.js';
import type { Net } from '../harness/netns.js';
import { pollUntil } from '../harness/poll.js';
import { etcdBin } from '../harness/bins.js';
import { CAIRN_MAIN, READY_MSG, tempDir } from '../harness/procs.js';
import type { TargetKind } from '../harness/procs.js';

const READY_MSGS: ReadonlySet<string> = new Set([
  READY_MSG,
  // etcd 3.4 with --logger=zap logs these right after its ReadyNotify (procs.ts does the same)
  'serving client traffic insecurely; this is strongly discouraged!',
  'serving client traffic securely',
]);
const LOG_LINES_MAX = 5_000;

export interface MemberStatus {
  readonly index: number;
  readonly id: string;
  readonly leader: string;
  readonly raftTerm: number;
  readonly raftIndex: number;
  readonly raftAppliedIndex: number;
  readonly revision: number;
}

export interface NetMember {
  readonly index: number;
  readonly name: string;
  readonly endpoint: string;
  readonly dataDir: string;
  /** The running process (undefined while down). */
  proc: ChildProcess | undefined;
  paused: boolean;
  /** Ready message seen from the current process. */
  ready: boolean;
  /** stderr/stdout lines of every process of this member (bounded), prefixed by the process number. */
  readonly logs: string[];
  starts: number;
}

export interface NetClusterOptions {
  size: number;
  heartbeatMs?: number;
  electionMs?: number;
  snapshotCount?: number;
  extraArgs?: string[];
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : '';
}
function obj(v: unknown): Msg {
  return typeof v === 'object' && v !== null ? (v as Msg) : {};
}
function logMsg(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    const msg = obj(parsed)['msg'];
    return typeof msg === 'string' ? msg : undefined;
  } catch {
    return undefined;
  }
}

let seq = 0;

export class NetCluster {
  readonly kind: TargetKind;
  readonly net: Net;
  readonly members: NetMember[];
  private readonly opts: NetClusterOptions;
  private readonly token: string;
  private readonly clients = new Map<number, EtcdClient>();
  private readonly readyWaiters = new Map<number, (() => void)[]>();
  private readonly exitWaiters = new Map<ChildProcess, (() => void)[]>();
  private readonly ids = new Map<number, string>();

  constructor(kind: TargetKind, net: Net, opts: NetClusterOptions) {
    if (opts.size > net.size) throw new Error(`NetCluster: ${opts.size} members on a net of ${net.size}`);
    this.kind = kind;
    this.net = net;
    this.opts = opts;
    seq += 1;
    this.token = `cairn-lin-${process.pid}-${seq}`;
    const base = tempDir(`cairn-lin-${kind}-`);
    this.members = Array.from({ length: opts.size }, (_, i) => ({
      index: i,
      name: `m${i + 1}`,
      endpoint: net.addr(i).endpoint,
      dataDir: join(base, `m${i + 1}`),
      proc: undefined,
      paused: false,
      ready: false,
      logs: [],
      starts: 0,
    }));
  }

  private initialCluster(): string {
    return this.members.map((m) => `${m.name}=${this.net.addr(m.index).advertisePeerUrl}`).join(',');
  }

  private args(i: number): { cmd: string; args: string[] } {
    const m = this.members[i];
    if (m === undefined) throw new Error(`NetCluster: no member ${i}`);
    const a = this.net.addr(i);
    const flags = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', a.clientUrl,
      '--advertise-client-urls', a.clientUrl,
      '--listen-peer-urls', a.listenPeerUrl,
      '--initial-advertise-peer-urls', a.advertisePeerUrl,
      '--initial-cluster', this.initialCluster(),
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.token,
      '--heartbeat-interval', String(this.opts.heartbeatMs ?? 100),
      '--election-timeout', String(this.opts.electionMs ?? 1000),
    ];
    if (this.opts.snapshotCount !== undefined) flags.push('--snapshot-count', String(this.opts.snapshotCount));
    flags.push(...(this.opts.extraArgs ?? []));
    if (this.kind === 'etcd') return { cmd: etcdBin(), args: [...flags, '--logger=zap', '--log-outputs=stderr'] };
    return { cmd: process.execPath, args: [CAIRN_MAIN, ...flags] };
  }

  member(i: number): NetMember {
    const m = this.members[i];
    if (m === undefined) throw new Error(`NetCluster: no member ${i}`);
    return m;
  }

  /** Starts member i's process (it must be down); resolves once spawned, not when ready. */
  spawn(i: number): void {
    const m = this.member(i);
    if (m.proc !== undefined) throw new Error(`NetCluster: ${m.name} is running already`);
    const { cmd, args } = this.args(i);
    m.starts += 1;
    const tag = `#${m.starts}`;
    const child = this.net.run(i, cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    m.proc = child;
    m.paused = false;
    m.ready = false;
    let partial = '';
    const onLine = (line: string): void => {
      if (m.logs.length >= LOG_LINES_MAX) m.logs.shift();
      m.logs.push(`${tag} ${line}`);
      if (!m.ready && m.proc === child && READY_MSGS.has(logMsg(line) ?? '')) {
        m.ready = true;
        for (const w of this.readyWaiters.get(i)?.splice(0) ?? []) w();
      }
    };
    const feed = (chunk: string): void => {
      partial += chunk;
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
      }
    };
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', feed);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', feed);
    child.on('error', (e) => onLine(`spawn error: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (partial !== '') onLine(partial);
      onLine(`[exited: code ${String(code)}, signal ${String(signal)}]`);
      if (m.proc === child) {
        m.proc = undefined;
        m.paused = false;
        m.ready = false;
      }
      for (const w of this.exitWaiters.get(child)?.splice(0) ?? []) w();
      this.exitWaiters.delete(child);
      for (const w of this.readyWaiters.get(i)?.splice(0) ?? []) w();
    });
  }

  /** Resolves when member i's current process logged readiness; rejects on exit or timeout. */
  waitReady(i: number, timeoutMs: number): Promise<void> {
    const m = this.member(i);
    if (m.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${m.name}: not ready within ${timeoutMs} ms\n${this.logTail(i, 20)}`)), timeoutMs);
      const list = this.readyWaiters.get(i) ?? [];
      list.push(() => {
        clearTimeout(timer);
        if (m.ready) resolve();
        else reject(new Error(`${m.name}: exited before ready\n${this.logTail(i, 30)}`));
      });
      this.readyWaiters.set(i, list);
    });
  }

  /** Starts every member, waits until all are ready and agree on a leader. */
  async boot(readyTimeoutMs = 30_000): Promise<void> {
    for (let i = 0; i < this.members.length; i++) this.spawn(i);
    await Promise.all(this.members.map((m) => this.waitReady(m.index, readyTimeoutMs)));
    await this.waitLeader(this.members.map((m) => m.index), readyTimeoutMs);
  }

  private waitExit(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.exitWaiters.get(child) ?? [];
      list.push(resolve);
      this.exitWaiters.set(child, list);
    });
  }

  async kill9(i: number): Promise<void> {
    const m = this.member(i);
    const p = m.proc;
    if (p === undefined) return;
    p.kill('SIGKILL');
    await this.waitExit(p);
  }

  /** Starts a member that is down; waits for readiness only when asked (a cut-off member never gets ready). */
  async start(i: number, waitReadyMs?: number): Promise<void> {
    this.spawn(i);
    if (waitReadyMs !== undefined) await this.waitReady(i, waitReadyMs);
  }

  pause(i: number): void {
    const m = this.member(i);
    if (m.proc?.pid === undefined) throw new Error(`NetCluster: ${m.name} is not running`);
    m.proc.kill('SIGSTOP');
    m.paused = true;
  }

  resume(i: number): void {
    const m = this.member(i);
    if (m.proc?.pid === undefined) return;
    m.proc.kill('SIGCONT');
    m.paused = false;
  }

  /** Resumes paused members and starts the dead ones. */
  async reviveAll(readyTimeoutMs: number): Promise<void> {
    for (const m of this.members) if (m.paused) this.resume(m.index);
    const dead = this.members.filter((m) => m.proc === undefined);
    for (const m of dead) this.spawn(m.index);
    await Promise.all(dead.map((m) => this.waitReady(m.index, readyTimeoutMs)));
  }

  /** A cached client of member i (the address survives restarts). */
  client(i: number): EtcdClient {
    let c = this.clients.get(i);
    if (c === undefined) {
      c = new EtcdClient(this.member(i).endpoint);
      this.clients.set(i, c);
    }
    return c;
  }

  async status(i: number, timeoutMs = 1_000): Promise<MemberStatus | undefined> {
    const r = await this.client(i).unary('Maintenance', 'Status', {}, { timeoutMs });
    if (!r.ok) return undefined;
    const header = obj(r.value['header']);
    const id = str(header['member_id']);
    this.ids.set(i, id);
    return {
      index: i,
      id,
      leader: str(r.value['leader']),
      raftTerm: Number(str(r.value['raftTerm'])),
      raftIndex: Number(str(r.value['raftIndex'])),
      raftAppliedIndex: Number(str(r.value['raftAppliedIndex'])),
      revision: Number(str(header['revision'])),
    };
  }

  /** Member id (decimal string) of member i, learnt from its Status. */
  async idOf(i: number): Promise<string> {
    const known = this.ids.get(i);
    if (known !== undefined) return known;
    const s = await this.status(i, 5_000);
    if (s === undefined) throw new Error(`NetCluster: ${this.member(i).name} does not answer Status`);
    return s.id;
  }

  /** Index of the member with this id, if known. */
  indexOfId(id: string): number | undefined {
    for (const [i, known] of this.ids) if (known === id) return i;
    return undefined;
  }

  /** Polls until all given members answer Status and agree on a leader that is one of them; returns its index. */
  async waitLeader(among: readonly number[], timeoutMs: number): Promise<number> {
    let found: number | undefined;
    let last = '';
    await pollUntil(
      `a leader agreed by members ${among.map((i) => this.member(i).name).join(',')}`,
      async () => {
        const sts = await Promise.all(among.map((i) => this.status(i)));
        last = sts.map((s, k) => `${this.member(among[k] ?? -1).name}:${s === undefined ? 'no answer' : `leader=${s.leader} term=${s.raftTerm}`}`).join(' ');
        if (sts.some((s) => s === undefined)) return false;
        const leaders = new Set(sts.map((s) => s?.leader));
        const lid = sts[0]?.leader;
        if (leaders.size !== 1 || lid === undefined || lid === '0' || lid === '') return false;
        const hit = sts.find((s) => s?.id === lid);
        if (hit === undefined) return false;
        found = hit.index;
        return true;
      },
      timeoutMs,
      50,
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; last statuses: ${last}`);
    });
    if (found === undefined) throw new Error('waitLeader: none');
    return found;
  }

  /** Maintenance.HashKV of member i at a revision. */
  async hashKV(i: number, revision: number): Promise<{ hash: string; compactRevision: string } | string> {
    const r = await this.client(i).unary('Maintenance', 'HashKV', { revision: String(revision) }, { timeoutMs: 10_000 });
    if (!r.ok) return `${statusName(r.code)} ${r.details}`;
    return { hash: str(r.value['hash']), compactRevision: str(r.value['compact_revision']) };
  }

  /**
   * Waits until every member answers Status with the same applied index and revision, agrees on
   * one leader, and HashKV at that revision is equal on all. Returns the common revision.
   */
  async waitConverged(timeoutMs: number): Promise<number> {
    let last = '';
    let rev = 0;
    await pollUntil(
      'all members converged (same leader, applied index, revision and HashKV)',
      async () => {
        const sts = await Promise.all(this.members.map((m) => this.status(m.index)));
        last = sts.map((s, k) => (s === undefined ? `m${k + 1}: no answer` : `m${k + 1}: leader=${s.leader} applied=${s.raftAppliedIndex} rev=${s.revision}`)).join('; ');
        if (sts.some((s) => s === undefined)) return false;
        if (new Set(sts.map((s) => s?.leader)).size !== 1 || sts[0]?.leader === '0') return false;
        if (new Set(sts.map((s) => s?.raftAppliedIndex)).size !== 1 || new Set(sts.map((s) => s?.revision)).size !== 1) return false;
        rev = sts[0]?.revision ?? 0;
        const hashes = await Promise.all(this.members.map((m) => this.hashKV(m.index, rev)));
        last += ` | HashKV@${rev}: ${hashes.map((h, k) => `m${k + 1}=${typeof h === 'string' ? h : h.hash}`).join(' ')}`;
        if (hashes.some((h) => typeof h === 'string')) return false;
        return new Set(hashes.map((h) => (typeof h === 'string' ? h : `${h.hash}/${h.compactRevision}`))).size === 1;
      },
      timeoutMs,
      200,
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; last: ${last}`);
    });
    return rev;
  }

  logTail(i: number, lines: number): string {
    const m = this.member(i);
    return `----- ${this.kind} ${m.name} (${m.endpoint}) last ${Math.min(lines, m.logs.length)} log lines -----\n${m.logs.slice(-lines).join('\n')}`;
  }

  logTails(lines = 30): string {
    return this.members.map((m) => this.logTail(m.index, lines)).join('\n');
  }

  /** Kills every member and closes clients (the Net is cleaned up by its owner). */
  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const m of this.members) if (m.paused) this.resume(m.index);
    await Promise.all(this.members.map((m) => this.kill9(m.index)));
  }
}
