// What api/ may ask of the member beyond KV, Watch and Lease: membership (Cluster service), status
// and admin (Maintenance service), and leadership facts for request metadata checks. Implemented by
// node/ (`Node`; `Node.maintenance` for MaintenancePath); api/ depends on these interfaces only.
//
// Errors: methods reject with ClientError (kinds memberNotFound, memberIdExists, peerUrlExists,
// notEnoughStarted, memberNotLearner, learnerNotReady, tooManyLearners, invalidPeerUrls, notLeader,
// badLeaderTransferee) or ServerRefusal (noLeader, leaderChanged, timeout, timeoutLeaderTransfer,
// stopped, unhealthy); api/errors.ts maps them to etcd's codes and strings.

export interface MemberInfo {
  readonly id: bigint;
  /** Empty until the member has started and published its name (as etcd). */
  readonly name: string;
  readonly peerURLs: readonly string[];
  /** Empty until the member has started and published its client URLs (as etcd). */
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
}

export interface ClusterPath {
  /** The member list as this member has applied it, sorted by id. */
  members(): MemberInfo[];
  /** MemberAdd: resolves once the change is applied here. */
  addMember(peerURLs: readonly string[], isLearner: boolean): Promise<{ member: MemberInfo; members: MemberInfo[] }>;
  removeMember(id: bigint): Promise<MemberInfo[]>;
  updateMember(id: bigint, peerURLs: readonly string[]): Promise<MemberInfo[]>;
  /** MemberPromote (forwarded to the leader when called on a follower). */
  promoteMember(id: bigint): Promise<MemberInfo[]>;
}

export interface MemberStatus {
  /** 0n when no leader is known. */
  readonly leader: bigint;
  /** etcd reports the commit index as raftIndex. */
  readonly raftIndex: number;
  readonly raftTerm: number;
  readonly raftAppliedIndex: number;
  readonly isLearner: boolean;
  readonly dbSizeBytes: number;
  readonly dbSizeInUseBytes: number;
  /** Active alarms (Status lists them in `errors`). */
  readonly alarms: readonly { readonly memberID: bigint; readonly alarm: number }[];
}

export interface HashKvResult {
  readonly hash: number;
  readonly compactRevision: number;
  /** The revision hashed up to (the request's, or current when it asked 0). */
  readonly hashRevision: number;
}

export interface MaintenancePath {
  status(): MemberStatus;
  /** MoveLeader: this member must be the leader; resolves once `target` leads. */
  moveLeader(target: bigint): Promise<void>;
  /** HashKV at `revision` (0 = current). Rejects with ClientError compacted / futureRev as etcd. */
  hashKV(revision: number): HashKvResult | Promise<HashKvResult>;
  /** Maintenance.Hash: a hash of every replicated table, and the current revision. */
  hash(): { hash: number; revision: number } | Promise<{ hash: number; revision: number }>;
  /** Online defragmentation: resolves once the database file was rewritten without free pages. */
  defragment(): Promise<{ beforeBytes: number; afterBytes: number; tookMs: number }>;
  /** A consistent copy of the database for Maintenance.Snapshot; release() removes it. */
  snapshotCopy(): Promise<{ path: string; bytes: number; release: () => void }>;
}

/** Leadership facts for the `hasleader` metadata and learner restrictions. */
export interface LeaderView {
  hasLeader(): boolean;
  isLearner(): boolean;
  /** Calls fn when the member has had no leader for `ms` (once per leaderless period); returns an unsubscribe. */
  onLeaderless(ms: number, fn: () => void): () => void;
}
