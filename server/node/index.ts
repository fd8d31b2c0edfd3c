export { Node, SINGLE_MEMBER_TERM, backendPathOf, type NodeConfig } from './node.js';
export { LocalWriter, LocalLeases, encodeOutcome, header, minLeaseTtlSeconds, type Identity, type LeasePath, type ReadPath, type WritePath } from './writer.js';
export { isTxnReadOnly } from '../apply/index.js';
export { WatchableStore, Watcher, type WatchEvent, type WatchSink, type WatchFilters } from '../mvcc/index.js';
