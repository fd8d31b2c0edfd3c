// One simulated member: the REAL Raft driver (server/node/driver.ts, with its pipelining: up to
// PIPELINE_WRITES_MAX WAL writes in flight, raft advanced before local durability) and the real
// proposal pipeline (server/node/proposals.ts), over simulated I/O:
// - the WAL: a durable part (what was fsynced) and the writes issued since, group-committed by one
//   fsync at a time with the disk's latency; a crash keeps a random prefix of the unsynced writes; an
//   fsync may fail (EIO), losing a random suffix of them, after which every write fails (the driver
//   must stop: the simulation restarts the member as the process supervisor would);
// - the state machine: the applied sequence of entries, its applied index and membership, committed
//   without fsync (like LMDB in the real member), so its durable point lags and a crash rolls it back
//   to one of the apply batches since the last flush; the WAL keeps every entry after that point;
// - a received snapshot is installed with its WAL marker: once the marker is durable, so is the
//   snapshot (the real member renames the fsynced file over the database, and a restart finishing a
//   half-done install does the same);
// - the network and the clock come from the simulation around (HostEnv).
// Restart = MemoryStorage(snapshot = the state machine's durable applied index/term/membership, the
// durable hard state with commit raised to that index, the durable WAL entries after it) and
// RaftConfig.applied = that index, as node/recovery.ts.
import {
  MemoryStorage,
  NONE,
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type LogStorage,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type Ready,
  type Role,
  type SnapshotMeta,
} from '../../server/raft/index.js';
import { Driver, type DriverHost, type PendingWrite } from '../../server/node/driver.js';
import { Proposals } from '../../server/node/proposals.js';
import type { Clock } from '../../server/node/clock.js';
import { type Checker, SimViolation } from './sim-check.js';
import { type Rng, entryKey, fmtConf, fmtHs, fmtReady, nid } from './sim-core.js';

/**
 * Deliberately broken members, to prove the checks can fail: a host that forgets its vote on restart,
 * and three broken drivers (apply before local durability; advance past a lost write; acknowledge
 * before a quorum holds the entry durably, by sending every message before its write is durable).
 */
export type HostFault = 'none' | 'forgetVote' | 'applyBeforeDurable' | 'advancePastLostWrite' | 'ackBeforeQuorum';

export const HOST_FAULTS: readonly HostFault[] = ['none', 'forgetVote', 'applyBeforeDurable', 'advancePastLostWrite', 'ackBeforeQuorum'];

export interface SnapData {
  readonly meta: SnapshotMeta;
  readonly keys: readonly string[];
  readonly terms: readonly number[];
  readonly conf: readonly ConfPoint[];
}

interface ConfPoint {
  readonly index: number;
  readonly cs: ConfState;
}

type WriteOp = { readonly kind: 'entry'; readonly e: Entry } | { readonly kind: 'hs'; readonly hs: HardState } | { readonly kind: 'snap'; readonly data: SnapData };

