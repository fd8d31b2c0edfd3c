// The single-member node: proposals -> WAL (group commit, fdatasync) -> apply in log order (one LMDB
// transaction per batch, the applied index written in the same transaction) -> waiters answered.
// Raft (issue 4) slots in between the proposal queue and the WAL; the rest of this flow stays.
//
// Invariants:
// - An entry is applied only after the WAL has made it durable; a client is answered only after its
//   entry is applied, so every acknowledged write survives kill -9 and is visible to later reads.
// - appliedIndex in LMDB == index of the last entry whose effects LMDB holds (same transaction).
// - On start, WAL entries above appliedIndex are re-applied; the WAL must reach appliedIndex.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { encodeInternalRequest, type InternalRequestInit } from '../../proto/gen/cairnpb.js';
import { Wal, WalFatalError, type WalEntry } from '../wal/index.js';
import { Backend } from '../storage/backend/index.js';
import { META, SCHEMA_VERSION, decodeId, decodeNum, encodeId, encodeNum } from '../storage/schema/index.js';
import { KvStore, WatchableStore, type RevisionEvents } from '../mvcc/index.js';
import { LeaseStore, Lessor } from '../lease/index.js';
import { applyEntry, MidTxnError, type ApplyOutcome, type LeaseChanges } from '../apply/index.js';
import { ClientError, ServerRefusal, StorageFault, assert } from '../base/errors.js';
import { failpoint } from '../base/failpoints.js';
import {
  APPLY_BATCH_ENTRIES_MAX,
  BACKEND_MAP_BYTES,
  COMPACTION_BATCH_KEYS,
  LEASE_REVOKES_PER_CHECK,
  LEASE_REVOKE_CHECK_MS,
  PROPOSALS_PENDING_MAX,
  SNAPSHOT_COUNT_DEFAULT,
  WAL_SEGMENT_BYTES,
  WATCH_CATCH_UP,
} from '../base/limits.js';
import type { Logger } from '../base/log.js';

export interface NodeConfig {
  readonly name: string;
  readonly dataDir: string;
  /** Empty = `<data-dir>/member/wal`. */
  readonly walDir: string;
  readonly requestBytesMax: number;
  readonly snapshotCount?: number;
  /** WAL segment size (default WAL_SEGMENT_BYTES, 64 MiB); tests use small segments. */
  readonly walSegmentBytes?: number;
  readonly logger: Logger;
  /** Called when storage fails (fsync error, corruption): the process must stop. */
  readonly onFatal: (err: Error) => void;
}

interface Proposal {
  readonly index: number;
  readonly data: Buffer;
  readonly resolve: (o: ApplyOutcome) => void;
  readonly reject: (e: Error) => void;
}


export class Node {
  /** Proposals not yet handed to the WAL (gathered for one microtask, then sent as one batch). */
  private pending: Proposal[] = [];
  private scheduled = false;
  private stopped = false;
  /** Set once storage failed: nothing is applied any more and every proposal is refused. */
  private failed = false;
  /** Batches handed to the WAL and not yet applied; bounded by PROPOSALS_PENDING_MAX proposals. */
  private inflight = 0;
  /** Batches handed to the WAL, oldest first, until applied. */
  private readonly queue: InFlight[] = [];
  private applyScheduled = false;
  private readonly idleWaiters: (() => void)[] = [];
  private lastIndex: number;
  private appliedIndex: number;
  private releasedThrough = 0;
  /** The physical compaction in progress, if any, and who waits for it to finish. */
  private compacting: Promise<void> | undefined = undefined;
  private readonly compactedWaiters: (() => void)[] = [];
  /** The WAL release in progress (LMDB flush, then deleting segments it now holds), if any. */
  private releasing: Promise<void> | undefined = undefined;
  private nextProposalId: bigint;
  readonly term = SINGLE_MEMBER_TERM;
  readonly watchable: WatchableStore;
  /** Expiry bookkeeping of granted leases (loaded after the WAL replay). */
  readonly lessor = new Lessor();
  private readonly leaseStore: LeaseStore;
  private leaseTimer: NodeJS.Timeout | undefined = undefined;
  private leaseTimerAtMs = Infinity;

