// A member: raft (pure, server/raft) run by the driver (driver.ts: Ready -> WAL -> transport -> apply,
// pipelined), the WAL, the peer transport and the apply loop (mvcc + lease + membership in one LMDB
// transaction per batch, applied index included). This file opens a member and wires the pieces
// (README.md beside it lists them) together through their narrow host interfaces.
//
// Invariants:
// - An entry is applied only after this member's WAL holds it durably, and a client is answered only
//   after its entry is applied here; a quorum's WALs hold every committed entry (driver.ts).
// - appliedIndex in LMDB == index of the last entry whose effects LMDB holds (same transaction).
// - The raft log in memory starts at the applied index of LMDB at start (its snapshot), so nothing
//   applied is applied twice; WAL entries above it are handed to raft again.
// - A received snapshot is installed as: file fsynced -> WAL marker durable -> rename over the
//   database. A restart finding a marker above LMDB's applied index finishes the rename.
import { AlarmType } from '../../proto/gen/etcdserverpb.js';
import { encodeInternalRequest, type InternalRequestInit } from '../../proto/gen/cairnpb.js';
import type { Wal } from '../wal/index.js';
import { type Backend } from '../storage/backend/index.js';
import { KvStore, WatchableStore } from '../mvcc/index.js';
import { LeaseStore } from '../lease/index.js';
import { AuthStore } from '../auth/index.js';
import { AlarmStore, type ApplyOutcome } from '../apply/index.js';
import { RawNode, type MemoryStorage, type Entry, type HardState, type Message, type SnapshotMeta, type SoftState, type Role, type RaftStatus } from '../raft/index.js';
import { Transport, type PeerStats } from '../transport/index.js';
import { MemberStore } from '../membership/index.js';
import { ClientError, ServerRefusal } from '../base/errors.js';
import { failpoint, type FailpointName } from '../base/failpoints.js';
import { APPLY_BATCH_ENTRIES_MAX, PROPOSALS_PENDING_MAX, WATCH_CATCH_UP } from '../base/limits.js';
import type { Logger } from '../base/log.js';
import { raftConfigOf, requestTimeoutMsOf, type NodeConfig } from './config.js';
import { RemovedMemberError, backendPathOf, confStateOf, recover, snapDirOf, toWal, toWalHardState, walDirOf } from './recovery.js';
import { monotonicMs, systemClock } from './clock.js';
import { RequestIds } from './ids.js';
import { HeartbeatGaps, nodeStats, peerRoundTrip, snapshotStored } from './stats.js';
import { quotaCost } from './quota.js';
import { SpaceGuard } from './space.js';
import { Snapshots } from './snapshots.js';
import { Compaction } from './compaction.js';
import { Applier, type Effects } from './applier.js';
import { Reconfig } from './reconfig.js';
import { BackendOps } from './backendops.js';
import { ReadIndexBatcher } from './reads.js';
import { Proposals } from './proposals.js';
import { Leases } from './leases.js';
import { PeerRequests } from './peer.js';
import { memberCompactor, type AutoCompactor } from './compactor.js';
import { CorruptionChecks, type PeerHash } from './corrupt.js';
import { CompactHashCheck } from './compacthash.js';
import { Driver } from './driver.js';
import { Leadership } from './leadership.js';
import { Lifecycle } from './lifecycle.js';
import { Maintenance } from './maintenance.js';
import type { ClusterPath, LeaderView, MemberInfo } from './surface.js';

export { RemovedMemberError, backendPathOf, confStateOf, monotonicMs };
export type { NodeConfig };

