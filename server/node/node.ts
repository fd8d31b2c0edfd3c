// A member: raft (pure, server/raft) driven by this run loop, the WAL, the peer transport and the
// apply loop (mvcc + lease + membership in one LMDB transaction per batch, applied index included).
//
// The run loop takes one raft Ready at a time (DESIGN.md section 1):
//   snapshot install -> [leader: send] -> WAL append (entries + hard state, durable) -> [follower: send]
//   -> apply committed entries -> read states -> advance.
// Proposals made while a Ready is being persisted are taken by the next one (group commit).
//
// Invariants:
// - An entry is applied only after this member's WAL holds it durably, and a client is answered only
//   after its entry is applied here; a quorum's WALs hold every committed entry.
// - appliedIndex in LMDB == index of the last entry whose effects LMDB holds (same transaction).
// - The raft log in memory starts at the applied index of LMDB at start (its snapshot), so nothing
//   applied is applied twice; WAL entries above it are handed to raft again.
// - A received snapshot is installed as: file fsynced -> WAL marker durable -> rename over the
//   database. A restart finding a marker above LMDB's applied index finishes the rename.
import { AlarmRequest_AlarmAction, AlarmType } from '../../proto/gen/etcdserverpb.js';
import { encodeInternalRequest, type InternalRequestInit } from '../../proto/gen/cairnpb.js';
import type { Wal } from '../wal/index.js';
import { type Backend } from '../storage/backend/index.js';
import { KvStore, WatchableStore } from '../mvcc/index.js';
import { LeaseStore, type Lessor } from '../lease/index.js';
import { AuthStore } from '../auth/index.js';
import { AlarmStore, type ActiveAlarm, type ApplyOutcome } from '../apply/index.js';
import { ProposalDroppedError, RawNode, type MemoryStorage, type Entry, type HardState, type Message, type Ready, type SnapshotMeta, type SoftState } from '../raft/index.js';
import { Transport, type PeerStats } from '../transport/index.js';
import { MemberStore } from '../membership/index.js';
import { ClientError, ServerRefusal, assert } from '../base/errors.js';
import { failpoint, type FailpointName } from '../base/failpoints.js';
import { fatalCause, isBenignStepRefusal } from './failstop.js';
import {
  APPLY_BATCH_ENTRIES_MAX,
  PROPOSALS_PENDING_MAX,
  RAFT_MAX_INFLIGHT_MSGS,
  RAFT_MAX_SIZE_PER_MSG,
  RAFT_MAX_UNCOMMITTED_BYTES,
  SHUTDOWN_TIMEOUT_MS,
  WATCH_CATCH_UP,
} from '../base/limits.js';
import type { Logger } from '../base/log.js';
import type { TlsConfig } from '../base/tls.js';
import { type ClusterFlags } from './bootstrap.js';
import { RemovedMemberError, backendPathOf, confStateOf, recover, snapDirOf, toWal, toWalHardState, walDirOf } from './recovery.js';

export { RemovedMemberError, backendPathOf, confStateOf, monotonicMs };
import { monotonicMs } from './clock.js';
import { RequestIds } from './ids.js';
import { HeartbeatGaps, nodeStats, peerRoundTrip } from './stats.js';
import { quotaCost } from './quota.js';
import { SpaceGuard } from './space.js';
import { Snapshots } from './snapshots.js';
import { Compaction } from './compaction.js';
import { Applier, type Effects } from './applier.js';
import { Reconfig } from './reconfig.js';
import { BackendOps } from './backendops.js';
import { ReadIndexBatcher } from './reads.js';
import { dropped } from './proposals.js';
import { Leases, PeerRequests } from './leases.js';
import { AutoCompactor, type AutoCompactionMode } from './compactor.js';
import { CorruptionChecks } from './corrupt.js';
import type { ClusterPath, LeaderView, MaintenancePath, MemberInfo, MemberStatus, HashKvResult } from './surface.js';

export interface NodeConfig {
  readonly name: string;
  readonly dataDir: string;
  /** Empty = `<data-dir>/member/wal`. */
  readonly walDir: string;
  readonly requestBytesMax: number;
  readonly snapshotCount?: number;
  readonly snapshotCatchupEntries?: number;
  /** WAL segment size (default WAL_SEGMENT_BYTES, 64 MiB); tests use small segments. */
  readonly walSegmentBytes?: number;
  /** --quota-backend-bytes (0 = etcd's 2 GiB default, negative = none). */
  readonly quotaBackendBytes?: number;
  /** --auto-compaction-mode/--auto-compaction-retention; undefined = off. */
  readonly autoCompaction?: AutoCompactionMode | undefined;
  /** --experimental-corrupt-check-time in ms (0 = off). */
  readonly corruptCheckMs?: number;
  readonly cluster: ClusterFlags;
  readonly listenPeerUrls: readonly string[];
  readonly advertiseClientUrls: readonly string[];
  readonly heartbeatMs: number;
  readonly electionMs: number;
  readonly logger: Logger;
  /**
   * Called when the member must stop: a storage fault (StorageFault, WalFatalError: fsync error,
   * corruption) or a bug (AssertionFailure: a raft invariant violation, an unexpected exception in the
   * pipeline). The process must exit (config/exit.ts: 1 for storage, 70 for a bug).
   */
  readonly onFatal: (err: Error) => void;
  /** Called once this member learns it was removed from the cluster: the process must stop. */
  readonly onRemoved: (err: Error) => void;
  /** Peer TLS (--peer-cert-file etc. with --cipher-suites/--tls-*-version); undefined = no peer certificates. */
  readonly peerTls?: TlsConfig | undefined;
  /** etcd's --strict-reconfig-check: refuse membership changes that could lose quorum (default true). */
  readonly strictReconfigCheck?: boolean;
}

