// Every limit the server enforces, in one place, with etcd's flag names and defaults where etcd has
// one. config/ overrides the flag-backed ones; the rest are fixed bounds of this implementation.

export interface Limits {
  /** --max-request-bytes: largest request a client may send (etcd default 1.5 MiB). */
  readonly requestBytesMax: number;
  /** --max-txn-ops: most operations in one list of a Txn (etcd default 128). */
  readonly txnOpsMax: number;
  /** --quota-backend-bytes: backend size before the NOSPACE alarm (0 = 2 GiB, as etcd). */
  readonly backendQuotaBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  requestBytesMax: 1572864,
  txnOpsMax: 128,
  backendQuotaBytes: 0,
};

/** gRPC receive limit = --max-request-bytes plus etcd's 512 KiB allowance for framing overhead. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** etcd's effective quota when --quota-backend-bytes is 0. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * LMDB's largest key (lmdb-js builds with 1978 bytes). etcd has no key-size limit of its own beyond
 * the request size; Cairn refuses longer keys with a clear error (a documented difference).
 */
export const KEY_BYTES_MAX = 1978;

/** Most proposals queued behind the one being made durable before new writes are refused. */
export const PROPOSALS_PENDING_MAX = 65536;

/** Most entries one apply batch (one LMDB transaction, one WAL group commit) carries. */
export const APPLY_BATCH_ENTRIES_MAX = 4096;

/** --wal-segment-bytes: WAL segment size (etcd uses 64 MB segments). */
export const WAL_SEGMENT_BYTES = 64 * 1024 * 1024;

/** Smallest WAL segment the flag accepts (the WAL's own floor is 1 KiB). */
export const WAL_SEGMENT_BYTES_MIN = 4096;

/** Entries between WAL releases (segments wholly applied and flushed to LMDB are deleted). */
export const SNAPSHOT_COUNT_DEFAULT = 10000;

/** LMDB map size: the most the data file may grow to (sparse; only used pages take disk). */
export const BACKEND_MAP_BYTES = 64 * 1024 * 1024 * 1024;

/** Revisions one physical-compaction step removes, and keys it visits, at most (default of --compaction-batch-limit). */
export const COMPACTION_BATCH_KEYS = 1000;
/** Compaction hashes a member keeps for the compaction hash check (etcd's hashStorageMaxSize). */
export const COMPACTION_HASHES_KEPT = 10;

/** Lease revokes proposed per expiry check, and the pause between full checks (etcd: 1000 revokes/s). */
export const LEASE_REVOKES_PER_CHECK = 500;
export const LEASE_REVOKE_CHECK_MS = 500;

/** etcd's MaxLeaseTTL: the largest TTL a lease may be granted (seconds). */
export const LEASE_TTL_MAX_SECONDS = 9_000_000_000;

/**
 * One catch-up step of unsynced watchers (etcd: maxWatchersPerSync 512, watchBatchMaxRevs 1000): at
 * most this many watchers, revisions and bytes of history read at once.
 */
export const WATCH_CATCH_UP = { watchersPerStep: 512, revisionsPerStep: 1000, bytesPerStep: 4 * 1024 * 1024 } as const;

/** --max-watchers-per-stream / --max-watchers (Cairn only; etcd has no limit). */
export const WATCHERS_PER_STREAM_MAX = 10_000;
export const WATCHERS_MAX = 100_000;

/** --experimental-watch-progress-notify-interval default (etcd: 10 minutes); etcd's floor is 100 ms. */
export const WATCH_PROGRESS_NOTIFY_INTERVAL_MS = 10 * 60 * 1000;
export const WATCH_PROGRESS_NOTIFY_INTERVAL_MIN_MS = 100;

/** --election-timeout and --heartbeat-interval defaults (ms), which set the minimum lease TTL as in etcd. */
export const ELECTION_TIMEOUT_MS = 1000;
export const HEARTBEAT_INTERVAL_MS = 100;

/** A watch stream writes the responses of one turn together, flushing early past this many bytes. */
export const WATCH_COALESCE_BYTES = 64 * 1024;

