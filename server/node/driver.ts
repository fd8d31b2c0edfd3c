// The Raft driver (issue 17): raft's Readys taken one at a time and carried through
//   snapshot install -> [leader: send] -> WAL append (entries + hard state, durable) -> [follower: send]
//   -> apply committed entries -> read states -> advance,
// pipelined: a Ready's WAL write starts and raft advances at once, so the next Ready can be taken while
// this one is being made durable (up to PIPELINE_WRITES_MAX writes in flight; the WAL group-commits
// them in order). What must wait for durability waits on the write that covers it (see handleReady).
//
// The WAL, the transport and the clock are injected through the small interfaces below, and so is the
// member around it (DriverHost: what applying, installing a snapshot, a read state and a role change
// mean): node.ts wires the real ones, test/raft/sim*.ts simulated ones (fsync latency, lost unsynced
// writes, a lossy network, virtual time), so the simulation checks this very pipeline.
//
// Invariants (checked by the simulation at every step):
// - an entry is applied only once this member's WAL holds it durably (durableIndex);
// - a follower's messages (acknowledgements, votes) leave only after everything handed to the WAL
//   before them is durable; a leader's leave at once unless they carry a term, vote or commit index
//   not durable here yet (sim findings H3, R1), so a commit index a member learns is durable on a quorum;
// - anything unexpected stops the member (fail-stop, failstop.ts): only known benign refusals of a
//   peer's message are dropped.
import type { Entry, HardState, MemoryStorage, Message, RawNode, Ready, ReadState, Role, SoftState } from '../raft/index.js';
import { assert } from '../base/errors.js';
import { isBenignStepRefusal } from './failstop.js';
import type { Clock } from './clock.js';

/** Ready WAL writes in flight at once (the WAL group-commits them). */
export const PIPELINE_WRITES_MAX = 8;

/** The log's durable storage as the driver needs it. */
export interface DriverWal {
  /**
   * Appends `entries` (an entry at index i replaces i and everything after it), then the hard state;
   * resolves once durable, rejects if the write failed (fail-stop). Writes finish in the order they
   * were started.
   */
  append(entries: readonly Entry[], hardState: HardState | undefined): Promise<void>;
}

/** Messages to peers: best effort, in order per peer; the transport drops what it cannot deliver. */
export interface DriverTransport {
  send(msgs: Message[]): void;
}

/** Time as the driver needs it: raft's tick. */
export type DriverClock = Pick<Clock, 'every'>;

/** The member around the driver. */
export interface DriverHost {
  /** The role or the leader changed (driver.role / leaderId hold the new ones; `was` the old). */
  onSoftState(ss: SoftState, was: { readonly role: Role; readonly lead: bigint }): void;
  /** Replaces the state machine with a received snapshot (its WAL marker durable first). */
  installSnapshot(meta: NonNullable<Ready['snapshot']>, hardState: HardState | undefined): Promise<void>;
  /** Applies committed entries, in order; each is durable in this member's WAL. */
  apply(entries: readonly Entry[]): void;
  /** A linearizable read may be answered once the state machine reaches rs.index. */
  onReadState(rs: ReadState): void;
  /** After every Ready (log trimming, stale snapshot files). */
  afterReady(): void;
  /** The member must stop (fail-stop): the driver has stopped already. */
  fail(err: unknown): void;
  /** A peer's message raft refused benignly (failstop.ts), dropped. */
  dropped(m: Message, err: unknown): void;
}

export interface DriverDeps {
  readonly raft: RawNode;
  /** raft's storage: the driver appends each Ready's entries and hard state to it. */
  readonly storage: MemoryStorage;
  /** The durable hard state raft started from. */
  readonly hardState: HardState;
  readonly wal: DriverWal;
  readonly transport: DriverTransport;
  readonly clock: DriverClock;
  readonly host: DriverHost;
  /** Test-only fault hooks (CAIRN_FAILPOINTS raft.ready / raft.step). */
  readonly readyHook?: (() => void) | undefined;
  readonly stepHook?: (() => void) | undefined;
}

export interface PendingWrite {
  /** First entry index of the write: it replaces the log from there (undefined: hard state only). */
  readonly first: number | undefined;
  /** Last entry index of the write (undefined: hard state only). */
  readonly last: number | undefined;
  /** Messages to send once the write is durable. */
  readonly late: Message[];
  /** The write changes term or vote. */
  readonly termVote: boolean;
  done: Promise<void>;
}

