// What etcd's lock and election services stand on (etcd builds them on clientv3/concurrency with an
// in-process client): the server's own KV and Lease handlers, called with the caller's context so
// auth, quotas and errors are exactly those of the caller's own requests, and watchers on this
// member's watchable store. A Session is one request's view: its lease (granted with the default
// session TTL when the request names none, and never kept alive: etcd orphans it at once) and the
// calls it makes.
import { Event_EventType, type KeyValue } from '../../proto/gen/mvccpb.js';
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  decodeDeleteRangeResponse,
  decodeLeaseGrantResponse,
  decodeRangeResponse,
  decodeTxnRequest,
  decodeTxnResponse,
  encodeTxnRequest,
  type CompareInit,
  type DeleteRangeResponse,
  type RangeRequestInit,
  type RangeResponse,
  type RequestOpInit,
  type ResponseHeader,
  type TxnResponse,
} from '../../proto/gen/etcdserverpb.js';
import { decodeRangeRequest, decodeDeleteRangeRequest, encodeRangeRequest, encodeDeleteRangeRequest } from '../../proto/gen/etcdserverpb.js';
import { ClientError, ServerRefusal } from '../base/errors.js';
import { toGrpcError } from './errors.js';
import { keyRange, prefixEnd } from '../base/bytes.js';
import { Watcher, type WatchableStore, type WatchEvent, type WatchSink } from '../node/index.js';
import type { Authorizer } from './authz.js';
import type { CallContext } from './grpc/index.js';
import type { KvApi } from './kv.js';
import type { LeaseApi } from './lease.js';

/** clientv3/concurrency's defaultSessionTTL (seconds): the lease of a lock or campaign that names none. */
export const SESSION_TTL_SECONDS = 60;

export type Ctx = Pick<CallContext, 'metadata' | 'tlsCommonName' | 'signal'>;

export interface RecipeDeps {
  readonly kv: KvApi;
  readonly lease: LeaseApi;
  readonly hub: WatchableStore;
  readonly authz?: Authorizer | undefined;
}

const NO_FILTERS = { noPut: false, noDelete: false, prevKv: false };

/** Go's `%x` of a lease id (int64): lock and election keys end with it, unpadded, negative with '-'. */
export function leaseHex(id: bigint): string {
  return id < 0n ? `-${(-id).toString(16)}` : id.toString(16);
}

/** A header as the response messages carry it (the decoded one, or an empty one when absent). */
export function headerOf(m: { header?: ResponseHeader | undefined }): ResponseHeader {
  return m.header ?? { clusterId: 0n, memberId: 0n, revision: 0, raftTerm: 0 };
}

export function compareCreate(key: Uint8Array, rev: number): CompareInit {
  return { key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, createRevision: rev };
}

/** clientv3's WithFirstCreate / WithLastCreate on a prefix: the oldest (newest) key by create revision. */
export function byCreate(prefix: Buffer, order: 'first' | 'last', maxCreateRevision = 0): RangeRequestInit {
  return {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    sortTarget: RangeRequest_SortTarget.CREATE,
    sortOrder: order === 'first' ? RangeRequest_SortOrder.ASCEND : RangeRequest_SortOrder.DESCEND,
    limit: 1,
    maxCreateRevision,
  };
}

/**
 * A KV or Lease call's error as etcd's lock and election services return it: their in-process client
 * turns a gRPC status into a plain error, which grpc-go sends as Unknown with the same text.
 */
function relayed(err: unknown): never {
  if (err instanceof ClientError || err instanceof ServerRefusal) throw new ClientError('relayed', toGrpcError(err).details, { cause: err });
  throw err;
}

/** The caller's context ended (client cancel, deadline, closed connection): the GrpcError it carries. */
function aborted(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('context canceled', { cause: reason });
}

let nextWatcherId = 1n;

/** A watcher on this member's store for one in-process wait; `onEvents` returns true when done. */
class OneWatch implements WatchSink {
  blocked = false;
  private readonly w: Watcher;

  constructor(
    private readonly hub: WatchableStore,
    key: Buffer,
    rangeEnd: Buffer,
    fromRev: number,
    private readonly onEvents: (events: readonly WatchEvent[], headerRev: number) => void,
    private readonly onCompacted: () => void,
  ) {
    const range = keyRange(key, rangeEnd);
    this.w = new Watcher(nextWatcherId++, range, fromRev, fromRev, NO_FILTERS, this);
    hub.add(this.w);
  }

  sendEvents(_w: Watcher, chunks: readonly (readonly WatchEvent[])[], headerRev: number): void {
    this.onEvents(chunks.flat(), headerRev);
  }

  sendCompacted(): void {
    this.onCompacted();
  }

  /** Client not reading: the watcher falls back to history until `resume` (the store's back-pressure). */
  pause(): void {
    this.blocked = true;
  }

