// How the API layer reaches the write path and a read view that sees every acknowledged write.
// Responses leave here encoded, with the full ResponseHeader filled in.
import type { InternalRequestInit, RequestHeaderInit } from '../../proto/gen/cairnpb.js';
import { randomBytes } from 'node:crypto';
import {
  encodeAlarmResponse,
  encodeCompactionResponse,
  encodeDeleteRangeResponse,
  encodeLeaseGrantResponse,
  encodeLeaseKeepAliveResponse,
  encodeLeaseLeasesResponse,
  encodeLeaseRevokeResponse,
  encodeLeaseTimeToLiveResponse,
  encodePutResponse,
  encodeRangeResponse,
  encodeTxnResponse,
  type RangeRequest,
  type ResponseHeaderInit,
  type TxnRequest,
} from '../../proto/gen/etcdserverpb.js';
import { applyRange, applyTxn, NO_LEASES, type ApplyOutcome, type ApplyResponse, type AuthApplied } from '../apply/index.js';
import { AssertionFailure, ClientError } from '../base/errors.js';
import type { AuthStore } from '../auth/index.js';
import { ELECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, LEASE_TTL_MAX_SECONDS } from '../base/limits.js';
import { monotonicMs, type Node } from './node.js';
import { nodeStats } from './stats.js';

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

type Encoded = Uint8Array | Promise<Uint8Array>;

/**
 * Serves reads; responses come back encoded. Linearizable reads (the default) see every write
 * acknowledged anywhere in the cluster before the call (ReadIndex); serializable ones are local.
 */
export interface ReadPath {
  range(r: RangeRequest): Encoded;
  /** A Txn with no writes in either branch (see isTxnReadOnly); linearizable. */
  readOnlyTxn(r: TxnRequest): Encoded;
}

/** Runs fn now when the read may go ahead, else once the member is ready for it. */
function after(wait: Promise<void> | undefined, fn: () => Uint8Array): Encoded {
  return wait === undefined ? fn() : wait.then(fn);
}

function readsOn(node: Node): ReadPath {
  const range = (r: RangeRequest): Uint8Array => {
    const started = performance.now();
    let ok = false;
    try {
      const resp = applyRange(node.store.beginRead(), r);
      ok = true;
      return encodeRangeResponse({ ...resp, header: header(node, resp.header.revision) });
    } finally {
      // etcd_server_range_duration_seconds: the read itself, after any ReadIndex wait (etcd's txn.Range).
      nodeStats.range.observe(ok, (performance.now() - started) / 1000);
    }
  };
  const txn = (r: TxnRequest): Uint8Array => {
    const resp = applyTxn(node.store, r, NO_LEASES, undefined);
    return encodeTxnResponse({ ...resp, header: header(node, resp.header.revision) });
  };
  return {
    range: (r) => after(r.serializable ? node.whenReadable() : node.linearizableRead() ?? node.whenReadable(), () => range(r)),
    readOnlyTxn: (r) => after(node.linearizableRead() ?? node.whenReadable(), () => txn(r)),
  };
}

/** Encodes an apply outcome as the client's response message, with the top-level header filled in. */
export function encodeOutcome(id: Identity, o: ApplyOutcome): Uint8Array {
  if (!o.ok) throw o.error;
  const r: ApplyResponse = o.response;
  if (r.kind === 'memberAttrs') return new Uint8Array(0);
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
    case 'leaseGrant':
      return encodeLeaseGrantResponse({ ...r.resp, header: h });
    case 'leaseRevoke':
      return encodeLeaseRevokeResponse({ ...r.resp, header: h });
    case 'alarm':
      return encodeAlarmResponse({ ...r.resp, header: h });
    case 'auth':
      return r.resp.encode(h);
  }
}

/** The Auth service's view of the node: changes go through the log, reads are local after a read barrier. */
export interface AuthPath {
  readonly auth: AuthStore;
  readonly identity: Identity;
  /** Proposes an auth request (or Authenticate); resolves once applied here. */
  propose(req: InternalRequestInit): Promise<AuthApplied>;
  /** Resolves once this member has applied everything committed before the call. */
  readBarrier(): Promise<void> | undefined;
  /** The store's current revision, for response headers. */
  currentRevision(): number;
  /** The keys attached to a lease, undefined without such a lease (lease permission checks). */
  keysOfLease(id: bigint): readonly Buffer[] | undefined;
}

export class LocalAuth implements AuthPath {
  constructor(private readonly node: Node) {}

  get auth(): AuthStore {
    return this.node.auth;
  }

  get identity(): Identity {
    return this.node;
  }

  async propose(req: InternalRequestInit): Promise<AuthApplied> {
    const o = await this.node.propose(req);
    if (!o.ok) throw o.error;
    if (o.response.kind !== 'auth') throw new AssertionFailure(`auth proposal answered with ${o.response.kind}`);
    return o.response.resp;
  }