/** A WAL write waiting for its fsync: it is durable once the ops before `upTo` are. */
interface SimWrite {
  upTo: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** What a host asks of the simulation around it. */
export interface HostEnv {
  readonly rng: Rng;
  readonly checker: Checker;
  readonly fault: HostFault;
  nowMs(): number;
  trace(line: () => string): void;
  raftConfig(id: NodeId, applied: number): RaftConfig;
  /** Send one message (the environment attaches snapshot data to 'snap' messages). */
  send(from: MemberHost, m: Message): void;
  /** Call host.fsyncDone(inc) after the disk's delay. */
  scheduleFsync(host: MemberHost): void;
  /** Whether the fsync that just finished failed (EIO). */
  fsyncFails(): boolean;
  /** Call host.smFlushed(inc) after a while (the OS writes back the state machine's pages). */
  scheduleSmFlush(host: MemberHost): void;
  /** Calls fn after ms of virtual time unless cancelled or the host's incarnation ended. */
  timer(host: MemberHost, ms: number, fn: () => void): { cancelled: boolean };
  /** A membership change was applied (`refused`: as a no-op, the membership layer refused it). */
  onConfApplied(host: MemberHost, cc: ConfChange, index: number, refused: boolean): void;
  onSnapshotInstalled(host: MemberHost): void;
  /** The member's role changed (the simulation may aim a crash at the election that follows). */
  onRoleChange(host: MemberHost): void;
  /** The driver stopped the member (fail-stop) with this cause. */
  onFatal(host: MemberHost, err: unknown): void;
  /** A client proposal made on `host` was acknowledged (applied there). */
  onAck(host: MemberHost, payload: string): void;
  /** A client proposal was refused (dropped by raft, timed out). */
  onRefused(host: MemberHost, payload: string, err: unknown): void;
}

/** raft's node with every Ready shown to the host first (the host-contract checks). */
class ObservedRawNode extends RawNode {
  constructor(cfg: RaftConfig, storage: LogStorage, private readonly observe: (rd: Ready) => void) {
    super(cfg, storage);
  }

  override ready(): Ready {
    const rd = super.ready();
    this.observe(rd);
    return rd;
  }
}

/** apply before the entries are durable here. */
class ApplyBeforeDurableDriver extends Driver {
  protected override applicableIndex(): number {
    return Number.MAX_SAFE_INTEGER;
  }
}

/** Treats a failed WAL write as done. */
class AdvancePastLostWriteDriver extends Driver {
  protected override writeFailed(w: PendingWrite): void {
    this.writeDone(w);
  }
}

/** Sends every message at once, before the write that makes what it says durable. */
class AckBeforeQuorumDriver extends Driver {
  protected override route(msgs: readonly Message[]): void {
    this.send(msgs);
  }
}

const EMPTY_CONF: ConfState = { voters: [], learners: [] };
const REQUEST_TIMEOUT_MS = 7000;
const ELECTION_MS = 1000;

/** The proposal id a client payload carries (`p12`, `live13`: 12, 13). */
export function payloadId(payload: string): bigint | undefined {
  const m = /^[a-z]+(\d+)$/.exec(payload);
  return m === null ? undefined : BigInt(m[1] as string);
}

export class MemberHost {
  /** Bumped by every crash: events addressed to an older incarnation are void. */
  inc = 0;
  up = false;
  /** Removed from the cluster and stopped for good. */
  stopped = false;
  driver: Driver | undefined;
  storage: MemoryStorage | undefined;
  private proposals: Proposals<string> | undefined;

  // WAL: durable part, the ops issued since the last fsync, and the writes waiting for an fsync.
  private walBase = 0;
  private walEntries: Entry[] = [];
  private walHs: HardState;
  private pending: WriteOp[] = [];
  private waiting: SimWrite[] = [];
  /** Ops the fsync in flight covers (undefined: none in flight). */
  private syncing: number | undefined = undefined;
  /** An fsync failed: every write fails until the process restarts. */
  private walBroken = false;
  private writesIssued = 0;
  private writesDurable = 0;

  // State machine (index i lives at keys[i-1], terms[i-1]); durable up to smDurable.
  private keys: string[] = [];
  private terms: number[] = [];
  private conf: ConfPoint[];
  applied = 0;
  private smDurable = 0;
  private smPending: number[] = [];
  private smFlushScheduled = false;
  private installing = false;

  // What the Readys said (host-contract checks).
  private lastHs: HardState = { term: 0, vote: 0n, commit: 0 };
  private lastRole: Role = 'follower';
  private leaderCheck = false;
  /** A leader's commit index counts once the writes of its Ready are durable here. */
  private leaderCommits: { readonly term: number; readonly from: number; readonly to: number; readonly afterWrites: number }[] = [];

