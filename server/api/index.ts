export { kvApi, type KvApi } from './kv.js';
export { createGrpcServer } from './server.js';
export { toGrpcError } from './errors.js';
export { leaseApi, type LeaseApi } from './lease.js';
export { watchHandler, type WatchApiOptions } from './watch.js';
export type { Services } from './server.js';
