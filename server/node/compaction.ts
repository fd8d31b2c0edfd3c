// Log compaction and physical compaction. Every --snapshot-count applied entries LMDB is flushed, the
// WAL segments wholly below are released and the in-memory raft log is trimmed (keeping
// --snapshot-catchup-entries for slow followers; a lone member trims more often). Physical compaction
// removes what a Compact left behind, in the background: up to --compaction-batch-limit revisions per
// step (default COMPACTION_BATCH_KEYS), each step in its own LMDB transaction, then a
// pause of --compaction-sleep-interval (not given: the next turn of the event loop). Its progress is
// persisted, so a restart resumes it; a stop cuts the pause short. A defragmentation holds it between
// two steps (holdForSwap: as etcd's defrag takes the backend between two compaction batches) and it then
// goes on from the key it stopped at, which the defragmented copy holds (a step and its progress are one
// LMDB transaction); a snapshot install ends it (the installed database brings its own progress). Its
// end is logged as etcd logs it ("finished scheduled compaction").
import type { Wal } from '../wal/index.js';
import type { Backend } from '../storage/backend/index.js';
import type { KvStore } from '../mvcc/index.js';
import type { MemoryStorage } from '../raft/index.js';
import type { MemberStore } from '../membership/index.js';
import { ServerRefusal, assert } from '../base/errors.js';
import { COMPACTION_BATCH_KEYS, COMPACTION_WAITERS_MAX, SNAPSHOT_CATCHUP_ENTRIES_DEFAULT, SNAPSHOT_COUNT_DEFAULT } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import { confStateOf } from './recovery.js';
import { nodeStats, timed, timedSync } from './stats.js';

/** A lone member trims its in-memory raft log of applied entries this often. */
const ALONE_TRIM_ENTRIES = 256;

export interface CompactionHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly backend: Backend;
  readonly store: KvStore;
  readonly wal: Wal;
  readonly raftStorage: MemoryStorage;
  readonly members: MemberStore;
  appliedIndex(): number;
  stopped(): boolean;
  /** A snapshot install (or a defragmentation, which holds the compaction first: holdForSwap) is replacing the database. */
  installing(): boolean;
  fail(err: unknown): void;
  /** The physical removal of the compaction at `rev` is done (the compaction hash check hashes it). */
  finished(rev: number): { hash: number } | undefined;
}

export class Compaction {
  /** The applied index at the last WAL release (or snapshot install). */
  private lastSnapshotIndex: number;
  private releasing: Promise<void> | undefined = undefined;
  private compacting: Promise<void> | undefined = undefined;
  private readonly compactedWaiters: (() => void)[] = [];
  /** Ends the pause between steps, or the wait for a swap, at once (stop, snapshot install). */
  private wake: (() => void) | undefined = undefined;
  /** Set while a defragmentation swaps the database (holdForSwap): no step runs, no log release starts. */
  private held: Promise<void> | undefined = undefined;
  private steppedBefore = false;

  constructor(private readonly host: CompactionHost) {
    this.lastSnapshotIndex = host.appliedIndex();
  }

  /** For a stop: resolves once the log release and the physical compaction in progress (if any) are done (the pause between steps ends at once). */
  async settled(): Promise<void> {
    this.wake?.();
    await this.releasing;
    await this.compacting;
  }

  /** For a snapshot install (installing() is true): ends the physical compaction in progress (if any) at its next step and resolves once it has. */
  async physicalDone(): Promise<void> {
    this.wake?.();
    await this.compacting;
  }

  /**
   * Holds background work off the database for a swap (defragmentation) until the returned release is
   * called: waits for the log release in progress (its flush must not meet the swap) and keeps the
   * physical compaction between two steps, never waiting for its end. Released, the compaction goes on
   * from the key it stopped at. One swap at a time (BackendOps.serial).
   */
  async holdForSwap(): Promise<() => void> {
    assert(this.held === undefined, 'compaction: one database swap at a time');
    let release!: () => void;
    this.held = new Promise<void>((r) => (release = r));
    while (this.releasing !== undefined) await this.releasing;
    return () => {
      this.held = undefined;
      release();
    };
  }

  /** A snapshot was installed: the log starts over at its index. */
  snapshotInstalled(index: number): void {
    this.lastSnapshotIndex = index;
  }