  /**
   * Removed members this host turns away (they then stop): only once the removal is durable in its state
   * machine and only while it is a voter itself. A learner, or a member whose state machine may still
   * roll back past the removal, must not: the voters that have not applied the removal yet may still
   * need the removed member's vote to commit it (found by the simulation, see sim-findings.md).
   */
  refusedPeers = new Set<NodeId>();
  /** Every member this host's state machine has applied the removal of (etcd's transport refuses these). */
  removedPeers = new Set<NodeId>();

  private readonly receivedSnaps = new Map<number, SnapData>();
  snapshotsInstalled = 0;

  private constructor(readonly id: NodeId, private readonly env: HostEnv, conf0: ConfState, boot: readonly Entry[], hs: HardState) {
    this.conf = [{ index: 0, cs: conf0 }];
    this.walEntries = [...boot];
    this.walHs = hs;
  }

  /** A founding member: membership at index 0 = the initial voters, plus etcd-style bootstrap entries. */
  static founder(id: NodeId, env: HostEnv, voters: readonly NodeId[], boot: readonly Entry[]): MemberHost {
    return new MemberHost(id, env, { voters: [...voters], learners: [] }, boot, { term: boot.length > 0 ? 1 : 0, vote: 0n, commit: boot.length });
  }

  /** A member added later: empty storage, learns everything from the leader. */
  static joiner(id: NodeId, env: HostEnv): MemberHost {
    return new MemberHost(id, env, EMPTY_CONF, [], { term: 0, vote: 0n, commit: 0 });
  }

  get role(): Role {
    return this.driver?.role ?? 'follower';
  }

  get term(): number {
    return this.driver?.term ?? this.walHs.term;
  }

  // ---- state machine views ----

  termAt(i: number): number {
    return i === 0 ? 0 : (this.terms[i - 1] as number);
  }

  confAt(i: number): ConfState {
    let cs = EMPTY_CONF;
    for (const p of this.conf) {
      if (p.index > i) break;
      cs = p.cs;
    }
    return cs;
  }

  confState(): ConfState {
    return this.confAt(this.applied);
  }

  /** Every membership this state machine went through up to index i (the ones that may have committed i). */
  confsUpTo(i: number): ConfState[] {
    return this.conf.filter((p) => p.index <= i).map((p) => p.cs);
  }

  /** The payload applied at index i (undefined: not applied here). */
  keyAt(i: number): string | undefined {
    return i <= this.applied ? this.keys[i - 1] : undefined;
  }

  /** Whether this member's disk holds `key` at index i durably (WAL or durable state machine). */
  durablyHolds(i: number, key: string): boolean {
    if (i <= this.smDurable && this.keys[i - 1] === key) return true;
    const e = i > this.walBase ? this.walEntries[i - this.walBase - 1] : undefined;
    return e !== undefined && entryKey(e) === key;
  }

  /** What a snapshot of this member holds: its whole state machine at its applied index. */
  snapshotData(): SnapData {
    const a = this.applied;
    return {
      meta: { index: a, term: this.termAt(a), confState: this.confAt(a) },
      keys: this.keys.slice(0, a),
      terms: this.terms.slice(0, a),
      conf: this.conf.filter((p) => p.index <= a),
    };
  }

  // ---- life cycle ----

