// One simulated member: a RawNode driven by a host that follows the Ready contract (types.ts) the way
// the real host does, over simulated storage:
// - the WAL: a durable part (what was fsynced) and the writes issued since (lost, all or a prefix of
//   them, in a crash); a Ready's writes are entries first, then the hard state (etcd's WAL order);
// - the state machine: the applied sequence of entries, its applied index and membership, committed
//   without fsync (like LMDB in our host), so its durable point lags and a crash rolls it back to one of
//   the apply batches since the last flush; the WAL keeps every entry after that durable point;
// - a received snapshot is installed durably together with its WAL marker (the host saves the
//   snapshot, then marks the WAL, then swaps the state machine, and repairs a half-done install).
// Restart = MemoryStorage(snapshot = the state machine's durable applied index/term/membership, the
// durable hard state with commit raised to that index, the durable WAL entries after it) and
// RaftConfig.applied = that index.
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
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type Role,
  type SnapshotMeta,
} from '../../server/raft/index.js';
import { type Checker, SimViolation } from './sim-check.js';
import { type Rng, entryKey, fmtConf, fmtHs, fmtReady, nid } from './sim-core.js';

/** Deliberately broken hosts, to prove the checks can fail. */
export type HostFault = 'none' | 'forgetVote' | 'ackBeforePersist';

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

type WriteOp = { readonly kind: 'entry'; readonly e: Entry } | { readonly kind: 'hs'; readonly hs: HardState };

/** What a host asks of the simulation around it. */
export interface HostEnv {
  readonly rng: Rng;
  readonly checker: Checker;
  readonly fault: HostFault;
  trace(line: () => string): void;
  raftConfig(id: NodeId, applied: number): RaftConfig;
  /** Send one message (the environment attaches snapshot data to 'snap' messages). */
  send(from: MemberHost, m: Message): void;
  /** Call host.fsyncDone(inc, readyId) after the disk's delay. */
  scheduleFsync(host: MemberHost, readyId: number): void;
  /** Call host.smFlushed(inc) after a while (the OS writes back the state machine's pages). */
  scheduleSmFlush(host: MemberHost): void;
  /** A membership change was applied (`refused`: as a no-op, the membership layer refused it). */
  onConfApplied(host: MemberHost, cc: ConfChange, index: number, refused: boolean): void;
  onSnapshotInstalled(host: MemberHost): void;
  /** The member's role changed (the simulation may aim a crash at the election that follows). */
  onRoleChange(host: MemberHost): void;
}

interface Outstanding {
  readonly rd: Ready;
  readonly readyId: number;
  sent: boolean;
  readonly leaderCommit: { readonly from: number; readonly to: number; readonly term: number } | undefined;
}

const EMPTY_CONF: ConfState = { voters: [], learners: [] };

export class MemberHost {
  /** Bumped by every crash: events addressed to an older incarnation are void. */
  inc = 0;
  up = false;
  /** Removed from the cluster and stopped for good. */
  stopped = false;
  node: RawNode | undefined;
  storage: MemoryStorage | undefined;
  role: Role = 'follower';
  lead: NodeId = 0n;
  term = 0;
  private commit = 0;
  private vote: NodeId = 0n;

  // WAL: durable part, and writes issued since the last fsync.
  private walBase = 0;
  private walEntries: Entry[] = [];
  private walHs: HardState;
  private pending: WriteOp[] = [];

  // State machine (index i lives at keys[i-1], terms[i-1]); durable up to smDurable.
  private keys: string[] = [];
  private terms: number[] = [];
  private conf: ConfPoint[];
  applied = 0;
  private smDurable = 0;
  private smPending: number[] = [];
  private smFlushScheduled = false;
  /**
   * Removed members this host turns away (they then stop): only once the removal is durable in its state
   * machine and only while it is a voter itself. A learner, or a member whose state machine may still
   * roll back past the removal, must not: the voters that have not applied the removal yet may still
   * need the removed member's vote to commit it (found by the simulation, see sim-findings.md).
   */
  refusedPeers = new Set<NodeId>();
  /** Every member this host's state machine has applied the removal of (etcd's transport refuses these). */
  removedPeers = new Set<NodeId>();

