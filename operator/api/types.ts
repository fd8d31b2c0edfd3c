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

export const BACKUP_KIND = 'EtcdBackup';
export const BACKUP_PLURAL = 'etcdbackups';
export const BACKUP_SINGULAR = 'etcdbackup';
export const BACKUP_SHORT_NAMES: readonly string[] = ['eb'];
/** Labels of the EtcdBackups a schedule creates. */
export const BACKUP_CLUSTER_LABEL = 'cairn.dev/cluster';
export const BACKUP_SCHEDULED_LABEL = 'cairn.dev/scheduled';

export type ReclaimPolicy = 'Retain' | 'Delete';
export type CompactionMode = 'periodic' | 'revision';

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
  snapshotCount: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
}

/** A key of a Secret in the object's namespace. */
export interface SecretKeyRef {
  name: string;
  key: string;
}

/** The Secret holding the S3 access key pair (keys default to the AWS environment names). */
export interface S3CredentialsRef {
  name: string;
  accessKeyIdKey: string;
  secretAccessKeyKey: string;
}

/** An S3-compatible bucket (AWS, SeaweedFS, Ceph RGW, MinIO, ...). */
export interface S3Location {
  bucket: string;
  /** Key prefix ("backups/"); objects land under <prefix><cluster>/. */
  prefix?: string;
  /** http(s) URL of an S3-compatible endpoint; absent: AWS S3 of the region. */
  endpoint?: string;
  region: string;
  /** Path-style URLs (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key). */
  forcePathStyle: boolean;
  /** Absent: the operator's own environment / instance credentials. */
  credentialsSecretRef?: S3CredentialsRef;
  /** PEM CA bundle the endpoint's certificate chains to. */
  caBundleSecretRef?: SecretKeyRef;
}

export interface BackupDestination {
  s3: S3Location;
}

export interface RetentionSpec {
  keepLast?: number;
  keepDaily?: number;
  /** A duration such as "720h" or "30d": good backups older than this are deleted. */
  maxAge?: string;
}

/** Scheduled backups of the cluster. */
export interface BackupSpec {
  /** Cron (5 fields, or @hourly/@daily/@weekly/@monthly/@yearly). */
  schedule: string;
  /** IANA time zone of the schedule; absent: UTC. */
  timeZone?: string;
  /** No new scheduled backup while true (running ones finish; on-demand ones still run). */
  suspend: boolean;
  destination: BackupDestination;
  retention: RetentionSpec;
}

/** Auto-compaction (--auto-compaction-mode / --auto-compaction-retention). */
export interface CompactionSpec {
  mode: CompactionMode;
  /** periodic: a duration ("5m", "1h"); revision: a revision count ("1000"). */
  retention: string;
}

/** Scheduled defragmentation, one member at a time. */
export interface DefragSpec {
  schedule: string;
  timeZone?: string;
  /** Defragment a member only if at least this % of its database file is free. */
  minFragmentation: number;
}

/** A backup object named directly. */
export interface S3Object extends S3Location {
  key: string;
}

/** Exactly one of backupRef and s3. */
export interface FromBackup {
  backupRef?: { name: string };
  s3?: S3Object;
}

/** How a new cluster starts; read only at creation, immutable. */
export interface BootstrapSpec {
  fromBackup: FromBackup;
}

/**
 * etcd authentication managed by the operator: the root user (with the root role) gets the password
 * of this Secret, the operator its own user `cairn-operator` (root role, a generated password in the
 * Secret <cluster>-operator-auth), then auth is enabled. A changed password in the Secret is set as
 * root's. Removing spec.auth disables auth.
 */
export interface AuthSpec {
  /** The Secret (same namespace) and key of root's password. */
  rootSecretRef: SecretKeyRef;
}

/**
 * One side's TLS (client or peer). With secretName the certificate is the user's (a Secret with
 * cert-manager's keys tls.crt, tls.key, ca.crt: checked, then copied to the Secret the members mount,
 * so an expired or mismatched one is reported and never served); without, the operator issues it
 * from its own CA (Secret <cluster>-ca) and renews it before expiry. Members pick up a new
 * certificate without a restart (mounted Secret volumes update in place; the server reloads).
 */
export interface TlsSideSpec {
  secretName?: string;
}

export interface ClientTlsSpec extends TlsSideSpec {
  /**
   * With secretName: the operator's own client certificate (tls.crt, tls.key), signed by a CA in the
   * client Secret's ca.crt. Without secretName the operator issues its own.
   */
  operatorSecretName?: string;
}

