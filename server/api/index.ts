export { kvApi, type KvApi } from './kv.js';
export { createGrpcServer, type ServerOptions } from './server.js';
export { toGrpcError } from './errors.js';
export { leaseApi, type LeaseApi } from './lease.js';
export { watchHandler, type WatchApiOptions } from './watch.js';
export { clusterApi, type ClusterApi } from './cluster.js';
export { maintenanceApi, type MaintenanceApi, type MaintenanceApiOptions } from './maintenance.js';
export type { HeaderSource } from './header.js';
export type { Services } from './server.js';
