// How the API layer reaches the write path and a fresh read view, whether the WAL owner is in this
// process (LocalWriter, used by the primary) or another (RemoteWriter in ipc.ts, used by client
// processes). Responses leave here encoded, with the full ResponseHeader filled in.
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import {
  encodeCompactionResponse,
  encodeDeleteRangeResponse,
  encodePutResponse,
  encodeTxnResponse,
  type ResponseHeaderInit,
} from '../../proto/gen/etcdserverpb.js';
import type { ApplyOutcome, ApplyResponse } from '../apply/index.js';
import type { Backend } from '../storage/backend/index.js';
import { META, decodeId } from '../storage/schema/index.js';
import { KvStore } from '../mvcc/index.js';
import { StorageFault } from '../base/errors.js';
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

/** Gives a store whose reads see every write acknowledged before the call. */
export interface ReadPath {
  fresh(): KvStore;
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

/** The write path of the process that owns the WAL. */
export class LocalWriter implements WritePath, ReadPath {
  constructor(private readonly node: Node) {}

  async write(req: InternalRequestInit): Promise<Uint8Array> {
    return encodeOutcome(this.node, await this.node.propose(req));
  }

  fresh(): KvStore {
    return this.node.store;
  }
}

/**
 * A read-only view of the backend from a process that does not own it (LMDB allows many reader
 * processes). Each call renews the read snapshot, then the store's revisions, in that order, so
 * that data and revisions come from one committed transaction at least as new as the call.
 */
export class SharedReader implements ReadPath {
  private readonly store: KvStore;

  constructor(private readonly backend: Backend) {
    this.store = new KvStore(backend);
  }

  identity(term: number): Identity {
    const meta = this.backend.table('meta');
    const clusterId = decodeId(meta.get(META.clusterId));
    const memberId = decodeId(meta.get(META.memberId));
    if (clusterId === undefined || memberId === undefined) throw new StorageFault(`backend ${this.backend.path} has no member identity yet`);
    return { clusterId, memberId, term };
  }

  fresh(): KvStore {
    this.backend.renewReads();
    this.store.reload();
    return this.store;
  }
}
