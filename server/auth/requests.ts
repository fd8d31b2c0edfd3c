// Which permission each KV and lease request needs (etcd's apply_auth.go and checkTxnAuth): reads
// need READ on their range, writes WRITE on theirs (+ READ when they return the previous values),
// a Txn everything its compares and operations need, a Put with a lease WRITE on every key already
// attached to that lease, a lease revoke WRITE on every attached key. Throws ClientError.
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../../proto/gen/etcdserverpb.js';
import type { AuthInfo, AuthStore } from './store.js';

/** The keys attached to a lease, or undefined when there is no such lease. */
export type LeaseKeysOf = (id: bigint) => readonly Uint8Array[] | undefined;

const EMPTY = Buffer.alloc(0);

export function checkRangeRequest(s: AuthStore, ai: AuthInfo, r: Pick<RangeRequest, 'key' | 'rangeEnd'>): void {
  s.checkRange(ai, r.key, r.rangeEnd);
}

export function checkLeaseKeys(s: AuthStore, ai: AuthInfo, id: bigint, keysOf: LeaseKeysOf): void {
  if (id === 0n) return;
  const keys = keysOf(id);
  if (keys === undefined) return;
  for (const k of keys) s.checkPut(ai, k);
}

export function checkPutRequest(s: AuthStore, ai: AuthInfo, r: PutRequest, keysOf: LeaseKeysOf): void {
  s.checkPut(ai, r.key);
  checkLeaseKeys(s, ai, r.lease, keysOf);
  if (r.prevKv) s.checkRange(ai, r.key, EMPTY);
}

export function checkDeleteRequest(s: AuthStore, ai: AuthInfo, r: DeleteRangeRequest): void {
  s.checkDelete(ai, r.key, r.rangeEnd);
  if (r.prevKv) s.checkRange(ai, r.key, r.rangeEnd);
}

function checkOps(s: AuthStore, ai: AuthInfo, ops: readonly RequestOp[]): void {
  for (const op of ops) {
    if (op.requestRange !== undefined) s.checkRange(ai, op.requestRange.key, op.requestRange.rangeEnd);
    else if (op.requestPut !== undefined) s.checkPut(ai, op.requestPut.key);
    else if (op.requestDeleteRange !== undefined) {
      const d = op.requestDeleteRange;
      if (d.prevKv) s.checkRange(ai, d.key, d.rangeEnd);
      s.checkDelete(ai, d.key, d.rangeEnd);
    } else if (op.requestTxn !== undefined) checkTxnRequest(s, ai, op.requestTxn);
  }
}

/** etcd's checkTxnAuth (a Put inside a Txn is not checked against its lease's keys, as in etcd). */
export function checkTxnRequest(s: AuthStore, ai: AuthInfo, r: TxnRequest): void {
  for (const c of r.compare) s.checkRange(ai, c.key, c.rangeEnd);
  checkOps(s, ai, r.success);
  checkOps(s, ai, r.failure);
}
