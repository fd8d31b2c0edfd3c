// The KV service. Every handler: check the request (pure), call the node, map the error (in
// server.ts), fill the header (done by node/, which encodes the response). Reads run on a read view
// that sees every acknowledged write; writes go to the WAL owner, in this thread or not.
// While auth is enabled (authz.ts) the caller needs the request's permissions: checked here, and for
// writes once more at apply time as the user the log entry's header names (etcd checks there).
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../../proto/gen/etcdserverpb.js';
import { checkDeleteRequest as authDelete, checkPutRequest as authPut, checkRangeRequest as authRange, checkTxnRequest as authTxn } from '../auth/index.js';
import { isTxnReadOnly, type ReadPath, type WritePath } from '../node/index.js';
import type { Authorizer } from './authz.js';
import { then } from './authz.js';
import type { CallContext } from './grpc/index.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './validate.js';

type Encoded = Uint8Array | Promise<Uint8Array>;
type Ctx = Pick<CallContext, 'metadata' | 'tlsCommonName'>;

export interface KvApi {
  readonly range: (r: RangeRequest, ctx: Ctx) => Encoded;
  readonly put: (r: PutRequest, ctx: Ctx) => Encoded;
  readonly deleteRange: (r: DeleteRangeRequest, ctx: Ctx) => Encoded;
  readonly txn: (r: TxnRequest, ctx: Ctx) => Encoded;
  readonly compact: (r: CompactionRequest, ctx: Ctx) => Encoded;
}

export function kvApi(reads: ReadPath, writes: WritePath, txnOpsMax: number, authz?: Authorizer): KvApi {
  const api: KvApi = {
    range: (r) => {
      checkRangeRequest(r);
      return reads.range(r);
    },
    put: (r) => {
      checkPutRequest(r);
      return writes.write({ put: r });
    },
    deleteRange: (r) => {
      checkDeleteRequest(r);
      return writes.write({ deleteRange: r });
    },
    txn: (r) => {
      checkTxnRequest(r, txnOpsMax);
      return isTxnReadOnly(r) ? reads.readOnlyTxn(r) : writes.write({ txn: r });
    },
    // etcd 3.4 and 3.5 check no permission for Compact (it is not among the admin requests).
    compact: (r) => writes.write({ compaction: r }),
  };
  if (authz === undefined) return api;
  return withAuth(api, authz, reads, writes, txnOpsMax);
}

/** The same handlers, each paying one boolean test while auth is disabled. */
function withAuth(plain: KvApi, authz: Authorizer, reads: ReadPath, writes: WritePath, txnOpsMax: number): KvApi {
  const s = authz.store;
  const keysOf = (id: bigint): readonly Buffer[] | undefined => authz.path.keysOfLease(id);
  return {
    range: (r, ctx) => {
      if (!authz.enabled) return plain.range(r, ctx);
      checkRangeRequest(r);
      return then(authz.who(ctx), (ai) => {
        authRange(s, ai, r);
        return authz.afterRead(ai, reads.range(r));
      });
    },
    put: (r, ctx) => {
      if (!authz.enabled) return plain.put(r, ctx);
      checkPutRequest(r);
      return then(authz.who(ctx), (ai) => {
        authPut(s, ai, r, keysOf);
        return writes.write({ put: r, header: authz.header(ai) });
      });
    },
    deleteRange: (r, ctx) => {
      if (!authz.enabled) return plain.deleteRange(r, ctx);
      checkDeleteRequest(r);
      return then(authz.who(ctx), (ai) => {
        authDelete(s, ai, r);
        return writes.write({ deleteRange: r, header: authz.header(ai) });
      });
    },
    txn: (r, ctx) => {
      if (!authz.enabled) return plain.txn(r, ctx);
      checkTxnRequest(r, txnOpsMax);
      return then(authz.who(ctx), (ai) => {
        authTxn(s, ai, r);
        if (isTxnReadOnly(r)) return authz.afterRead(ai, reads.readOnlyTxn(r));
        return writes.write({ txn: r, header: authz.header(ai) });
      });
    },
    compact: (r, ctx) => {
      if (!authz.enabled) return plain.compact(r, ctx);
      return then(authz.who(ctx), (ai) => writes.write({ compaction: r, header: authz.header(ai) }));
    },
  };
}
