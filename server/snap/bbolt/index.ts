export { BOLT_MAGIC, BoltDb, BoltError, Bucket, fnv1a64, looksLikeBolt, type BoltEntry, type BoltMeta, type PageSource } from './reader.js';
export { decodeLease, parseRev, readEtcd, readEtcdStream, type EtcdData, type EtcdLease, type EtcdRevision, type EtcdStream } from './etcd.js';
export { boltBytes, boltPages, planBolt, DEFAULT_PAGE_BYTES, type BoltPlan, type BoltSource } from './stream.js';
export { writeBolt, type BoltBucketInput, type BoltRecord } from './writer.js';
