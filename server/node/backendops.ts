// Backend-wide operations: defragmentation, database file swaps (defragmentation, snapshot installs)
// and consistent copies (client snapshots, snapshots for followers), run one at a time; while a swap
// runs nothing reads the file (hashes wait, watch catch-up work is deferred), and while a snapshot
// install or a defragmentation replaces the database client reads wait (`readable`).
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../storage/backend/index.js';
import type { KvStore } from '../mvcc/index.js';
import { ServerRefusal, assert } from '../base/errors.js';
import { CLIENT_SNAPSHOTS_MAX, WATCH_DEFERRED_TASKS_MAX } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import type { HashKvResult } from './surface.js';
import { snapDirOf } from './recovery.js';
import { nodeStats, timed, timedSync } from './stats.js';

export interface BackendOpsHost {
  readonly cfg: NodeConfig;
  readonly backend: Backend;
  readonly store: KvStore;
  /** Holds committed entries back in the driver until the returned function is called. */
  pauseDriver(): () => void;
  /**
   * Holds background compaction and log release off the database until the returned release is called:
   * resolves once the log release in progress is done, with the compaction kept between two of its steps
   * (it goes on afterwards; a defragmentation never waits for its end).
   */
  quiesce(): Promise<() => void>;
  /** After the defragmented file replaced the old one: applies go on; returns the new file size. */
  afterDefrag(): number;
}

export class BackendOps {
  /** Backend-wide operations that must not overlap (defragmentation, snapshot copies and installs). */
  private queue: Promise<void> = Promise.resolve();
  /** Client snapshot copies on disk (CLIENT_SNAPSHOTS_MAX). */
  private clientSnapshots = 0;
  /** Set while the database file is being replaced (defragmentation, snapshot install): nothing may read it. */
  private swapping = false;
  /** Watch catch-up work that arrived while swapping, run once the new file is open. */
  private readonly deferredWatchTasks: (() => void)[] = [];
  /** Resolves when the swap in progress ends. */
  private swapped: Promise<void> = Promise.resolve();
  /** Size in use as last measured (Status during a swap answers with it). */
  private lastInUseBytes = 0;
  /** Set while a snapshot install or a defragmentation replaces the database: reads wait for it. */
  private readHold: Promise<void> | undefined = undefined;

  constructor(private readonly host: BackendOpsHost) {}

  /** Undefined when reads may go ahead now; otherwise resolves once the database was replaced. */
  readable(): Promise<void> | undefined {
    return this.readHold;
  }

  /** Holds reads back (readable) while a snapshot replaces the database; returns the release. */
  holdReads(): () => void {
    let done!: () => void;
    this.readHold = new Promise<void>((r) => (done = r));
    return () => {
      this.readHold = undefined;
      done();
    };
  }

  /** Holds applies (committed entries wait in the driver) and reads back until resumed. */
  private pauseApply(): () => void {
    const release = this.holdReads();
    const resume = this.host.pauseDriver();
    return () => {
      resume();
      release();
    };
  }

  /** The database's size in use (the last measured while a swap runs). */
  inUseBytes(): number {
    if (!this.swapping) this.lastInUseBytes = this.host.backend.sizeInUseBytes();
    return this.lastInUseBytes;
  }

  /** Runs a watch catch-up step now, or after the database file swap in progress. */
  watchTask(fn: () => void): void {
    if (!this.swapping) {
      fn();
      return;
    }
    assert(this.deferredWatchTasks.length < WATCH_DEFERRED_TASKS_MAX, 'the watchable store schedules one flush and one sync step at a time');
    this.deferredWatchTasks.push(fn);
  }

  /** Replaces the database file (Backend.replaceWith) with nothing reading it meanwhile. */
  async swap(file: string, keep?: Parameters<Backend['replaceWith']>[1]): Promise<void> {
    this.swapping = true;
    let done!: () => void;
    this.swapped = new Promise<void>((r) => (done = r));
    try {
      await this.host.backend.replaceWith(file, keep);
    } finally {
      this.swapping = false;
      done();
      for (const fn of this.deferredWatchTasks.splice(0)) setImmediate(fn);
    }
  }

  /** Runs fn after every earlier backend-wide operation, alone. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * A consistent copy of the database for Maintenance.Snapshot, in the member's snapshot directory.
   * The caller streams it and then calls release().
   */
  snapshotCopy(): Promise<{ path: string; bytes: number; release: () => void }> {
    if (this.clientSnapshots >= CLIENT_SNAPSHOTS_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    this.clientSnapshots++;
    let released = false;
    const done = (): void => {
      if (released) return;
      released = true;
      this.clientSnapshots--;
    };
    return this.serial(async () => {
      const path = join(snapDirOf(this.host.cfg), `client-${process.hrtime.bigint().toString(36)}.mdb`);
      const started = Date.now();
      await timed(nodeStats.backendSnapshot, this.host.backend.backup(path, false));
      const bytes = statSync(path).size;
      this.host.cfg.logger.info('made a database copy for a client snapshot', { path, 'size-bytes': bytes, 'took-ms': Date.now() - started });
      return {
        path,
        bytes,
        release: () => {
          rmSync(path, { force: true });
          rmSync(`${path}-lock`, { force: true });
          done();
        },
      };
    }).catch((err: unknown) => {
      done();
      throw err;
    });
  }

  /**
   * Defragment (online, as etcd's: reads and applies wait while it runs): a compacting copy of the
   * database (free pages dropped) replaces the file, which shrinks after deletes and compaction.
   */
  defragment(): Promise<{ beforeBytes: number; afterBytes: number; tookMs: number }> {
    return this.serial(async () => {
      const log = this.host.cfg.logger;
      const started = Date.now();
      const beforeBytes = this.host.backend.sizeBytes();
      log.info('defragmenting the storage backend', { path: this.host.backend.path, 'current-db-size-bytes': beforeBytes, 'current-db-size-in-use-bytes': this.host.backend.sizeInUseBytes() });
      const resume = this.pauseApply();
      nodeStats.defragsRunning++;
      let release = (): void => undefined;
      try {
        release = await this.host.quiesce();
        await this.host.backend.withCompactCopy((tmp) => this.swap(tmp));
      } finally {
        nodeStats.defragsRunning--;
        // Reads and applies first: the compaction, released, takes its next step on the new file.
        resume();
        release();
      }
      const afterBytes = this.host.afterDefrag();
      const tookMs = Date.now() - started;
      nodeStats.backendDefrag.observe(tookMs / 1000);
      log.info('finished defragmenting the storage backend', { 'current-db-size-bytes': afterBytes, 'previous-db-size-bytes': beforeBytes, 'took-ms': tookMs });
      return { beforeBytes, afterBytes, tookMs };
    });
  }

  /** Maintenance.Hash: CRC-32 over every replicated table (not member-local meta), and the current revision. */
  hash(): { hash: number; revision: number } | Promise<{ hash: number; revision: number }> {
    if (this.swapping) return this.swapped.then(() => this.hash());
    const hash = timedSync(nodeStats.hash, () => this.host.backend.hash(['rev', 'lease', 'members', 'alarm', 'authUsers', 'authRoles'], ['index', 'leaseKeys']));
    return { hash, revision: this.host.store.currentRev };
  }

  hashKV(revision: number): HashKvResult | Promise<HashKvResult> {
    if (this.swapping) return this.swapped.then(() => this.hashKV(revision));
    return timedSync(nodeStats.hashRev, () => this.host.store.hashKV(revision));
  }

}