  start(): void {
    if (this.up || this.stopped) return;
    const d = this.smDurable;
    if (this.walBase > d) this.fail(`WAL starts after ${this.walBase} but the state machine is durable only to ${d}`);
    const meta: SnapshotMeta = { index: d, term: this.termAt(d), confState: this.confAt(d) };
    const entries = this.walEntries.filter((e) => e.index > d);
    const first = entries[0];
    if (first !== undefined && first.index !== d + 1) this.fail(`WAL resumes at ${first.index}, state machine at ${d}`);
    const last = entries.length === 0 ? d : (entries[entries.length - 1] as Entry).index;
    let hs: HardState = { ...this.walHs, commit: Math.max(this.walHs.commit, d) };
    if (hs.commit > last) this.fail(`durable commit ${hs.commit} beyond the durable log (${last})`);
    if (this.env.fault === 'forgetVote' && this.inc > 0) hs = { ...hs, vote: 0n };
    const storage = new MemoryStorage(meta, hs, entries);
    this.storage = storage;
    const raft = new ObservedRawNode(this.env.raftConfig(this.id, d), storage, (rd) => this.observeReady(rd));
    this.up = true;
    this.lastHs = hs;
    this.lastRole = 'follower';
    this.leaderCheck = false;
    this.leaderCommits = [];
    this.refusedPeers = this.refusedAt(d);
    this.removedPeers = this.removedAt(d);
    const inc = this.inc;
    const clock = this.clockFor(inc);
    const driver = this.makeDriver({ raft, storage, hardState: hs, wal: { append: (es, h) => this.walAppend([...es.map((e) => ({ kind: 'entry' as const, e })), ...(h !== undefined ? [{ kind: 'hs' as const, hs: h }] : [])]) }, transport: { send: (msgs) => this.sendAll(inc, msgs) }, clock, host: this.driverHost() });
    this.driver = driver;
    this.proposals = new Proposals<string>({
      clock,
      reqTimeoutMs: REQUEST_TIMEOUT_MS,
      electionMs: ELECTION_MS,
      proposeMany: (datas) => driver.raft.proposeMany(datas),
      kick: () => driver.kick(),
      fail: (err) => driver.fail(err),
    });
    this.env.trace(() => `${nid(this.id)} starts (inc ${this.inc}): applied ${d}/t${meta.term} ${fmtConf(meta.confState)}, hs(${fmtHs(hs)}), log ${d + 1}..${last}`);
    this.env.checker.onRestartLog(this.id, storage);
    driver.start(100);
    driver.kick();
  }

  private makeDriver(deps: ConstructorParameters<typeof Driver>[0]): Driver {
    switch (this.env.fault) {
      case 'applyBeforeDurable':
        return new ApplyBeforeDurableDriver(deps);
      case 'advancePastLostWrite':
        return new AdvancePastLostWriteDriver(deps);
      case 'ackBeforeQuorum':
        return new AckBeforeQuorumDriver(deps);
      default:
        return new Driver(deps);
    }
  }

  private clockFor(inc: number): Clock {
    const env = this.env;
    return {
      now: () => env.nowMs(),
      after: (ms, fn) => env.timer(this, ms, fn),
      cancel: (t) => {
        (t as { cancelled: boolean }).cancelled = true;
      },
      defer: (fn) => {
        env.timer(this, 0, fn);
      },
      every: (ms, fn) => {
        let stopped = false;
        const next = (delay: number): void => {
          env.timer(this, delay, () => {
            if (stopped || this.inc !== inc) return;
            fn();
            next(ms + env.rng.range(-5, 5));
          });
        };
        next(env.rng.range(0, ms));
        return () => {
          stopped = true;
        };
      },
    };
  }

  private driverHost(): DriverHost {
    return {
      onSoftState: () => undefined,
      installSnapshot: (meta, hs) => this.installSnapshot(meta, hs),
      apply: (entries) => this.applyEntries(entries),
      onReadState: (rs: ReadState) => this.env.checker.onReadState(this.id, rs),
      afterReady: () => this.afterReady(),
      fail: (err) => this.env.onFatal(this, err),
      dropped: (m, err) => this.env.trace(() => `${nid(this.id)} drops ${m.type} from ${nid(m.from)}: ${String(err)}`),
    };
  }

  /** Power loss: volatile state goes; a random prefix of the unsynced WAL writes and state machine batches survives. */
  crash(): void {
    if (!this.up) return;
    const lost = this.losePending();
    const smKeep = this.env.rng.int(this.smPending.length + 1);
    if (smKeep > 0) this.smDurable = this.smPending[smKeep - 1] as number;
    this.smPending = [];
    this.truncateSm(this.smDurable);
    this.goDown();
    this.env.trace(() => `${nid(this.id)} CRASH: ${lost} unsynced WAL writes lost, state machine back to ${this.smDurable}`);
  }