interface Waiter {
  readonly resolve: (o: ApplyOutcome) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface PendingWrite {
  /** Last entry index of the write (undefined: hard state only). */
  readonly last: number | undefined;
  /** Messages to send once the write is durable. */
  readonly late: Message[];
  /** The write changes term or vote. */
  readonly termVote: boolean;
  done: Promise<void>;
}

/** Ready WAL writes in flight at once (the WAL group-commits them). */
const PIPELINE_WRITES_MAX = 8;

export class Node implements ClusterPath, MaintenancePath, LeaderView {
  readonly watchable: WatchableStore;
  readonly leaseStore: LeaseStore;
  readonly memberStore: MemberStore;
  /** Users, roles, permissions and simple tokens (auth helper). */
  readonly auth: AuthStore;
  /** Active alarms (NOSPACE, CORRUPT), replicated through the log. */
  readonly alarms: AlarmStore;
  private readonly raft: RawNode;
  private transport!: Transport;
  private readonly ids: RequestIds;
  private readonly waiters = new Map<bigint, Waiter>();
  /** Proposals of this turn, handed to raft together by flushProposals. */
  private proposals: { id: bigint; data: Uint8Array }[] = [];
  /** Proposals made while no leader was known, proposed again once one is (by id, in order). */
  private readonly leaderless = new Map<bigint, Uint8Array>();
  private installing: Promise<void> | undefined = undefined;
  private kickScheduled = false;
  private processing = false;
  private readonly idle: (() => void)[] = [];
  private stopped = false;
  private removing = false;
  private failed = false;
  /** The index of the last entry LMDB holds the effects of (the applier keeps it with its transaction). */
  private get appliedIndex(): number {
    return this.applier.appliedIndex;
  }

  private set appliedIndex(index: number) {
    this.applier.appliedIndex = index;
  }

  private currentTerm: number;
  /** The hard state last handed to the WAL (maybe not durable yet). */
  private handedTerm: number;
  private handedVote: bigint;
  private handedCommit: number;
  /** Highest log index durable in this member's WAL: committed entries up to it may be applied. */
  private durableIndex: number;
  /** Committed entries raft handed out, waiting for their WAL write before they apply. */
  private readonly applyQueue: Entry[] = [];
  /** WAL writes started and not finished, oldest first. */
  private readonly writes: PendingWrite[] = [];
  private leaderId = 0n;
  private role: SoftState['role'] = 'follower';
  private leaderlessSince: number | undefined;
  /** When this member last saw a leader elected (monotonic ms). */
  private leadElectedMs: number | undefined;
  private readonly leaderlessSubs = new Set<{ ms: number; fn: () => void; timer: NodeJS.Timeout | undefined }>();
  private tickTimer: NodeJS.Timeout | undefined = undefined;
  private attrsPublished = false;
  private readonly readyWaiters: (() => void)[] = [];
  private isReady = false;
  private readonly reqTimeoutMs: number;
  private readonly heartbeatGaps = new HeartbeatGaps();
  private readonly space: SpaceGuard;
  private readonly snapshots: Snapshots;
  private readonly compaction: Compaction;
  private readonly applier: Applier;
  private readonly reconfig: Reconfig;
  private readonly ops: BackendOps;
  private readonly corruption: CorruptionChecks;
  private readonly reads: ReadIndexBatcher;
  private readonly leases: Leases;
  private readonly peer: PeerRequests;
  /** Set while defragmentation replaces the database: committed entries wait in applyQueue. */
  private applyPaused = false;
  /** Resolves when the running defragmentation (applyPaused) ends. */
  private defragDone: Promise<void> = Promise.resolve();
  private compactor: AutoCompactor | undefined = undefined;
  /** Test-only fault hooks (CAIRN_FAILPOINTS raft.ready / raft.step, refused outside test runs). */
  private readonly readyHook: (() => void) | undefined;
  private readonly stepHook: (() => void) | undefined;

