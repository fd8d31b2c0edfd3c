export { kvApi, type KvApi } from './kv.js';
export { createGrpcServer } from './server.js';
export { toGrpcError } from './errors.js';
