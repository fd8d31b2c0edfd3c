// The KV service. Every handler: check the request (pure), call the node, map the error, fill the header.
import type {
  CompactionRequest,
  CompactionResponseInit,
  DeleteRangeRequest,
  DeleteRangeResponseInit,
  PutRequest,
  PutResponseInit,
  RangeRequest,
  RangeResponseInit,
  ResponseHeaderInit,
  TxnRequest,
  TxnResponseInit,
} from '../../proto/gen/etcdserverpb.js';
import type { Node } from '../node/index.js';
import type { ApplyOutcome, ApplyResponse } from '../apply/index.js';
import { applyRange, applyTxn, isTxnReadOnly } from '../apply/index.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './validate.js';
import { AssertionFailure } from '../base/errors.js';

export interface KvApi {
  range(r: RangeRequest): RangeResponseInit;
  put(r: PutRequest): Promise<PutResponseInit>;
  deleteRange(r: DeleteRangeRequest): Promise<DeleteRangeResponseInit>;
  txn(r: TxnRequest): Promise<TxnResponseInit>;
  compact(r: CompactionRequest): Promise<CompactionResponseInit>;
}

function expect<K extends ApplyResponse['kind']>(o: ApplyOutcome, kind: K): Extract<ApplyResponse, { kind: K }>['resp'] {
  if (!o.ok) throw o.error;
  if (o.response.kind !== kind) throw new AssertionFailure(`apply answered ${o.response.kind} to a ${kind}`);
  return o.response.resp as Extract<ApplyResponse, { kind: K }>['resp'];
}

export function kvApi(node: Node, txnOpsMax: number): KvApi {
  const header = (revision: number): ResponseHeaderInit => ({ clusterId: node.clusterId, memberId: node.memberId, revision, raftTerm: node.term });
  const withHeader = <T extends { header?: { revision?: number | undefined } | undefined }>(resp: T): T => ({
    ...resp,
    header: header(resp.header?.revision ?? node.store.currentRev),
  });
  return {
    range(r) {
      checkRangeRequest(r);
      return withHeader(applyRange(node.store.beginRead(), r));
    },
    async put(r) {
      checkPutRequest(r);
      return withHeader(expect(await node.propose({ put: r }), 'put'));
    },
    async deleteRange(r) {
      checkDeleteRequest(r);
      return withHeader(expect(await node.propose({ deleteRange: r }), 'deleteRange'));
    },
    async txn(r) {
      checkTxnRequest(r, txnOpsMax);
      if (isTxnReadOnly(r)) return withHeader(applyTxn(node.store, r, () => false, undefined));
      return withHeader(expect(await node.propose({ txn: r }), 'txn'));
    },
    async compact(r) {
      return withHeader(expect(await node.propose({ compaction: r }), 'compaction'));
    },
  };
}
