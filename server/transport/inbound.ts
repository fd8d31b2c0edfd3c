// The receiving side of a connection: check the hello (refuse with an error frame, then close), answer
// accept, then serve the connection's purpose: a raft stream (messages delivered in order, pings
// answered), forwarded requests, or one snapshot transfer.
import { Buffer } from 'node:buffer';
import type { Logger } from '../base/index.js';
import type { Message } from '../raft/types.js';
import { decodeMessage } from './codec.js';
import type { FramedConn } from './conn.js';
import { PEER_PENDING_REQUESTS_MAX, PEER_REQUEST_BODY_BYTES_MAX, PROTOCOL_VERSION } from './constants.js';
import { PeerProtocolError, type RefusalCode } from './errors.js';
import {
  type Frame,
  type Hello,
  type Purpose,
  decodeHello,
  decodeRequest,
  decodeTime,
  encodeError,
  encodeFrame,
  encodeResponse,
  encodeTime,
  frameTypes,
  purposeOf,
} from './frame.js';
import { SnapshotReceiver } from './snapshot.js';

/** The only request kind a caller that does not know the cluster (hello with to = 0) may make. */
export const ANONYMOUS_REQUEST_KIND = 'members';

export interface InboundEnv {
  readonly logger: Logger;
  readonly snapshotDir: string;
  readonly memberId: bigint;
  clusterId(): bigint;
  isRemoved(id: bigint): boolean;
  onMessages(msgs: Message[]): void;
  onSnapshot(msg: Message, file: string): void;
  onSnapshotStored?: ((saveSeconds: number, fsyncSeconds: number) => void) | undefined;
  handleRequest(from: bigint, kind: string, body: Uint8Array): Promise<Uint8Array>;
  /** A connection passed its hello (the transport indexes it by peer; a new stream supersedes the old). */
  accepted(conn: FramedConn, from: bigint, purpose: Purpose): void;
  /** Work that must finish before close() resolves (temp-file removal). */
  cleanup(p: Promise<void>): void;
}

export type HelloVerdict =
  | { readonly ok: true; readonly purpose: Purpose; readonly anonymous: boolean }
  | { readonly ok: false; readonly code: RefusalCode; readonly text: string };

const hex = (id: bigint): string => id.toString(16);

/** Pure: whether to accept a hello. Unknown senders are accepted unless removed (a new member may talk first). */
export function checkHello(h: Hello, memberId: bigint, clusterId: bigint, isRemoved: (id: bigint) => boolean): HelloVerdict {
  if (h.version !== PROTOCOL_VERSION) {
    return { ok: false, code: 'version', text: `unsupported protocol version ${h.version} (this member speaks ${PROTOCOL_VERSION})` };
  }
  const purpose = purposeOf(h.purpose);
  if (purpose === undefined) return { ok: false, code: 'badHello', text: `unknown connection purpose ${h.purpose}` };
  if (purpose === 'request' && h.to === 0n && (h.clusterId === 0n || h.clusterId === clusterId)) return { ok: true, purpose, anonymous: true };
  if (h.clusterId !== clusterId) {
    return { ok: false, code: 'clusterMismatch', text: `cluster ID mismatch (local=${hex(clusterId)}, remote=${hex(h.clusterId)})` };
  }
  // A removed sender hears that it was removed whatever member it meant to reach: a member restarted on
  // a removed member's data may dial a peer URL that now belongs to a member with another id, and must
  // learn of its removal (and stop, exit 78) rather than retry a member-ID mismatch forever.
  if (isRemoved(h.from)) return { ok: false, code: 'removed', text: `removed: member ${hex(h.from)} was removed from the cluster` };
  if (h.to !== memberId) return { ok: false, code: 'memberMismatch', text: `member ID mismatch (local=${hex(memberId)}, remote expected=${hex(h.to)})` };
  return { ok: true, purpose, anonymous: false };
}