  private constructor(
    private readonly cfg: NodeConfig,
    private readonly backend: Backend,
    readonly store: KvStore,
    private readonly wal: Wal,
    private readonly raftStorage: MemoryStorage,
    readonly clusterId: bigint,
    readonly memberId: bigint,
    hardState: HardState,
  ) {
    this.leaseStore = new LeaseStore(backend);
    this.memberStore = new MemberStore(backend);
    this.auth = new AuthStore(backend, monotonicMs);
    this.alarms = new AlarmStore(backend);
    this.applier = new Applier({ backend, store, members: this.memberStore, alarms: this.alarms, auth: this.auth, leaseStore: this.leaseStore, memberId });
    this.currentTerm = hardState.term;
    this.handedTerm = hardState.term;
    this.handedVote = hardState.vote;
    this.handedCommit = hardState.commit;
    this.durableIndex = raftStorage.lastIndex();
    this.ids = new RequestIds(memberId);
    this.reqTimeoutMs = 5000 + 2 * cfg.electionMs;
    this.leases = new Leases({
      cfg,
      leaseStore: this.leaseStore,
      auth: this.auth,
      isLeader: () => this.role === 'leader',
      stopped: () => this.stopped,
      propose: (req) => this.propose(req),
      forwardToLeader: (kind, body) => this.peer.forwardToLeader(kind, body),
    });
    this.peer = new PeerRequests({
      clusterId,
      members: this.memberStore,
      store,
      leases: this.leases,
      leaderId: () => this.leaderId,
      isLeader: () => this.role === 'leader',
      request: (to, kind, body) => this.transport.request(to, kind, body, this.reqTimeoutMs),
      promoteMember: (id) => this.promoteMember(id),
    });
    this.reads = new ReadIndexBatcher({
      memberId,
      reqTimeoutMs: this.reqTimeoutMs,
      leaderId: () => this.leaderId,
      appliedIndex: () => this.appliedIndex,
      stopped: () => this.stopped,
      readIndex: (ctx) => this.raft.readIndex(ctx),
      kick: () => this.kick(),
      fail: (err) => this.fail(err),
    });
    this.corruption = new CorruptionChecks({
      cfg,
      memberId,
      store,
      members: this.memberStore,
      isLeader: () => this.role === 'leader',
      stopped: () => this.stopped,
      request: (to, kind, body) => this.transport.request(to, kind, body, this.reqTimeoutMs),
      linearizableRead: () => this.linearizableRead() ?? Promise.resolve(),
      raiseCorrupt: (member) => this.raiseAlarm(AlarmType.CORRUPT, member),
    });
    this.reconfig = new Reconfig({
      cfg,
      memberId,
      members: this.memberStore,
      ids: this.ids,
      reqTimeoutMs: this.reqTimeoutMs,
      raft: () => this.raft,
      transport: () => this.transport,
      isLeader: () => this.role === 'leader',
      stopped: () => this.stopped,
      kick: () => this.kick(),
      fail: (err) => this.fail(err),
      forwardToLeader: (kind, body) => this.peer.forwardToLeader(kind, body),
      waitApplied: (index) => this.reads.waitApplied(index),
      removed: (why) => this.removed(why),
    });
    this.compaction = new Compaction({
      cfg,
      memberId,
      backend,
      store,
      wal,
      raftStorage,
      members: this.memberStore,
      appliedIndex: () => this.appliedIndex,
      stopped: () => this.stopped,
      installing: () => this.installing !== undefined,
      fail: (err) => this.fail(err),
    });
    this.space = new SpaceGuard({
      cfg,
      memberId,
      alarms: this.alarms,
      backend,
      stopped: () => this.stopped,
      raiseNoSpace: () => this.raiseAlarm(AlarmType.NOSPACE),
    });
    this.ops = new BackendOps({
      cfg,
      backend,
      store,
      pauseApply: () => this.pauseApply(),
      quiesce: async () => {
        await this.compaction.settled();
      },
      afterDefrag: () => {
        this.space.resetDbBytes();
        this.guard(() => this.applyDurable());
        this.kick();
        this.compactInBackground();
        return this.space.dbBytes;
      },
    });
    this.snapshots = new Snapshots({
      cfg,
      memberId,
      backend,
      wal,
      store,
      ops: this.ops,
      appliedIndex: () => this.appliedIndex,
      physicalDone: () => this.compaction.physicalDone(),
      beginInstall: () => this.beginInstall(),
      installed: (meta) => this.installed(meta),
    });
    this.watchable = new WatchableStore(store, WATCH_CATCH_UP, (fn) => setImmediate(() => this.ops.watchTask(fn)));
    this.leaderlessSince = monotonicMs();
    this.readyHook = armed('raft.ready', cfg.logger);
    this.stepHook = armed('raft.step', cfg.logger);
    const electionTicks = Math.max(2, Math.round(cfg.electionMs / cfg.heartbeatMs));
    this.raft = new RawNode(
      {
        id: memberId,
        electionTicks,
        heartbeatTicks: 1,
        applied: this.appliedIndex,
        maxSizePerMsg: RAFT_MAX_SIZE_PER_MSG,
        maxInflightMsgs: RAFT_MAX_INFLIGHT_MSGS,
        maxUncommittedEntriesBytes: RAFT_MAX_UNCOMMITTED_BYTES,
        checkQuorum: true,
        preVote: true,
        randomInt: (n) => Math.floor(Math.random() * n),
        logger: cfg.logger.child('raft'),
      },
      raftStorage,
    );
  }

