// Log compaction and physical compaction. Every --snapshot-count applied entries LMDB is flushed, the
// WAL segments wholly below are released and the in-memory raft log is trimmed (keeping
// --snapshot-catchup-entries for slow followers; a lone member trims more often). Physical compaction
// removes what a Compact left behind, in the background: up to --compaction-batch-limit revisions per
// step (default COMPACTION_BATCH_KEYS), each step in its own LMDB transaction, then a
// pause of --compaction-sleep-interval (not given: the next turn of the event loop). Its progress is
// persisted, so a restart resumes it; a stop cuts the pause short. Its end is logged as etcd logs it
// ("finished scheduled compaction").
import type { Wal } from '../wal/index.js';
import type { Backend } from '../storage/backend/index.js';
import type { KvStore } from '../mvcc/index.js';
import type { MemoryStorage } from '../raft/index.js';
import type { MemberStore } from '../membership/index.js';
import { ServerRefusal } from '../base/errors.js';
import { COMPACTION_BATCH_KEYS, COMPACTION_WAITERS_MAX, SNAPSHOT_CATCHUP_ENTRIES_DEFAULT, SNAPSHOT_COUNT_DEFAULT } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import { confStateOf } from './recovery.js';

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
  /** A snapshot install or defragmentation is replacing the database. */
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
  /** Ends the pause between steps at once (stop). */
  private wake: (() => void) | undefined = undefined;
  private steppedBefore = false;

  constructor(private readonly host: CompactionHost) {
    this.lastSnapshotIndex = host.appliedIndex();
  }

  /** Resolves once the log release and the physical compaction in progress (if any) are done (a stop ends the pause between steps). */
  async settled(): Promise<void> {
    this.wake?.();
    await this.releasing;
    await this.compacting;
  }

  /** Resolves once the physical compaction in progress (if any) is done. */
  async physicalDone(): Promise<void> {
    await this.compacting;
  }

  /** A snapshot was installed: the log starts over at its index. */
  snapshotInstalled(index: number): void {
    this.lastSnapshotIndex = index;
  }

  /** Every snapshot-count applied entries: LMDB flushed, WAL segments released, raft log trimmed. */
  afterReady(): void {
    this.trimLogIfAlone();
    const every = this.host.cfg.snapshotCount ?? SNAPSHOT_COUNT_DEFAULT;
    if (this.releasing !== undefined || this.host.appliedIndex() - this.lastSnapshotIndex < every) return;
    const through = this.host.appliedIndex();
    const keep = this.host.cfg.snapshotCatchupEntries ?? SNAPSHOT_CATCHUP_ENTRIES_DEFAULT;
    this.releasing = this.host.backend
      .flush()
      .then(() => this.host.wal.releaseBefore(through + 1))
      .then(() => {
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

  physical(): void {
    if (this.compacting !== undefined || this.host.store.pendingCompaction() === undefined) return;
    this.compacting = this.compactSteps()
      .catch((err: unknown) => this.host.fail(err))
      .finally(() => {
        this.compacting = undefined;
        for (const w of this.compactedWaiters.splice(0)) w();
      });
  }

  private async compactSteps(): Promise<void> {
    const log = this.host.cfg.logger;
    const started = Date.now();
    const batch = this.host.cfg.compactionBatchKeys ?? COMPACTION_BATCH_KEYS;
    const pauseMs = this.host.cfg.compactionSleepMs;
    let steps = 0;
    let rev: number | undefined;
    for (;;) {
      if (this.host.stopped() || this.host.installing()) return;
      const pending = this.host.store.pendingCompaction();
      if (pending === undefined) break;
      if (pending.rev !== rev) {
        rev = pending.rev;
        // Part done by an earlier process.
        const resumed = !this.steppedBefore && pending.begun;
        log.info('compaction: removing old revisions', { revision: rev, 'batch-keys': batch, ...(resumed ? { resumed } : {}) });
      }
      this.steppedBefore = true;
      const done = this.host.backend.write(() => this.host.store.compactKeys(pending.rev, pending.from, batch));
      steps++;
      if (!done) await this.pause(pauseMs);
    }
    if (rev === undefined) return;
    const hash = this.host.finished(rev);
    log.info('finished scheduled compaction', { 'compact-revision': rev, steps, 'took-ms': Date.now() - started, ...(hash === undefined ? {} : { hash: hash.hash }) });
  }

  /** Between two steps: the next turn of the event loop, or --compaction-sleep-interval (which settled() ends early). */
  private pause(ms: number | undefined): Promise<void> {
    if (ms === undefined) return new Promise<void>((resolve) => setImmediate(resolve));
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** Resolves once no physical compaction is left to do (for Compact with physical=true). */
  compacted(): Promise<void> {
    if (this.compacting === undefined && this.host.store.pendingCompaction() === undefined) return Promise.resolve();
    if (this.compactedWaiters.length >= COMPACTION_WAITERS_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    this.physical();
    return new Promise<void>((resolve) => this.compactedWaiters.push(resolve));
  }

}