  /** Every snapshot-count applied entries: LMDB flushed, WAL segments released, raft log trimmed. */
  afterReady(): void {
    this.trimLogIfAlone();
    const every = this.host.cfg.snapshotCount ?? SNAPSHOT_COUNT_DEFAULT;
    if (this.releasing !== undefined || this.held !== undefined || this.host.appliedIndex() - this.lastSnapshotIndex < every) return;
    const through = this.host.appliedIndex();
    const keep = this.host.cfg.snapshotCatchupEntries ?? SNAPSHOT_CATCHUP_ENTRIES_DEFAULT;
    // etcd's snapshot save every --snapshot-count entries; here: LMDB made durable (its fsync), WAL released.
    const started = performance.now();
    this.releasing = timed(nodeStats.snapshotFsync, this.host.backend.flush())
      .then(() => this.host.wal.releaseBefore(through + 1))
      .then(() => {
        nodeStats.snapshotSave.observe((performance.now() - started) / 1000);
        this.lastSnapshotIndex = through;
        const compactTo = through - keep;
        if (compactTo > this.host.raftStorage.firstIndex() - 1 && compactTo <= this.host.raftStorage.lastIndex()) {
          this.host.raftStorage.compact(compactTo, confStateOf(this.host.members.all()));
        }
      })
      .catch((err: unknown) => this.host.fail(err))
      .finally(() => {
        this.releasing = undefined;
      });
  }

  /**
   * A member that is the only one in the cluster has nobody to catch up from its in-memory raft log:
   * trim applied entries every ALONE_TRIM_ENTRIES so the log's memory stays bounded between WAL releases.
   */
  private trimLogIfAlone(): void {
    const first = this.host.raftStorage.firstIndex();
    if (this.host.appliedIndex() - first < ALONE_TRIM_ENTRIES || this.host.appliedIndex() > this.host.raftStorage.lastIndex()) return;
    const all = this.host.members.all();
    if (all.length !== 1 || all[0]?.id !== this.host.memberId) return;
    this.host.raftStorage.compact(this.host.appliedIndex(), confStateOf(all));
  }

  /** Starts the physical compaction if one is pending (not during a swap: the end of a defragmentation calls this again). */
  physical(): void {
    if (this.compacting !== undefined || this.held !== undefined || this.host.store.pendingCompaction() === undefined) return;
    this.compacting = this.compactSteps()
      .catch((err: unknown) => this.host.fail(err))
      .finally(() => {
        this.compacting = undefined;
        for (const w of this.compactedWaiters.splice(0)) w();
      });
  }

  private async compactSteps(): Promise<void> {
    const log = this.host.cfg.logger;
    const startedMs = performance.now();
    const batch = this.host.cfg.compactionBatchKeys ?? COMPACTION_BATCH_KEYS;
    const pauseMs = this.host.cfg.compactionSleepMs;
    let steps = 0;
    let rev: number | undefined;
    for (;;) {
      if (this.host.stopped()) return;
      if (this.held !== undefined) {
        log.info('compaction: giving way to a defragmentation', { ...(rev === undefined ? {} : { 'compact-revision': rev }), steps });
        while (this.held !== undefined && !this.host.stopped()) await this.wakeable(this.held);
        continue;
      }
      if (this.host.installing()) return;
      const pending = this.host.store.pendingCompaction();
      if (pending === undefined) break;
      if (pending.rev !== rev) {
        rev = pending.rev;
        // Part done by an earlier process.
        const resumed = !this.steppedBefore && pending.begun;
        log.info('compaction: removing old revisions', { revision: rev, 'batch-keys': batch, ...(resumed ? { resumed } : {}) });
      }
      this.steppedBefore = true;
      const done = timedSync(nodeStats.compactionStep, () => this.host.backend.write(() => this.host.store.compactKeys(pending.rev, pending.from, batch)));
      steps++;
      if (!done) await this.pause(pauseMs);
    }
    if (rev === undefined) return;
    const tookMs = performance.now() - startedMs;
    nodeStats.compactionTotal.observe(tookMs / 1000);
    nodeStats.lastCompactionUnixSec = Math.floor(Date.now() / 1000);
    const hash = this.host.finished(rev);
    log.info('finished scheduled compaction', { 'compact-revision': rev, steps, 'took-ms': Math.round(tookMs), ...(hash === undefined ? {} : { hash: hash.hash }) });
  }

  /** Between two steps: the next turn of the event loop, or --compaction-sleep-interval (which wake ends early). */
  private pause(ms: number | undefined): Promise<void> {
    if (ms === undefined) return new Promise<void>((resolve) => setImmediate(resolve));
    let timer: NodeJS.Timeout | undefined;
    const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    return this.wakeable(elapsed, () => clearTimeout(timer));
  }

  /** Resolves when `done` does, or at once on wake (`cancel` undoes what the wait set up). */
  private wakeable(done: Promise<void>, cancel?: () => void): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = () => {
        cancel?.();
        resolve();
      };
      void done.then(resolve);
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** Resolves once no physical compaction is left to do (for Compact with physical=true). */
  compacted(): Promise<void> {
    // During a swap the store cannot be read: asked again once the defragmentation is done.
    if (this.held !== undefined) return this.held.then(() => this.compacted());
    if (this.compacting === undefined && this.host.store.pendingCompaction() === undefined) return Promise.resolve();
    if (this.compactedWaiters.length >= COMPACTION_WAITERS_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    this.physical();
    return new Promise<void>((resolve) => this.compactedWaiters.push(resolve));
  }

}
