// Raft snapshots between members: a consistent copy of the database for a follower behind the
// compacted log, and a leader's copy received and installed here: file fsynced (transport) -> WAL
// marker durable -> the file renamed over the database (a restart finding a marker above LMDB's
// applied index finishes the rename: recovery.ts).
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Wal } from '../wal/index.js';
import { Backend } from '../storage/backend/index.js';
import { META, decodeNum, encodeId } from '../storage/schema/index.js';
import type { KvStore } from '../mvcc/index.js';
import type { HardState, Message, SnapshotMeta } from '../raft/index.js';
import type { OutgoingSnapshot } from '../transport/index.js';
import { MemberStore } from '../membership/index.js';
import { AssertionFailure, StorageFault } from '../base/errors.js';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import type { BackendOps } from './backendops.js';
import { confStateOf, snapDirOf, snapFileName, toWalHardState } from './recovery.js';
import { nodeStats, timed } from './stats.js';

export interface SnapshotsHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly backend: Backend;
  readonly wal: Wal;
  readonly store: KvStore;
  readonly ops: BackendOps;
  appliedIndex(): number;
  /** Resolves once the physical compaction in progress (if any) is done. */
  physicalDone(): Promise<void>;
  /** The database now holds the snapshot: the member restarts its state from it. */
  installed(meta: SnapshotMeta): void;
}

export class Snapshots {
  /** Snapshot files received from the leader, by index, until raft asks to install one. */
  private readonly incoming = new Map<number, string>();

  constructor(private readonly host: SnapshotsHost) {}

  /** A consistent copy of the database for a follower behind the compacted log. */
  async open(msg: Message): Promise<OutgoingSnapshot> {
    const file = join(snapDirOf(this.host.cfg), `out-${msg.to.toString(16)}-${process.hrtime.bigint().toString(36)}.mdb`);
    await this.host.ops.serial(() => timed(nodeStats.backendSnapshot, this.host.backend.backup(file, false)));
    const copy = Backend.open(file, BACKEND_MAP_BYTES);
    let snapshot: SnapshotMeta;
    try {
      const meta = copy.table('meta');
      snapshot = {
        index: decodeNum(meta.get(META.appliedIndex), 0),
        term: decodeNum(meta.get(META.appliedTerm), 0),
        confState: confStateOf(new MemberStore(copy).all()),
      };
    } finally {
      await copy.close();
      rmSync(`${file}-lock`, { force: true });
    }
    this.host.cfg.logger.info('sending a snapshot', { to: msg.to.toString(16), index: snapshot.index, term: snapshot.term, 'raft-snapshot-index': msg.snapshot?.index });
    return {
      msg: { ...msg, snapshot },
      file,
      release: async () => {
        rmSync(file, { force: true });
        return Promise.resolve();
      },
    };
  }

  /** A snapshot file arrived with its message; true: step the message into raft. */
  received(msg: Message, file: string, stopped: boolean): boolean {
    const idx = msg.snapshot?.index;
    if (idx === undefined || stopped) {
      rmSync(file, { force: true });
      return false;
    }
    const prev = this.incoming.get(idx);
    if (prev !== undefined && prev !== file) rmSync(prev, { force: true });
    this.incoming.set(idx, file);
    return true;
  }

  /** Files of snapshots the member has applied past are no use any more. */
  dropStale(appliedIndex: number): void {
    for (const [idx, file] of this.incoming) {
      if (idx <= appliedIndex) {
        rmSync(file, { force: true });
        this.incoming.delete(idx);
      }
    }
  }

  async install(meta: SnapshotMeta, hs: HardState | undefined): Promise<void> {
    const log = this.host.cfg.logger;
    const file = this.incoming.get(meta.index);
    if (file === undefined) throw new AssertionFailure(`node: raft asked to install snapshot ${meta.index}, which was never received`);
    this.incoming.delete(meta.index);
    const final = join(snapDirOf(this.host.cfg), snapFileName(meta.index));
    renameSync(file, final);
    log.info('installing a snapshot from the leader', { index: meta.index, term: meta.term, 'applied-index': this.host.appliedIndex() });
    const release = this.host.ops.holdReads();
    nodeStats.snapshotsInstalling++;
    try {
      await this.host.wal.appendSnapshot({ index: meta.index, term: meta.term }, hs !== undefined ? toWalHardState(hs) : undefined);
      await this.host.physicalDone();
      // The leader's copy carries the leader's identity in its meta table: this member's own id goes in
      // before the file replaces ours (a restart after an install must come back as this member).
      await this.host.ops.serial(() =>
        this.host.ops.swap(final, (t) => {
          t('meta').put(META.memberId, encodeId(this.host.memberId));
          t('meta').del(META.removed);
        }),
      );
      const applied = decodeNum(this.host.backend.table('meta').get(META.appliedIndex), 0);
      if (applied !== meta.index) throw new StorageFault(`node: snapshot ${meta.index} holds applied index ${applied}`);
      this.host.installed(meta);
    } finally {
      nodeStats.snapshotsInstalling--;
      release();
    }
    log.info('installed a snapshot', { index: meta.index, 'current-revision': this.host.store.currentRev });
  }
}