  /** Keeps a random prefix of the unsynced WAL ops; returns how many were lost. */
  private losePending(): number {
    const keep = this.env.rng.int(this.pending.length + 1);
    for (let k = 0; k < keep; k++) this.walWrite(this.pending[k] as WriteOp);
    const lost = this.pending.length - keep;
    this.pending = [];
    return lost;
  }

  /** Removed from the cluster: the process exits for good. */
  stop(why: string): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.up) this.goDown();
    this.env.trace(() => `${nid(this.id)} STOPS: ${why}`);
  }

  private goDown(): void {
    this.inc++;
    this.up = false;
    this.driver?.stop();
    this.driver = undefined;
    this.proposals = undefined;
    this.storage = undefined;
    this.pending = [];
    this.waiting = [];
    this.syncing = undefined;
    this.walBroken = false;
    this.writesIssued = 0;
    this.writesDurable = 0;
    this.smFlushScheduled = false;
    this.installing = false;
    this.receivedSnaps.clear();
  }

  private truncateSm(d: number): void {
    this.keys.length = d;
    this.terms.length = d;
    this.conf = this.conf.filter((p) => p.index <= d);
    this.applied = d;
  }

  private refusedAt(i: number): Set<NodeId> {
    return this.confAt(i).voters.includes(this.id) ? this.removedAt(i) : new Set<NodeId>();
  }

  private removedAt(i: number): Set<NodeId> {
    const now = this.confAt(i);
    const out = new Set<NodeId>();
    for (const p of this.conf) {
      if (p.index > i) break;
      for (const v of [...p.cs.voters, ...p.cs.learners]) out.add(v);
    }
    for (const v of [...now.voters, ...now.learners]) out.delete(v);
    return out;
  }

  private fail(detail: string): never {
    throw new SimViolation('host contract', `${nid(this.id)}: ${detail}`);
  }

  // ---- inputs ----

  receive(m: Message, snap: SnapData | undefined): void {
    const driver = this.driver;
    if (driver === undefined) return;
    if (snap !== undefined) this.receivedSnaps.set(snap.meta.index, snap);
    driver.onPeerMessages([m]);
  }

  /** A client proposal; the environment hears of its acknowledgement or refusal. */
  propose(payload: string): void {
    const p = this.proposals;
    const id = payloadId(payload);
    if (p === undefined || id === undefined) return;
    p.submit(id, Buffer.from(payload, 'latin1')).then(
      () => this.env.onAck(this, payload),
      (err: unknown) => this.env.onRefused(this, payload, err),
    );
  }

  /** Runs an input on raft, then lets the driver take what it produced; false when raft dropped it. */
  poke(what: string, f: (n: RawNode) => void): boolean {
    const driver = this.driver;
    if (driver === undefined) return false;
    let ok = true;
    try {
      f(driver.raft);
    } catch (err) {
      if (err instanceof ProposalDroppedError) ok = false;
      else throw new SimViolation('raft error', `${nid(this.id)} ${what} threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    driver.kick();
    return ok;
  }

  /** Compacts the raft log to `applied - keep` (raft will need snapshots for members behind it). */
  compact(keep: number): void {
    const storage = this.storage;
    if (storage === undefined || this.installing) return;
    const c = Math.min(this.applied - keep, storage.lastIndex());
    if (c < storage.firstIndex()) return;
    storage.compact(c, this.confAt(c));
    // The WAL may only drop entries the durable state machine already holds.
    const release = Math.min(c, this.smDurable);
    if (release > this.walBase) {
      this.walEntries = this.walEntries.filter((e) => e.index > release);
      this.walBase = release;
    }
    this.env.trace(() => `${nid(this.id)} compacts its log to ${c} (WAL from ${this.walBase})`);
  }

  // ---- what raft hands the driver (host-contract checks) ----

  private observeReady(rd: Ready): void {
    const storage = this.storage as MemoryStorage;
    this.env.trace(() => fmtReady(this.id, rd));
    const ss = rd.softState;
    if (ss !== undefined && ss.role !== this.lastRole) {
      this.lastRole = ss.role;
      if (ss.role === 'leader') this.leaderCheck = true;
      this.env.onRoleChange(this);
    }
    const snap = rd.snapshot;
    const fi = snap !== undefined ? snap.index + 1 : storage.firstIndex();
    const li = snap !== undefined ? snap.index : storage.lastIndex();
    let last = li;
    const first = rd.entries[0];
    if (first !== undefined) {
      if (first.index < fi) this.fail(`Ready.entries start at ${first.index}, inside the snapshot (${fi - 1})`);
      if (first.index > li + 1) this.fail(`Ready.entries start at ${first.index}, past the log's end ${li}`);
      for (let k = 1; k < rd.entries.length; k++) {
        if ((rd.entries[k] as Entry).index !== first.index + k) this.fail('Ready.entries are not contiguous');
      }
      if (first.index <= this.applied) this.fail(`Ready.entries rewrite ${first.index}, already applied (${this.applied})`);
      // (Log matching records entries as they become durable: walWrite.)
      last = first.index + rd.entries.length - 1;
    }
    const hs = rd.hardState;
    if (hs !== undefined) {
      const prev = this.lastHs;
      if (hs.term < prev.term) this.fail(`hard state term went back from ${prev.term} to ${hs.term}`);
      if (hs.term === prev.term && prev.vote !== 0n && hs.vote !== prev.vote) this.fail(`vote in term ${hs.term} changed from ${nid(prev.vote)} to ${nid(hs.vote)}`);
      if (hs.commit < prev.commit) this.fail(`commit went back from ${prev.commit} to ${hs.commit}`);
      if (hs.commit > last) this.fail(`hard state commit ${hs.commit} beyond the log's end ${last}`);
      const role = ss?.role ?? this.lastRole;
      if (role === 'leader' && hs.commit > prev.commit) {
        // The writes this Ready makes (a snapshot marker, then entries and hard state) come next.
        const writes = (snap !== undefined ? 1 : 0) + (rd.entries.length > 0 || rd.mustSync ? 1 : 0);
        this.leaderCommits.push({ term: hs.term, from: prev.commit, to: hs.commit, afterWrites: this.writesIssued + writes });
      }
      this.lastHs = hs;
    }
  }

  private afterReady(): void {
    if (this.leaderCheck) {
      this.leaderCheck = false;
      if (this.driver?.role === 'leader') this.env.checker.onLeader(this.id, this.lastHs.term, this.storage as MemoryStorage);
    }
  }

  private sendAll(inc: number, msgs: readonly Message[]): void {
    if (inc !== this.inc) return;
    for (const m of msgs) this.env.send(this, m);
  }

  // ---- the simulated WAL ----

  private walAppend(ops: readonly WriteOp[]): Promise<void> {
    if (this.walBroken) return Promise.reject(eio());
    this.writesIssued++;
    for (const op of ops) this.pending.push(op);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ upTo: this.pending.length, resolve, reject });
      if (this.syncing === undefined) this.startSync();
    });
  }

  private startSync(): void {
    this.syncing = this.pending.length;
    this.env.scheduleFsync(this);
  }

  /** Writes issued but not yet fsynced (a crash now would lose some). */
  hasUnsyncedWrites(): boolean {
    return this.pending.length > 0;
  }

  /** The disk finished an fsync (or failed it). */
  fsyncDone(inc: number): void {
    const n = this.syncing;
    if (inc !== this.inc || n === undefined) return;
    this.syncing = undefined;
    if (this.env.fsyncFails()) {
      const lost = this.losePending();
      this.walBroken = true;
      this.env.trace(() => `${nid(this.id)} FSYNC FAILED: ${lost} unsynced WAL writes lost`);
      for (const w of this.waiting.splice(0)) w.reject(eio());
      return;
    }
    for (const op of this.pending.slice(0, n)) this.walWrite(op);
    this.pending = this.pending.slice(n);
    let done = 0;
    while (done < this.waiting.length && (this.waiting[done] as SimWrite).upTo <= n) done++;
    const finished = this.waiting.splice(0, done);
    for (const w of this.waiting) w.upTo -= n;
    this.writesDurable += finished.length;
    this.durableLeaderCommits();
    for (const w of finished) w.resolve();
    if (this.waiting.length > 0) this.startSync();
  }

  private durableLeaderCommits(): void {
    const storage = this.storage;
    if (storage === undefined) return;
    while (this.leaderCommits.length > 0 && (this.leaderCommits[0] as { afterWrites: number }).afterWrites <= this.writesDurable) {
      const lc = this.leaderCommits.shift() as { term: number; from: number; to: number };
      this.env.checker.onLeaderCommit(this.id, lc.term, lc.from, lc.to, storage);
    }
  }

  private walWrite(op: WriteOp): void {
    if (op.kind === 'hs') {
      this.walHs = op.hs;
      this.env.checker.onDurableHardState(this.id, op.hs);
      return;
    }
    if (op.kind === 'snap') {
      // The marker is durable: so is the snapshot (the file was fsynced before it was written).
      const d = op.data;
      this.keys = [...d.keys];
      this.terms = [...d.terms];
      this.conf = [...d.conf];
      this.applied = d.meta.index;
      this.smDurable = d.meta.index;
      this.smPending = [];
      this.walBase = d.meta.index;
      this.walEntries = [];
      return;
    }
    const e = op.e;
    const at = e.index - this.walBase - 1;
    if (at < 0) return; // below a snapshot marker written since
    if (at > this.walEntries.length) this.fail(`WAL write of ${e.index} leaves a gap after ${this.walBase + this.walEntries.length}`);
    // Log matching is about the logs members keep: an entry appended in memory and lost in a crash
    // before its write was durable never left the member (the driver holds back every message that
    // says more than its WAL does), so a leader of a term that was never durable may reuse that term.
    const prevTerm = at > 0 ? (this.walEntries[at - 1] as Entry).term : this.termAt(this.walBase);
    this.env.checker.onAppend(this.id, [e], prevTerm);
    this.walEntries.length = at;
    this.walEntries.push(e);
  }

  // ---- the state machine ----

  private async installSnapshot(meta: SnapshotMeta, hs: HardState | undefined): Promise<void> {
    const data = this.receivedSnaps.get(meta.index);
    if (data === undefined) this.fail(`Ready.snapshot ${meta.index}/t${meta.term} was never received`);
    if (data.meta.term !== meta.term) this.fail(`Ready.snapshot ${meta.index}/t${meta.term}, received t${data.meta.term}`);
    if (meta.index <= this.applied) this.fail(`Ready.snapshot at ${meta.index} would take the state machine back from ${this.applied}`);
    const storage = this.storage as MemoryStorage;
    this.installing = true;
    try {
      await this.walAppend([{ kind: 'snap', data }, ...(hs !== undefined ? [{ kind: 'hs' as const, hs }] : [])]);
    } finally {
      this.installing = false;
    }
    storage.applySnapshot(meta);
    this.refusedPeers = this.refusedAt(meta.index);
    this.removedPeers = this.removedAt(meta.index);
    this.receivedSnaps.clear();
    this.snapshotsInstalled++;
    this.env.checker.onSnapshotInstalled(this.id, meta, this.keys[meta.index - 1]);
    this.env.onSnapshotInstalled(this);
  }

  private applyEntries(entries: readonly Entry[]): void {
    const driver = this.driver as Driver;
    for (const e of entries) {
      if (e.index !== this.applied + 1) this.fail(`applies ${e.index} after ${this.applied}`);
      const key = entryKey(e);
      // Local durability: the WAL of this member holds the entry durably.
      const d = e.index > this.walBase ? this.walEntries[e.index - this.walBase - 1] : undefined;
      if (d === undefined || d.term !== e.term || entryKey(d) !== key) {
        this.env.checker.fail('local durability', `${nid(this.id)} applies ${e.index}/t${e.term} (${key}) but its WAL holds durably ${d === undefined ? `only ${this.walBase + 1}..${this.walBase + this.walEntries.length}` : `${d.index}/t${d.term} there`}`);
      }
      this.env.checker.onApply(this.id, driver.term, e);
      this.keys.push(key);
      this.terms.push(e.term);
      this.applied = e.index;
      if (e.type === 'confChange') this.applyConfChange(e, driver.raft);
      else {
        const id = payloadId(key);
        if (id !== undefined) this.proposals?.applied(id, key);
      }
    }
    if (entries.length === 0) return;
    this.smPending.push(this.applied);
    if (!this.smFlushScheduled) {
      this.smFlushScheduled = true;
      this.env.scheduleSmFlush(this);
    }
  }

  private applyConfChange(e: Entry, node: RawNode): void {
    const proposed = decodeConfChange(e.data);
    const why = this.refusal(proposed);
    // Like etcd's membership layer: a change it refuses is applied as a no-op (node id 0).
    const cc = why === undefined ? proposed : { ...proposed, nodeId: NONE };
    const cs = node.applyConfChange(cc);
    this.conf.push({ index: e.index, cs });
    this.env.trace(() => `${nid(this.id)} applies ${e.index}: ${proposed.type} ${nid(proposed.nodeId)}${why === undefined ? '' : ` REFUSED (${why})`} -> ${fmtConf(cs)}`);
    // A member does not stop when it applies its own removal: the others may not know the removal is
    // committed yet (a removed leader tells them); it stops when a peer turns it away (refusedPeers).
    if (why === undefined && cc.type === 'removeNode') this.removedPeers.add(cc.nodeId);
    this.env.onConfApplied(this, proposed, e.index, why !== undefined);
  }

  /** Why the membership layer refuses a change (etcd's ValidateConfigurationChange), or undefined. */
  private refusal(cc: ConfChange): string | undefined {
    const cs = this.confState();
    const voter = cs.voters.includes(cc.nodeId);
    const member = voter || cs.learners.includes(cc.nodeId);
    const removedBefore = !member && this.conf.some((p) => p.cs.voters.includes(cc.nodeId) || p.cs.learners.includes(cc.nodeId));
    switch (cc.type) {
      case 'addNode':
        if (removedBefore) return 'id was removed';
        return voter ? 'already a voter' : undefined;
      case 'addLearner':
        if (removedBefore) return 'id was removed';
        return member ? 'already a member' : undefined;
      case 'removeNode':
        if (!member) return 'not a member';
        return voter && cs.voters.length === 1 ? 'the last voter' : undefined;
      case 'updateNode':
        return member ? undefined : 'not a member';
    }
  }

  /** The OS wrote back the state machine's pages: everything applied so far is durable. */
  smFlushed(inc: number): void {
    if (inc !== this.inc) return;
    this.smFlushScheduled = false;
    if (this.smPending.length === 0) return;
    this.smDurable = this.smPending[this.smPending.length - 1] as number;
    this.smPending = [];
    this.refusedPeers = this.refusedAt(this.smDurable);
  }
}

/** The error a failed fsync gives (the driver must stop: failstop.ts calls it a storage fault). */
function eio(): Error {
  return Object.assign(new Error('simulated fsync failure: EIO'), { code: 'EIO' });
}