  static async open(cfg: NodeConfig): Promise<Node> {
    const log = cfg.logger;
    const { backend, wal, storage, hardState, identity, applied, walEntries, members } = await recover(cfg);
    const store = new KvStore(backend);
    const node = new Node(cfg, backend, store, wal, storage, identity.clusterId, identity.memberId, hardState);
    node.compactInBackground();
    const peers = members.all().length > 0 ? members.all() : identity.knownPeers;
    node.transport = await Transport.listen({
      memberId: identity.memberId,
      clusterId: identity.clusterId,
      listenUrls: [...cfg.listenPeerUrls],
      snapshotDir: snapDirOf(cfg),
      logger: log.child('transport'),
      onMessages: (msgs) => node.onPeerMessages(msgs),
      onSnapshot: (msg, file) => {
        if (node.snapshots.received(msg, file, node.stopped)) node.onPeerMessages([msg]);
      },
      openSnapshot: (msg) => node.snapshots.open(msg),
      onSnapshotSent: (to, ok) => {
        node.guard(() => node.raft.reportSnapshot(to, ok));
        node.kick();
      },
      onUnreachable: (to) => {
        node.guard(() => node.raft.reportUnreachable(to));
        node.kick();
      },
      handleRequest: (_from, kind, body) => node.peer.handle(kind, body),
      isRemoved: (id) => node.memberStore.isRemoved(id),
      onRemoved: () => node.removed('a peer reports that this member was removed from the cluster'),
      onRoundTrip: peerRoundTrip,
      tls: cfg.peerTls,
    });
    for (const m of peers) if (m.id !== identity.memberId) node.transport.addPeer(m.id, [...m.peerURLs]);
    log.info('opened backend and WAL', {
      'data-dir': cfg.dataDir,
      'wal-dir': walDirOf(cfg),
      'cluster-id': identity.clusterId.toString(16),
      'member-id': identity.memberId.toString(16),
      'applied-index': applied,
      'raft-term': hardState.term,
      'raft-commit': hardState.commit,
      'wal-entries': walEntries,
      'current-revision': store.currentRev,
      members: peers.length,
      leases: node.lessor.size,
    });
    node.tickTimer = setInterval(() => node.tick(), cfg.heartbeatMs);
    node.space.start();
    node.startChecks();
    node.kick();
    node.advanceTicksIfAlone();
    return node;
  }

  /**
   * etcd's --initial-election-tick-advance: a member that is the only voter need not wait a whole
   * election timeout before it campaigns (bootstrap entries are applied first, so run after them).
   */
  private advanceTicksIfAlone(): void {
    setImmediate(() => {
      const st = this.raft.status();
      if (this.stopped || st.confState.voters.length !== 1 || st.confState.voters[0] !== this.memberId) return;
      const ticks = Math.max(2, Math.round(this.cfg.electionMs / this.cfg.heartbeatMs)) - 1;
      this.guard(() => {
        for (let i = 0; i < ticks; i++) this.raft.tick();
      });
      this.kick();
    });
  }

  // ---------- identity ----------

  get term(): number {
    return this.currentTerm;
  }

  hasLeader(): boolean {
    return this.leaderId !== 0n;
  }

  isLeader(): boolean {
    return this.role === 'leader';
  }

  isLearner(): boolean {
    return this.memberStore.get(this.memberId)?.isLearner ?? false;
  }

  onLeaderless(ms: number, fn: () => void): () => void {
    const sub = { ms, fn, timer: undefined as NodeJS.Timeout | undefined };
    this.leaderlessSubs.add(sub);
    if (this.leaderlessSince !== undefined) this.armLeaderless(sub);
    return () => {
      if (sub.timer !== undefined) clearTimeout(sub.timer);
      this.leaderlessSubs.delete(sub);
    };
  }

  private armLeaderless(sub: { ms: number; fn: () => void; timer: NodeJS.Timeout | undefined }): void {
    const since = this.leaderlessSince ?? monotonicMs();
    sub.timer = setTimeout(() => {
      sub.timer = undefined;
      if (this.leaderlessSince !== undefined) sub.fn();
    }, Math.max(0, since + sub.ms - monotonicMs()));
    sub.timer.unref();
  }

  // ---------- the run loop ----------

  private tick(): void {
    if (this.stopped) return;
    this.guard(() => this.raft.tick());
    this.kick();
  }

  /** Runs a step of the pipeline outside the run loop; anything it throws stops the member. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private kick(): void {
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
      for (const w of this.idle.splice(0)) w();
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
    if (hs !== undefined) this.currentTerm = hs.term;
    const serial = rd.snapshot !== undefined || rd.committedEntries.some((e) => e.type === 'confChange');
    if (serial) await this.drainWrites();
    // A conf change applies before raft advances: wait out a defragmentation holding applies back.
    while (serial && this.applyPaused) await this.defragDone;
    if (rd.snapshot !== undefined) await this.snapshots.install(rd.snapshot, hs);
    const termVote = hs !== undefined && (hs.term !== this.handedTerm || hs.vote !== this.handedVote);
    if (hs !== undefined) {
      this.handedTerm = hs.term;
      this.handedVote = hs.vote;
      this.handedCommit = hs.commit;
    }
    const needWrite = rd.entries.length > 0 || (hs !== undefined && rd.mustSync);
    let write: PendingWrite | undefined;
    if (needWrite) {
      const last = rd.entries[rd.entries.length - 1];
      write = { last: last?.index, late: [], termVote, done: Promise.resolve() };
      const w = write;
      w.done = this.wal
        .append(rd.entries.map(toWal), hs !== undefined ? toWalHardState(hs) : undefined)
        .then(() => this.writeDone(w))
        .catch((err: unknown) => this.fail(err));
    }
    this.route(rd.messages, write);
    if (write !== undefined) this.writes.push(write);
    if (rd.entries.length > 0) this.raftStorage.append(rd.entries);
    if (hs !== undefined) this.raftStorage.setHardState(hs);
    for (const e of rd.committedEntries) this.applyQueue.push(e);
    this.applyDurable();
    // A conf change must be in effect (applied, raft told) before raft hears that it was applied.
    if (serial) await this.drainWrites();
    for (const rs of rd.readStates) this.reads.onReadState(rs.index, rs.context);
    this.raft.advance(rd);
    this.snapshots.dropStale(this.appliedIndex);
    this.compaction.afterReady();
  }

  /** Sends now, or after the write that makes what the messages say durable. */
  private route(msgs: readonly Message[], own: PendingWrite | undefined): void {
    if (msgs.length === 0) return;
    const pendingTermVote = own?.termVote === true || this.writes.some((w) => w.termVote);
    let after: PendingWrite | undefined;
    if (this.role !== 'leader' || pendingTermVote) after = own ?? this.writes[this.writes.length - 1];
    else if (this.handedCommit > this.durableIndex) after = this.writes.find((w) => w.last !== undefined && w.last >= this.handedCommit) ?? own ?? this.writes[this.writes.length - 1];
    if (after === undefined) this.send(msgs);
    else after.late.push(...msgs);
  }

