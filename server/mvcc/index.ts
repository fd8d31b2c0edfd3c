export { KvStore, ReadTxn, WriteTxn, type RangeSource, type RangeResult } from './store.js';