export class Node implements ClusterPath, LeaderView {
  readonly watchable: WatchableStore;
  readonly leaseStore: LeaseStore;
  readonly memberStore: MemberStore;
  /** Users, roles, permissions and simple tokens (auth helper). */
  readonly auth: AuthStore;
  /** Active alarms (NOSPACE, CORRUPT), replicated through the log. */
  readonly alarms: AlarmStore;
  /** The Maintenance service's side (surface.ts MaintenancePath): status, alarms, hashes, defragment, copies. */
  readonly maintenance: Maintenance;
  /** Leases: expiry on the leader, KeepAlive and TimeToLive (forwarded to the leader from a follower). */
  readonly leases: Leases;
  private readonly driver: Driver;
  private transport!: Transport;
  private readonly ids: RequestIds;
  private readonly proposals: Proposals<ApplyOutcome>;
  private readonly leadership: Leadership;
  private readonly life: Lifecycle;
  private readonly heartbeatGaps = new HeartbeatGaps();
  private readonly space: SpaceGuard;
  private readonly snapshots: Snapshots;
  private readonly compaction: Compaction;
  private readonly applier: Applier;
  private readonly reconfig: Reconfig;
  private readonly ops: BackendOps;
  private readonly corruption: CorruptionChecks;
  private readonly compactHash: CompactHashCheck;
  private readonly reads: ReadIndexBatcher;
  private readonly peer: PeerRequests;
  private compactor: AutoCompactor | undefined = undefined;

  /** The index of the last entry LMDB holds the effects of (the applier keeps it with its transaction). */
  private get appliedIndex(): number {
    return this.applier.appliedIndex;
  }

  private get role(): Role {
    return this.driver.role;
  }

