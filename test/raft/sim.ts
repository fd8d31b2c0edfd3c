// Deterministic simulation of a Raft cluster (issues 4 and 17): members (RawNode run by the real driver
// of server/node over simulated WAL, network and clock, see sim-host.ts) over a simulated network that
// delays, drops, duplicates, reorders and partitions, with crashes that lose unsynced writes, fsync
// failures, membership changes, leadership transfers, ReadIndex reads and log compaction. One seeded
// PRNG drives everything and time is virtual, so a seed replays exactly: the driver's promises are
// settled between events (every microtask runs before the next event is taken).
// A run: a chaos phase of `steps` events, then healing (everyone up, perfect network) in which a
// proposal must commit and every member must catch up within a bounded virtual time. The invariants
// (sim-check.ts) are checked as every event is handled. See README.md beside this file.
import {
  encodeConfChange,
  type ConfChange,
  type ConfChangeType,
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  type NodeId,
  type RaftConfig,
} from '../../server/raft/index.js';
import { StorageFault } from '../../server/base/errors.js';
import { fatalCause } from '../../server/node/failstop.js';
import { Checker, SimViolation, type Invariant } from './sim-check.js';
import { EventQueue, Rng, TraceRing, fmtMsg, nid } from './sim-core.js';
import { MemberHost, type HostEnv, type HostFault, type SnapData } from './sim-host.js';

export { SimViolation } from './sim-check.js';
export { HOST_FAULTS, type HostFault } from './sim-host.js';

/** Cluster shape: a fixed number of voters, or start with 1-3 and grow (up to 7) by membership changes. */
export type Shape = '3' | '5' | '7' | 'grow';
export type Intensity = 'calm' | 'normal' | 'harsh';

export interface SimOptions {
  readonly seed: number;
  /** Events in the chaos phase (healing and the liveness check come after). */
  readonly steps: number;
  /** Default: drawn from the seed. */
  readonly shape?: Shape | undefined;
  /** Default: drawn from the seed. */
  readonly intensity?: Intensity | undefined;
  readonly fault?: HostFault | undefined;
  /** Default true; the sanity test turns it off to see a core invariant catch a vote-forgetting host. */
  readonly checkVotes?: boolean | undefined;
  /**
   * How removed members stop. 'durableVoter' (default, sim-findings.md H1): when a voter whose state machine
   * durably holds the removal turns them away. 'etcd': 10 heartbeats after applying their own removal, or
   * when any member that applied the removal turns them away.
   */
  readonly removal?: 'durableVoter' | 'etcd' | undefined;
  /** Called with every trace line as it happens (replays); failures always carry the last lines. */
  readonly trace?: ((line: string) => void) | undefined;
}

export interface SimStats {
  steps: number;
  virtualMs: number;
  elections: number;
  commits: number;
  snapshots: number;
  confChanges: number;
  crashes: number;
  partitions: number;
  proposals: number;
  proposalsDropped: number;
  acknowledged: number;
  fsyncFailures: number;
  reads: number;
  readsServed: number;
  transfers: number;
  compactions: number;
  messages: number;
  messagesLost: number;
}

export interface SeedResult {
  readonly seed: number;
  readonly profile: string;
  readonly stats: SimStats;
  readonly violation?: {
    readonly invariant: Invariant;
    readonly detail: string;
    readonly step: number;
    readonly timeMs: number;
    readonly trace: readonly string[];
  };
}

/** The command that replays one seed with a full trace. */
export function replayCommand(o: Pick<SimOptions, 'seed' | 'steps' | 'shape' | 'intensity' | 'fault' | 'checkVotes' | 'removal'>): string {
  const parts = ['node dist/test/raft/sim-cli.js', `--seed ${o.seed}`, `--steps ${o.steps}`];
  if (o.shape !== undefined) parts.push(`--members ${o.shape}`);
  if (o.intensity !== undefined) parts.push(`--intensity ${o.intensity}`);
  if (o.fault !== undefined && o.fault !== 'none') parts.push(`--fault ${o.fault}`);
  if (o.checkVotes === false) parts.push('--no-vote-check');
  if (o.removal === 'etcd') parts.push('--removal etcd');
  parts.push('--trace');
  return parts.join(' ');
}

const TICK_MS = 100;
const ELECTION_TICKS = 10;
const TRACE_LINES = 50;
/** After healing, a proposal must commit within this much virtual time, and everyone catch up within as much again. */
const LIVENESS_MS = 40_000;
const MAX_MEMBERS = 7;
const LOCAL_TYPES: ReadonlySet<MessageType> = new Set(['hup', 'beat', 'checkQuorum', 'unreachable', 'snapStatus']);