  private constructor(
    private readonly cfg: NodeConfig,
    private readonly backend: Backend,
    readonly store: KvStore,
    private readonly wal: Wal,
    readonly clusterId: bigint,
    readonly memberId: bigint,
  ) {
    this.appliedIndex = decodeNum(backend.table('meta').get(META.appliedIndex), 0);
    this.lastIndex = Math.max(this.appliedIndex, wal.lastIndex());
    this.nextProposalId = BigInt.asUintN(64, memberId << 16n);
    this.leaseStore = new LeaseStore(backend);
    this.watchable = new WatchableStore(store, WATCH_CATCH_UP, (fn) => setImmediate(fn));
  }

  static async open(cfg: NodeConfig): Promise<Node> {
    const log = cfg.logger;
    const backendPath = backendPathOf(cfg.dataDir);
    const walDir = walDirOf(cfg);
    const backend = Backend.open(backendPath, BACKEND_MAP_BYTES);
    checkSchema(backend);
    const { clusterId, memberId } = ensureIds(backend);
    const store = new KvStore(backend);
    const beforeWrite = failpoint('wal.write');
    if (beforeWrite !== undefined) log.warn('failpoint armed', { failpoint: 'wal.write', spec: process.env['CAIRN_FAILPOINTS'] });
    const { wal, entries } = await Wal.open({ dir: walDir, logger: log.child('wal'), segmentBytes: cfg.walSegmentBytes ?? WAL_SEGMENT_BYTES, beforeWrite });
    const node = new Node(cfg, backend, store, wal, clusterId, memberId);
    const replayed = node.replay(entries);
    await backend.flush();
    node.compactInBackground();
    node.loadLeases();
    log.info('opened backend and WAL', {
      'data-dir': cfg.dataDir,
      'wal-dir': walDir,
      'applied-index': node.appliedIndex,
      'current-revision': store.currentRev,
      'compact-revision': store.compactRev,
      'wal-entries': entries.length,
      'replayed-entries': replayed,
      leases: node.lessor.size,
    });
    return node;
  }

  /** Every granted lease starts its full TTL again (etcd refreshes leases when a member starts leading). */
  private loadLeases(): void {
    const now = monotonicMs();
    for (const l of this.leaseStore.all()) this.lessor.granted(l.id, l.ttlSeconds, now);
    this.scheduleLeaseCheck();
  }

  /** Arms the timer for the next lease expiry (one timer; moved earlier when a sooner lease appears). */
  private scheduleLeaseCheck(): void {
    if (this.stopped) return;
    const at = this.lessor.nextCheckMs();
    if (at === undefined || at >= this.leaseTimerAtMs) return;
    this.armLeaseTimer(at);
  }

  private armLeaseTimer(atMs: number): void {
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    this.leaseTimerAtMs = atMs;
    this.leaseTimer = setTimeout(() => this.revokeExpired(), Math.max(0, atMs - monotonicMs()));
    this.leaseTimer.unref();
  }

  /** Proposes revokes for expired leases, at most LEASE_REVOKES_PER_CHECK per LEASE_REVOKE_CHECK_MS (etcd: 1000/s). */
  private revokeExpired(): void {
    this.leaseTimer = undefined;
    this.leaseTimerAtMs = Infinity;
    if (this.stopped) return;
    const now = monotonicMs();
    const ids = this.lessor.expired(now, LEASE_REVOKES_PER_CHECK);
    for (const id of ids) {
      this.propose({ leaseRevoke: { ID: id } }).then(
        (o) => {
          if (o.ok) this.cfg.logger.debug('lease expired and revoked', { 'lease-id': id.toString(16) });
        },
        (err: unknown) => this.cfg.logger.warn('failed to revoke an expired lease; will retry', { 'lease-id': id.toString(16), error: err }),
      );
    }
    if (ids.length === LEASE_REVOKES_PER_CHECK) this.armLeaseTimer(now + LEASE_REVOKE_CHECK_MS);
    else this.scheduleLeaseCheck();
  }