  private writeDone(w: PendingWrite): void {
    assert(this.writes[0] === w, 'WAL writes finish in order');
    this.writes.shift();
    if (w.last !== undefined) this.durableIndex = w.last;
    this.send(w.late);
    this.applyDurable();
    this.kick();
  }

  private applyDurable(): void {
    if (this.applyPaused) return;
    let n = 0;
    while (n < this.applyQueue.length && (this.applyQueue[n] as Entry).index <= this.durableIndex) n++;
    if (n > 0) this.applyCommitted(this.applyQueue.splice(0, n));
  }

  private async drainWrites(): Promise<void> {
    while (this.writes.length > 0) await this.writes[this.writes.length - 1]?.done;
  }

  private send(msgs: readonly Message[]): void {
    if (msgs.length === 0) return;
    if (this.role === 'leader') this.heartbeatGaps.sent(msgs, this.cfg.heartbeatMs);
    this.transport.send([...msgs]);
  }

  private onPeerMessages(msgs: readonly Message[]): void {
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
        this.cfg.logger.warn('dropped a peer message raft refused', { type: m.type, from: m.from.toString(16), error: err });
      }
    }
    this.kick();
  }

  private onSoftState(ss: SoftState): void {
    const wasLeader = this.role === 'leader';
    const prevLead = this.leaderId;
    this.role = ss.role;
    this.leaderId = ss.lead;
    this.heartbeatGaps.reset();
    if (ss.lead !== 0n && ss.lead !== prevLead) nodeStats.leaderChanges++;
    if (prevLead !== ss.lead) {
      this.cfg.logger.info(ss.lead === 0n ? 'lost the leader' : 'leader elected', { leader: ss.lead.toString(16), term: this.raft.status().hardState.term, role: ss.role });
      if (prevLead !== 0n) this.reads.leaderChanged();
      this.onLeaderChange(ss.lead);
    }
    if (ss.role === 'leader' && !wasLeader) this.leases.promote();
    if (ss.role !== 'leader' && wasLeader) this.leases.demote();
  }

  /**
   * Which timeout a proposal made at startMs ran into (etcd's parseProposeCtxErr): one that started
   * within two election timeouts before the current leader was elected most likely died with the
   * previous leader.
   */
  private timeoutKind(startMs: number): 'timeout' | 'timeoutLeaderFail' {
    const elected = this.leadElectedMs;
    return elected !== undefined && startMs > elected - 2 * this.cfg.electionMs && startMs < elected ? 'timeoutLeaderFail' : 'timeout';
  }

  private onLeaderChange(lead: bigint): void {
    if (lead !== 0n) this.leadElectedMs = monotonicMs();
    if (lead === 0n) {
      this.leaderlessSince = monotonicMs();
      for (const s of this.leaderlessSubs) this.armLeaderless(s);
      return;
    }
    this.leaderlessSince = undefined;
    for (const s of this.leaderlessSubs) {
      if (s.timer !== undefined) clearTimeout(s.timer);
      s.timer = undefined;
    }
    this.retryLeaderless();
    this.publishAttrs();
    setImmediate(() => this.reconfig.repropose());
  }

  /** A leader is known again: proposals and reads that waited for one go ahead. */
  private retryLeaderless(): void {
    if (this.leaderless.size > 0) {
      const waiting = [...this.leaderless].map(([id, data]) => ({ id, data }));
      this.leaderless.clear();
      const first = this.proposals.length === 0;
      this.proposals.unshift(...waiting);
      if (first) {
        setImmediate(() => {
          this.flushProposals();
          this.kick();
        });
      }
    }
    this.reads.leaderKnown();
  }

  /** etcd publishes the member's name and client URLs through the log once a leader exists. */
  private publishAttrs(): void {
    if (this.attrsPublished) return;
    const urls = this.cfg.advertiseClientUrls;
    if (this.attrsInStore()) {
      this.attrsPublished = true;
      this.becomeReady();
      return;
    }
    this.attrsPublished = true;
    this.propose({ memberAttrs: { memberId: this.memberId, name: this.cfg.name, clientUrls: [...urls] } }).then(
      () => {
        this.cfg.logger.info('published local member to cluster through raft', { 'member-id': this.memberId.toString(16), name: this.cfg.name, 'client-urls': urls });
        this.becomeReady();
      },
      (err: unknown) => {
        this.attrsPublished = false;
        // The entry may have been applied all the same, inside a snapshot installed from the leader
        // (which resolves no waiter): the retry finds it in the member store. etcd retries in a loop too.
        this.cfg.logger.warn('failed to publish member attributes; will retry', { error: err });
        if (!this.stopped) setTimeout(() => this.publishAttrs(), this.cfg.electionMs).unref();
      },
    );
  }

  /** Whether the member store already holds this member's name and client URLs as configured. */
  private attrsInStore(): boolean {
    const me = this.memberStore.get(this.memberId);
    const urls = this.cfg.advertiseClientUrls;
    return me !== undefined && me.name === this.cfg.name && me.clientURLs.length === urls.length && me.clientURLs.every((u, i) => u === urls[i]);
  }

  private becomeReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  /** Resolves once the member has a leader and has published itself (etcd's ReadyNotify). */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  // ---------- proposals ----------

  /** Proposes a write; resolves once it is committed and applied here (or refused at apply time). */
  propose(req: InternalRequestInit): Promise<ApplyOutcome> {
    if (this.stopped) return Promise.reject(new ServerRefusal('stopped'));
    if (this.waiters.size >= PROPOSALS_PENDING_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    const cost = quotaCost(req);
    if (cost > 0) {
      const checked = this.space.admit(cost);
      if (checked !== undefined) return checked.then(() => this.propose(req));
    }
    const id = this.ids.next();
    const data = encodeInternalRequest({ ...req, header: { ...req.header, ID: id, proposedUnixMs: Date.now() } });
    if (data.length > this.cfg.requestBytesMax) return Promise.reject(new ClientError('requestTooLarge'));
    const startMs = monotonicMs();
    return new Promise<ApplyOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        nodeStats.proposalsFailed++;
        reject(new ServerRefusal(this.leaderless.delete(id) ? 'noLeader' : this.timeoutKind(startMs)));
      }, this.reqTimeoutMs);
      this.waiters.set(id, { resolve, reject, timer });
      this.proposals.push({ id, data });
      if (this.proposals.length === 1) {
        // Gather every proposal that arrives in this I/O phase (many client requests at once).
        setImmediate(() => {
          this.flushProposals();
          this.kick();
        });
      }
    });
  }

  /**
   * Hands the proposals of this turn to raft as one message: one append, one app per follower for
   * the batch (one per proposal would multiply peer messages and acknowledgements).
   */
  private flushProposals(): void {
    const batch = this.proposals;
    if (batch.length === 0) return;
    this.proposals = [];
    try {
      this.raft.proposeMany(batch.map((p) => p.data));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) {
        this.fail(err);
        return;
      }
      if (err.reason === 'noLeader') {
        // As etcd, a proposal made without a leader waits for one (until the request times out,
        // then fails with "no leader"); hasleader callers were refused before getting here.
        for (const p of batch) this.leaderless.set(p.id, p.data);
        return;
      }
      const e = dropped(err);
      for (const p of batch) {
        const w = this.waiters.get(p.id);
        if (w === undefined) continue;
        nodeStats.proposalsFailed++;
        this.waiters.delete(p.id);
        clearTimeout(w.timer);
        w.reject(e);
      }
    }
  }

  // ---------- linearizable reads (ReadIndex, batched) ----------

  /** Resolves once this member has applied everything committed before the call (etcd's ReadIndex). */
  linearizableRead(): Promise<void> | undefined {
    if (this.stopped) return Promise.reject(new ServerRefusal('stopped'));
    if (this.role === 'leader' && this.installing === undefined && this.appliedIndex >= this.handedCommit && this.aloneAsVoter()) {
      // A single voter is its own quorum: once it has applied everything committed (after a restart
      // the log may hold committed entries not yet applied: sim finding H4) it may read at once.
      // (Fields the run loop keeps, not raft.status(), which builds the whole progress map: hot path.)
      return undefined;
    }
    return this.reads.read();
  }

  /** This member is the cluster's only voter (as applied). */
  private aloneAsVoter(): boolean {
    const voters = this.memberStore.all().filter((m) => !m.isLearner);
    return voters.length === 1 && voters[0]?.id === this.memberId;
  }

  /** Undefined when reads may go ahead now; otherwise resolves once a snapshot install finished. */
  whenReadable(): Promise<void> | undefined {
    return this.installing;
  }

  // ---------- apply ----------

  private applyCommitted(entries: readonly Entry[]): void {
    for (let i = 0; i < entries.length; i += APPLY_BATCH_ENTRIES_MAX) {
      const chunk = entries.slice(i, i + APPLY_BATCH_ENTRIES_MAX);
      const effects = this.applier.applyChunk(chunk);
      this.afterCommit(effects);
    }
    this.space.refreshDbBytes();
    this.reads.wakeApplied(this.appliedIndex);
  }

  /** What a committed batch changed, for watchers, the lessor, waiters, raft and the transport. */
  private afterCommit(a: Effects): void {
    if (a.revisions.length > 0) this.watchable.notify(a.revisions);
    if (a.leaseChanges.granted.length > 0 || a.leaseChanges.revoked.length > 0) this.leases.applied(a.leaseChanges);
    for (const { id, outcome } of a.outcomes) {
      const w = this.waiters.get(id);
      if (w === undefined) continue;
      this.waiters.delete(id);
      clearTimeout(w.timer);
      w.resolve(outcome);
    }
    if (a.compacted) this.compactInBackground();
    for (const c of a.conf) this.reconfig.applied(c.cc, c.change, c.error);
  }

  /**
   * Stops after 10 heartbeats, as etcd's stopWithDelay: a removed leader keeps leading that long so
   * the others learn that its removal committed (otherwise they may wait for its vote forever).
   */
  private removed(why: string): void {
    if (this.removing) return;
    this.removing = true;
    this.cfg.logger.warn('the member has been permanently removed from the cluster; stopping', { reason: why });
    setTimeout(() => {
      this.stopped = true;
      this.cfg.onRemoved(new RemovedMemberError(`etcdserver: the member has been permanently removed from the cluster (${why})`));
    }, 10 * this.cfg.heartbeatMs);
  }

  /** Fail-stop: storage faults and bugs alike stop the member (failstop.ts says which it was). */
  private fail(err: unknown): void {
    const fatal = fatalCause(err);
    if (this.failed) return;
    this.failed = true;
    this.stopped = true;
    const refusal = new ServerRefusal('stopped', 'etcdserver: server stopped', { cause: fatal });
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(refusal);
    }
    this.waiters.clear();
    this.reconfig.failAll(refusal);
    this.reads.failAll(refusal);
    this.cfg.onFatal(fatal);
  }

  // ---------- log compaction and snapshots ----------

  /** Holds reads back (whenReadable) while a snapshot replaces the database; returns the release. */
  private beginInstall(): () => void {
    let done!: () => void;
    this.installing = new Promise<void>((r) => (done = r));
    nodeStats.snapshotsInstalling++;
    return () => {
      nodeStats.snapshotsInstalling--;
      this.installing = undefined;
      done();
    };
  }

  /** A leader's snapshot replaced the database (applied up to meta.index): everything restarts from it. */
  private installed(meta: SnapshotMeta): void {
    this.space.resetDbBytes();
    this.appliedIndex = meta.index;
    this.compaction.snapshotInstalled(meta.index);
    this.durableIndex = meta.index;
    this.store.reload();
    this.memberStore.reload();
    // A snapshot may carry this member's own published attributes (its publish proposal applied
    // on the leader before the snapshot was cut): then it is ready now, its waiter never resolves.
    if (!this.isReady && this.attrsInStore()) this.becomeReady();
    this.alarms.reload();
    this.auth.reload();
    this.leases.reload();
    this.raftStorage.applySnapshot(meta);
    this.watchable.restore();
    for (const m of this.memberStore.all()) if (m.id !== this.memberId) this.transport.addPeer(m.id, [...m.peerURLs]);
    this.compactInBackground();
  }

  // ---------- leases (leases.ts) ----------

  /** Expiry bookkeeping of granted leases; deadlines matter on the leader only. */
  get lessor(): Lessor {
    return this.leases.lessor;
  }

  /** KeepAlive: renewed by the leader (forwarded there from a follower). TTL 0 = unknown/expired. */
  renewLease(id: bigint): Promise<number> {
    return this.leases.renew(id);
  }

  /** Remaining TTL as the leader sees it: {remainingMs, ttlSeconds} or undefined when unknown. */
  leaseRemaining(id: bigint): Promise<{ remainingMs: number; ttlSeconds: number } | undefined> {
    return this.leases.remaining(id);
  }

  // ---------- membership (Cluster service) ----------

  members(): MemberInfo[] {
    return this.memberStore.all();
  }

  addMember(peerURLs: readonly string[], isLearner: boolean): Promise<{ member: MemberInfo; members: MemberInfo[] }> {
    return this.reconfig.add(peerURLs, isLearner);
  }

  removeMember(id: bigint): Promise<MemberInfo[]> {
    return this.reconfig.remove(id);
  }

  updateMember(id: bigint, peerURLs: readonly string[]): Promise<MemberInfo[]> {
    return this.reconfig.update(id, peerURLs);
  }

  promoteMember(id: bigint): Promise<MemberInfo[]> {
    return this.reconfig.promote(id);
  }

  // ---------- Maintenance ----------

  /** Client proposals waiting to be applied (etcd_server_proposals_pending). */
  pendingProposals(): number {
    return this.waiters.size;
  }

  /** Bytes and drops on the streams to and from a peer (etcd_network_peer_*). */
  peerStats(id: bigint): PeerStats | undefined {
    return this.transport.peerStats(id);
  }

  status(): MemberStatus {
    const st = this.raft.status();
    return {
      leader: st.softState.lead,
      raftIndex: st.hardState.commit,
      raftTerm: st.hardState.term,
      raftAppliedIndex: this.appliedIndex,
      isLearner: this.isLearner(),
      dbSizeBytes: this.backend.sizeBytes(),
      dbSizeInUseBytes: this.ops.inUseBytes(),
      alarms: this.alarms.get(AlarmType.NONE),
    };
  }

  /** The active alarms as this member has applied them. */
  activeAlarms(): ActiveAlarm[] {
    return this.alarms.get(AlarmType.NONE);
  }

  private raiseAlarm(alarm: number, memberID = this.memberId): Promise<ApplyOutcome> {
    return this.propose({ alarm: { action: AlarmRequest_AlarmAction.ACTIVATE, memberID, alarm } });
  }

  /**
   * etcd's TransferLeadership when a member stops: a leader with other voters hands leadership to
   * the voter whose peer connection is the oldest among those caught up with its log (else the oldest
   * connected), and waits for it within the request timeout, so the others need not wait out an
   * election timeout. Failures are logged, never thrown: the member stops anyway.
   */
  async transferLeadershipForStop(): Promise<void> {
    if (this.role !== 'leader' || this.stopped) return;
    const others = this.memberStore.all().filter((m) => !m.isLearner && m.id !== this.memberId);
    if (others.length === 0) {
      this.cfg.logger.info('skipped leadership transfer for single voting member cluster');
      return;
    }
    const st = this.raft.status();
    const mine = st.progress.get(this.memberId)?.match ?? 0;
    const connected = others
      .map((m) => ({ id: m.id, since: this.transport.activeSince(m.id), caughtUp: (st.progress.get(m.id)?.match ?? -1) >= mine }))
      .filter((c): c is { id: bigint; since: number; caughtUp: boolean } => c.since !== undefined)
      .sort((a, b) => Number(b.caughtUp) - Number(a.caughtUp) || a.since - b.since);
    const target = connected[0];
    if (target === undefined) {
      this.cfg.logger.warn('failed to transfer leadership before stopping: no voter is connected');
      return;
    }
    const started = monotonicMs();
    try {
      await this.moveLeader(target.id);
      this.cfg.logger.info('leadership transferred before stopping', { transferee: target.id.toString(16), took: `${String(monotonicMs() - started)}ms` });
    } catch (err) {
      this.cfg.logger.warn('failed to transfer leadership before stopping', { transferee: target.id.toString(16), error: err });
    }
  }

  async moveLeader(target: bigint): Promise<void> {
    if (this.role !== 'leader') throw new ClientError('notLeader');
    const t = this.memberStore.get(target);
    if (t === undefined || t.isLearner) throw new ClientError('badLeaderTransferee');
    if (target === this.memberId) return;
    this.guard(() => this.raft.transferLeader(target));
    this.kick();
    const deadline = monotonicMs() + this.reqTimeoutMs;
    while (this.leaderId !== target) {
      if (monotonicMs() > deadline) throw new ServerRefusal('timeoutLeaderTransfer');
      await new Promise((r) => setTimeout(r, this.cfg.heartbeatMs));
    }
  }

  // ---------- backend operations (backendops.ts) ----------

  /**
   * A consistent copy of the database for Maintenance.Snapshot, in the member's snapshot directory.
   * The caller streams it and then calls release().
   */
  snapshotCopy(): Promise<{ path: string; bytes: number; release: () => void }> {
    return this.ops.snapshotCopy();
  }

  /**
   * Defragment (online, as etcd's: reads and applies wait while it runs): a compacting copy of the
   * database (free pages dropped) replaces the file, which shrinks after deletes and compaction.
   */
  defragment(): Promise<{ beforeBytes: number; afterBytes: number; tookMs: number }> {
    return this.ops.defragment();
  }

  /** Maintenance.Hash: CRC-32 over every replicated table (not member-local meta), and the current revision. */
  hash(): { hash: number; revision: number } | Promise<{ hash: number; revision: number }> {
    return this.ops.hash();
  }

  hashKV(revision: number): HashKvResult | Promise<HashKvResult> {
    return this.ops.hashKV(revision);
  }

  /** Holds applies back (committed entries wait in applyQueue) and reads (whenReadable) until resumed. */
  private pauseApply(): () => void {
    let done!: () => void;
    this.installing = new Promise<void>((r) => (done = r));
    this.defragDone = this.installing;
    this.applyPaused = true;
    return () => {
      this.applyPaused = false;
      this.installing = undefined;
      done();
    };
  }

  // ---------- auto compaction and corruption checks ----------

  private startChecks(): void {
    const ac = this.cfg.autoCompaction;
    if (ac !== undefined) {
      this.compactor = new AutoCompactor(ac, {
        currentRevision: () => this.store.currentRev,
        isLeader: () => this.role === 'leader',
        compact: (revision) =>
          this.propose({ compaction: { revision } }).then(
            (o) => o.ok || o.error.kind === 'compacted',
            () => false,
          ),
        logger: this.cfg.logger.child('compactor'),
      });
      this.compactor.start();
    }
    this.corruption.start();
  }

  /**
   * --experimental-initial-corrupt-check: before serving, this member's data must agree with every
   * reachable peer's at the same revision and compaction. Rejects (the process must not serve) on a mismatch.
   */
  initialCorruptCheck(): Promise<void> {
    return this.corruption.initial();
  }


  // ---------- compaction (compaction.ts) ----------

  /** Physical compaction of what a Compact left behind, in the background. */
  compactInBackground(): void {
    this.compaction.physical();
  }

  /** Resolves once no physical compaction is left to do (for Compact with physical=true). */
  compacted(): Promise<void> {
    return this.compaction.compacted();
  }


  /**
   * Stops taking proposals, lets the run loop finish its Ready, and closes storage durably; rejects
   * (the process then exits with a failure) if that takes longer than SHUTDOWN_TIMEOUT_MS. Everything
   * acknowledged is in the WAL either way.
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ServerRefusal('timeout', `node: shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS} ms`)), SHUTDOWN_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.closeSteps(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async closeSteps(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    this.space.stop();
    this.corruption.stop();
    this.compactor?.stop();
    this.leases.demote();
    for (const s of this.leaderlessSubs) if (s.timer !== undefined) clearTimeout(s.timer);
    await this.transport.close();
    if (this.processing) await new Promise<void>((done) => this.idle.push(done));
    await this.drainWrites();
    const refusal = new ServerRefusal('stopped');
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(refusal);
    }
    this.reconfig.failAll(refusal);
    this.reads.failAll(refusal);
    await this.compaction.settled();
    await this.backend.flush();
    await this.wal.close();
    await this.backend.close();
  }
}



/** A test-only fault hook, logged when armed (CAIRN_FAILPOINTS; bug points need CAIRN_VERIFY=1). */
function armed(name: FailpointName, log: Logger): (() => void) | undefined {
  const hook = failpoint(name);
  if (hook !== undefined) log.warn('failpoint armed', { failpoint: name, spec: process.env['CAIRN_FAILPOINTS'] });
  return hook;
}
