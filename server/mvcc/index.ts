export { HASH_KV_VERSION, KvStore, ReadTxn, WriteTxn, type RangeSource, type RangeResult, type MvccEvent, type RevisionEvents } from './store.js';
export { WatchableStore, Watcher, type WatchEvent, type WatchSink, type WatchFilters, type CatchUpLimits } from './watch.js';