  /** Re-applies the WAL entries LMDB does not hold yet; returns how many. */
  private replay(entries: readonly WalEntry[]): number {
    const todo = entries.filter((e) => e.index > this.appliedIndex);
    const first = todo[0];
    if (first !== undefined && first.index !== this.appliedIndex + 1) {
      throw new StorageFault(`node: WAL starts at entry ${first.index} but the backend has applied only up to ${this.appliedIndex}`);
    }
    if (this.wal.lastIndex() < this.appliedIndex && this.wal.lastIndex() !== 0) {
      throw new StorageFault(`node: the WAL in ${walDirOf(this.cfg)} ends at entry ${this.wal.lastIndex()} but the backend has applied up to ${this.appliedIndex}: entries that were durable are missing from the WAL (disk damage?); refusing to start`);
    }
    for (let i = 0; i < todo.length; i += APPLY_BATCH_ENTRIES_MAX) {
      this.applyBatch(todo.slice(i, i + APPLY_BATCH_ENTRIES_MAX).map((e) => ({ index: e.index, data: e.data })));
    }
    return todo.length;
  }

  /** Proposes a write; resolves once it is durable and applied (or refused at apply time). */
  propose(req: InternalRequestInit): Promise<ApplyOutcome> {
    if (this.stopped) return Promise.reject(new ServerRefusal('stopped'));
    if (this.pending.length + this.inflight >= PROPOSALS_PENDING_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    const data = encodeInternalRequest({ ...req, header: { ID: this.nextProposalId++, proposedUnixMs: Date.now() } });
    if (data.length > this.cfg.requestBytesMax) return Promise.reject(new ClientError('requestTooLarge'));
    const index = ++this.lastIndex;
    return new Promise<ApplyOutcome>((resolve, reject) => {
      this.pending.push({ index, data, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => this.dispatch());
      }
    });
  }

  /**
   * Hands what was proposed during this turn to the WAL at once (the WAL group-commits everything
   * queued while its previous write is in flight), so CPU work on one batch overlaps the disk write
   * of the next. Batches are applied strictly in log order once durable (see applyDurable).
   */
  private dispatch(): void {
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, APPLY_BATCH_ENTRIES_MAX);
      this.inflight += batch.length;
      const rec: InFlight = { batch, durable: false };
      this.queue.push(rec);
      this.wal
        .append(batch.map((p) => ({ index: p.index, term: this.term, data: p.data })))
        .then(
          () => {
            rec.durable = true;
            this.scheduleApply();
          },
          (err: unknown) => this.fail(err, []),
        );
    }
  }

  private scheduleApply(): void {
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    queueMicrotask(() => this.applyDurable());
  }

  /** Applies, in one LMDB transaction, every batch at the head of the queue that the WAL holds durably. */
  private applyDurable(): void {
    this.applyScheduled = false;
    if (this.failed) return;
    const ready: Proposal[] = [];
    while (this.queue.length > 0 && (this.queue[0] as InFlight).durable && ready.length < APPLY_BATCH_ENTRIES_MAX) {
      ready.push(...(this.queue.shift() as InFlight).batch);
    }
    if (ready.length === 0) return;
    this.inflight -= ready.length;
    let applied: Applied;
    try {
      applied = this.applyBatch(ready);
    } catch (err) {
      this.fail(err, ready);
      return;
    }
    const outcomes = applied.outcomes;
    this.afterCommit(applied);
    ready.forEach((p, i) => p.resolve(outcomes[i] as ApplyOutcome));
    if (outcomes.some((o) => o.ok && o.response.kind === 'compaction')) this.compactInBackground();
    if (this.queue.length > 0 && (this.queue[0] as InFlight).durable) this.scheduleApply();
    else if (this.queue.length === 0) this.wakeIdle();
    this.maybeRelease();
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private fail(err: unknown, batch: readonly Proposal[]): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const fatal = e instanceof WalFatalError || e instanceof StorageFault ? e : new StorageFault(`node: apply failed: ${e.message}`, { cause: e });
    if (this.failed) {
      for (const p of batch) p.reject(new ServerRefusal('stopped', 'etcdserver: server stopped', { cause: fatal }));
      return;
    }
    this.stopped = true;
    this.failed = true;
    const queued = this.queue.splice(0).flatMap((q) => q.batch);
    for (const p of [...batch, ...queued, ...this.pending]) p.reject(new ServerRefusal('stopped', 'etcdserver: server stopped', { cause: fatal }));
    this.pending = [];
    this.wakeIdle();
    this.cfg.onFatal(fatal);
  }

  /** What a committed batch changed, for watchers and the lessor. */
  private afterCommit(a: Applied): void {
    if (a.revisions.length > 0) this.watchable.notify(a.revisions);
    if (a.leaseChanges.granted.length === 0 && a.leaseChanges.revoked.length === 0) return;
    const now = monotonicMs();
    for (const g of a.leaseChanges.granted) this.lessor.granted(g.id, g.ttlSeconds, now);
    for (const id of a.leaseChanges.revoked) this.lessor.revoked(id);
    this.scheduleLeaseCheck();
  }

  /** Applies entries in one LMDB transaction; redoes the batch when an entry fails halfway. */
  private applyBatch(batch: readonly { index: number; data: Uint8Array }[]): Applied {
    const failed = new Map<number, ClientError>();
    for (;;) {
      const leaseChanges: LeaseChanges = { granted: [], revoked: [] };
      this.store.takeChanges();
      try {
        const outcomes = this.backend.write(() => this.applyAll(batch, failed, leaseChanges));
        return { outcomes, revisions: this.store.takeChanges(), leaseChanges };
      } catch (err) {
        if (!(err instanceof MidTxnFailure)) throw err;
        this.store.reload();
        failed.set(err.index, err.error);
      }
    }
  }

  private applyAll(batch: readonly { index: number; data: Uint8Array }[], failed: ReadonlyMap<number, ClientError>, leaseChanges: LeaseChanges): ApplyOutcome[] {
    const ctx = { store: this.store, leases: this.leaseStore, leaseChanges };
    const out: ApplyOutcome[] = [];
    for (const e of batch) {
      assert(e.index === this.appliedIndex + out.length + 1, `entries apply in order (${e.index})`);
      try {
        out.push(applyEntry(ctx, e.data, failed.get(e.index)));
      } catch (err) {
        if (err instanceof MidTxnError) throw new MidTxnFailure(e.index, err.error);
        throw err;
      }
    }
    const last = batch[batch.length - 1];
    if (last !== undefined) {
      this.backend.table('meta').put(META.appliedIndex, encodeNum(last.index));
      this.backend.table('meta').put(META.appliedTerm, encodeNum(this.term));
      this.appliedIndex = last.index;
    }
    return out;
  }

  /** After every snapshot-count entries: flush LMDB, then let the WAL drop what LMDB now holds durably. */
  private maybeRelease(): void {
    const every = this.cfg.snapshotCount ?? SNAPSHOT_COUNT_DEFAULT;
    if (this.releasing !== undefined || this.appliedIndex - this.releasedThrough < every) return;
    const through = this.appliedIndex;
    this.releasing = this.backend
      .flush()
      .then(() => this.wal.releaseBefore(through + 1))
      .then(() => {
        this.releasedThrough = through;
      })
      .catch((err: unknown) => this.fail(err, []))
      .finally(() => {
        this.releasing = undefined;
      });
  }

  /**
   * Removes what compactions made unreachable, COMPACTION_BATCH_KEYS keys per LMDB transaction,
   * yielding to requests between steps (etcd compacts in the background the same way). A newer
   * compaction restarts the walk; progress is persisted, so a restart resumes it.
   */
  compactInBackground(): void {
    if (this.compacting !== undefined || this.store.pendingCompaction() === undefined) return;
    this.compacting = this.compactSteps()
      .catch((err: unknown) => this.fail(err, []))
      .finally(() => {
        this.compacting = undefined;
        for (const w of this.compactedWaiters.splice(0)) w();
      });
  }

  private async compactSteps(): Promise<void> {
    const log = this.cfg.logger;
    const started = Date.now();
    let steps = 0;
    let rev: number | undefined;
    for (;;) {
      if (this.stopped) return;
      const pending = this.store.pendingCompaction();
      if (pending === undefined) break;
      if (pending.rev !== rev) {
        rev = pending.rev;
        log.info('compaction: removing old revisions', { revision: rev, 'resume-from-key': pending.from.length > 1 || pending.from[0] !== 0 ? pending.from : undefined });
      }
      this.backend.write(() => this.store.compactKeys(pending.rev, pending.from, COMPACTION_BATCH_KEYS));
      steps++;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    log.info('compaction: finished removing old revisions', { revision: rev, steps, 'took-ms': Date.now() - started });
  }

  /** Resolves once no physical compaction is left to do (for Compact with physical=true). */
  compacted(): Promise<void> {
    if (this.compacting === undefined && this.store.pendingCompaction() === undefined) return Promise.resolve();
    this.compactInBackground();
    return new Promise<void>((resolve) => this.compactedWaiters.push(resolve));
  }

  status(): { appliedIndex: number; lastIndex: number; dbSizeBytes: number } {
    return { appliedIndex: this.appliedIndex, lastIndex: this.lastIndex, dbSizeBytes: this.backend.sizeBytes() };
  }

  /** Stops taking proposals, finishes the ones in flight, and closes storage durably. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    if (this.scheduled) this.dispatch();
    if (this.queue.length > 0) await new Promise<void>((done) => this.idleWaiters.push(done));
    await this.releasing;
    await this.compacting;
    await this.backend.flush();
    await this.wal.close();
    await this.backend.close();
  }
}

/** The raft term a single member reports (Raft arrives with issue 4). */
export const SINGLE_MEMBER_TERM = 1;

export function backendPathOf(dataDir: string): string {
  return join(dataDir, 'member', 'db.mdb');
}

function walDirOf(cfg: NodeConfig): string {
  return cfg.walDir !== '' ? cfg.walDir : join(cfg.dataDir, 'member', 'wal');
}

/** Monotonic milliseconds (lease expiry must not follow wall-clock jumps). */
export function monotonicMs(): number {
  return performance.now();
}

interface Applied {
  readonly outcomes: ApplyOutcome[];
  readonly revisions: RevisionEvents[];
  readonly leaseChanges: LeaseChanges;
}

interface InFlight {
  readonly batch: readonly Proposal[];
  durable: boolean;
}

class MidTxnFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: ClientError,
  ) {
    super(`entry ${index}: ${error.message}`);
  }
}

