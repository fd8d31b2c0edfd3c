export { BOLT_MAGIC, BoltDb, BoltError, Bucket, fnv1a64, looksLikeBolt, type BoltEntry, type BoltMeta } from './reader.js';
export { decodeLease, parseRev, readEtcd, type EtcdData, type EtcdLease, type EtcdRevision } from './etcd.js';