export class Driver {
  readonly raft: RawNode;
  role: Role = 'follower';
  leaderId = 0n;
  /** The term of the last hard state raft handed out. */
  term: number;
  /** The hard state last handed to the WAL (maybe not durable yet). */
  protected handedTerm: number;
  protected handedVote: bigint;
  /** The commit index last handed to the WAL (maybe not durable yet). */
  handedCommit: number;
  /**
   * The end of the log in this member's WAL as of the last write that finished. Entries up to it are
   * durable as raft has them unless a write still in flight replaces them (durableThrough()).
   */
  protected durableIndex: number;
  /** Committed entries raft handed out, waiting for their WAL write before they apply. */
  protected readonly applyQueue: Entry[] = [];
  /** WAL writes started and not finished, oldest first. */
  protected readonly writes: PendingWrite[] = [];
  private readonly storage: MemoryStorage;
  private readonly wal: DriverWal;
  private readonly transport: DriverTransport;
  private readonly clock: DriverClock;
  private readonly host: DriverHost;
  private readonly readyHook: (() => void) | undefined;
  private readonly stepHook: (() => void) | undefined;
  private kickScheduled = false;
  private processing = false;
  private readonly idleWaiters: (() => void)[] = [];
  private stopped = false;
  private failed = false;
  private stopTicks: (() => void) | undefined = undefined;
  /** Set while defragmentation replaces the database: committed entries wait in applyQueue. */
  private applyPaused = false;
  /** Resolves when the pause (applyPaused) ends. */
  private applyResumed: Promise<void> = Promise.resolve();

  constructor(d: DriverDeps) {
    this.raft = d.raft;
    this.storage = d.storage;
    this.wal = d.wal;
    this.transport = d.transport;
    this.clock = d.clock;
    this.host = d.host;
    this.readyHook = d.readyHook;
    this.stepHook = d.stepHook;
    this.term = d.hardState.term;
    this.handedTerm = d.hardState.term;
    this.handedVote = d.hardState.vote;
    this.handedCommit = d.hardState.commit;
    this.durableIndex = d.storage.lastIndex();
  }

  /** Starts raft's clock: a tick every tickMs. */
  start(tickMs: number): void {
    this.stopTicks = this.clock.every(tickMs, () => this.tick());
  }

  /** Takes no more input (ticks, peer messages, kicks); a Ready being handled runs to its end (idle()). */
  stop(): void {
    this.stopped = true;
    this.stopTicks?.();
    this.stopTicks = undefined;
  }

  /** Fail-stop: the driver stops at once (no further Ready) and the host is told why. */
  fail(err: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.stop();
    this.host.fail(err);
  }

  /** Resolves once no Ready is being handled and every WAL write started is durable. */
  async idle(): Promise<void> {
    if (this.processing) await new Promise<void>((done) => this.idleWaiters.push(done));
    await this.drainWrites();
  }

  /** Holds applies back (committed entries wait) until the returned function is called. */
  pauseApply(): () => void {
    let done!: () => void;
    this.applyResumed = new Promise<void>((r) => (done = r));
    this.applyPaused = true;
    return () => {
      this.applyPaused = false;
      done();
    };
  }

  /** Applies what waited during a pause (call after pauseApply's resume). */
  resumeApply(): void {
    this.guard(() => this.applyDurable());
    this.kick();
  }

  tick(): void {
    if (this.stopped) return;
    this.guard(() => this.raft.tick());
    this.kick();
  }

  /** Runs an input to raft outside the run loop; anything it throws stops the member. */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The transport finished (or gave up) sending a snapshot to `to`. */
  reportSnapshot(to: bigint, ok: boolean): void {
    this.guard(() => this.raft.reportSnapshot(to, ok));
    this.kick();
  }

  /** The transport could not reach `to`. */
  reportUnreachable(to: bigint): void {
    this.guard(() => this.raft.reportUnreachable(to));
    this.kick();
  }

