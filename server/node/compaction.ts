// Log compaction and physical compaction. Every --snapshot-count applied entries LMDB is flushed, the
// WAL segments wholly below are released and the in-memory raft log is trimmed (keeping
// --snapshot-catchup-entries for slow followers; a lone member trims more often). Physical compaction
// removes what a Compact left behind, COMPACTION_BATCH_KEYS keys per step, in the background.
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
}

export class Compaction {
  /** The applied index at the last WAL release (or snapshot install). */
  private lastSnapshotIndex: number;
  private releasing: Promise<void> | undefined = undefined;
  private compacting: Promise<void> | undefined = undefined;
  private readonly compactedWaiters: (() => void)[] = [];

  constructor(private readonly host: CompactionHost) {
    this.lastSnapshotIndex = host.appliedIndex();
  }

  /** Resolves once the log release and the physical compaction in progress (if any) are done. */
  async settled(): Promise<void> {
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
    let steps = 0;
    let rev: number | undefined;
    for (;;) {
      if (this.host.stopped() || this.host.installing()) return;
      const pending = this.host.store.pendingCompaction();
      if (pending === undefined) break;
      if (pending.rev !== rev) {
        rev = pending.rev;
        log.info('compaction: removing old revisions', { revision: rev });
      }
      this.host.backend.write(() => this.host.store.compactKeys(pending.rev, pending.from, COMPACTION_BATCH_KEYS));
      steps++;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    log.info('compaction: finished removing old revisions', { revision: rev, steps, 'took-ms': Date.now() - started });
  }

  /** Resolves once no physical compaction is left to do (for Compact with physical=true). */
  compacted(): Promise<void> {
    if (this.compacting === undefined && this.host.store.pendingCompaction() === undefined) return Promise.resolve();
    if (this.compactedWaiters.length >= COMPACTION_WAITERS_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    this.physical();
    return new Promise<void>((resolve) => this.compactedWaiters.push(resolve));
  }

}
