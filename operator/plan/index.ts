// Pure planners: an observation of an EtcdCluster's world -> one next step, its reason, and the
// status to report. No I/O, no clock (the time is part of the observation), imports only api/.
export { plan } from './plan.js';
export { DEFAULT_SETTINGS, type MemberState, type Observed, type ObservedAlarm, type ObservedMember, type RestoreSource, type ObservedPod, type ObservedPvc, type ObservedStatefulSet, type Plan, type PlanSettings, type Step, type StepKind } from './types.js';
export {
  AGENT_PORT,
  BOOTSTRAP_ANNOTATION,
  CLIENT_PORT,
  clientUrl,
  clusterToken,
  DATA_MOUNT,
  FIELD_MANAGER,
  HASH_ANNOTATION,
  hashOf,
  imageTag,
  labelSelector,
  MEMBER_CLUSTER_ROLE,
  names,
  objectKey,
  ordinalOfName,
  ordinalOfPeerUrl,
  PEER_PORT,
  peerUrl,
  quorum,
  selectorLabels,
  serverArgs,
  specHashOf,
  statefulSet,
  supportObjects,
  targetImage,
  text,
  WAL_MOUNT,
} from './desired.js';
export { caughtUp, hasQuorum, isHealthy, isSafe, viewOf, type View } from './view.js';
export { RESTORE_RETRY_MS, RESTORE_VERIFY_DEADLINE_MS } from './restore.js';
export { defragOrder, fragmentationPercent } from './upkeep.js';
export { RESTORE_ENV } from './desired.js';
export { QUORUM_LOST, quorumLossMessage, rankSurvivors } from './quorum.js';