function randomId(): bigint {
  return randomBytes(8).readBigUInt64BE(0) & 0x7fffffffffffffffn;
}

/** Refuses a backend written in another layout; stamps a new one with ours. */
function checkSchema(backend: Backend): void {
  const meta = backend.table('meta');
  const stamped = meta.get(META.schemaVersion);
  const hasData = meta.get(META.currentRev) !== undefined || meta.get(META.clusterId) !== undefined;
  const version = stamped !== undefined ? decodeNum(stamped, 0) : hasData ? 1 : undefined;
  if (version === SCHEMA_VERSION) return;
  if (version !== undefined) {
    throw new StorageFault(`node: backend ${backend.path} has storage schema version ${version}; this Cairn reads version ${SCHEMA_VERSION} (no migration exists: restore into a new data dir)`);
  }
  backend.write(() => meta.put(META.schemaVersion, encodeNum(SCHEMA_VERSION)));
}

function ensureIds(backend: Backend): { clusterId: bigint; memberId: bigint } {
  const meta = backend.table('meta');
  const cluster = decodeId(meta.get(META.clusterId));
  const member = decodeId(meta.get(META.memberId));
  if (cluster !== undefined && member !== undefined) return { clusterId: cluster, memberId: member };
  const ids = { clusterId: randomId(), memberId: randomId() };
  backend.write(() => {
    meta.put(META.clusterId, encodeId(ids.clusterId));
    meta.put(META.memberId, encodeId(ids.memberId));
  });
  return ids;
}
