// What the planner sees (Observed: one snapshot of the world, gathered by observe/) and what it
// answers (Plan: one Step, its reason, the status to report). Plain data, no classes, no I/O.
import type { EtcdCluster, EtcdClusterStatus, JsonObject, Operation, S3Object } from '../api/index.js';

export interface ObservedPod {
  name: string;
  ordinal: number;
  /** Pod phase. */
  phase: string;
  /** The Ready condition. */
  ready: boolean;
  /** The server container's image. */
  image: string;
  /** The StatefulSet revision the pod was made from (label controller-revision-hash). */
  revision: string;
  restarts: number;
  deleting: boolean;
  /** The bootstrap grant annotation's value, if any. */
  bootstrapGrant?: string;
  /** RFC 3339. */
  createdAt: string;
  /** What the member entrypoint says (its agent's /state), when it answered. */
  memberState?: MemberState;
  /** The server container's last termination message (the entrypoint writes why it failed: a restore refused, say). */
  lastTermination?: { exitCode: number; message: string };
}

/** The member entrypoint's state: waiting to be added, its started member's data gone, or running. */
export type MemberState = 'waiting' | 'dataLost' | 'running';

export interface ObservedPvc {
  name: string;
  ordinal: number;
  volume: 'data' | 'wal';
  /** Requested bytes. */
  requestBytes: number;
  deleting: boolean;
  createdAt: string;
}

export interface ObservedStatefulSet {
  replicas: number;
  /** The spec-hash annotation of the applied object. */
  hash: string;
  /** status.updateRevision, once the controller has seen the current generation; else undefined. */
  updateRevision?: string;
  /** The claim templates' sizes (immutable once created). */
  claimSizes: { data: string; wal: string };
}

/** One member as the member list and its own Status answer show it. */
export interface ObservedMember {
  /** Hex id as etcdctl prints it. */
  id: string;
  /** Empty until the member has started once. */
  name: string;
  peerURL: string;
  learner: boolean;
  /** Its Maintenance.Status answer; undefined when it did not answer. */
  status?: {
    /** Hex id of the leader it knows (0 = none). */
    leader: string;
    raftIndex: number;
    raftAppliedIndex: number;
    dbSize: number;
    /** Bytes of the database file in use (the rest is free pages a defragmentation drops). */
    dbSizeInUse: number;
    revision: number;
    errors: string[];
  };
}

/** A raised alarm as AlarmList reports it. */
export interface ObservedAlarm {
  /** Hex id of the member that raised it. */
  memberId: string;
  alarm: 'NOSPACE' | 'CORRUPT';
}

/**
 * The bootstrap source of a cluster restored from a backup, as observe/ resolved it (backupRef: the
 * EtcdBackup's status and destination; s3: the spec), or why it cannot be used yet.
 */
export type RestoreSource =
  | {
      ok: true;
      /** s3://bucket/key */
      uri: string;
      /** Where the object is: the S3 location fields of the API and the key. */
      location: S3Object;
      /** What the backup's record says (backupRef); absent: the object's own metadata decides. */
      expect?: { sizeBytes: number; sha256: string; revision: number };
    }
  | { ok: false; why: string };

export interface Observed {
  /** RFC 3339 time of the observation. */
  now: string;
  cluster: EtcdCluster;
  /** spec-hash annotations of the owned objects that exist, by kind/name. */
  objects: Readonly<Record<string, string>>;
  statefulSet?: ObservedStatefulSet;
  pods: readonly ObservedPod[];
  pvcs: readonly ObservedPvc[];
  /** The member list; undefined when no member answered MemberList. */
  members?: readonly ObservedMember[];
  /** The cluster id (hex) from the member list's response header. */
  clusterId?: string;
  /**
   * Only when no member answered the linearizable member list (quorum lost, say): the list as one
   * reachable member knows it from its own view (non-linearizable), each member with its own Status.
   * Possibly stale, so the planner uses it for nothing but reporting a quorum loss (plan/quorum.ts).
   */
  localMembers?: readonly ObservedMember[];
  /** Raised alarms; undefined when no member answered AlarmList. */
  alarms?: readonly ObservedAlarm[];
  /** spec.defrag's schedule has come due since the last defragmentation round (observe/ evaluates the cron). */
  defragDue?: boolean;
  /** spec.bootstrap.fromBackup resolved; absent without one. */
  restoreSource?: RestoreSource;
  /** Operator configuration: the image when the spec names neither image nor version. */
  defaultImage: string;
  settings: PlanSettings;
}

