// What the member counts and times as it works, for /metrics (api/metrics.ts reads these when
// scraped). Plain numbers and function slots, so node/ and the layers below never import
// prom-client and the hot path pays one increment or one call of a no-op: the metrics layer
// installs the observers (durations) when it is set up; without it they do nothing.
//
// Values that exist as state anyway (sizes, revisions, keys, leadership, watchers, pending
// proposals) are not mirrored here: the metrics layer reads them from the node when scraped.
import type { Message } from '../raft/index.js';

/** A sink for durations in seconds; `observe` is a no-op until the metrics layer replaces it. */
export interface DurationSlot {
  observe: (seconds: number) => void;
}

/** A sink for plain values (e.g. a lease's TTL in seconds). */
export interface ValueSlot {
  observe: (value: number) => void;
}

/** A sink for one applied request's duration: its kind (etcd's op name) and whether it succeeded. */
export interface ApplySlot {
  observe: (op: string, success: boolean, seconds: number) => void;
}

/** A sink for one read's duration and whether it succeeded. */
export interface OutcomeSlot {
  observe: (success: boolean, seconds: number) => void;
}

/** A sink for durations in seconds per label value (e.g. a peer's id in hex). */
export interface LabelledDurationSlot {
  observe: (label: string, seconds: number) => void;
}

export interface NodeStats {
  /** A new leader became known (etcd: leader_changes_seen_total; not counted on losing one). */
  leaderChanges: number;
  /** Proposals that failed: timed out, dropped by raft, refused after being taken (etcd: proposals_failed_total). */
  proposalsFailed: number;
  /** Leader heartbeats sent more than two heartbeat intervals after the previous one to that peer. */
  heartbeatSendFailures: number;
  /** Apply batches that took longer than SLOW_APPLY_MS (etcd counts requests over 100 ms). */
  slowApplies: number;
  /** Snapshots from the leader being installed now (0 or 1; etcd: snapshot_apply_in_progress_total). */
  snapshotsInstalling: number;
  /** Leases granted / revoked as applied on this member; renewed by this member as leader. */
  leasesGranted: number;
  leasesRevoked: number;
  leasesRenewed: number;
  /** Expired leases this member revoked as leader (etcd: lease_expired_total). */
  leasesExpired: number;
  /** ReadIndex rounds that failed (leader change, timeout, no leader to ask). */
  readIndexesFailed: number;
  /** ReadIndex rounds that timed out, and answers to an earlier round that came too late. */
  slowReadIndexes: number;
  /** Learners promoted by this member as leader. */
  learnersPromoted: number;
  /** Defragmentations running now (0 or 1). */
  defragsRunning: number;
  /** Bytes written to the WAL. */
  walWriteBytes: number;
  /** When the last physical compaction finished (Unix seconds; 0 = none since start). */
  lastCompactionUnixSec: number;
  /** One WAL write made durable (O_DSYNC write = write + fdatasync). */
  readonly walFsync: DurationSlot;
  /** The same WAL write: with O_DSYNC the write is the fsync (etcd times its write and its fsync apart). */
  readonly walWrite: DurationSlot;
  /** One backend (LMDB) commit: the commit of an apply batch's write transaction. */
  readonly backendCommit: DurationSlot;
  /** One granted lease's TTL in seconds, as applied on this member. */
  readonly leaseTtl: ValueSlot;
  /** One applied request (not membership changes). */
  readonly apply: ApplySlot;
  /** One Range read from the store (after any ReadIndex wait). */
  readonly range: OutcomeSlot;
  /** Maintenance.Hash over the backend. */
  readonly hash: DurationSlot;
  /** A HashKV at a revision (the RPC, peers' corruption checks, the compaction hash check). */
  readonly hashRev: DurationSlot;
  /** One step of a physical compaction (a write transaction that removes old revisions). */
  readonly compactionStep: DurationSlot;
  /** A whole physical compaction, first step to last. */
  readonly compactionTotal: DurationSlot;
  /** The snapshot point every --snapshot-count entries: LMDB made durable, then WAL segments released. */
  readonly snapshotSave: DurationSlot;
  /** The LMDB fsync at that point. */
  readonly snapshotFsync: DurationSlot;
  /** A snapshot received from the leader stored: first frame to durable file (etcd: snap_db save). */
  readonly snapshotDbSave: DurationSlot;
  /** That file's fsync. */
  readonly snapshotDbFsync: DurationSlot;
  /** A consistent copy of the backend (for a follower's snapshot or a Maintenance snapshot). */
  readonly backendSnapshot: DurationSlot;
  /** One defragmentation. */
  readonly backendDefrag: DurationSlot;
  /** One ping round trip on the stream to a peer (label: the peer's id in hex). */
  readonly peerRoundTrip: LabelledDurationSlot;
}

