// The EtcdCluster custom resource (cairn.dev/v1alpha1) as TypeScript types: the spec a user writes
// (after the defaults of defaults.ts), the status the operator reports, and the journaled operation.
// Kubernetes-shaped sub-objects the operator passes through untouched (resources, affinity,
// tolerations, topology spread constraints) are plain JSON objects here: the apiserver validates
// them when they land in the StatefulSet.

export const GROUP = 'cairn.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'EtcdCluster';
export const PLURAL = 'etcdclusters';
export const SINGULAR = 'etcdcluster';
export const SHORT_NAMES: readonly string[] = ['etcd', 'ec'];
export const API_VERSION = `${GROUP}/${VERSION}`;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export type ReclaimPolicy = 'Retain' | 'Delete';
export type AutoCompactionMode = 'periodic' | 'revision';

export interface VolumeSpec {
  /** A Kubernetes quantity, e.g. "8Gi". May grow, never shrink. */
  size: string;
  /** Immutable once set (a claim cannot move between classes); absent: the default class. */
  storageClassName?: string;
}

export interface StorageSpec {
  data: VolumeSpec;
  /** The WAL's own volume (ideally the NVMe class); the server's --wal-dir lives on it. */
  wal: VolumeSpec;
  /** What happens to the volumes when the EtcdCluster is deleted. */
  reclaimPolicy: ReclaimPolicy;
}

/** Typed server options: each maps to one etcd flag of the server. */
export interface ServerOptions {
  quotaBackendBytes: number;
  snapshotCount: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  autoCompactionMode: AutoCompactionMode;
  /** etcd's --auto-compaction-retention: "0" (off), "1h", "5m", or a revision count. */
  autoCompactionRetention: string;
}

export interface EtcdClusterSpec {
  /** 1, 3, 5 or 7 voting members. */
  replicas: number;
  /** The server version (an image tag of the operator's default repository), e.g. "0.1.0" or "v0.1.0". */
  version?: string;
  /** A full image reference; wins over version. */
  image?: string;
  storage: StorageSpec;
  resources?: JsonObject;
  affinity?: JsonObject;
  topologySpreadConstraints?: JsonObject[];
  nodeSelector?: Record<string, string>;
  tolerations?: JsonObject[];
  priorityClassName?: string;
  server: ServerOptions;
  /** Further server flags ("--flag=value"); the flags the operator owns are refused. */
  extraArgs: string[];
  /** No action while true (said in status). */
  paused: boolean;
}

export type ConditionType = 'Available' | 'Progressing' | 'Degraded';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition. */
export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

export interface MemberStatus {
  /** The pod name (= the member name). */
  name: string;
  /** The member id in hex, as etcdctl prints it; absent before MemberAdd. */
  id?: string;
  learner: boolean;
  leader: boolean;
  healthy: boolean;
  /** The server image tag the member's pod runs (Cairn reports etcd's API version, not its own). */
  version?: string;
  dbSize?: number;
  revision?: number;
  /** RFC 3339 time the member was first seen unhealthy; absent while healthy. */
  unhealthySince?: string;
}

export type Phase = 'Pending' | 'Creating' | 'Running' | 'Scaling' | 'Upgrading' | 'Replacing' | 'Degraded' | 'Paused';

export type OperationType = 'Create' | 'ScaleUp' | 'ScaleDown' | 'Replace' | 'Upgrade';

/**
 * The multi-step operation in progress, written to status before its first side effect. It names
 * the target; which step comes next is derived from what is observed, so every step is idempotent
 * and a restarted operator resumes where the world is.
 */
export interface Operation {
  type: OperationType;
  /** The member (pod) the operation is about. */
  member: string;
  ordinal: number;
  /** The member id (hex) once known (ScaleDown/Replace: the id being removed). */
  memberId?: string;
  /** The image the operation moves the member to (Upgrade), or runs it with. */
  image?: string;
  /** RFC 3339 start time (timeouts are measured from it). */
  startedAt: string;
  /** Why it was started, for humans. */
  reason: string;
}

export interface EtcdClusterStatus {
  phase?: Phase;
  conditions?: Condition[];
  members?: MemberStatus[];
  observedGeneration?: number;
  currentVersion?: string;
  currentImage?: string;
  operation?: Operation;
  /** The cluster token: unique per EtcdCluster, chosen at creation. */
  clusterToken?: string;
  /** The cluster id (hex) once the first member answered; from then on nothing bootstraps. */
  clusterId?: string;
  /** The last rollout stopped on this image (Degraded) until the spec changes. */
  stoppedRollout?: string;
  /** "ready/desired", for the printer column. */
  readyMembers?: string;
  /** Voting members (the scale subresource's status replicas). */
  replicas?: number;
  /** The pods' label selector (the scale subresource's selector). */
  selector?: string;
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation: number;
  resourceVersion?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface EtcdCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: EtcdClusterSpec;
  status?: EtcdClusterStatus;
}
