// Applies one committed log entry to the MVCC store, exactly once and in log order. The caller runs
// a whole batch inside one LMDB transaction and writes the applied index in that same transaction.
import { decodeInternalRequest, type InternalRequest } from '../../proto/gen/cairnpb.js';
import type {
  CompactionResponseInit,
  DeleteRangeResponseInit,
  LeaseGrantResponseInit,
  LeaseRevokeResponseInit,
  PutResponseInit,
  TxnResponseInit,
} from '../../proto/gen/etcdserverpb.js';
import { ClientError, AssertionFailure } from '../base/errors.js';
import type { KvStore } from '../mvcc/index.js';
import type { LeaseStore } from '../lease/index.js';
import { applyCompaction, applyDeleteRange, applyPut, applyTxn, MidTxnError, type LeaseLookup } from './kv.js';
import { applyLeaseGrant, applyLeaseRevoke, type LeaseChanges } from './lease.js';

export type ApplyResponse =
  | { readonly kind: 'put'; readonly resp: PutResponseInit }
  | { readonly kind: 'deleteRange'; readonly resp: DeleteRangeResponseInit }
  | { readonly kind: 'txn'; readonly resp: TxnResponseInit }
  | { readonly kind: 'compaction'; readonly resp: CompactionResponseInit }
  | { readonly kind: 'leaseGrant'; readonly resp: LeaseGrantResponseInit }
  | { readonly kind: 'leaseRevoke'; readonly resp: LeaseRevokeResponseInit }
  | { readonly kind: 'memberAttrs' };

export type ApplyOutcome = { readonly ok: true; readonly response: ApplyResponse } | { readonly ok: false; readonly error: ClientError };

export interface ApplyContext {
  readonly store: KvStore;
  readonly leases: LeaseStore;
  /** Grants and revokes of this batch, collected for the lessor. */
  readonly leaseChanges: LeaseChanges;
  /** A started member publishing its name and client URLs (membership lives above apply/). */
  readonly setMemberAttrs: (id: bigint, name: string, clientURLs: readonly string[]) => void;
}

function dispatch(ctx: ApplyContext, req: InternalRequest): ApplyResponse {
  const { store } = ctx;
  const leaseExists: LeaseLookup = (id) => ctx.leases.has(id);
  if (req.put !== undefined) {
    const txn = store.beginWrite();
    const resp = applyPut(txn, req.put, leaseExists);
    txn.end();
    return { kind: 'put', resp };
  }
  if (req.deleteRange !== undefined) {
    const txn = store.beginWrite();
    const resp = applyDeleteRange(txn, req.deleteRange);
    txn.end();
    return { kind: 'deleteRange', resp };
  }
  if (req.txn !== undefined) return { kind: 'txn', resp: applyTxn(store, req.txn, leaseExists, () => store.beginWrite()) };
  if (req.compaction !== undefined) return { kind: 'compaction', resp: applyCompaction(store, req.compaction) };
  if (req.leaseGrant !== undefined) return { kind: 'leaseGrant', resp: applyLeaseGrant(ctx.leases, ctx.leaseChanges, store, req.leaseGrant) };
  if (req.leaseRevoke !== undefined) return { kind: 'leaseRevoke', resp: applyLeaseRevoke(ctx.leases, ctx.leaseChanges, store, req.leaseRevoke) };
  if (req.memberAttrs !== undefined) {
    ctx.setMemberAttrs(req.memberAttrs.memberId, req.memberAttrs.name, req.memberAttrs.clientUrls);
    return { kind: 'memberAttrs' };
  }
  throw new AssertionFailure('apply: log entry carries no request');
}

/**
 * Applies one entry's payload. A client error raised before anything changed is the outcome; one
 * raised after the entry had written something (MidTxnError) propagates so the caller can abort the
 * LMDB transaction and redo the batch with this entry failed as a whole (`failWith`).
 */
export function applyEntry(ctx: ApplyContext, data: Uint8Array, failWith: ClientError | undefined): ApplyOutcome {
  return applyRequest(ctx, decodeInternalRequest(data), failWith);
}

/** applyEntry for a payload the caller decoded already. */
export function applyRequest(ctx: ApplyContext, req: InternalRequest, failWith: ClientError | undefined): ApplyOutcome {
  if (failWith !== undefined) return { ok: false, error: failWith };
  try {
    return { ok: true, response: dispatch(ctx, req) };
  } catch (err) {
    if (err instanceof ClientError) return { ok: false, error: err };
    throw err;
  }
}

export { MidTxnError, type LeaseChanges };
