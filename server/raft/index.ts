// Public surface of server/raft: the pure Raft state machine (RawNode), an in-memory LogStorage and the
// ConfChange codec. See README.md.

export * from './types.js';
export { RawNode } from './rawnode.js';
export { MemoryStorage } from './storage.js';
export { encodeConfChange, decodeConfChange } from './confchange.js';
export { CAMPAIGN_TRANSFER_CONTEXT } from './raft.js';
