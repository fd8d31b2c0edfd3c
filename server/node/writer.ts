// How the API layer reaches the write path and a read view that sees every acknowledged write.
// Responses leave here encoded, with the full ResponseHeader filled in.
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import {
  encodeCompactionResponse,
  encodeDeleteRangeResponse,
  encodePutResponse,
  encodeRangeResponse,
  encodeTxnResponse,
  type RangeRequest,
  type ResponseHeaderInit,
  type TxnRequest,
} from '../../proto/gen/etcdserverpb.js';
import { applyRange, applyTxn, NO_LEASES, type ApplyOutcome, type ApplyResponse } from '../apply/index.js';
import { type KvStore } from '../mvcc/index.js';
import type { Node } from './node.js';

/** The member's identity as every response header carries it. */
export interface Identity {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly term: number;
}

export function header(id: Identity, revision: number): ResponseHeaderInit {
  return { clusterId: id.clusterId, memberId: id.memberId, revision, raftTerm: id.term };
}

/** Proposes writes; resolves to the encoded response (rejects with ClientError / ServerRefusal). */
export interface WritePath {
  write(req: InternalRequestInit): Promise<Uint8Array>;
}

/** Serves reads that see every write acknowledged before the call; responses come back encoded. */
export interface ReadPath {
  range(r: RangeRequest): Uint8Array;
  /** A Txn with no writes in either branch (see isTxnReadOnly). */
  readOnlyTxn(r: TxnRequest): Uint8Array;
}


function readsOn(id: Identity, fresh: () => KvStore): ReadPath {
  return {
    range(r) {
      const resp = applyRange(fresh().beginRead(), r);
      return encodeRangeResponse({ ...resp, header: header(id, resp.header.revision) });
    },
    readOnlyTxn(r) {
      const resp = applyTxn(fresh(), r, NO_LEASES, undefined);
      return encodeTxnResponse({ ...resp, header: header(id, resp.header.revision) });
    },
  };
}

/** Encodes an apply outcome as the client's response message, with the top-level header filled in. */
export function encodeOutcome(id: Identity, o: ApplyOutcome): Uint8Array {
  if (!o.ok) throw o.error;
  const r: ApplyResponse = o.response;
  const h = header(id, r.resp.header?.revision ?? 0);
  switch (r.kind) {
    case 'put':
      return encodePutResponse({ ...r.resp, header: h });
    case 'deleteRange':
      return encodeDeleteRangeResponse({ ...r.resp, header: h });
    case 'txn':
      return encodeTxnResponse({ ...r.resp, header: h });
    case 'compaction':
      return encodeCompactionResponse({ ...r.resp, header: h });
  }
}

/** The write and read paths of the process (thread) that owns the WAL. */
export class LocalWriter implements WritePath {
  readonly reads: ReadPath;

  constructor(private readonly node: Node) {
    this.reads = readsOn(node, () => node.store);
  }

  async write(req: InternalRequestInit): Promise<Uint8Array> {
    const outcome = await this.node.propose(req);
    // Compact with physical=true answers only once the old revisions are gone from the backend.
    if (outcome.ok && req.compaction?.physical === true) await this.node.compacted();
    return encodeOutcome(this.node, outcome);
  }
}
