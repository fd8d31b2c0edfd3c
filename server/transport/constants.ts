// The transport's limits and timings, one name each (DESIGN.md style 6). PEER_FRAME_BYTES_MAX will move to
// server/base/limits.ts; until then it lives here.

/** Largest frame payload a peer may send (bigger declared lengths close the connection). */
export const PEER_FRAME_BYTES_MAX = 64 * 1024 * 1024;

/** Messages queued for one peer before new ones are dropped (etcd's streamBufSize). */
export const PEER_SEND_QUEUE_MSGS = 4096;

/** Most bytes of stream frames one socket write carries (a single larger message still goes alone). */
export const PEER_WRITE_BATCH_BYTES = 4 * 1024 * 1024;

/** Largest body of a forwarded request or its response. */
export const PEER_REQUEST_BODY_BYTES_MAX = 16 * 1024 * 1024;

/** Requests awaiting a response, per peer (sender) and per connection (receiver). */
export const PEER_PENDING_REQUESTS_MAX = 1024;

/** Connecting to one URL plus the hello/accept exchange. */
export const PEER_DIAL_TIMEOUT_MS = 1000;

/** Reconnect backoff of a broken stream: doubles from MIN up to MAX, reset once a connection is accepted. */
export const PEER_BACKOFF_MIN_MS = 100;
export const PEER_BACKOFF_MAX_MS = 1000;

/** onUnreachable(peer) is called at most once per this interval per peer. */
export const PEER_UNREACHABLE_REPORT_MS = 1000;

/** Ping on every stream connection (round-trip time, liveness). */
export const PEER_PING_INTERVAL_MS = 1000;

/** A stream or snapshot connection on which nothing arrived for this long is closed (etcd's ConnReadTimeout). */
export const PEER_READ_TIMEOUT_MS = 5000;

/** Snapshot file bytes per chunk frame. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/** Sender: longest wait for the receiver's verdict after the last chunk (it fsyncs the file). */
export const SNAPSHOT_ACK_TIMEOUT_MS = 60_000;

/** Sender: longest wait for the socket to drain while streaming a snapshot. */
export const SNAPSHOT_STALL_TIMEOUT_MS = 10_000;

/** Hello: magic bytes and the protocol version. */
export const HELLO_MAGIC = 'CAIRNP2P';
export const PROTOCOL_VERSION = 1;
