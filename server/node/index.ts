export { Node, SINGLE_MEMBER_TERM, backendPathOf, type NodeConfig } from './node.js';
export { LocalWriter, encodeOutcome, header, type Identity, type ReadPath, type WritePath } from './writer.js';
export { isTxnReadOnly } from '../apply/index.js';
