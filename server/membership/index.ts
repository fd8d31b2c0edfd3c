export { computeClusterId, computeMemberId, isPeerUrl, parseInitialCluster } from './ids.js';
export { MAX_LEARNERS, applyChange, checkChange, decodeChange, encodeChange, HEALTH_INTERVAL_MS, mayAdd, mayPromote, mayRemove, sortMembers, type ChangeKind, type Member, type MemberChange, type ReconfigVerdict, type ReconfigView } from './members.js';
export { MemberStore } from './store.js';