  private outstanding: Outstanding | undefined;
  private readyCounter = 0;
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
    this.storage = new MemoryStorage(meta, hs, entries);
    this.node = new RawNode(this.env.raftConfig(this.id, d), this.storage);
    this.up = true;
    this.role = 'follower';
    this.lead = 0n;
    this.term = hs.term;
    this.commit = hs.commit;
    this.vote = hs.vote;
    this.refusedPeers = this.refusedAt(d);
    this.removedPeers = this.removedAt(d);
    this.env.trace(() => `${nid(this.id)} starts (inc ${this.inc}): applied ${d}/t${meta.term} ${fmtConf(meta.confState)}, hs(${fmtHs(hs)}), log ${d + 1}..${last}`);
    this.env.checker.onRestartLog(this.id, this.storage);
  }

  /** Power loss: volatile state goes; a random prefix of the unsynced WAL writes and state machine batches survives. */
  crash(): void {
    if (!this.up) return;
    const keep = this.env.rng.int(this.pending.length + 1);
    for (let k = 0; k < keep; k++) this.walWrite(this.pending[k] as WriteOp);
    const lost = this.pending.length - keep;
    this.pending = [];
    const smKeep = this.env.rng.int(this.smPending.length + 1);
    if (smKeep > 0) this.smDurable = this.smPending[smKeep - 1] as number;
    this.smPending = [];
    this.truncateSm(this.smDurable);
    this.goDown();
    this.env.trace(() => `${nid(this.id)} CRASH: ${lost} unsynced WAL writes lost, state machine back to ${this.smDurable}`);
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
    this.node = undefined;
    this.storage = undefined;
    this.outstanding = undefined;
    this.smFlushScheduled = false;
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

  // ---- inputs ----

  tick(): void {
    if (this.node === undefined) return;
    this.node.tick();
    this.pump();
  }

  receive(m: Message, snap: SnapData | undefined): void {
    const node = this.node;
    if (node === undefined) return;
    if (snap !== undefined) this.receivedSnaps.set(snap.meta.index, snap);
    this.raftCall(`step(${m.type} from ${nid(m.from)})`, () => node.step(m));
    this.pump();
  }

  /** A client proposal; false when raft dropped it (no leader, transfer, too many bytes...). */
  propose(data: Uint8Array): boolean {
    const node = this.node;
    if (node === undefined) return false;
    const ok = this.dropToFalse(() => node.propose(data));
    this.pump();
    return ok;
  }

  proposeConfChange(cc: ConfChange): boolean {
    const node = this.node;
    if (node === undefined) return false;
    const ok = this.dropToFalse(() => node.proposeConfChange(cc));
    this.pump();
    return ok;
  }

  /** Runs an input on the node, then handles whatever Ready it produced; false when raft dropped it. */
  poke(what: string, f: (n: RawNode) => void): boolean {
    const node = this.node;
    if (node === undefined) return false;
    const ok = this.dropToFalse(() => f(node), what);
    this.pump();
    return ok;
  }

  private dropToFalse(f: () => void, what = 'propose'): boolean {
    try {
      f();
      return true;
    } catch (err) {
      if (err instanceof ProposalDroppedError) return false;
      this.raftError(what, err);
    }
  }

  private raftCall(what: string, f: () => void): void {
    try {
      f();
    } catch (err) {
      this.raftError(what, err);
    }
  }

  private raftError(what: string, err: unknown): never {
    if (err instanceof SimViolation) throw err;
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    throw new SimViolation('raft error', `${nid(this.id)} ${what} threw: ${msg}`);
  }

  private fail(detail: string): never {
    throw new SimViolation('host contract', `${nid(this.id)}: ${detail}`);
  }

  /** Compacts the raft log to `applied - keep` (raft will need snapshots for members behind it). */
  compact(keep: number): void {
    const storage = this.storage;
    if (storage === undefined) return;
    const c = this.applied - keep;
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

  // ---- the Ready loop ----

  /** Takes and handles Readys until one waits for the disk (one Ready at a time, as the contract says). */
  pump(): void {
    for (let guard = 0; this.node !== undefined && this.outstanding === undefined && this.node.hasReady(); guard++) {
      if (guard > 10_000) this.fail('hasReady() stays true after 10000 Readys');
      const node = this.node;
      let rd: Ready | undefined;
      this.raftCall('ready()', () => {
        rd = node.ready();
      });
      if (rd === undefined) return;
      this.handleReady(rd);
    }
  }

  private handleReady(rd: Ready): void {
    const storage = this.storage as MemoryStorage;
    this.env.trace(() => fmtReady(this.id, rd));
    const roleChanged = rd.softState !== undefined && rd.softState.role !== this.role;
    if (rd.softState !== undefined) {
      this.role = rd.softState.role;
      this.lead = rd.softState.lead;
    }
    if (rd.snapshot !== undefined) this.installSnapshot(rd.snapshot, storage);
    if (rd.entries.length > 0) this.appendEntries(rd.entries, storage);
    const prevCommit = this.commit;
    const newTermOrVote = rd.hardState !== undefined && (rd.hardState.term !== this.term || rd.hardState.vote !== this.vote);
    if (rd.hardState !== undefined) this.writeHardState(rd.hardState, storage);
    for (const rs of rd.readStates) this.env.checker.onReadState(this.id, rs);
    if (rd.softState?.role === 'leader') this.env.checker.onLeader(this.id, this.term, storage);
    // A leader's commit index counts once its Ready is durable (a single voter commits entries of the
    // same Ready; if it crashes first, nothing was committed: anything it leaked shows up where applied).
    const leaderCommit = this.role === 'leader' && this.commit > prevCommit ? { from: prevCommit, to: this.commit, term: this.term } : undefined;
    const out: Outstanding = { rd, readyId: ++this.readyCounter, sent: false, leaderCommit };
    // Thesis 10.2.1: the leader replicates while its own disk writes; everyone else persists first. Not a
    // Ready that changes term or vote (a single voter wins at once): see sim-findings.md H3.
    if ((this.role === 'leader' && !newTermOrVote) || this.env.fault === 'ackBeforePersist') this.sendAll(out);
    if (rd.mustSync) {
      this.outstanding = out;
      this.env.scheduleFsync(this, out.readyId);
    } else {
      this.finish(out);
    }
    if (roleChanged) this.env.onRoleChange(this);
  }

  /** Writes issued but not yet fsynced (a crash now would lose some). */
  hasUnsyncedWrites(): boolean {
    return this.pending.length > 0;
  }

  private installSnapshot(meta: SnapshotMeta, storage: MemoryStorage): void {
    const data = this.receivedSnaps.get(meta.index);
    if (data === undefined) this.fail(`Ready.snapshot ${meta.index}/t${meta.term} was never received`);
    if (data.meta.term !== meta.term) this.fail(`Ready.snapshot ${meta.index}/t${meta.term}, received t${data.meta.term}`);
    if (meta.index <= this.applied) this.fail(`Ready.snapshot at ${meta.index} would take the state machine back from ${this.applied}`);
    storage.applySnapshot(meta);
    for (const op of this.pending) this.walWrite(op);
    this.pending = [];
    this.keys = [...data.keys];
    this.terms = [...data.terms];
    this.conf = [...data.conf];
    this.applied = meta.index;
    this.smDurable = meta.index;
    this.smPending = [];
    this.walBase = meta.index;
    this.walEntries = [];
    this.refusedPeers = this.refusedAt(meta.index);
    this.removedPeers = this.removedAt(meta.index);
    this.receivedSnaps.clear();
    this.snapshotsInstalled++;
    this.env.checker.onSnapshotInstalled(this.id, meta, this.keys[meta.index - 1]);
    this.env.onSnapshotInstalled(this);
  }

  private appendEntries(entries: readonly Entry[], storage: MemoryStorage): void {
    const first = entries[0] as Entry;
    if (first.index <= storage.firstIndex() - 1) this.fail(`Ready.entries start at ${first.index}, inside the snapshot (${storage.firstIndex() - 1})`);
    if (first.index > storage.lastIndex() + 1) this.fail(`Ready.entries start at ${first.index}, past the log's end ${storage.lastIndex()}`);
    for (let k = 1; k < entries.length; k++) {
      if ((entries[k] as Entry).index !== first.index + k) this.fail('Ready.entries are not contiguous');
    }
    if (first.index <= this.applied) this.fail(`Ready.entries rewrite ${first.index}, already applied (${this.applied})`);
    storage.append(entries);
    this.env.checker.onAppend(this.id, entries, storage.term(first.index - 1));
    for (const e of entries) this.pending.push({ kind: 'entry', e });
  }

  private writeHardState(hs: HardState, storage: MemoryStorage): void {
    if (hs.term < this.term) this.fail(`hard state term went back from ${this.term} to ${hs.term}`);
    if (hs.term === this.term && this.vote !== 0n && hs.vote !== this.vote) this.fail(`vote in term ${hs.term} changed from ${nid(this.vote)} to ${nid(hs.vote)}`);
    if (hs.commit < this.commit) this.fail(`commit went back from ${this.commit} to ${hs.commit}`);
    if (hs.commit > storage.lastIndex()) this.fail(`hard state commit ${hs.commit} beyond the log's end ${storage.lastIndex()}`);
    this.term = hs.term;
    this.vote = hs.vote;
    this.commit = hs.commit;
    storage.setHardState(hs);
    this.pending.push({ kind: 'hs', hs });
  }

  /** The disk finished the fsync of Ready `readyId`. */
  fsyncDone(inc: number, readyId: number): void {
    const out = this.outstanding;
    if (inc !== this.inc || out === undefined || out.readyId !== readyId) return;
    for (const op of this.pending) this.walWrite(op);
    this.pending = [];
    this.outstanding = undefined;
    this.finish(out);
    this.pump();
  }

  private walWrite(op: WriteOp): void {
    if (op.kind === 'hs') {
      this.walHs = op.hs;
      this.env.checker.onDurableHardState(this.id, op.hs);
      return;
    }
    const e = op.e;
    const at = e.index - this.walBase - 1;
    if (at < 0) return; // below a snapshot marker written since
    if (at > this.walEntries.length) this.fail(`WAL write of ${e.index} leaves a gap after ${this.walBase + this.walEntries.length}`);
    this.walEntries.length = at;
    this.walEntries.push(e);
  }

  private finish(out: Outstanding): void {
    const node = this.node as RawNode;
    const lc = out.leaderCommit;
    if (lc !== undefined) this.env.checker.onLeaderCommit(this.id, lc.term, lc.from, lc.to, this.storage as MemoryStorage);
    if (!out.sent) this.sendAll(out);
    this.applyEntries(out.rd.committedEntries, node);
    this.raftCall('advance()', () => node.advance(out.rd));
  }

  private sendAll(out: Outstanding): void {
    out.sent = true;
    for (const m of out.rd.messages) this.env.send(this, m);
  }

  private applyEntries(entries: readonly Entry[], node: RawNode): void {
    if (entries.length === 0) return;
    for (const e of entries) {
      if (e.index !== this.applied + 1) this.fail(`applies ${e.index} after ${this.applied}`);
      this.env.checker.onApply(this.id, this.term, e);
      this.keys.push(entryKey(e));
      this.terms.push(e.term);
      this.applied = e.index;
      if (e.type === 'confChange') this.applyConfChange(e, node);
    }
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
    let cs: ConfState = EMPTY_CONF;
    this.raftCall(`applyConfChange(${cc.type} ${nid(cc.nodeId)})`, () => {
      cs = node.applyConfChange(cc);
    });
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