/** etcd's warnApplyDuration: an apply slower than this is counted (and etcd logs it). */
export const SLOW_APPLY_MS = 100;

const ignore = (): void => undefined;

export function newNodeStats(): NodeStats {
  return {
    leaderChanges: 0,
    proposalsFailed: 0,
    heartbeatSendFailures: 0,
    slowApplies: 0,
    snapshotsInstalling: 0,
    leasesGranted: 0,
    leasesRevoked: 0,
    leasesRenewed: 0,
    leasesExpired: 0,
    readIndexesFailed: 0,
    slowReadIndexes: 0,
    learnersPromoted: 0,
    defragsRunning: 0,
    walWriteBytes: 0,
    lastCompactionUnixSec: 0,
    walFsync: { observe: ignore },
    walWrite: { observe: ignore },
    backendCommit: { observe: ignore },
    leaseTtl: { observe: ignore },
    apply: { observe: ignore },
    range: { observe: ignore },
    hash: { observe: ignore },
    hashRev: { observe: ignore },
    compactionStep: { observe: ignore },
    compactionTotal: { observe: ignore },
    snapshotSave: { observe: ignore },
    snapshotFsync: { observe: ignore },
    snapshotDbSave: { observe: ignore },
    snapshotDbFsync: { observe: ignore },
    backendSnapshot: { observe: ignore },
    backendDefrag: { observe: ignore },
    peerRoundTrip: { observe: ignore },
  };
}

/**
 * The member's counters: one process runs one member, and the WAL and transport hooks are set up
 * before the Node object exists, so they live here rather than on it.
 */
export const nodeStats: NodeStats = newNodeStats();

/**
 * etcd's leader timeout detector: a heartbeat to a peer sent more than two heartbeat intervals
 * after the previous one to it means the leader was too slow (likely a slow disk): a heartbeat
 * send failure. Reset when the soft state (leader, role) changes, as etcd resets it.
 */
export class HeartbeatGaps {
  private readonly last = new Map<bigint, number>();

  /** Looks for heartbeats among messages being sent (clock read only when one is found). */
  sent(msgs: readonly Message[], heartbeatMs: number): void {
    let now = -1;
    for (const m of msgs) {
      if (m.type !== 'heartbeat') continue;
      if (now < 0) now = performance.now();
      const prev = this.last.get(m.to);
      this.last.set(m.to, now);
      if (prev !== undefined && now - prev > 2 * heartbeatMs) nodeStats.heartbeatSendFailures++;
    }
  }

  reset(): void {
    this.last.clear();
  }
}

/** Wraps a WAL write of `bytes` (WalOptions.observeWrite): its duration is the write's and the fsync's (O_DSYNC write). */
export function timeWalWrite(write: Promise<void>, bytes: number): Promise<void> {
  const started = performance.now();
  return write.then(() => {
    const seconds = (performance.now() - started) / 1000;
    nodeStats.walWriteBytes += bytes;
    nodeStats.walWrite.observe(seconds);
    nodeStats.walFsync.observe(seconds);
  });
}

/** Resolves as `work` does, observing its duration in `slot` when it succeeds. */
export function timed<T>(slot: DurationSlot, work: Promise<T>): Promise<T> {
  const started = performance.now();
  return work.then((v) => {
    slot.observe((performance.now() - started) / 1000);
    return v;
  });
}

/** An apply batch's LMDB transaction took `ms`, `commitMs` of it to commit: a slow apply past SLOW_APPLY_MS. */
export function appliedIn(ms: number, commitMs: number): void {
  nodeStats.backendCommit.observe(commitMs / 1000);
  if (ms > SLOW_APPLY_MS) nodeStats.slowApplies++;
}

/** Runs a synchronous `work`, observing its duration in `slot`. */
export function timedSync<T>(slot: DurationSlot, work: () => T): T {
  const started = performance.now();
  const out = work();
  slot.observe((performance.now() - started) / 1000);
  return out;
}

/** A snapshot from the leader was stored (TransportOptions.onSnapshotStored). */
export function snapshotStored(saveSeconds: number, fsyncSeconds: number): void {
  nodeStats.snapshotDbSave.observe(saveSeconds);
  nodeStats.snapshotDbFsync.observe(fsyncSeconds);
}

/** A ping's round trip to a peer (TransportOptions.onRoundTrip). */
export function peerRoundTrip(to: bigint, ms: number): void {
  nodeStats.peerRoundTrip.observe(to.toString(16), ms / 1000);
}

/** A lease renewal by the leader: counted when the lease existed (TTL defined). */
export function renewed(ttlSeconds: number | undefined): number | undefined {
  if (ttlSeconds !== undefined) nodeStats.leasesRenewed++;
  return ttlSeconds;
}
