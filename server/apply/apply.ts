// Applies one committed log entry to the MVCC store, exactly once and in log order. The caller runs
// a whole batch inside one LMDB transaction and writes the applied index in that same transaction.
import { decodeInternalRequest, type InternalRequest } from '../../proto/gen/cairnpb.js';
import { AlarmType, type RequestOp, type TxnRequest } from '../../proto/gen/etcdserverpb.js';
import type {
  AlarmResponseInit,
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
import { applyAlarm, type AlarmStore } from './alarm.js';
// auth (auth helper)
import type { AuthStore } from '../auth/index.js';
import { applyAuth, checkAtApply, type AuthApplied } from './auth.js';

export type ApplyResponse =
  | { readonly kind: 'put'; readonly resp: PutResponseInit }
  | { readonly kind: 'deleteRange'; readonly resp: DeleteRangeResponseInit }
  | { readonly kind: 'txn'; readonly resp: TxnResponseInit }
  | { readonly kind: 'compaction'; readonly resp: CompactionResponseInit }
  | { readonly kind: 'leaseGrant'; readonly resp: LeaseGrantResponseInit }
  | { readonly kind: 'leaseRevoke'; readonly resp: LeaseRevokeResponseInit }
  | { readonly kind: 'alarm'; readonly resp: AlarmResponseInit }
  | { readonly kind: 'auth'; readonly resp: AuthApplied }
  | { readonly kind: 'memberAttrs' };

export type ApplyOutcome = { readonly ok: true; readonly response: ApplyResponse } | { readonly ok: false; readonly error: ClientError };

export interface ApplyContext {
  readonly store: KvStore;
  readonly leases: LeaseStore;
  /** Grants and revokes of this batch, collected for the lessor. */
  readonly leaseChanges: LeaseChanges;
  /** A started member publishing its name and client URLs (membership lives above apply/). */
  readonly setMemberAttrs: (id: bigint, name: string, clientURLs: readonly string[]) => void;
  /** Active alarms: NOSPACE caps the store, CORRUPT refuses every change (etcd's capped/corrupt appliers). */
  readonly alarms: AlarmStore;
  /** Users, roles, the enabled flag (auth helper). */
  readonly auth: AuthStore;
  /** Raft index of the entry being applied (the caller sets it per entry; simple auth tokens carry it). */
  entryIndex: number;
}

function txnHasPut(rt: TxnRequest): boolean {
  const any = (ops: readonly RequestOp[]): boolean => ops.some((op) => op.requestPut !== undefined || (op.requestTxn !== undefined && txnHasPut(op.requestTxn)));
  return any(rt.success) || any(rt.failure);
}

/** What an active alarm refuses before the request runs: etcd's applierV3Capped and applierV3Corrupt. */
function refusedByAlarm(alarms: AlarmStore, req: InternalRequest): ClientError | undefined {
  if (alarms.has(AlarmType.CORRUPT)) {
    if (req.put !== undefined || req.deleteRange !== undefined || req.txn !== undefined || req.compaction !== undefined || req.leaseGrant !== undefined || req.leaseRevoke !== undefined) {
      return new ClientError('corrupt');
    }
  }
  if (alarms.has(AlarmType.NOSPACE)) {
    if (req.put !== undefined || req.leaseGrant !== undefined || (req.txn !== undefined && txnHasPut(req.txn))) return new ClientError('noSpace');
  }
  return undefined;
}

function dispatch(ctx: ApplyContext, req: InternalRequest): ApplyResponse {
  const { store } = ctx;
  const refused = refusedByAlarm(ctx.alarms, req);
  if (refused !== undefined) throw refused;
  if (ctx.auth.enabled) checkAtApply(ctx.auth, store, (id) => ctx.leases.has(id), req);
  if (req.alarm !== undefined) return { kind: 'alarm', resp: { header: { revision: store.currentRev }, ...applyAlarm(ctx.alarms, req.alarm) } };
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
  const authResp = applyAuth(ctx.auth, store.currentRev, ctx.entryIndex, req);
  if (authResp !== undefined) return { kind: 'auth', resp: authResp };
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
