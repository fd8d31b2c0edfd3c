// The Lease service: Grant and Revoke go through the log (node/); KeepAlive and TimeToLive are
// answered by the leader (node/ forwards them from a follower), Leases by this member's lessor.
// Each handler: check the request, call the node, map errors (server.ts).
import type { LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest } from '../../proto/gen/etcdserverpb.js';
import { decodeLeaseKeepAliveRequest } from '../../proto/gen/etcdserverpb.js';
import type { LeasePath } from '../node/index.js';
import { GrpcError, type BidiHandler, type GrpcErrorLike } from './grpc/index.js';
import { streamDecodeError } from './errors.js';
import { ClientError } from '../base/errors.js';
import { checkLeaseKeys } from '../auth/index.js';
import { then, type Authorizer } from './authz.js';
import type { CallContext } from './grpc/index.js';

type Encoded = Uint8Array | Promise<Uint8Array>;

type Ctx = Pick<CallContext, 'metadata' | 'tlsCommonName'>;

export interface LeaseApi {
  readonly grant: (r: LeaseGrantRequest) => Encoded;
  readonly revoke: (r: LeaseRevokeRequest, ctx: Ctx) => Encoded;
  /** Served by the leader (forwarded from a follower): replies may take a round trip. */
  readonly keepAlive: (r: LeaseKeepAliveRequest) => Promise<Uint8Array>;
  readonly timeToLive: (r: LeaseTimeToLiveRequest, ctx: Ctx) => Encoded;
  readonly leases: () => Encoded;
}

/**
 * With auth enabled (etcd): LeaseGrant, LeaseLeases and KeepAlive need nothing; LeaseRevoke needs
 * WRITE on every key attached to the lease (checked here and again at apply); LeaseTimeToLive with
 * keys needs a user with READ on every attached key (etcd 3.5.9+ / 3.4.26+; 3.4.23 checks nothing),
 * without keys nothing (etcd 3.6: "without --keys, access should be allowed").
 */
export function leaseApi(leases: LeasePath, authz?: Authorizer): LeaseApi {
  const keysOf = (id: bigint): readonly Buffer[] | undefined => authz?.path.keysOfLease(id);
  return {
    grant: (r) => leases.grant(r.TTL, r.ID),
    revoke: (r, ctx) => {
      if (authz === undefined || !authz.enabled) return leases.revoke(r.ID);
      return then(authz.who(ctx), (ai) => {
        checkLeaseKeys(authz.store, ai, r.ID, keysOf);
        return leases.revoke(r.ID, authz.header(ai));
      });
    },
    keepAlive: (r) => leases.keepAlive(r.ID),
    timeToLive: (r, ctx) => {
      // etcd 3.6 checks RBAC only when the keys are asked for (tests/common TestAuthLeaseTimeToLive).
      if (authz === undefined || !authz.enabled || !r.keys) return leases.timeToLive(r.ID, r.keys);
      return then(authz.who(ctx), (ai) => {
        if (ai.revision === 0) throw new ClientError('userEmpty');
        for (const k of keysOf(r.ID) ?? []) authz.store.checkRange(ai, k, EMPTY);
        return leases.timeToLive(r.ID, r.keys);
      });
    },
    leases: () => leases.leases(),
  };
}

const EMPTY = Buffer.alloc(0);

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
