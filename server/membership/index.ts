export { computeClusterId, computeMemberId, isPeerUrl, parseInitialCluster } from './ids.js';
export { MAX_LEARNERS, applyChange, checkChange, decodeChange, encodeChange, keepsQuorum, sortMembers, type ChangeKind, type Member, type MemberChange } from './members.js';
export { MemberStore } from './store.js';