interface Profile {
  readonly shape: Shape;
  readonly intensity: Intensity;
  readonly initialVoters: number;
  readonly targetVoters: number;
  readonly dropRate: number;
  readonly dupRate: number;
  readonly slowRate: number;
  readonly nemesisEveryMs: readonly [number, number];
  readonly clientEveryMs: readonly [number, number];
  readonly confWeight: number;
  /** Chance that a role change is followed within a few ms by a crash of some member (aims at elections). */
  readonly aimedCrashRate: number;
  /** Chance that an fsync fails (EIO): the member must stop, and is restarted. */
  readonly fsyncFailRate: number;
  readonly raft: Pick<RaftConfig, 'heartbeatTicks' | 'maxSizePerMsg' | 'maxInflightMsgs' | 'maxUncommittedEntriesBytes' | 'checkQuorum' | 'preVote'>;
}

function drawProfile(r: Rng, o: SimOptions): Profile {
  const shape = o.shape ?? r.weighted<Shape>([['3', 40], ['5', 35], ['7', 10], ['grow', 15]]);
  const intensity = o.intensity ?? r.weighted<Intensity>([['calm', 25], ['normal', 50], ['harsh', 25]]);
  const grow = shape === 'grow';
  const initialVoters = grow ? r.range(1, 3) : Number(shape);
  const targetVoters = grow ? r.pick([3, 5, 7]) : Number(shape);
  const harsh = intensity === 'harsh';
  const calm = intensity === 'calm';
  return {
    shape,
    intensity,
    initialVoters,
    targetVoters,
    dropRate: calm ? r.float() * 0.01 : harsh ? 0.05 + r.float() * 0.2 : r.float() * 0.06,
    dupRate: calm ? 0 : harsh ? r.float() * 0.08 : r.float() * 0.03,
    slowRate: calm ? r.float() * 0.02 : harsh ? r.float() * 0.2 : r.float() * 0.08,
    nemesisEveryMs: calm ? [2000, 8000] : harsh ? [200, 1200] : [600, 3000],
    clientEveryMs: r.pick([[5, 40], [20, 80], [50, 200]] as const),
    confWeight: grow ? 12 : r.pick([0, 2, 5]),
    aimedCrashRate: calm ? 0 : harsh ? r.pick([0.05, 0.2, 0.4]) : r.pick([0, 0.03, 0.1]),
    fsyncFailRate: calm ? 0 : harsh ? r.pick([0.002, 0.01]) : r.pick([0, 0, 0.001]),
    raft: {
      heartbeatTicks: r.pick([1, 1, 2, 3]),
      maxSizePerMsg: r.pick([1, 64, 1024, 1 << 20]),
      maxInflightMsgs: r.pick([1, 4, 256]),
      maxUncommittedEntriesBytes: r.pick([256, 1 << 20, 1 << 30]),
      checkQuorum: r.chance(0.85),
      preVote: r.chance(0.85),
    },
  };
}

function describeProfile(p: Profile): string {
  const voters = p.shape === 'grow' ? `grow ${p.initialVoters}->${p.targetVoters}` : `${p.shape} members`;
  const flags = `${p.raft.preVote ? '' : 'no-'}prevote ${p.raft.checkQuorum ? '' : 'no-'}checkquorum`;
  return `${voters}, ${p.intensity} (drop ${p.dropRate.toFixed(3)} dup ${p.dupRate.toFixed(3)} slow ${p.slowRate.toFixed(3)}), ${flags}, inflight ${p.raft.maxInflightMsgs}, msg ${p.raft.maxSizePerMsg} B`;
}

type SimEvent =
  | { readonly kind: 'timer'; readonly id: NodeId; readonly inc: number; readonly t: { cancelled: boolean }; readonly fn: () => void }
  | { readonly kind: 'deliver'; readonly m: Message; readonly toInc: number; readonly fromInc: number; readonly snap: SnapData | undefined; readonly dup: boolean }
  | { readonly kind: 'snapStatus'; readonly id: NodeId; readonly inc: number; readonly to: NodeId; readonly ok: boolean }
  | { readonly kind: 'unreachable'; readonly id: NodeId; readonly inc: number; readonly to: NodeId }
  | { readonly kind: 'fsync'; readonly id: NodeId; readonly inc: number }
  | { readonly kind: 'fatal'; readonly id: NodeId; readonly inc: number }
  | { readonly kind: 'smFlush'; readonly id: NodeId; readonly inc: number }
  | { readonly kind: 'start'; readonly id: NodeId }
  | { readonly kind: 'crash'; readonly id: NodeId; readonly restartMs: number | undefined }
  | { readonly kind: 'stop'; readonly id: NodeId }
  | { readonly kind: 'client' }
  | { readonly kind: 'nemesis' };