  /** Messages from peers, stepped into raft; only benign refusals are dropped (failstop.ts). */
  onPeerMessages(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      try {
        this.stepHook?.();
        this.raft.step(m);
      } catch (err) {
        if (!isBenignStepRefusal(err)) {
          this.fail(err);
          return;
        }
        this.host.dropped(m, err);
      }
    }
    this.kick();
  }

  /** Something may be ready: the run loop runs once the current task ends. */
  kick(): void {
    if (this.kickScheduled || this.stopped) return;
    this.kickScheduled = true;
    queueMicrotask(() => {
      this.kickScheduled = false;
      void this.loop();
    });
  }

  private async loop(): Promise<void> {
    if (this.processing || this.failed) return;
    this.processing = true;
    try {
      while (!this.failed && this.raft.hasReady()) {
        const oldest = this.writes[0];
        if (oldest !== undefined && this.writes.length >= PIPELINE_WRITES_MAX) {
          await oldest.done;
          continue;
        }
        this.readyHook?.();
        await this.handleReady(this.raft.ready());
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.processing = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * One Ready, pipelined: its WAL write starts and raft advances at once, so the next Ready can be
   * taken while this one is being made durable (the WAL group-commits the writes in order). What
   * must wait for durability waits on the write that covers it: committed entries are applied only
   * up to the durable index; a follower's messages (acks) go out after its write; a leader's go out
   * at once unless they carry a term, vote or commit index not yet durable here (sim findings H3,
   * R1). A Ready holding a snapshot or a committed conf change is handled serially (as etcd waits
   * for conf changes to apply before it goes on).
   */
  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== undefined) this.onSoftState(rd.softState);
    const hs = rd.hardState;
    if (hs !== undefined) this.term = hs.term;
    const serial = rd.snapshot !== undefined || rd.committedEntries.some((e) => e.type === 'confChange');
    if (serial) await this.drainWrites();
    // A conf change applies before raft advances: wait out a pause (defragmentation) holding applies back.
    while (serial && this.applyPaused && !this.failed) await this.applyResumed;
    if (this.failed) return;
    if (rd.snapshot !== undefined) {
      await this.host.installSnapshot(rd.snapshot, hs);
      if (this.failed) return;
      this.durableIndex = rd.snapshot.index;
    }
    const termVote = hs !== undefined && (hs.term !== this.handedTerm || hs.vote !== this.handedVote);
    if (hs !== undefined) {
      this.handedTerm = hs.term;
      this.handedVote = hs.vote;
      this.handedCommit = hs.commit;
    }
    const needWrite = rd.entries.length > 0 || (hs !== undefined && rd.mustSync);
    let write: PendingWrite | undefined;
    if (needWrite) {
      write = { first: rd.entries[0]?.index, last: rd.entries[rd.entries.length - 1]?.index, late: [], termVote, done: Promise.resolve() };
      const w = write;
      w.done = this.wal
        .append(rd.entries, hs)
        .then(
          () => this.writeDone(w),
          (err: unknown) => this.writeFailed(w, err),
        )
        .catch((err: unknown) => this.fail(err));
    }
    this.route(rd.messages, write);
    if (write !== undefined) this.writes.push(write);
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    if (hs !== undefined) this.storage.setHardState(hs);
    for (const e of rd.committedEntries) this.applyQueue.push(e);
    this.applyDurable();
    // A conf change must be in effect (applied, raft told) before raft hears that it was applied.
    if (serial) await this.drainWrites();
    if (this.failed) return;
    for (const rs of rd.readStates) this.host.onReadState(rs);
    this.raft.advance(rd);
    this.host.afterReady();
  }

  private onSoftState(ss: SoftState): void {
    const was = { role: this.role, lead: this.leaderId };
    this.role = ss.role;
    this.leaderId = ss.lead;
    this.host.onSoftState(ss, was);
  }

  /** Sends now, or after the write that makes what the messages say durable. */
  protected route(msgs: readonly Message[], own: PendingWrite | undefined): void {
    if (msgs.length === 0) return;
    const pendingTermVote = own?.termVote === true || this.writes.some((w) => w.termVote);
    let after: PendingWrite | undefined;
    if (this.role !== 'leader' || pendingTermVote) after = own ?? this.writes[this.writes.length - 1];
    else if (this.handedCommit > this.durableThrough()) after = this.writeThrough(this.handedCommit, own);
    if (after === undefined) this.send(msgs);
    else after.late.push(...msgs);
  }

  /**
   * The highest index up to which this member's WAL holds the log as raft has it: the end of the last
   * finished write, less what a write in flight replaces (a follower's conflicting suffix, rewritten
   * by a new leader: until that write is durable the WAL holds the old entries there).
   */
  protected durableThrough(): number {
    let upTo = this.durableIndex;
    for (const w of this.writes) if (w.first !== undefined && w.first - 1 < upTo) upTo = w.first - 1;
    return upTo;
  }

  /** The write (in flight, or `own` about to start) once which the log is durable through `index`. */
  private writeThrough(index: number, own: PendingWrite | undefined): PendingWrite | undefined {
    const n = this.writes.length + (own === undefined ? 0 : 1);
    const at = (k: number): PendingWrite => (k < this.writes.length ? this.writes[k] : own) as PendingWrite;
    // The last write that replaces an entry at or below `index` must be durable, and the log must reach it.
    let from = 0;
    for (let k = 0; k < n; k++) {
      const f = at(k).first;
      if (f !== undefined && f <= index) from = k;
    }
    for (let k = from; k < n; k++) {
      const l = at(k).last;
      if (l !== undefined && l >= index) return at(k);
    }
    return n === 0 ? undefined : at(n - 1);
  }

  protected writeDone(w: PendingWrite): void {
    assert(this.writes[0] === w, 'WAL writes finish in order');
    this.writes.shift();
    if (w.last !== undefined) this.durableIndex = w.last;
    this.send(w.late);
    this.applyDurable();
    this.kick();
  }

  /** A WAL write failed: nothing after it may be taken as durable, so the member stops. */
  protected writeFailed(_w: PendingWrite, err: unknown): void {
    this.fail(err);
  }

  /** The highest index committed entries may be applied up to: what this member's WAL holds durably. */
  protected applicableIndex(): number {
    return this.durableThrough();
  }

  private applyDurable(): void {
    if (this.applyPaused) return;
    const upTo = this.applicableIndex();
    let n = 0;
    while (n < this.applyQueue.length && (this.applyQueue[n] as Entry).index <= upTo) n++;
    if (n > 0) this.host.apply(this.applyQueue.splice(0, n));
  }

  /** Resolves once every write started is durable, or the driver failed (a failed write stays in `writes`). */
  private async drainWrites(): Promise<void> {
    while (!this.failed && this.writes.length > 0) await this.writes[this.writes.length - 1]?.done;
  }

  protected send(msgs: readonly Message[]): void {
    if (msgs.length === 0) return;
    this.transport.send([...msgs]);
  }
}