  private get stopped(): boolean {
    return this.life.stopped;
  }

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
    this.ids = new RequestIds(memberId);
    const reqTimeoutMs = requestTimeoutMsOf(cfg);
    // What the pieces' hosts share; each host interface names the part it uses.
    const common = {
      cfg,
      memberId,
      clusterId,
      backend,
      store,
      wal,
      raftStorage,
      members: this.memberStore,
      alarms: this.alarms,
      auth: this.auth,
      leaseStore: this.leaseStore,
      ids: this.ids,
      reqTimeoutMs,
      isLeader: (): boolean => this.role === 'leader',
      leaderId: (): bigint => this.driver.leaderId,
      appliedIndex: (): number => this.appliedIndex,
      stopped: (): boolean => this.stopped,
      kick: (): void => this.driver.kick(),
      fail: (err: unknown): void => this.driver.fail(err),
      driver: (): Driver => this.driver,
      raft: (): RawNode => this.driver.raft,
      transport: (): Transport => this.transport,
      propose: (req: InternalRequestInit): Promise<ApplyOutcome> => this.propose(req),
      request: (to: bigint, kind: string, body: Uint8Array): Promise<Uint8Array> => this.transport.request(to, kind, body, reqTimeoutMs),
      forwardRenew: (id: bigint): Promise<number> => this.peer.leaseRenew(id),
      forwardTTL: (id: bigint): Promise<{ remainingMs: number; ttlSeconds: number } | undefined> => this.peer.leaseTTL(id),
      forwardPromote: (id: bigint): Promise<void> => this.peer.promote(id),
      peerHash: (id: bigint, revision: number): Promise<PeerHash> => this.peer.hashKV(id, revision),
    };
    this.applier = new Applier(common);
    this.proposals = new Proposals({ ...common, clock: systemClock, electionMs: cfg.electionMs, proposeMany: (datas) => this.driver.raft.proposeMany(datas) });
    this.leadership = new Leadership(common);
    this.leases = new Leases(common);
    this.peer = new PeerRequests({ ...common, leases: this.leases, promoteMember: (id) => this.promoteMember(id) });
    this.reads = new ReadIndexBatcher({ ...common, readIndex: (ctx) => this.driver.raft.readIndex(ctx) });
    this.reconfig = new Reconfig({ ...common, waitApplied: (index) => this.reads.waitApplied(index), removed: (why) => this.life.removed(why) });
    this.compactHash = new CompactHashCheck({ ...common, raiseCorrupt: (member) => this.maintenance.raiseAlarm(AlarmType.CORRUPT, member) });
    this.compaction = new Compaction({ ...common, installing: () => this.ops.readable() !== undefined, finished: (rev) => this.compactHash.compactionFinished(rev) });
    this.ops = new BackendOps({
      ...common,
      pauseDriver: () => this.driver.pauseApply(),
      quiesce: () => this.compaction.holdForSwap(),
      afterDefrag: () => {
        this.space.resetDbBytes();
        this.driver.resumeApply();
        this.compactInBackground();
        return this.space.dbBytes;
      },
    });
    this.snapshots = new Snapshots({ ...common, ops: this.ops, physicalDone: () => this.compaction.physicalDone(), installed: (meta) => this.installed(meta) });
    this.maintenance = new Maintenance({ ...common, ops: this.ops, leadership: this.leadership, isLearner: () => this.isLearner() });
    this.space = new SpaceGuard({ ...common, raiseNoSpace: () => this.maintenance.raiseAlarm(AlarmType.NOSPACE) });
    this.corruption = new CorruptionChecks({
      ...common,
      linearizableRead: () => this.linearizableRead() ?? Promise.resolve(),
      raiseCorrupt: (member) => this.maintenance.raiseAlarm(AlarmType.CORRUPT, member),
    });
    this.life = new Lifecycle({
      ...common,
      refuseWaiters: (refusal) => {
        this.proposals.failAll(refusal);
        this.reconfig.failAll(refusal);
        this.reads.failAll(refusal);
      },
      stopBackground: () => {
        this.space.stop();
        this.corruption.stop();
        this.compactHash.stop();
        this.compactor?.stop();
        this.leases.demote();
        this.leadership.stop();
      },
      closeStorage: async () => {
        await this.compaction.settled();
        await this.backend.flush();
        await this.wal.close();
        await this.backend.close();
      },
    });
    this.watchable = new WatchableStore(store, WATCH_CATCH_UP, (fn) => setImmediate(() => this.ops.watchTask(fn)));
    this.driver = new Driver({
      raft: new RawNode(raftConfigOf(cfg, memberId, this.appliedIndex), raftStorage),
      storage: raftStorage,
      hardState,
      wal: { append: (entries, hs) => wal.append(entries.map(toWal), hs !== undefined ? toWalHardState(hs) : undefined) },
      transport: { send: (msgs) => this.send(msgs) },
      clock: systemClock,
      host: {
        onSoftState: (ss, was) => this.onSoftState(ss, was),
        installSnapshot: (meta, hs) => this.snapshots.install(meta, hs),
        apply: (entries) => this.applyCommitted(entries),
        onReadState: (rs) => this.reads.onReadState(rs.index, rs.context),
        afterReady: () => {
          this.snapshots.dropStale(this.appliedIndex);
          this.compaction.afterReady();
        },
        fail: (err) => this.life.stopOnFault(err),
        dropped: (m, err) => cfg.logger.warn('dropped a peer message raft refused', { type: m.type, from: m.from.toString(16), error: err }),
      },
      readyHook: armed('raft.ready', cfg.logger),
      stepHook: armed('raft.step', cfg.logger),
    });
  }

  static async open(cfg: NodeConfig): Promise<Node> {
    const log = cfg.logger;
    const { backend, wal, storage, hardState, identity, applied, walEntries, members } = await recover(cfg);
    const store = new KvStore(backend);
    const node = new Node(cfg, backend, store, wal, storage, identity.clusterId, identity.memberId, hardState);
    const driver = node.driver;
    node.compactInBackground();
    const peers = members.all().length > 0 ? members.all() : identity.knownPeers;
    node.transport = await Transport.listen({
      memberId: identity.memberId,
      clusterId: identity.clusterId,
      listenUrls: [...cfg.listenPeerUrls],
      snapshotDir: snapDirOf(cfg),
      logger: log.child('transport'),
      onMessages: (msgs) => driver.onPeerMessages(msgs),
      onSnapshot: (msg, file) => {
        if (node.snapshots.received(msg, file, node.stopped)) driver.onPeerMessages([msg]);
      },
      openSnapshot: (msg) => node.snapshots.open(msg),
      onSnapshotSent: (to, ok) => driver.reportSnapshot(to, ok),
      onUnreachable: (to) => driver.reportUnreachable(to),
      handleRequest: (_from, kind, body) => node.peer.handle(kind, body),
      isRemoved: (id) => node.memberStore.isRemoved(id),
      onRemoved: () => node.life.removed('a peer reports that this member was removed from the cluster'),
      onRoundTrip: peerRoundTrip,
      onSnapshotStored: snapshotStored,
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
      leases: node.leases.lessor.size,
    });
    driver.start(cfg.heartbeatMs);
    node.space.start();
    node.startChecks();
    driver.kick();
    node.leadership.advanceTicksAtStart();
    return node;
  }

  // ---------- identity and leadership (leadership.ts) ----------

  get term(): number {
    return this.driver.term;
  }

  /** raft's status (builds the leader's progress map: not for hot paths). */
  raftStatus(): RaftStatus {
    return this.driver.raft.status();
  }

  hasLeader(): boolean {
    return this.driver.leaderId !== 0n;
  }

  isLeader(): boolean {
    return this.role === 'leader';
  }

  isLearner(): boolean {
    return this.memberStore.get(this.memberId)?.isLearner ?? false;
  }

  onLeaderless(ms: number, fn: () => void): () => void {
    return this.leadership.onLeaderless(ms, fn);
  }

  /** Resolves once the member has a leader and has published itself (etcd's ReadyNotify). */
  ready(): Promise<void> {
    return this.leadership.ready();
  }

  /**
   * The driver's messages. While WAL writes are small they run on this thread, and the driver sends
   * right before work that holds it (a leader's WAL write; a follower's apply after the write its
   * acknowledgement waited for): messages are then written to the peers' sockets at once, not in
   * the transport's immediate after that work, so a follower's WAL write runs beside the leader's
   * instead of after it. Under load (writes on the thread pool) the immediate batches a turn's
   * messages into one write per peer. A leader sending to its followers feeds the heartbeat-gap
   * metric.
   */
  private send(msgs: Message[]): void {
    if (this.role === 'leader') this.heartbeatGaps.sent(msgs, this.cfg.heartbeatMs);
    this.transport.send(msgs);
    if (this.wal.writesOnLoop) this.transport.flush();
  }

  private onSoftState(ss: SoftState, was: { readonly role: Role; readonly lead: bigint }): void {
    this.heartbeatGaps.reset();
    if (ss.lead !== 0n && ss.lead !== was.lead) nodeStats.leaderChanges++;
    if (was.lead !== ss.lead) {
      this.cfg.logger.info(ss.lead === 0n ? 'lost the leader' : 'leader elected', { leader: ss.lead.toString(16), term: this.driver.raft.status().hardState.term, role: ss.role });
      if (was.lead !== 0n) this.reads.leaderChanged();
      if (ss.lead === 0n) this.leadership.leaderLost();
      else {
        // A leader is known again: proposals, reads and membership changes that waited for one go ahead.
        this.leadership.leaderFound();
        this.proposals.leaderElected();
        this.reads.leaderKnown();
        this.leadership.publishAttrs();
        setImmediate(() => this.reconfig.repropose());
      }
    }
    if (ss.role === 'leader' && was.role !== 'leader') this.leases.promote();
    if (ss.role !== 'leader' && was.role === 'leader') this.leases.demote();
  }

  /** See leadership.ts. */
  transferLeadershipForStop(): Promise<void> {
    return this.leadership.transferForStop();
  }

  // ---------- proposals (proposals.ts) and linearizable reads (reads.ts) ----------

  /** Proposes a write; resolves once it is committed and applied here (or refused at apply time). */
  propose(req: InternalRequestInit): Promise<ApplyOutcome> {
    if (this.stopped) return Promise.reject(new ServerRefusal('stopped'));
    if (this.proposals.pending >= PROPOSALS_PENDING_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    const cost = quotaCost(req);
    if (cost > 0) {
      const checked = this.space.admit(cost);
      if (checked !== undefined) return checked.then(() => this.propose(req));
    }
    const id = this.ids.next();
    // Object.assign, not an object spread that adds a key: V8 gives such spread results maps that
    // make the generated writer's 21 field checks megamorphic misses (measured: 4.4 vs 1.2 us per put).
    const data = encodeInternalRequest(Object.assign({}, req, { header: Object.assign({}, req.header, { ID: id, proposedUnixMs: Date.now() }) }));
    if (data.length > this.cfg.requestBytesMax) return Promise.reject(new ClientError('requestTooLarge'));
    return this.proposals.submit(id, data);
  }

  /** Client proposals waiting to be applied (etcd_server_proposals_pending). */
  pendingProposals(): number {
    return this.proposals.pending;
  }

  /** Resolves once this member has applied everything committed before the call (etcd's ReadIndex). */
  linearizableRead(): Promise<void> | undefined {
    if (this.stopped) return Promise.reject(new ServerRefusal('stopped'));
    if (this.role === 'leader' && this.ops.readable() === undefined && this.appliedIndex >= this.driver.handedCommit && this.aloneAsVoter()) {
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
    return this.ops.readable();
  }

  // ---------- apply (applier.ts) ----------

  private applyCommitted(entries: readonly Entry[]): void {
    for (let i = 0; i < entries.length; i += APPLY_BATCH_ENTRIES_MAX) {
      const chunk = entries.slice(i, i + APPLY_BATCH_ENTRIES_MAX);
      this.afterCommit(this.applier.applyChunk(chunk));
    }
    this.space.refreshDbBytes();
    this.reads.wakeApplied(this.appliedIndex);
  }

  /** What a committed batch changed, for watchers, the lessor, waiters, raft and the transport. */
  private afterCommit(a: Effects): void {
    if (a.revisions.length > 0) this.watchable.notify(a.revisions);
    if (a.leaseChanges.granted.length > 0 || a.leaseChanges.revoked.length > 0) this.leases.applied(a.leaseChanges);
    for (const { id, outcome } of a.outcomes) this.proposals.applied(id, outcome);
    if (a.compacted) this.compactInBackground();
    for (const c of a.conf) this.reconfig.applied(c.cc, c.change, c.error);
  }

  // ---------- snapshots (snapshots.ts) and log compaction (compaction.ts) ----------

  /** A leader's snapshot replaced the database (applied up to meta.index): everything restarts from it. */
  private installed(meta: SnapshotMeta): void {
    this.space.resetDbBytes();
    this.applier.installed(meta.index);
    this.compaction.snapshotInstalled(meta.index);
    this.leadership.snapshotInstalled();
    this.leases.reload();
    this.raftStorage.applySnapshot(meta);
    this.watchable.restore();
    for (const m of this.memberStore.all()) if (m.id !== this.memberId) this.transport.addPeer(m.id, [...m.peerURLs]);
    this.compactInBackground();
  }

  /** Physical compaction of what a Compact left behind, in the background. */
  compactInBackground(): void {
    this.compaction.physical();
  }

  /** Resolves once no physical compaction is left to do (for Compact with physical=true). */
  compacted(): Promise<void> {
    return this.compaction.compacted();
  }

  // ---------- membership (Cluster service, reconfig.ts) ----------

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

  // ---------- metrics, background checks and stopping (lifecycle.ts) ----------

  /** LMDB read transactions this process holds open (etcd_mvcc_db_open_read_transactions). */
  openReadTxns(): number {
    return this.backend.openReadTxns();
  }

  /** Bytes and drops on the streams to and from a peer (etcd_network_peer_*). */
  peerStats(id: bigint): PeerStats | undefined {
    return this.transport.peerStats(id);
  }

  /** Auto compaction (--auto-compaction-*), the periodic corruption check and the compaction hash check. */
  private startChecks(): void {
    const logger = this.cfg.logger.child('compactor');
    this.compactor = memberCompactor(this.cfg.autoCompaction, { currentRevision: () => this.store.currentRev, isLeader: () => this.role === 'leader', propose: (req) => this.propose(req), logger });
    this.compactor?.start();
    this.corruption.start();
    this.compactHash.start();
  }

  /**
   * --experimental-initial-corrupt-check: before serving, this member's data must agree with every
   * reachable peer's at the same revision and compaction. Rejects (the process must not serve) on a mismatch.
   */
  initialCorruptCheck(): Promise<void> {
    return this.corruption.initial();
  }

  /** See lifecycle.ts. */
  close(): Promise<void> {
    return this.life.close();
  }
}

/** A test-only fault hook, logged when armed (CAIRN_FAILPOINTS; bug points need CAIRN_VERIFY=1). */
function armed(name: FailpointName, log: Logger): (() => void) | undefined {
  const hook = failpoint(name);
  if (hook !== undefined) log.warn('failpoint armed', { failpoint: name, spec: process.env['CAIRN_FAILPOINTS'] });
  return hook;
}
