// The backend quota (etcd's backendQuota and quotaAlarmer): a write that would take the database past
// --quota-backend-bytes is refused with NOSPACE and raises the NOSPACE alarm cluster-wide. The cost
// model is etcd's: a put costs its key, value and a fixed per-revision overhead; a txn the sum of its
// puts; a lease grant a fixed overhead; everything else nothing (deletes and compaction must work
// when the space is gone).
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import type { RequestOpInit, TxnRequestInit } from '../../proto/gen/etcdserverpb.js';
import { DEFAULT_QUOTA_BYTES, DISK_RESERVE_MIN_BYTES } from '../base/limits.js';

/** etcd's kvOverhead and leaseOverhead (quota.go). */
const KV_OVERHEAD_BYTES = 256;
const LEASE_OVERHEAD_BYTES = 64;

function putCost(key: Uint8Array | undefined, value: Uint8Array | undefined): number {
  return KV_OVERHEAD_BYTES + (key?.length ?? 0) + (value?.length ?? 0);
}

function txnCost(t: TxnRequestInit): number {
  const ops = (list: readonly RequestOpInit[] | undefined): number => {
    let n = 0;
    for (const op of list ?? []) {
      if (op.requestPut !== undefined) n += putCost(op.requestPut.key, op.requestPut.value);
      else if (op.requestTxn !== undefined) n += txnCost(op.requestTxn);
    }
    return n;
  };
  // etcd charges the larger branch: only one of them runs.
  return Math.max(ops(t.success), ops(t.failure));
}

/** Bytes a request may add to the backend (0 = never refused by the quota). */
export function quotaCost(req: InternalRequestInit): number {
  if (req.put !== undefined) return putCost(req.put.key, req.put.value);
  if (req.txn !== undefined) return txnCost(req.txn);
  if (req.leaseGrant !== undefined) return LEASE_OVERHEAD_BYTES;
  return 0;
}

/** --quota-backend-bytes as etcd reads it: 0 = the 2 GiB default, negative = no quota. */
export function effectiveQuotaBytes(flag: number): number {
  if (flag < 0) return Infinity;
  return flag === 0 ? DEFAULT_QUOTA_BYTES : flag;
}

/** Free bytes below which the member raises NOSPACE on itself. */
export function diskReserveBytes(walSegmentBytes: number): number {
  return Math.max(DISK_RESERVE_MIN_BYTES, 2 * walSegmentBytes);
}
