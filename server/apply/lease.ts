// etcd's lease applier (E server/lease/lessor.go Grant/Revoke, as applied from the log): grants are
// recorded in LMDB; a revoke deletes every attached key in ONE revision (keys in byte order, so
// watchers see one response of DELETE events) and then the lease. The in-memory expiry bookkeeping
// (lease/Lessor) learns of both after the LMDB transaction commits (LeaseChanges).
import type { LeaseGrantRequest, LeaseGrantResponseInit, LeaseRevokeRequest, LeaseRevokeResponseInit } from '../../proto/gen/etcdserverpb.js';
import { ClientError } from '../base/errors.js';
import { keyRange } from '../base/bytes.js';
import type { KvStore } from '../mvcc/index.js';
import type { LeaseStore } from '../lease/index.js';

/** Lease grants and revokes of an apply batch, for the lessor once the batch committed. */
export interface LeaseChanges {
  readonly granted: { id: bigint; ttlSeconds: number }[];
  readonly revoked: bigint[];
}

export function applyLeaseGrant(leases: LeaseStore, changes: LeaseChanges, store: KvStore, r: LeaseGrantRequest): LeaseGrantResponseInit {
  if (leases.has(r.ID)) throw new ClientError('leaseExists');
  leases.grant(r.ID, r.TTL);
  changes.granted.push({ id: r.ID, ttlSeconds: r.TTL });
  return { header: { revision: store.currentRev }, ID: r.ID, TTL: r.TTL };
}

export function applyLeaseRevoke(leases: LeaseStore, changes: LeaseChanges, store: KvStore, r: LeaseRevokeRequest): LeaseRevokeResponseInit {
  if (!leases.has(r.ID)) throw new ClientError('leaseNotFound');
  const keys = store.keysOfLease(r.ID);
  if (keys.length > 0) {
    const txn = store.beginWrite();
    for (const k of keys) txn.deleteRange(keyRange(k, Buffer.alloc(0)));
    txn.end();
  }
  leases.remove(r.ID);
  changes.revoked.push(r.ID);
  return { header: { revision: store.currentRev } };
}