/** Timing limits of the planner (operator flags; DEFAULT_SETTINGS otherwise). */
export interface PlanSettings {
  /** A member unhealthy this long, with its pod on the current image, is replaced. */
  replaceAfterMs: number;
  /** An upgraded pod not healthy this long after its deletion stops the rollout (Degraded). */
  upgradeHealthyTimeoutMs: number;
  /** A learner within this many entries of the leader's index counts as caught up. */
  catchUpEntriesMax: number;
  /** Requeue while waiting for the world to move. */
  waitMs: number;
  /** A majority of the voters lost this long is reported as Available=False/QuorumLost (with a Warning Event). */
  quorumLossAfterMs: number;
}

export const DEFAULT_SETTINGS: PlanSettings = {
  replaceAfterMs: 60_000,
  upgradeHealthyTimeoutMs: 180_000,
  catchUpEntriesMax: 1000,
  waitMs: 2000,
  quorumLossAfterMs: 300_000,
};

export type Step =
  | { kind: 'none' }
  | { kind: 'wait'; requeueMs: number }
  /** The status holds the new journal entry (written before anything else happens). */
  | { kind: 'journal'; operation: Operation }
  | { kind: 'endOperation' }
  | { kind: 'apply'; object: JsonObject }
  | { kind: 'grantBootstrap'; pod: string; token: string }
  | { kind: 'revokeBootstrap'; pod: string }
  | { kind: 'memberAddLearner'; member: string; peerURL: string }
  | { kind: 'memberPromote'; member: string; id: string }
  | { kind: 'moveLeader'; from: string; to: string; toMember: string }
  | { kind: 'memberRemove'; member: string; id: string }
  | { kind: 'scaleStatefulSet'; replicas: number }
  | { kind: 'deletePod'; pod: string }
  | { kind: 'deletePvc'; pvc: string }
  | { kind: 'resizePvc'; pvc: string; size: string }
  /** Compact the key history at `revision` (NOSPACE remediation). */
  | { kind: 'compact'; revision: number; why: string }
  /** Defragment one member (never the leader of a multi-member cluster: leadership is moved first). */
  | { kind: 'defragment'; member: string; id: string; why: string }
  | { kind: 'disarmAlarm'; memberId: string; alarm: 'NOSPACE' | 'CORRUPT' }
  /** Read the backup object whole and check it (size, SHA-256, trailer); act records the outcome in status.restore. */
  | { kind: 'verifyBackup'; source: Extract<RestoreSource, { ok: true }> }
  /** Record a Warning Event and nothing else (a quorum loss confirmed: the user has to act). */
  | { kind: 'warn'; reason: 'QuorumLost'; note: string }
  /** Record an Event and nothing else (a recovery stage reached, an approval refused); the status write is the change. */
  | { kind: 'note'; type: 'Normal' | 'Warning'; reason: string; note: string }
  /**
   * Have the survivor's member agent stream its own Maintenance.Snapshot onto its data volume (works
   * without quorum); act/ records the file, size, SHA-256 and revision in status.recovery.snapshot.
   */
  | { kind: 'recoverySnapshot'; pod: string; memberId: string; token: string }
  /** Remove the approval annotation if it still has this value (a JSON patch with a test). */
  | { kind: 'consumeApproval'; value: string; note: string };

export type StepKind = Step['kind'];

/** A planner answer: the one next step, why, and the status to write (before acting). */
export interface Plan {
  step: Step;
  reason: string;
  status: EtcdClusterStatus;
}
