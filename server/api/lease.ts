// The Lease service: Grant and Revoke go through the log (node/), KeepAlive, TimeToLive and Leases
// are answered from the lessor. Each handler: check the request, call the node, map errors (server.ts).
import type { LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest } from '../../proto/gen/etcdserverpb.js';
import type { LeasePath } from '../node/index.js';

type Encoded = Uint8Array | Promise<Uint8Array>;

export interface LeaseApi {
  readonly grant: (r: LeaseGrantRequest) => Encoded;
  readonly revoke: (r: LeaseRevokeRequest) => Encoded;
  readonly keepAlive: (r: LeaseKeepAliveRequest) => Uint8Array;
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
