/** What a log entry carries, as Raft sees it (etcd's EntryNormal / EntryConfChange). */
export type WalEntryType = 'normal' | 'confChange';

/**
 * One Raft log entry as the WAL stores it. `index >= 1`; an append is consecutive and may replace
 * a suffix of the log (see `Wal.append`).
 */
export interface WalEntry {
  index: number;
  term: number;
  type: WalEntryType;
  data: Uint8Array;
}

/** Raft's persistent state. `vote` is a 64-bit unsigned member id, 0n = none. */
export interface WalHardState {
  term: number;
  vote: bigint;
  commit: number;
}

/**
 * A snapshot marker: the log now starts after `index` (whose term is `term`); every entry before
 * it, and every entry after it written earlier, is gone.
 */
export interface WalSnapshot {
  index: number;
  term: number;
}

/** Structured logger supplied by the host; the WAL never writes to stdout itself. */
export interface WalLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface WalOptions {
  /** Directory holding the segment files (`--wal-dir`); created if missing. */
  dir: string;
  /** Rotate to a new segment once the active one reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  logger: WalLogger;
  /**
   * Called before each write of appended records; a throw counts as that write failing (a
   * failpoint for tests: the WAL then fails stop exactly as on a real I/O error).
   */
  beforeWrite?: (() => void) | undefined;
  /**
   * Wraps each durable write of appended records, `bytes` long (the host times and counts it for metrics); must return a
   * promise that settles as `write` does. Called with the write already started.
   */
  observeWrite?: ((write: Promise<void>, bytes: number) => Promise<void>) | undefined;
}

/** Counters for tests and metrics. */
export interface WalStats {
  /** fdatasync calls made for appended records (segment creation syncs are not counted). */
  syncs: number;
  /** Group-commit flushes completed (one flush serves every append queued before it started). */
  flushes: number;
  /** Segments created by rotation since open. */
  rotations: number;
  /** Segment files currently live (including the active one). */
  segments: number;
}