function fmtEvent(ev: SimEvent): string {
  switch (ev.kind) {
    case 'deliver':
      return `deliver ${fmtMsg(ev.m)}${ev.dup ? ' (duplicate)' : ''}`;
    case 'timer':
    case 'smFlush':
    case 'start':
    case 'crash':
    case 'stop':
      return `${ev.kind} ${nid(ev.id)}`;
    case 'fsync':
      return `fsync done ${nid(ev.id)}`;
    case 'fatal':
      return `${nid(ev.id)} exits (fail-stop)`;
    case 'snapStatus':
      return `${nid(ev.id)} snapshot to ${nid(ev.to)} ${ev.ok ? 'delivered' : 'failed'}`;
    case 'unreachable':
      return `${nid(ev.id)} finds ${nid(ev.to)} unreachable`;
    default:
      return ev.kind;
  }
}

function bytes(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

export const emptyStats = (): SimStats => ({
  steps: 0,
  virtualMs: 0,
  elections: 0,
  commits: 0,
  snapshots: 0,
  confChanges: 0,
  crashes: 0,
  partitions: 0,
  proposals: 0,
  proposalsDropped: 0,
  acknowledged: 0,
  fsyncFailures: 0,
  reads: 0,
  readsServed: 0,
  transfers: 0,
  compactions: 0,
  messages: 0,
  messagesLost: 0,
});

/** Runs one seed to the end (or the first violation). Never throws for a violation: it is in the result. */
export async function runSeed(o: SimOptions): Promise<SeedResult> {
  const sim = new Simulation(o);
  try {
    await sim.run();
    return { seed: o.seed, profile: sim.profileText, stats: sim.collectStats() };
  } catch (err) {
    const v = err instanceof SimViolation ? err : new SimViolation('raft error', err instanceof Error ? (err.stack ?? err.message) : String(err));
    return {
      seed: o.seed,
      profile: sim.profileText,
      stats: sim.collectStats(),
      violation: { invariant: v.invariant, detail: v.detail, step: sim.step, timeMs: sim.now, trace: sim.traceLines() },
    };
  }
}

class Simulation implements HostEnv {
  readonly rng: Rng;
  readonly checker: Checker;
  readonly fault: HostFault;
  private readonly profile: Profile;
  readonly profileText: string;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly ring: TraceRing;
  private readonly hosts = new Map<NodeId, MemberHost>();
  private readonly blocked = new Set<string>();
  private readonly stats = emptyStats();
  private readonly confSeen = new Set<string>();
  step = 0;
  now = 0;
  private nextId = 1n;
  private counter = 0;
  private phase: 'chaos' | 'heal' = 'chaos';
  private dropRate: number;
  private dupRate: number;
  private slowRate: number;
  private ccPending: { readonly ctx: string; readonly at: number } | undefined;
  private readonly live = { payloads: [] as string[], reads: [] as string[], index: 0, healAt: 0, committedAt: 0, clientTicks: 0, readServed: false };
  /** The first violation seen inside the members' asynchronous work (thrown once the event's work settled). */
  private violation: SimViolation | undefined;

  constructor(private readonly o: SimOptions) {
    this.rng = new Rng(o.seed);
    this.profile = drawProfile(new Rng(o.seed ^ 0x5eed5eed), o);
    this.profileText = describeProfile(this.profile);
    this.checker = new Checker({ checkVotes: o.checkVotes ?? true });
    this.fault = o.fault ?? 'none';
    this.ring = new TraceRing(TRACE_LINES, o.trace);
    this.dropRate = this.profile.dropRate;
    this.dupRate = this.profile.dupRate;
    this.slowRate = this.profile.slowRate;
  }

  traceLines(): string[] {
    return this.ring.dump();
  }

  trace(line: () => string): void {
    const step = this.step;
    const t = this.now;
    this.ring.add(() => `#${step} ${t}ms ${line()}`);
  }

  collectStats(): SimStats {
    const s = { ...this.stats };
    s.steps = this.step;
    s.virtualMs = this.now;
    s.elections = this.checker.elections;
    s.commits = this.checker.knownCommit;
    s.readsServed = this.checker.readsServed;
    s.confChanges = this.confSeen.size;
    return s;
  }

  // ---- the run ----

  async run(): Promise<void> {
    this.trace(() => `seed ${this.o.seed}: ${this.profileText}${this.fault !== 'none' ? `, FAULTY HOST ${this.fault}` : ''}`);
    this.bootstrap();
    this.schedule(0, { kind: 'client' });
    this.schedule(this.rng.range(...this.profile.nemesisEveryMs), { kind: 'nemesis' });
    while (this.step < this.o.steps) await this.processOne();
    this.heal();
    const deadline = this.now + 2 * LIVENESS_MS;
    while (!this.liveDone()) {
      if (this.live.index === 0 && this.now > this.live.healAt + LIVENESS_MS) {
        this.checker.fail('liveness', `no proposal committed within ${LIVENESS_MS} ms of healing (${this.describeMembers()})`);
      }
      if (this.now > deadline) this.checker.fail('liveness', `members did not catch up with index ${this.live.index} within ${LIVENESS_MS} ms of its commit (${this.describeMembers()})`);
      await this.processOne();
    }
    this.checkAcknowledged();
  }

  /** Every acknowledged proposal is applied, where it was acknowledged, on every member that survives. */
  private checkAcknowledged(): void {
    const conf = this.clusterConf();
    for (const id of [...conf.voters, ...conf.learners]) {
      const h = this.hosts.get(id);
      if (h === undefined) continue;
      for (const a of this.checker.acknowledged) {
        const k = h.keyAt(a.index);
        if (k !== a.payload) this.checker.fail('acknowledged write lost', `${a.payload} was acknowledged at index ${a.index}, but ${nid(id)} holds ${k ?? 'nothing'} there (applied ${h.applied})`);
      }
    }
  }

  /** Records a violation found inside a member's asynchronous work (the first one wins). */
  private record(err: unknown): void {
    const v = violationIn(err) ?? new SimViolation('raft error', err instanceof Error ? (err.stack ?? err.message) : String(err));
    this.violation ??= v;
  }

  private bootstrap(): void {
    const voters: NodeId[] = [];
    for (let k = 0; k < this.profile.initialVoters; k++) voters.push(this.nextId++);
    // etcd's bootstrap: every founder's log starts with one addNode entry per founder, at term 1, committed.
    const boot: Entry[] = voters.map((v, k) => ({
      index: k + 1,
      term: 1,
      type: 'confChange' as const,
      data: encodeConfChange({ type: 'addNode', nodeId: v, context: bytes(`boot-${v}`) }),
    }));
    for (const v of voters) {
      const h = MemberHost.founder(v, this, voters, boot);
      this.hosts.set(v, h);
      this.checker.onAppend(v, boot, 0);
      this.startHost(h);
    }
  }

  private startHost(h: MemberHost): void {
    if (h.up || h.stopped) return;
    h.start();
  }

  private async processOne(): Promise<void> {
    const next = this.queue.pop();
    if (next === undefined) throw new Error('simulation: event queue ran dry');
    this.step++;
    this.now = next.time;
    const ev = next.item;
    if (ev.kind !== 'timer' || this.o.trace !== undefined) this.trace(() => fmtEvent(ev));
    this.dispatch(ev);
    // Every promise the event settled runs its continuations now (the driver's pipeline), in a fixed order.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.violation !== undefined) throw this.violation;
    if ((this.step & 15) === 0) this.sampleLogs();
  }

  private schedule(delayMs: number, ev: SimEvent): void {
    this.queue.push(this.now + delayMs, ev);
  }

  private host(id: NodeId, inc?: number): MemberHost | undefined {
    const h = this.hosts.get(id);
    if (h === undefined || !h.up) return undefined;
    if (inc !== undefined && h.inc !== inc) return undefined;
    return h;
  }

  private dispatch(ev: SimEvent): void {
    switch (ev.kind) {
      case 'timer':
        if (!ev.t.cancelled && this.host(ev.id, ev.inc) !== undefined) ev.fn();
        return;
      case 'deliver':
        this.deliver(ev.m, ev.toInc, ev.fromInc, ev.snap);
        return;
      case 'snapStatus':
        this.host(ev.id, ev.inc)?.driver?.reportSnapshot(ev.to, ev.ok);
        return;
      case 'unreachable':
        this.host(ev.id, ev.inc)?.driver?.reportUnreachable(ev.to);
        return;
      case 'fsync':
        this.host(ev.id, ev.inc)?.fsyncDone(ev.inc);
        return;
      case 'fatal': {
        // The process exits; its supervisor restarts it.
        const h = this.host(ev.id, ev.inc);
        if (h !== undefined) this.crash(h, this.rng.range(50, 2000));
        return;
      }
      case 'smFlush':
        this.host(ev.id, ev.inc)?.smFlushed(ev.inc);
        return;
      case 'start': {
        const h = this.hosts.get(ev.id);
        if (h !== undefined) this.startHost(h);
        return;
      }
      case 'stop':
        this.hosts.get(ev.id)?.stop('applied its own removal 10 heartbeats ago');
        return;
      case 'crash': {
        const h = this.host(ev.id);
        if (h !== undefined && this.phase === 'chaos') this.crash(h, ev.restartMs);
        return;
      }
      case 'client':
        if (this.phase === 'chaos') this.clientAction();
        else this.liveClient();
        this.schedule(this.phase === 'chaos' ? this.rng.range(...this.profile.clientEveryMs) : TICK_MS, { kind: 'client' });
        return;
      case 'nemesis':
        if (this.phase !== 'chaos') return;
        this.nemesisAction();
        this.schedule(this.rng.range(...this.profile.nemesisEveryMs), { kind: 'nemesis' });
        return;
    }
  }

  private sampleLogs(): void {
    const ups = this.upHosts();
    if (ups.length < 2) return;
    const a = this.rng.pick(ups);
    const b = this.rng.pick(ups);
    if (a === b || a.storage === undefined || b.storage === undefined) return;
    this.checker.compareLogs(a.id, a.storage, b.id, b.storage, (n) => this.rng.int(n));
  }

  // ---- HostEnv ----

  raftConfig(id: NodeId, applied: number): RaftConfig {
    const trace = this.o.trace;
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
      this.trace(() => `${nid(id)} raft ${level}: ${msg}${fields === undefined ? '' : ` ${JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`}`);
    };
    return {
      id,
      electionTicks: ELECTION_TICKS,
      applied,
      randomInt: (n: number) => this.rng.int(n),
      ...this.profile.raft,
      logger: trace === undefined ? undefined : { debug: log('debug'), info: log('info'), warn: log('warn') },
    };
  }

  send(from: MemberHost, m0: Message): void {
    let m = m0;
    this.stats.messages++;
    if (m.to === from.id) this.checker.fail('host contract', `${nid(from.id)} sends ${m.type} to itself`);
    if (LOCAL_TYPES.has(m.type)) this.checker.fail('host contract', `${nid(from.id)} sends local message ${m.type}`);
    let snap: SnapData | undefined;
    if (m.type === 'snap') {
      if (m.snapshot === undefined) this.checker.fail('host contract', `${nid(from.id)} sends snap without a snapshot`);
      // The real host streams its current state machine, which may be newer than raft's snapshot.
      snap = from.snapshotData();
      if (snap.meta.index < m.snapshot.index) this.checker.fail('host contract', `${nid(from.id)} sends snapshot ${m.snapshot.index} but has applied only ${snap.meta.index}`);
      m = { ...m, snapshot: snap.meta };
    }
    const target = this.hosts.get(m.to);
    const lost = target === undefined || !target.up || this.isBlocked(m.from, m.to);
    if (lost || this.rng.chance(this.dropRate)) {
      this.stats.messagesLost++;
      this.trace(() => `lost ${fmtMsg(m)}`);
      if (snap !== undefined) this.schedule(this.rng.range(100, 1000), { kind: 'snapStatus', id: from.id, inc: from.inc, to: m.to, ok: false });
      else if (lost && this.rng.chance(0.3)) this.schedule(this.rng.range(10, 200), { kind: 'unreachable', id: from.id, inc: from.inc, to: m.to });
      return;
    }
    // Aim a crash (and a quick restart) just after an acknowledgement: where a host that acks too early, or
    // forgets what it acked, loses what it promised.
    // Likewise a leader that just sent entries it may not have persisted yet (thesis 10.2.1).
    const acked = (m.type === 'voteResp' || m.type === 'appResp') && !m.reject;
    const early = m.type === 'app' && m.entries.length > 0 && from.hasUnsyncedWrites();
    if ((acked || early) && this.phase === 'chaos' && this.rng.chance(this.profile.aimedCrashRate / 4)) {
      this.schedule(this.rng.range(0, acked ? 15 : 5), { kind: 'crash', id: from.id, restartMs: this.rng.range(5, 150) });
    }
    const base = { kind: 'deliver' as const, m, toInc: target.inc, fromInc: from.inc, snap };
    this.schedule(snap !== undefined ? this.rng.range(20, 300) : this.netDelay(), { ...base, dup: false });
    // A forwarded proposal is never duplicated: raft does not deduplicate them and the TCP transport cannot duplicate.
    if (snap === undefined && m.type !== 'prop' && this.rng.chance(this.dupRate)) this.schedule(this.netDelay(), { ...base, dup: true });
  }

  private netDelay(): number {
    return this.rng.chance(this.slowRate) ? this.rng.range(50, 600) : this.rng.range(1, 10);
  }

  private deliver(m: Message, toInc: number, fromInc: number, snap: SnapData | undefined): void {
    const target = this.host(m.to, toInc);
    if (target === undefined || this.isBlocked(m.from, m.to)) {
      this.stats.messagesLost++;
      if (snap !== undefined) this.schedule(this.rng.range(10, 500), { kind: 'snapStatus', id: m.from, inc: fromInc, to: m.to, ok: false });
      return;
    }
    if ((this.o.removal === 'etcd' ? target.removedPeers : target.refusedPeers).has(m.from)) {
      // As etcd's transport does: a member refuses a removed peer, which then stops (see refusedPeers).
      this.hosts.get(m.from)?.stop(`${nid(m.to)} says it was removed`);
      return;
    }
    target.receive(m, snap);
    if (snap !== undefined) this.schedule(0, { kind: 'snapStatus', id: m.from, inc: fromInc, to: m.to, ok: true });
  }

  scheduleFsync(host: MemberHost): void {
    const ms = this.rng.chance(0.05) ? this.rng.range(30, 200) : this.rng.range(1, 12);
    this.schedule(ms, { kind: 'fsync', id: host.id, inc: host.inc });
  }

  fsyncFails(): boolean {
    const fails = this.phase === 'chaos' && this.rng.chance(this.profile.fsyncFailRate);
    if (fails) this.stats.fsyncFailures++;
    return fails;
  }

  timer(host: MemberHost, ms: number, fn: () => void): { cancelled: boolean } {
    const t = { cancelled: false };
    this.schedule(ms, { kind: 'timer', id: host.id, inc: host.inc, t, fn });
    return t;
  }

  nowMs(): number {
    return this.now;
  }

  onFatal(host: MemberHost, err: unknown): void {
    const v = violationIn(err);
    if (v !== undefined) {
      this.record(v);
      return;
    }
    const cause = fatalCause(err);
    if (!(cause instanceof StorageFault)) {
      this.record(new SimViolation('raft error', `${nid(host.id)} stopped on a bug: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
      return;
    }
    this.trace(() => `${nid(host.id)} stops on a storage fault: ${cause.message}`);
    this.schedule(0, { kind: 'fatal', id: host.id, inc: host.inc });
  }

  onAck(host: MemberHost, payload: string): void {
    try {
      this.stats.acknowledged++;
      const index = this.checker.payloadIndex(payload);
      if (index === undefined) this.checker.fail('host contract', `${nid(host.id)} acknowledged ${payload}, which no member applied`);
      const holders = [...this.hosts.values()].filter((h) => h.durablyHolds(index, payload)).map((h) => h.id);
      this.checker.onAck(host.id, payload, index, holders, host.confsUpTo(index));
    } catch (err) {
      this.record(err);
    }
  }

  onRefused(host: MemberHost, payload: string, err: unknown): void {
    this.stats.proposalsDropped++;
    this.trace(() => `${nid(host.id)} refuses ${payload}: ${err instanceof Error ? err.message : String(err)}`);
  }

  scheduleSmFlush(host: MemberHost): void {
    this.schedule(this.rng.range(5, 800), { kind: 'smFlush', id: host.id, inc: host.inc });
  }

  onSnapshotInstalled(_host: MemberHost): void {
    this.stats.snapshots++;
  }

  onRoleChange(host: MemberHost): void {
    if (this.phase !== 'chaos' || !this.rng.chance(this.profile.aimedCrashRate)) return;
    const others = this.upHosts();
    const victim = this.rng.chance(0.3) ? host : this.rng.pick(others);
    this.schedule(this.rng.range(0, 30), { kind: 'crash', id: victim.id, restartMs: this.restartDelay() });
  }

  private restartDelay(): number | undefined {
    const r = this.rng.float();
    if (r < 0.3) return this.rng.range(5, 200); // a power blip
    if (r < 0.85) return this.rng.range(200, 4000);
    return undefined; // down until healing
  }

  private crash(victim: MemberHost, restartMs: number | undefined): void {
    this.stats.crashes++;
    victim.crash();
    if (restartMs !== undefined) this.schedule(restartMs, { kind: 'start', id: victim.id });
  }

  onConfApplied(host: MemberHost, cc: ConfChange, _index: number, refused: boolean): void {
    const ctx = Buffer.from(cc.context).toString('latin1');
    if (this.ccPending?.ctx === ctx) this.ccPending = undefined;
    if (refused) return;
    this.confSeen.add(ctx);
    if (this.o.removal === 'etcd' && cc.type === 'removeNode' && cc.nodeId === host.id) {
      this.schedule(10 * this.profile.raft.heartbeatTicks * TICK_MS, { kind: 'stop', id: host.id });
    }
    if ((cc.type === 'addNode' || cc.type === 'addLearner') && !this.hosts.has(cc.nodeId)) {
      // The operator starts the new member's process once the cluster has added it.
      this.hosts.set(cc.nodeId, MemberHost.joiner(cc.nodeId, this));
      this.schedule(this.rng.range(10, 1000), { kind: 'start', id: cc.nodeId });
    }
  }

  // ---- cluster views ----

  private upHosts(): MemberHost[] {
    const out: MemberHost[] = [];
    for (const h of this.hosts.values()) if (h.up) out.push(h);
    return out;
  }

  /** The membership as the most advanced state machine knows it. */
  private clusterConf(): ConfState {
    let best: MemberHost | undefined;
    for (const h of this.hosts.values()) if (best === undefined || h.applied > best.applied) best = h;
    return best === undefined ? { voters: [], learners: [] } : best.confState();
  }

  private leader(): MemberHost | undefined {
    let best: MemberHost | undefined;
    for (const h of this.hosts.values()) if (h.up && h.role === 'leader' && (best === undefined || h.term > best.term)) best = h;
    return best;
  }

  private describeMembers(): string {
    return [...this.hosts.values()]
      .map((h) => `${nid(h.id)}:${h.stopped ? 'stopped' : h.up ? `${h.role} t${h.term} applied ${h.applied}` : 'down'}`)
      .join(', ');
  }

  private isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.size > 0 && this.blocked.has(`${from}>${to}`);
  }

  // ---- clients ----

  private clientAction(): void {
    const ups = this.upHosts();
    if (ups.length === 0) return;
    const what = this.rng.weighted([
      ['propose', 60],
      ['read', 10],
      // Mostly one membership change at a time, as the host serialises them; sometimes not, so that raft's
      // own guard (one unapplied conf change at a time) is exercised too.
      ['conf', this.ccPending === undefined || this.now - this.ccPending.at > 5000 ? this.profile.confWeight : this.profile.confWeight / 4],
      ['transfer', 2],
      ['compact', 6],
      ['campaign', 1],
    ] as const);
    const h = this.rng.pick(ups);
    switch (what) {
      case 'propose':
        this.propose(h, `p${++this.counter}`);
        return;
      case 'read':
        this.read(h, `r${++this.counter}`);
        return;
      case 'conf':
        this.confChange(h);
        return;
      case 'transfer':
        this.transfer();
        return;
      case 'compact':
        this.stats.compactions++;
        h.compact(this.rng.pick([0, 1, 3, 10, 50]));
        return;
      case 'campaign':
        this.trace(() => `client: ${nid(h.id)} campaign()`);
        h.poke('campaign()', (n) => n.campaign());
        return;
    }
  }

  private propose(h: MemberHost, payload: string): void {
    this.stats.proposals++;
    this.trace(() => `client: propose ${payload} to ${nid(h.id)}`);
    h.propose(payload);
  }

  private read(h: MemberHost, ctx: string): void {
    this.stats.reads++;
    this.checker.onReadRequest(ctx, h.id);
    this.trace(() => `client: readIndex ${ctx} on ${nid(h.id)} (commit known ${this.checker.knownCommit})`);
    h.poke('readIndex()', (n) => n.readIndex(bytes(ctx)));
  }

  private transfer(): void {
    const l = this.leader();
    if (l === undefined) return;
    const voters = l.confState().voters.filter((v) => v !== l.id);
    if (voters.length === 0) return;
    const to = this.rng.pick(voters);
    this.stats.transfers++;
    this.trace(() => `client: ${nid(l.id)} transferLeader(${nid(to)})`);
    l.poke('transferLeader()', (n) => n.transferLeader(to));
  }

  /** One membership change at a time, as the real host serialises them. */
  private confChange(h: MemberHost): void {
    const cs = this.clusterConf();
    const total = cs.voters.length + cs.learners.length;
    const grow = cs.voters.length < this.profile.targetVoters;
    const shrink = cs.voters.length > this.profile.targetVoters;
    const type = this.rng.weighted<ConfChangeType | 'promote' | 'removeLearner'>([
      ['addLearner', total < MAX_MEMBERS ? 3 : 0],
      ['addNode', total < MAX_MEMBERS ? (grow ? 4 : 1) : 0],
      ['promote', cs.learners.length > 0 ? (grow ? 6 : 2) : 0],
      // Never 2 -> 1 voters: that can deadlock for good under etcd's apply-time membership (sim-findings.md H2).
      ['removeNode', cs.voters.length > 2 ? (shrink ? 6 : 2) : 0],
      ['removeLearner', cs.learners.length > 0 ? 2 : 0],
      ['updateNode', 1],
    ]);
    let cc: ConfChange;
    const context = bytes(`cc${++this.counter}`);
    switch (type) {
      case 'addLearner':
      case 'addNode':
        cc = { type, nodeId: this.nextId++, context };
        break;
      case 'promote':
        cc = { type: 'addNode', nodeId: this.rng.pick(cs.learners), context };
        break;
      case 'removeLearner':
        cc = { type: 'removeNode', nodeId: this.rng.pick(cs.learners), context };
        break;
      case 'removeNode':
      case 'updateNode':
        cc = { type, nodeId: this.rng.pick(cs.voters), context };
        break;
    }
    const ok = h.poke('proposeConfChange()', (n) => n.proposeConfChange(cc));
    this.trace(() => `client: ${nid(h.id)} proposeConfChange(${cc.type} ${nid(cc.nodeId)}) cc${this.counter}${ok ? '' : ' (dropped)'}`);
    if (ok) this.ccPending = { ctx: Buffer.from(context).toString('latin1'), at: this.now };
  }

  // ---- faults ----

  private nemesisAction(): void {
    const what = this.rng.weighted([
      ['crash', 30],
      ['crashLeader', 15],
      ['split', 14],
      ['isolateLeader', 10],
      ['oneWay', 8],
      ['heal', 25],
      ['restartAll', 6],
    ] as const);
    const members = [...this.hosts.values()].filter((h) => !h.stopped);
    switch (what) {
      case 'crash':
      case 'crashLeader': {
        const ups = members.filter((h) => h.up);
        // Prefer a member with writes in flight: that is where lost writes matter.
        const unsynced = ups.filter((h) => h.hasUnsyncedWrites());
        const pool = unsynced.length > 0 && this.rng.chance(0.7) ? unsynced : ups;
        const victim = what === 'crashLeader' ? this.leader() : pool.length > 0 ? this.rng.pick(pool) : undefined;
        if (victim !== undefined) this.crash(victim, this.restartDelay());
        return;
      }
      case 'split': {
        const ids = members.map((h) => h.id);
        if (ids.length < 2) return;
        const side = new Set(ids.filter(() => this.rng.chance(0.5)));
        if (side.size === 0 || side.size === ids.length) side.add(this.rng.pick(ids));
        for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
        this.stats.partitions++;
        this.trace(() => `nemesis: partition {${[...side].map(nid).join(',')}} | rest`);
        return;
      }
      case 'isolateLeader': {
        const l = this.leader();
        if (l === undefined) return;
        for (const h of members) {
          if (h === l) continue;
          this.blocked.add(`${l.id}>${h.id}`);
          this.blocked.add(`${h.id}>${l.id}`);
        }
        this.stats.partitions++;
        this.trace(() => `nemesis: isolate leader ${nid(l.id)}`);
        return;
      }
      case 'oneWay': {
        if (members.length < 2) return;
        const a = this.rng.pick(members);
        const b = this.rng.pick(members);
        if (a === b) return;
        this.blocked.add(`${a.id}>${b.id}`);
        this.stats.partitions++;
        this.trace(() => `nemesis: cut link ${nid(a.id)} -> ${nid(b.id)}`);
        return;
      }
      case 'heal':
        if (this.blocked.size === 0) return;
        this.blocked.clear();
        this.trace(() => 'nemesis: heal the network');
        return;
      case 'restartAll':
        for (const h of members) if (!h.up) this.startHost(h);
        return;
    }
  }

  // ---- healing and liveness ----

  private heal(): void {
    this.phase = 'heal';
    this.blocked.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.slowRate = 0;
    this.live.healAt = this.now;
    this.trace(() => `HEAL: network perfect, every member up; known commit ${this.checker.knownCommit}`);
    for (const h of this.hosts.values()) if (!h.up && !h.stopped) this.startHost(h);
  }

  private liveClient(): void {
    this.live.clientTicks++;
    for (const h of this.hosts.values()) if (!h.up && !h.stopped) this.startHost(h);
    if (this.live.index === 0) {
      for (const p of this.live.payloads) {
        const at = this.checker.payloadIndex(p);
        if (at !== undefined) {
          this.live.index = at;
          this.live.committedAt = this.now;
          this.trace(() => `LIVE: ${p} committed at ${at}`);
        }
      }
    }
    const conf = this.clusterConf();
    const members = [...conf.voters, ...conf.learners].map((id) => this.hosts.get(id)).filter((h): h is MemberHost => h?.up === true);
    if (members.length === 0) return;
    if (this.live.index === 0) {
      if (this.live.clientTicks % 3 === 1) {
        const p = `live${++this.counter}`;
        this.live.payloads.push(p);
        this.propose(this.rng.pick(members), p);
      }
      return;
    }
    if (!this.live.readServed) {
      this.live.readServed = this.live.reads.some((r) => this.checker.isServed(r));
      if (!this.live.readServed && this.live.clientTicks % 5 === 0) {
        const r = `liveread${++this.counter}`;
        this.live.reads.push(r);
        this.read(this.rng.pick(members), r);
      }
    }
  }

  private liveDone(): boolean {
    if (this.live.index === 0 || !this.live.readServed) return false;
    let upTo = this.live.index;
    for (const a of this.checker.acknowledged) upTo = Math.max(upTo, a.index);
    const conf = this.clusterConf();
    for (const id of [...conf.voters, ...conf.learners]) {
      const h = this.hosts.get(id);
      if (h === undefined || !h.up || h.applied < upTo) return false;
    }
    return true;
  }
}

/** The simulation's own violation inside an error (as thrown, or as the cause the driver stopped with). */
function violationIn(err: unknown): SimViolation | undefined {
  for (let e = err, depth = 0; e !== undefined && depth < 5; depth++) {
    if (e instanceof SimViolation) return e;
    e = e instanceof Error ? e.cause : undefined;
  }
  return undefined;
}
