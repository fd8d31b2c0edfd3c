// What the planner sees (Observed: one snapshot of the world, gathered by observe/) and what it
// answers (Plan: one Step, its reason, the status to report). Plain data, no classes, no I/O.
import type { EtcdCluster, EtcdClusterStatus, JsonObject, Operation } from '../api/index.js';

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
    revision: number;
    errors: string[];
  };
}

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
}

export const DEFAULT_SETTINGS: PlanSettings = {
  replaceAfterMs: 60_000,
  upgradeHealthyTimeoutMs: 180_000,
  catchUpEntriesMax: 1000,
  waitMs: 2000,
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
  | { kind: 'resizePvc'; pvc: string; size: string };

export type StepKind = Step['kind'];

/** A planner answer: the one next step, why, and the status to write (before acting). */
export interface Plan {
  step: Step;
  reason: string;
  status: EtcdClusterStatus;
}
