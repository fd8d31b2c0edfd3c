export { Node, RemovedMemberError, backendPathOf, monotonicMs, type NodeConfig } from './node.js';
export { BootstrapError, type ClusterFlags } from './bootstrap.js';
export { fatalCause } from './failstop.js';
export { nodeStats, newNodeStats, type NodeStats, type DurationSlot, type LabelledDurationSlot, type ValueSlot } from './stats.js';
export { LocalAuth, type AuthPath } from './writer.js';
export { LocalWriter, LocalLeases, encodeOutcome, header, minLeaseTtlSeconds, type Identity, type LeasePath, type ReadPath, type WritePath } from './writer.js';
export { isTxnReadOnly } from '../apply/index.js';
export { WatchableStore, Watcher, type WatchEvent, type WatchSink, type WatchFilters } from '../mvcc/index.js';
export type { ClusterPath, MaintenancePath, LeaderView, MemberInfo, MemberStatus, HashKvResult } from './surface.js';
