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
  /** One WAL write made durable (O_DSYNC write = write + fdatasync). */
  readonly walFsync: DurationSlot;
  /** One backend (LMDB) write transaction: an apply batch. */
  readonly backendCommit: DurationSlot;
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
    walFsync: { observe: ignore },
    backendCommit: { observe: ignore },
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

/** Wraps a WAL write (WalOptions.observeWrite): its duration is the fsync latency (O_DSYNC write). */
export function timeWalWrite(write: Promise<void>): Promise<void> {
  const started = performance.now();
  return write.then(() => nodeStats.walFsync.observe((performance.now() - started) / 1000));
}

/** Resolves as `work` does, observing its duration in `slot` when it succeeds. */
export function timed<T>(slot: DurationSlot, work: Promise<T>): Promise<T> {
  const started = performance.now();
  return work.then((v) => {
    slot.observe((performance.now() - started) / 1000);
    return v;
  });
}

/** An apply batch's LMDB transaction took `ms`: a backend commit, and a slow apply past SLOW_APPLY_MS. */
export function appliedIn(ms: number): void {
  nodeStats.backendCommit.observe(ms / 1000);
  if (ms > SLOW_APPLY_MS) nodeStats.slowApplies++;
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