  resume(): void {
    this.blocked = false;
    this.hub.resume();
  }

  stop(): void {
    this.hub.remove(this.w);
  }
}

/** One request's session: its calls go through the caller's own handlers. */
export class Session {
  constructor(
    private readonly deps: RecipeDeps,
    readonly ctx: Ctx,
  ) {}

  /** The request's lease, or (id 0) a new one with the default TTL, as concurrency.NewSession. */
  async lease(id: bigint): Promise<bigint> {
    if (id !== 0n) return id;
    const authz = this.deps.authz;
    // A proposal first reads the caller from the token (etcd's LeaseGrant under auth).
    if (authz !== undefined && authz.enabled) await this.call(() => authz.who(this.ctx));
    const res = decodeLeaseGrantResponse(await this.call(() => this.deps.lease.grant({ ID: 0n, TTL: SESSION_TTL_SECONDS })));
    return res.ID;
  }

  async txn(compare: readonly CompareInit[], success: readonly RequestOpInit[], failure: readonly RequestOpInit[] = []): Promise<TxnResponse> {
    this.checkOpen();
    return decodeTxnResponse(await this.call(() => this.deps.kv.txn(decodeTxnRequest(encodeTxnRequest({ compare, success, failure })), this.ctx)));
  }

  async range(r: RangeRequestInit): Promise<RangeResponse> {
    this.checkOpen();
    return decodeRangeResponse(await this.call(() => this.deps.kv.range(decodeRangeRequest(encodeRangeRequest(r)), this.ctx)));
  }

  /**
   * The same calls without the caller's credentials or cancellation: etcd's clean-up after a wait
   * that failed runs on its in-process client's own context (client.Ctx()), which carries no token.
   */
  detached(): Session {
    return new Session(this.deps, { metadata: {}, tlsCommonName: undefined, signal: new AbortController().signal });
  }

  async delete(key: Buffer): Promise<DeleteRangeResponse> {
    return decodeDeleteRangeResponse(await this.call(() => this.deps.kv.deleteRange(decodeDeleteRangeRequest(encodeDeleteRangeRequest({ key })), this.ctx)));
  }

  /** One handler call (synchronous or not), its errors relayed as etcd's in-process client does. */
  private async call<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      return relayed(err);
    }
  }

  /**
   * Watches [key, rangeEnd) from `fromRev` until `step` returns a value (or the caller goes away,
   * or history is compacted: etcd's watch then fails with ErrCompacted).
   */
  watchUntil<T>(key: Buffer, rangeEnd: Buffer, fromRev: number, step: (events: readonly WatchEvent[], headerRev: number) => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const signal = this.ctx.signal;
      let done = false;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        watch.stop();
        fn();
      };
      const onAbort = (): void => finish(() => reject(aborted(signal)));
      const watch: OneWatch = new OneWatch(
        this.deps.hub,
        key,
        rangeEnd,
        fromRev,
        (events, headerRev) => {
          if (done) return;
          const out = step(events, headerRev);
          if (out !== undefined) finish(() => resolve(out));
        },
        () => finish(() => reject(new ClientError('relayed', toGrpcError(new ClientError('compacted')).details))),
      );
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort);
    });
  }

  /**
   * A watcher whose every response goes to `onEvents` until `stop`; `pause`/`resume` apply the
   * caller's back-pressure. For Observe, which runs as long as its stream.
   */
  follow(key: Buffer, rangeEnd: Buffer, fromRev: number, onEvents: (events: readonly WatchEvent[], headerRev: number) => void, onCompacted: () => void): OneWatch {
    return new OneWatch(this.deps.hub, key, rangeEnd, fromRev, onEvents, onCompacted);
  }

  /** Waits until `key` is deleted, watching from `rev` (concurrency's waitDelete). */
  waitDelete(key: Buffer, rev: number): Promise<true> {
    return this.watchUntil(key, Buffer.alloc(0), rev, (events) => (events.some((e) => e.type === Event_EventType.DELETE) ? true : undefined));
  }

  /**
   * Waits until every key under `prefix` created at or below `maxCreateRev` is gone (concurrency's
   * waitDeletes): the newest such key is watched until deleted, then the next, and so on.
   */
  async waitDeletes(prefix: Buffer, maxCreateRev: number): Promise<ResponseHeader> {
    for (;;) {
      const resp = await this.range(byCreate(prefix, 'last', maxCreateRev));
      const last: KeyValue | undefined = resp.kvs[0];
      if (last === undefined) return headerOf(resp);
      await this.waitDelete(last.key, headerOf(resp).revision);
    }
  }

  private checkOpen(): void {
    if (this.ctx.signal.aborted) throw aborted(this.ctx.signal);
  }
}

export type { OneWatch };