/** TLS of the members: client (with client certificates required) and peer, independently. Set at creation. */
export interface TlsSpec {
  client?: ClientTlsSpec;
  peer?: TlsSideSpec;
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
  /** Absent: quotaFor(spec) of defaults.ts (a share of the data volume). */
  quotaBackendBytes?: number;
  compaction: CompactionSpec;
  backup?: BackupSpec;
  defrag?: DefragSpec;
  bootstrap?: BootstrapSpec;
  /** etcd authentication (root from a Secret, auth enabled); absent: auth disabled. */
  auth?: AuthSpec;
  /** TLS of the members' client and peer ports; absent: plaintext. */
  tls?: TlsSpec;
  /** Further server flags ("--flag=value"); the flags the operator owns are refused. */
  extraArgs: string[];
  /** No action while true (said in status). */
  paused: boolean;
}

/**
 * Each condition has one writer: Available/Progressing/Degraded and Maintenance/Restored the cluster
 * planner, BackupHealthy the backup runner (controller/backups.ts), AuthReady the auth manager
 * (controller/auth.ts). The planner carries the
 * conditions it does not write from the previous status.
 */
export type ConditionType = 'Available' | 'Progressing' | 'Degraded' | 'BackupHealthy' | 'Maintenance' | 'Restored' | 'AuthReady' | 'TLSReady' | 'Recovered';
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

export interface BackupRef {
  /** The EtcdBackup's name. */
  name: string;
  /** s3://bucket/key */
  uri: string;
  /** RFC 3339 completion time. */
  time: string;
  revision: number;
  size: number;
}

/** Written by the backup runner only. */
export interface ClusterBackupStatus {
  lastSuccessfulBackup?: BackupRef;
  /** RFC 3339: when the schedule last created an EtcdBackup. */
  lastScheduleTime?: string;
  nextScheduleTime?: string;
}

/**
 * A defragmentation round in progress (written by the planner before each of its steps, so a
 * restarted operator resumes it): scheduled, or the NOSPACE remediation (compact, defragment every
 * member, disarm).
 */
export interface MaintenanceRound {
  kind: 'Scheduled' | 'NoSpace';
  startedAt: string;
  /** NoSpace: the revision compacted at (absent: not yet). */
  compactRevision?: number;
  /** Member ids whose defragmentation was started in this round (each at most once). */
  attempted: string[];
}

export interface MaintenanceStatus {
  lastDefragTime?: string;
  /** RFC 3339: when the NOSPACE alarm was first seen (absent: not raised). */
  nospaceSince?: string;
  round?: MaintenanceRound;
}

export interface RestoreStatus {
  uri: string;
  sha256: string;
  size: number;
  revision: number;
  finishedAt?: string;
  /** Where the object is (resolved from backupRef or spec.bootstrap.fromBackup.s3): what pod 0 downloads. */
  source?: S3Object;
  /** RFC 3339: the operator began reading the object to verify it. */
  verifyStartedAt?: string;
  /** RFC 3339: the object was read whole and matched its size and SHA-256. */
  verifiedAt?: string;
  /** Why the object was refused (a corrupt or truncated object; a store that could not be read). */
  refusal?: string;
  /** RFC 3339 of the refusal. */
  refusedAt?: string;
  /** The refusal was the store's (unreachable, denied), not the object's: verified again later. */
  retryable?: boolean;
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
  backup?: ClusterBackupStatus;
  maintenance?: MaintenanceStatus;
  restore?: RestoreStatus;
  quorumLoss?: QuorumLossStatus;
  /** An approved quorum-loss recovery in progress or done (plan/recover.ts). */
  recovery?: RecoveryStatus;
  /** The last refused recovery approval, while its annotation stays. */
  recoveryRefusal?: RecoveryRefusal;
  /** Written by the auth manager (controller/auth.ts) only. */
  auth?: AuthStatus;
  /** Written by the certificate manager (controller/tls.ts) only. */
  tls?: TlsStatus;
}

/** A certificate the members serve (as copied into the Secret they mount). */
export interface ServedCertificate {
  /** The Secret the members mount. */
  secret: string;
  serial: string;
  notAfter: string;
  /** The user's Secret it came from (absent: issued by the operator). */
  from?: string;
}

export interface TlsStatus {
  client?: ServedCertificate;
  peer?: ServedCertificate;
}

/** etcd authentication as the operator last saw and set it. */
export interface AuthStatus {
  /** Auth is enabled on the cluster. */
  enabled: boolean;
  /** The etcd user the operator authenticates as. */
  user?: string;
  /** resourceVersion of the root password Secret whose password root has. */
  rootSecretVersion?: string;
  /** RFC 3339: when auth was enabled by the operator. */
  enabledAt?: string;
}

