export { Node, SINGLE_MEMBER_TERM, backendPathOf, type NodeConfig } from './node.js';
export { LocalWriter, SharedReader, encodeOutcome, header, type Identity, type ReadPath, type WritePath } from './writer.js';
export { RemoteWriter, serveWrites, type Channel } from './ipc.js';
export { isTxnReadOnly } from '../apply/index.js';