  readBarrier(): Promise<void> | undefined {
    return this.node.linearizableRead() ?? this.node.whenReadable();
  }

  currentRevision(): number {
    return this.node.store.currentRev;
  }

  keysOfLease(id: bigint): readonly Buffer[] | undefined {
    return this.node.leaseStore.has(id) ? this.node.store.keysOfLease(id) : undefined;
  }
}

/** The write and read paths of the process (thread) that owns the WAL. */
export class LocalWriter implements WritePath {
  readonly reads: ReadPath;

  constructor(private readonly node: Node) {
    this.reads = readsOn(node);
  }

  async write(req: InternalRequestInit): Promise<Uint8Array> {
    const outcome = await this.node.propose(req);
    // Compact with physical=true answers only once the old revisions are gone from the backend.
    if (outcome.ok && req.compaction?.physical === true) await this.node.compacted();
    return encodeOutcome(this.node, outcome);
  }
}

/** The lease service's view of the node: grants and revokes go through the log, the rest is local. */
export interface LeasePath {
  grant(ttlSeconds: number, id: bigint): Promise<Uint8Array>;
  /** `who`: the caller's user and auth revision (checked again at apply while auth is on). */
  revoke(id: bigint, who?: RequestHeaderInit): Promise<Uint8Array>;
  /** KeepAlive: TTL = granted TTL, or 0 when the lease is unknown or expired (no error, as etcd). Served by the leader. */
  keepAlive(id: bigint): Promise<Uint8Array>;
  /** TTL = whole seconds left, or -1 for an unknown lease (no error, as etcd). Served by the leader. */
  timeToLive(id: bigint, keys: boolean): Promise<Uint8Array>;
  leases(): Uint8Array;
}

/** etcd's minimum lease TTL: ceil(1.5 x election timeout), in election ticks of heartbeat intervals. */
export function minLeaseTtlSeconds(electionMs: number, heartbeatMs: number): number {
  const ticks = Math.floor(electionMs / heartbeatMs);
  return Math.ceil((Math.floor((3 * ticks) / 2) * heartbeatMs) / 1000);
}

/** A fresh lease id: positive int63, non-zero. */
function newLeaseId(): bigint {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE(0) & 0x7fffffffffffffffn;
    if (id !== 0n) return id;
  }
}

export class LocalLeases implements LeasePath {
  private readonly minTtl: number;

  constructor(
    private readonly node: Node,
    private readonly writes: WritePath,
    timing: { electionTimeoutMs: number; heartbeatIntervalMs: number } = { electionTimeoutMs: ELECTION_TIMEOUT_MS, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS },
  ) {
    this.minTtl = minLeaseTtlSeconds(timing.electionTimeoutMs, timing.heartbeatIntervalMs);
  }

  grant(ttlSeconds: number, id: bigint): Promise<Uint8Array> {
    if (ttlSeconds > LEASE_TTL_MAX_SECONDS) return Promise.reject(new ClientError('leaseTtlTooLarge'));
    const TTL = Math.max(ttlSeconds, this.minTtl);
    return this.writes.write({ leaseGrant: { ID: id === 0n ? newLeaseId() : id, TTL } });
  }

  revoke(id: bigint, who?: RequestHeaderInit): Promise<Uint8Array> {
    return this.writes.write(who === undefined ? { leaseRevoke: { ID: id } } : { leaseRevoke: { ID: id }, header: who });
  }

  async keepAlive(id: bigint): Promise<Uint8Array> {
    const ttl = await this.node.leases.renew(id);
    return encodeLeaseKeepAliveResponse({ header: header(this.node, this.node.store.currentRev), ID: id, TTL: ttl });
  }

  async timeToLive(id: bigint, keys: boolean): Promise<Uint8Array> {
    const l = await this.node.leases.remaining(id);
    // The keys are read from LMDB: not while a defragmentation or snapshot install holds the file.
    await this.node.whenReadable();
    const h = header(this.node, this.node.store.currentRev);
    if (l === undefined) return encodeLeaseTimeToLiveResponse({ header: h, ID: id, TTL: -1 });
    return encodeLeaseTimeToLiveResponse({
      header: h,
      ID: id,
      TTL: Math.trunc(l.remainingMs / 1000),
      grantedTTL: l.ttlSeconds,
      keys: keys ? this.node.store.keysOfLease(id) : [],
    });
  }

  leases(): Uint8Array {
    const all = this.node.leases.lessor.all(monotonicMs());
    return encodeLeaseLeasesResponse({ header: header(this.node, this.node.store.currentRev), leases: all.map((l) => ({ ID: l.id })) });
  }
}
