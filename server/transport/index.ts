// Public surface of server/transport (README.md): the Transport and what its users need.
export { Transport, type TransportOptions, type PeerStats } from './transport.js';
export { type OutgoingSnapshot, SNAPSHOT_TEMP_SUFFIX } from './snapshot.js';
export { PeerProtocolError, PeerRefusedError, PeerRequestError, PeerUnavailableError, type RefusalCode, type UnavailableKind } from './errors.js';
export { type SocketFactory, plainTcp } from './sockets.js';
export { ANONYMOUS_REQUEST_KIND } from './inbound.js';
export * from './constants.js';
