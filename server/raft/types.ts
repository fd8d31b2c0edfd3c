// The Raft state machine's public types: messages, entries, the Ready hand-off, configuration and the
// log storage the host fills. Shapes follow etcd-io/raft (same semantics, TypeScript names).
// Nothing here does I/O. Indexes and terms are numbers (safe to 2^53); member ids are 64-bit bigints.

export type NodeId = bigint;
/** 0n means "no node" (no leader, no vote). */
export const NONE: NodeId = 0n;

export type EntryType = 'normal' | 'confChange';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** normal: the host's request (empty for the leader's term-start entry); confChange: encodeConfChange(). */
  readonly data: Uint8Array;
}

/** Single-step membership changes (etcd's ConfChange v1). */
export type ConfChangeType = 'addNode' | 'addLearner' | 'removeNode' | 'updateNode';

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  /** Opaque to raft (the host puts member attributes here). */
  readonly context: Uint8Array;
}

export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** Persistent state: must be durable before the messages of the same Ready are sent (followers). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export type MessageType =
  // local only (never sent over the network)
  | 'hup' // start an election (tick or campaign())
  | 'beat' // leader: send heartbeats
  | 'checkQuorum' // leader: step down unless a quorum was active in the last election timeout
  | 'unreachable' // host: a peer could not be reached (progress back to probe)
  | 'snapStatus' // host: a snapshot send finished (reject = failed)
  // sent between members
  | 'prop' // proposal (follower forwards to the leader)
  | 'app'
  | 'appResp'
  | 'vote'
  | 'voteResp'
  | 'preVote'
  | 'preVoteResp'
  | 'snap'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'transferLeader'
  | 'timeoutNow'
  | 'readIndex'
  | 'readIndexResp';

export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** app: index of the entry before `entries`; appResp: last matching index (or the rejected index); vote: last index; readIndexResp: the read index. */
  readonly index: number;
  /** app: term of `index`; vote: last log term; appResp reject: term hint at rejectHint. */
  readonly logTerm: number;
  readonly commit: number;
  readonly entries: readonly Entry[];
  readonly reject: boolean;
  readonly rejectHint: number;
  /** snap only: what the snapshot holds (the data travels beside the message, see the host). */
  readonly snapshot?: SnapshotMeta | undefined;
  /** vote/preVote: 'transfer' when campaigning for a leadership transfer; heartbeat/readIndex: the read request context. */
  readonly context: Uint8Array;
}

export type Role = 'follower' | 'candidate' | 'preCandidate' | 'leader';

export interface SoftState {
  readonly lead: NodeId;
  readonly role: Role;
}

/** A linearizable read is safe once the host has applied up to `index`. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

/**
 * What the host must do, in this order:
 * 1. if `snapshot`: install it (the host's state machine now holds everything up to snapshot.index);
 * 2. persist `hardState` (if set) and append `entries` (an entry at index i replaces i and everything after it);
 *    durably when `mustSync`;
 * 3. send `messages` (a leader may send before step 2 finishes, see Raft thesis 10.2.1, unless `hardState`
 *    changes term or vote: a lone voter wins in one call, and if it crashes before persisting the new term
 *    it can win that term again and write different entries at the same index and term as those sent);
 * 4. apply `committedEntries` in order (only after step 2 is durable);
 * 5. call advance(ready).
 */
export interface Ready {
  readonly softState?: SoftState | undefined;
  readonly hardState?: HardState | undefined;
  readonly snapshot?: SnapshotMeta | undefined;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export interface RaftConfig {
  readonly id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomised in [n, 2n)). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The host's applied index at start (committed entries at or below it are not handed out again). */
  readonly applied: number;
  /** Most bytes of entries in one app message (etcd: 1 MiB). */
  readonly maxSizePerMsg: number;
  /** Most unacknowledged app messages in flight to one follower in replicate state (etcd: 256). */
  readonly maxInflightMsgs: number;
  /** Most bytes of proposed-but-uncommitted entries on the leader before proposals are dropped. */
  readonly maxUncommittedEntriesBytes: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  /** Seeded randomness: returns an integer in [0, n). */
  readonly randomInt: (n: number) => number;
  /**
   * A leader removed from (or demoted out of) the voters by applyConfChange steps down to follower at once
   * (etcd-io/raft 3.6's StepDownOnRemoval). Default false = etcd 3.5: it keeps leading the others, refuses
   * proposals ('notMember'), and the host is expected to stop it (etcd stops a removed member).
   */
  readonly stepDownOnRemoval?: boolean | undefined;
  /** Optional debug sink (the simulation records transitions). */
  readonly logger?: RaftLogger | undefined;
}

export interface RaftLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  /** Heard from since the last check-quorum round. */
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly lastIndex: number;
  /** Non-zero while a leadership transfer is in progress. */
  readonly leadTransferee: NodeId;
  readonly confState: ConfState;
  /** Leader only: one entry per voter and learner. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

/**
 * The log storage raft reads from: everything the host has persisted (entries after the last
 * snapshot, the hard state, the snapshot's metadata). raft never writes to it; the host appends
 * what a Ready asked it to persist.
 */
export interface LogStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at most maxBytes (always at least one entry when lo < hi). */
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
  /** Term of entry i; for i == snapshot.index the snapshot's term. Throws CompactedError/UnavailableError. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): SnapshotMeta;
}

/** Entries below the storage's first index were compacted away. */
export class CompactedError extends Error {
  constructor(index: number) {
    super(`raft: requested index ${index} is unavailable due to compaction`);
  }
}

/** Entries past the storage's last index. */
export class UnavailableError extends Error {
  constructor(index: number) {
    super(`raft: requested entry at index ${index} is unavailable`);
  }
}

/** step() was handed a message type only the local host may step (hup, beat, ...): a peer's bug, refused. */
export class StepRefusedError extends Error {
  override readonly name = 'StepRefusedError';
}

/** A proposal raft could not take (no leader, transfer in progress, too many uncommitted bytes, not a member). */
export class ProposalDroppedError extends Error {
  constructor(readonly reason: 'noLeader' | 'transferring' | 'uncommittedBytes' | 'notMember' | 'confChangePending') {
    super(`raft: proposal dropped (${reason})`);
  }
}