/** The handler for a fresh inbound connection (its decoder expects the hello first). */
export function helloHandler(env: InboundEnv, conn: FramedConn): (frames: Frame[]) => void | Promise<void> {
  return (frames) => {
    const [first, ...rest] = frames;
    if (first?.type !== frameTypes.hello) throw new PeerProtocolError('connection does not start with a hello');
    const h = decodeHello(first.payload);
    const v = checkHello(h, env.memberId, env.clusterId(), (id) => env.isRemoved(id));
    if (!v.ok) {
      env.logger.warn('refused peer connection', { remote: conn.remote, from: hex(h.from), code: v.code, reason: v.text });
      conn.setHandler(() => undefined);
      conn.endWith(encodeError(v.code, v.text), `refused: ${v.text}`);
      return;
    }
    conn.write(encodeFrame(frameTypes.accept));
    const handler = purposeHandler(env, conn, v.anonymous ? 0n : h.from, v);
    conn.setHandler(handler);
    env.accepted(conn, v.anonymous ? 0n : h.from, v.purpose);
    return rest.length > 0 ? handler(rest) : undefined;
  };
}

function purposeHandler(
  env: InboundEnv,
  conn: FramedConn,
  from: bigint,
  v: { purpose: Purpose; anonymous: boolean },
): (frames: Frame[]) => void | Promise<void> {
  switch (v.purpose) {
    case 'stream':
      return (frames) => receiveStream(env, conn, from, frames);
    case 'request':
      return requestServer(env, conn, from, v.anonymous);
    case 'snapshot': {
      const r = new SnapshotReceiver(env, from, conn);
      conn.onClose(() => env.cleanup(r.cleanup()));
      return (frames) => r.handle(frames);
    }
  }
}

/** Delivers the messages of one read together, in order; answers pings. */
function receiveStream(env: InboundEnv, conn: FramedConn, from: bigint, frames: Frame[]): void {
  const msgs: Message[] = [];
  let fault: PeerProtocolError | undefined;
  for (const f of frames) {
    try {
      if (f.type === frameTypes.msg) msgs.push(checkStreamMessage(decodeMessage(f.payload), env.memberId, from));
      else if (f.type === frameTypes.ping) conn.write(encodeTime(frameTypes.pong, decodeTime(f.payload)));
      else throw new PeerProtocolError(`unexpected frame type ${f.type} on an incoming stream`);
    } catch (e) {
      if (!(e instanceof PeerProtocolError)) throw e;
      fault = e;
      break;
    }
  }
  if (msgs.length > 0) env.onMessages(msgs);
  if (fault !== undefined) throw fault;
}

function checkStreamMessage(m: Message, memberId: bigint, from: bigint): Message {
  if (m.to !== memberId || m.from !== from) {
    throw new PeerProtocolError(`message from ${hex(m.from)} to ${hex(m.to)} on the stream from ${hex(from)} to ${hex(memberId)}`);
  }
  if (m.type === 'snap') throw new PeerProtocolError('snapshot message on a stream connection');
  return m;
}

function requestServer(env: InboundEnv, conn: FramedConn, from: bigint, anonymous: boolean): (frames: Frame[]) => void {
  let inflight = 0;
  const fail = (id: number, text: string): void => conn.write(encodeResponse(id, false, Buffer.from(text, 'utf8')));
  return (frames) => {
    for (const f of frames) {
      if (f.type !== frameTypes.request) throw new PeerProtocolError(`unexpected frame type ${f.type} on a request connection`);
      const { id, kind, body } = decodeRequest(f.payload);
      if (anonymous && kind !== ANONYMOUS_REQUEST_KIND) fail(id, `request ${kind} needs the cluster and member IDs`);
      else if (body.length > PEER_REQUEST_BODY_BYTES_MAX) fail(id, `request body of ${body.length} bytes exceeds ${PEER_REQUEST_BODY_BYTES_MAX}`);
      else if (inflight >= PEER_PENDING_REQUESTS_MAX) fail(id, 'too many pending requests');
      else {
        inflight++;
        void serve(env, from, kind, body).then(
          (resp) => {
            inflight--;
            if (resp.length > PEER_REQUEST_BODY_BYTES_MAX) fail(id, `response of ${resp.length} bytes exceeds ${PEER_REQUEST_BODY_BYTES_MAX}`);
            else conn.write(encodeResponse(id, true, resp));
          },
          (e: unknown) => {
            inflight--;
            fail(id, e instanceof Error ? e.message : String(e));
          },
        );
      }
    }
  };
}

async function serve(env: InboundEnv, from: bigint, kind: string, body: Uint8Array): Promise<Uint8Array> {
  return env.handleRequest(from, kind, body);
}
