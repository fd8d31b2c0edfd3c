// The configuration of one member (flags and environment, parsed by server/config), and the raft
// settings and request timeout derived from it.
import type { RaftConfig } from '../raft/index.js';
import { RAFT_MAX_INFLIGHT_MSGS, RAFT_MAX_SIZE_PER_MSG, RAFT_MAX_UNCOMMITTED_BYTES } from '../base/limits.js';
import type { Logger } from '../base/log.js';
import type { TlsConfig } from '../base/tls.js';
import type { ClusterFlags } from './bootstrap.js';
import type { AutoCompactionMode } from './compactor.js';

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
  /** The compaction hash check's period in ms (--feature-gates=CompactHashCheck, --compact-hash-check-time); undefined or 0 = off. */
  readonly compactHashCheckMs?: number;
  /** --compaction-batch-limit: revisions (and keys visited) per physical-compaction step (default COMPACTION_BATCH_KEYS). */
  readonly compactionBatchKeys?: number;
  /** --compaction-sleep-interval in ms: the pause between two steps (undefined: the next event-loop turn). */
  readonly compactionSleepMs?: number;
  /** --bootstrap-defrag-threshold-megabytes in bytes: defragment at start when that much would be freed (0 or undefined = never). */
  readonly bootstrapDefragThresholdBytes?: number;
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

/** How long a request waits for its entry to apply (etcd's ReqTimeout: 5 s plus two election timeouts). */
export function requestTimeoutMsOf(cfg: NodeConfig): number {
  return 5000 + 2 * cfg.electionMs;
}

/** Heartbeats per election timeout (raft ticks once per heartbeat), at least 2. */
export function electionTicksOf(cfg: NodeConfig): number {
  return Math.max(2, Math.round(cfg.electionMs / cfg.heartbeatMs));
}

/** Raft's settings for this member, which has applied through `applied`: pre-vote and check-quorum on, as etcd. */
export function raftConfigOf(cfg: NodeConfig, memberId: bigint, applied: number): RaftConfig {
  return {
    id: memberId,
    electionTicks: electionTicksOf(cfg),
    heartbeatTicks: 1,
    applied,
    maxSizePerMsg: RAFT_MAX_SIZE_PER_MSG,
    maxInflightMsgs: RAFT_MAX_INFLIGHT_MSGS,
    maxUncommittedEntriesBytes: RAFT_MAX_UNCOMMITTED_BYTES,
    checkQuorum: true,
    preVote: true,
    randomInt: (n) => Math.floor(Math.random() * n),
    logger: cfg.logger.child('raft'),
  };
}