/** A member that still answered its own Status while quorum was lost (one of QuorumLossStatus.survivors). */
export interface QuorumLossSurvivor {
  /** The pod name. */
  name: string;
  id: string;
  learner: boolean;
  raftAppliedIndex: number;
  raftIndex: number;
  revision: number;
}

/**
 * Quorum lost: a majority of the voting members does not answer. Written by the planner while it
 * lasts (removed once quorum is back); read-only: the operator changes nothing because of it.
 */
export interface QuorumLossStatus {
  /** RFC 3339 time quorum was first seen lost (the QuorumLost threshold counts from here). */
  since: string;
  /** Voting members that do not answer (pod names, or ids for members not of this cluster's pods). */
  lost: string[];
  /** The members that answered, best first: highest applied index, then revision, then lowest ordinal. */
  survivors: QuorumLossSurvivor[];
  /** The highest revision any member reported before quorum was lost (what a recovery could lose down to the best survivor's). */
  lastKnownRevision?: number;
  /** Set once the loss lasted past the threshold and was announced (Available=False/QuorumLost, a Warning Event). */
  confirmedAt?: string;
}

/** The annotation approving a quorum-loss recovery; its value must name the best survivor shown in status.quorumLoss. */
export const RECOVERY_APPROVAL_ANNOTATION = 'cairn.dev/approve-quorum-recovery';

export type RecoveryStage = 'Approved' | 'Restarting' | 'Growing' | 'Completed' | 'Cancelled';

/** The snapshot a recovery starts from: taken from the survivor (Maintenance.Snapshot) onto its own data volume. */
export interface RecoverySnapshot {
  /** The file, relative to the survivor's data volume. */
  file: string;
  /** The claim holding it. */
  pvc: string;
  sizeBytes: number;
  sha256: string;
  /** The revision in the snapshot: what the recovered cluster keeps. */
  revision: number;
  takenAt: string;
}

/**
 * An approved quorum-loss recovery (written by the planner before its first side effect, so a
 * restarted operator resumes it): the survivor's data becomes a new one-member cluster with a new
 * cluster token, then the other members join it as learners on fresh volumes.
 */
export interface RecoveryStatus {
  stage: RecoveryStage;
  /** The approved survivor (pod name), its member id and ordinal. */
  survivor: string;
  survivorId: string;
  ordinal: number;
  approvedAt: string;
  /** The cluster token and id before the recovery, and the new token (the old members can never rejoin). */
  previousToken: string;
  previousClusterId?: string;
  token: string;
  /** Members whose volumes are replaced (every member but the survivor). */
  rejoining: string[];
  /** The highest revision known before the loss (a revision above the kept one was lost with the lost members). */
  lastKnownRevision?: number;
  snapshot?: RecoverySnapshot;
  /** RFC 3339: the point of no return (status.clusterToken became `token`; pods restart from here). */
  restartAt?: string;
  /** RFC 3339: the survivor answered as the new one-member cluster. */
  restoredAt?: string;
  finishedAt?: string;
  /** Why it was cancelled (quorum came back, or the approval was withdrawn before the restart). */
  message?: string;
}

/** An approval the operator refused (stale, mismatched, or given before the loss was confirmed); never acted on. */
export interface RecoveryRefusal {
  /** The annotation's value that was refused (refused until the annotation is removed). */
  approval: string;
  reason: string;
  at: string;
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

export type BackupPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface EtcdBackupSpec {
  /** The EtcdCluster in the same namespace; immutable. */
  clusterName: string;
  /** Absent: the cluster's spec.backup.destination. */
  destination?: BackupDestination;
}

export interface BackupCondition {
  type: 'Complete' | 'Failed';
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

export interface EtcdBackupStatus {
  phase?: BackupPhase;
  observedGeneration?: number;
  conditions?: BackupCondition[];
  uri?: string;
  key?: string;
  size?: number;
  sha256?: string;
  revision?: number;
  /** The member the snapshot came from. */
  member?: string;
  serverVersion?: string;
  startTime?: string;
  completionTime?: string;
  /** Members tried. */
  attempts?: number;
  message?: string;
}

export interface EtcdBackup {
  apiVersion: typeof API_VERSION;
  kind: typeof BACKUP_KIND;
  metadata: ObjectMeta & { creationTimestamp?: string };
  spec: EtcdBackupSpec;
  status?: EtcdBackupStatus;
}
