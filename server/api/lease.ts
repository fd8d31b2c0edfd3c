// The Lease service: Grant and Revoke go through the log (node/); KeepAlive and TimeToLive are
// answered by the leader (node/ forwards them from a follower), Leases by this member's lessor.
// Each handler: check the request, call the node, map errors (server.ts).
import type { LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest } from '../../proto/gen/etcdserverpb.js';
import { decodeLeaseKeepAliveRequest } from '../../proto/gen/etcdserverpb.js';
import type { LeasePath } from '../node/index.js';
import { GrpcError, type BidiHandler, type GrpcErrorLike } from './grpc/index.js';
import { streamDecodeError } from './errors.js';

type Encoded = Uint8Array | Promise<Uint8Array>;

export interface LeaseApi {
  readonly grant: (r: LeaseGrantRequest) => Encoded;
  readonly revoke: (r: LeaseRevokeRequest) => Encoded;
  /** Served by the leader (forwarded from a follower): replies may take a round trip. */
  readonly keepAlive: (r: LeaseKeepAliveRequest) => Promise<Uint8Array>;
  readonly timeToLive: (r: LeaseTimeToLiveRequest) => Encoded;
  readonly leases: () => Encoded;
}

export function leaseApi(leases: LeasePath): LeaseApi {
  return {
    grant: (r) => leases.grant(r.TTL, r.ID),
    revoke: (r) => leases.revoke(r.ID),
    keepAlive: (r) => leases.keepAlive(r.ID),
    timeToLive: (r) => leases.timeToLive(r.ID, r.keys),
    leases: () => leases.leases(),
  };
}

/** Keepalives one stream may have waiting for the leader before it stops reading requests. */
const KEEPALIVES_IN_FLIGHT_MAX = 128;

type Settled = { readonly bytes: Uint8Array } | { readonly err: unknown };

function settle(run: () => Promise<Uint8Array>): Promise<Settled> {
  try {
    return run().then(
      (bytes) => ({ bytes }),
      (err: unknown) => ({ err }),
    );
  } catch (err) {
    return Promise.resolve({ err });
  }
}

/**
 * LeaseKeepAlive: one reply per request, in request order (answers may come from the leader, so
 * several wait at once, up to KEEPALIVES_IN_FLIGHT_MAX); reading pauses while the client does not
 * read. A failed renewal ends the stream with its error (etcd: togRPCError; an unknown lease is a
 * TTL 0 reply, not an error). The client's half-close ends the stream once every reply is out.
 */
export function keepAliveStream(keepAlive: (r: LeaseKeepAliveRequest) => Promise<Uint8Array>, failure: (err: unknown) => GrpcErrorLike): BidiHandler {
  return (incoming, out) => {
    let tail: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let waitingDrain = false;
    let halfClosed = false;
    const maybeResume = (): void => {
      if (!waitingDrain && inFlight < KEEPALIVES_IN_FLIGHT_MAX) incoming.resume();
    };
    const reply = (r: Settled): void => {
      inFlight--;
      if (out.closed) return;
      if ('err' in r) return out.end(failure(r.err));
      const below = out.send(r.bytes);
      if (halfClosed && inFlight === 0) return out.end();
      if (below || out.closed || waitingDrain) return maybeResume();
      waitingDrain = true;
      incoming.pause();
      out.onDrain(() => {
        waitingDrain = false;
        maybeResume();
      });
    };
    incoming.onMessage((bytes) => {
      let req: LeaseKeepAliveRequest;
      try {
        req = decodeLeaseKeepAliveRequest(bytes);
      } catch (err) {
        const e = streamDecodeError(err);
        out.end(new GrpcError(e.code, e.details));
        return;
      }
      if (++inFlight >= KEEPALIVES_IN_FLIGHT_MAX) incoming.pause();
      const settled = settle(() => keepAlive(req));
      tail = tail.then(() => settled.then(reply)).catch((err: unknown) => out.end(failure(err)));
    });
    // etcd ends the keepalive stream (OK) when the client half-closes, after the reply in progress.
    incoming.onEnd(() => {
      halfClosed = true;
      if (inFlight === 0) out.end();
    });
  };
}
