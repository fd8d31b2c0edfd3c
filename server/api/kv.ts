// The KV service. Every handler: check the request (pure), call the node, map the error (in
// server.ts), fill the header (done by node/, which encodes the response). Reads run on a read view
// that sees every acknowledged write; writes go to the WAL owner, in this thread or not.
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from '../../proto/gen/etcdserverpb.js';
import { isTxnReadOnly, type ReadPath, type WritePath } from '../node/index.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './validate.js';

type Encoded = Uint8Array | Promise<Uint8Array>;

export interface KvApi {
  readonly range: (r: RangeRequest) => Encoded;
  readonly put: (r: PutRequest) => Encoded;
  readonly deleteRange: (r: DeleteRangeRequest) => Encoded;
  readonly txn: (r: TxnRequest) => Encoded;
  readonly compact: (r: CompactionRequest) => Encoded;
}

export function kvApi(reads: ReadPath, writes: WritePath, txnOpsMax: number): KvApi {
  return {
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
    compact: (r) => writes.write({ compaction: r }),
  };
}