/**
 * Bytes a watch stream may have waiting for its client before it counts as blocked: its watchers
 * then get nothing more live (they catch up from history once it drains) and its requests are not
 * read. Bounds the memory a client that stops reading can pin (etcd: 128 queued responses + 64 KiB).
 */
export const WATCH_STREAM_BUFFER_BYTES = 1024 * 1024;

/** Raft flow control (etcd's defaults): bytes of entries per append message, unacknowledged appends per follower. */
export const RAFT_MAX_SIZE_PER_MSG = 1024 * 1024;
export const RAFT_MAX_INFLIGHT_MSGS = 4096 / 8;
/** Bytes of proposed-but-uncommitted entries the leader holds before it drops new proposals (etcd: 1 GiB). */
export const RAFT_MAX_UNCOMMITTED_BYTES = 1 << 30;

/** --snapshot-catchup-entries: entries kept in the raft log after a compaction for slow followers (etcd: 5000). */
export const SNAPSHOT_CATCHUP_ENTRIES_DEFAULT = 5000;

/** etcd warns above this --quota-backend-bytes (8 GiB); Cairn accepts more but says so in the log. */
export const QUOTA_BYTES_SUGGESTED_MAX = 8 * 1024 * 1024 * 1024;

/**
 * Free space below which a member raises NOSPACE on itself (Cairn's guard against a full disk: the
 * WAL and LMDB keep room for deletes, compaction, alarms and a defragmentation's bookkeeping). The
 * reserve is the larger of this and two WAL segments, checked every DISK_CHECK_INTERVAL_MS on the
 * data and WAL directories.
 */
export const DISK_RESERVE_MIN_BYTES = 32 * 1024 * 1024;
export const DISK_CHECK_INTERVAL_MS = 500;

/** Maintenance.Snapshot chunk size (etcd's snapshotSendBufferSize, 32 KiB). */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;

/**
 * Client snapshots (Maintenance.Snapshot) streaming at once: each holds a full copy of the database on
 * the data disk until its client has read it, so more are refused with 'too many requests'.
 */
export const CLIENT_SNAPSHOTS_MAX = 2;

/**
 * Queues that grow with clients, each with a bound and a refusal past it (ServerRefusal
 * 'tooManyRequests': gRPC RESOURCE_EXHAUSTED "etcdserver: too many requests", etcd's answer when
 * it is overloaded). etcd has no such bounds (its queues are bounded only by memory).
 */
/** Linearizable reads waiting in one member: queued for a ReadIndex, in flight, or waiting for the apply. */
export const READS_PENDING_MAX = 10_000;
/** Waits for the apply loop to reach an index (one per ReadIndex round, one per forwarded MemberPromote). */
export const APPLIED_WAITERS_MAX = 1024;
/** Compact requests with physical=true waiting for the physical compaction to finish. */
export const COMPACTION_WAITERS_MAX = 1024;
/** Membership changes (MemberAdd/Remove/Update/Promote) proposed by this member and not applied yet. */
export const CONF_CHANGES_PENDING_MAX = 64;
/**
 * Watch catch-up tasks held while the database file is swapped: the watchable store schedules at most
 * one flush and one sync step at a time, so more is a bug (asserted, not refused).
 */
export const WATCH_DEFERRED_TASKS_MAX = 2;

/** Deadlines of waits that no request timeout covers. */
/** Node.close(): the run loop, WAL writes, log release, compaction and the final flush together. */
export const SHUTDOWN_TIMEOUT_MS = 30_000;
/**
 * A client snapshot (Maintenance.Snapshot) whose client stopped reading: the stream is ended with an
 * error once nothing drained for this long, releasing its copy and its CLIENT_SNAPSHOTS_MAX slot.
 */
export const CLIENT_SNAPSHOT_STALL_MS = 30_000;

/**
 * client-api-version values told apart in etcd_server_client_requests_total (a client names its own,
 * so the series are bounded here; etcd's are not): calls naming a version past these count as 'other'.
 */
export const CLIENT_API_VERSIONS_MAX = 64;
