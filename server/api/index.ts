export { kvApi, type KvApi } from './kv.js';
export { createGrpcServer, bind } from './server.js';
export { toGrpcError } from './errors.js';
