// The KV service. Every handler: check the request (pure), call the node, map the error, fill the
// header. Reads run here on a fresh read view; writes go to the WAL owner (in this process or not)
// and come back encoded with their header.
import {
  encodeRangeResponse,
  encodeTxnResponse,
  type CompactionRequest,
  type DeleteRangeRequest,
  type PutRequest,
  type RangeRequest,
  type TxnRequest,
} from '../../proto/gen/etcdserverpb.js';
import type { Identity, ReadPath, WritePath } from '../node/index.js';
import { header } from '../node/index.js';
import { applyRange, applyTxn, isTxnReadOnly } from '../apply/index.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './validate.js';

type Encoded = Uint8Array | Promise<Uint8Array>;

export interface KvApi {
  range(r: RangeRequest): Encoded;
  put(r: PutRequest): Encoded;
  deleteRange(r: DeleteRangeRequest): Encoded;
  txn(r: TxnRequest): Encoded;
  compact(r: CompactionRequest): Encoded;
}

/** No lease service yet (issue 3): no lease id is granted, so read-only txns never see one. */
const NO_LEASES = (): boolean => false;

export function kvApi(id: Identity, reads: ReadPath, writes: WritePath, txnOpsMax: number): KvApi {
  return {
    range(r) {
      checkRangeRequest(r);
      const resp = applyRange(reads.fresh().beginRead(), r);
      return encodeRangeResponse({ ...resp, header: header(id, resp.header.revision) });
    },
    put(r) {
      checkPutRequest(r);
      return writes.write({ put: r });
    },
    deleteRange(r) {
      checkDeleteRequest(r);
      return writes.write({ deleteRange: r });
    },
    txn(r) {
      checkTxnRequest(r, txnOpsMax);
      if (!isTxnReadOnly(r)) return writes.write({ txn: r });
      const resp = applyTxn(reads.fresh(), r, NO_LEASES, undefined);
      return encodeTxnResponse({ ...resp, header: header(id, resp.header.revision) });
    },
    compact(r) {
      return writes.write({ compaction: r });
    },
  };
}
