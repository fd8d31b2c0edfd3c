// Leases and member-to-member requests. Lease expiry runs on the leader only (a new leader restarts
// every lease's clock); KeepAlive and TimeToLive on a follower are forwarded to the leader over the
// peer transport, as are a follower's MemberPromote and the corruption check's HashKV.
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import { Lessor, type LeaseStore } from '../lease/index.js';
import { ROOT_USER, type AuthStore } from '../auth/index.js';
import type { ApplyOutcome, LeaseChanges } from '../apply/index.js';
import type { KvStore } from '../mvcc/index.js';
import type { Member, MemberStore } from '../membership/index.js';
import { ClientError, ServerRefusal } from '../base/errors.js';
import { LEASE_REVOKES_PER_CHECK, LEASE_REVOKE_CHECK_MS } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import { encodeMembersReply } from './bootstrap.js';
import { answerHashRequest, decodeHashRequest } from './corrupt.js';
import { nodeStats, renewed } from './stats.js';
import { monotonicMs } from './clock.js';

export interface LeasesHost {
  readonly cfg: NodeConfig;
  readonly leaseStore: LeaseStore;
  readonly auth: AuthStore;
  isLeader(): boolean;
  stopped(): boolean;
  propose(req: InternalRequestInit): Promise<ApplyOutcome>;
  forwardToLeader(kind: string, body: Uint8Array): Promise<Uint8Array>;
}

export class Leases {
  /** Expiry bookkeeping of granted leases; deadlines matter on the leader only. */
  lessor = new Lessor();
  private leaseTimer: NodeJS.Timeout | undefined = undefined;
  private leaseTimerAtMs = Infinity;

  constructor(private readonly host: LeasesHost) {
    this.load();
  }

  private load(): void {
    const now = monotonicMs();
    for (const l of this.host.leaseStore.all()) this.lessor.granted(l.id, l.ttlSeconds, now);
  }

  /** The lease table was replaced (a snapshot was installed): start over from it. */
  reload(): void {
    this.lessor = new Lessor();
    this.load();
  }

  /** What an apply batch granted and revoked. */
  applied(changes: LeaseChanges): void {
    const now = monotonicMs();
    for (const g of changes.granted) this.lessor.granted(g.id, g.ttlSeconds, now);
    for (const id of changes.revoked) this.lessor.revoked(id);
    nodeStats.leasesGranted += changes.granted.length;
    nodeStats.leasesRevoked += changes.revoked.length;
    this.scheduleCheck();
  }

  /** A new leader restarts every lease's clock (plus an election timeout, as etcd's promote). */
  promote(): void {
    this.lessor = new Lessor();
    const base = monotonicMs() + this.host.cfg.electionMs;
    for (const l of this.host.leaseStore.all()) this.lessor.granted(l.id, l.ttlSeconds, base);
    this.scheduleCheck();
  }

  /** No longer the leader (or stopping): no expiry checks. */
  demote(): void {
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    this.leaseTimer = undefined;
    this.leaseTimerAtMs = Infinity;
  }

  private scheduleCheck(): void {
    if (this.host.stopped() || !this.host.isLeader()) return;
    const at = this.lessor.nextCheckMs();
    if (at === undefined || at >= this.leaseTimerAtMs) return;
    this.armTimer(at);
  }

  private armTimer(atMs: number): void {
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    this.leaseTimerAtMs = atMs;
    this.leaseTimer = setTimeout(() => this.revokeExpired(), Math.max(0, atMs - monotonicMs()));
    this.leaseTimer.unref();
  }

  private revokeExpired(): void {
    this.leaseTimer = undefined;
    this.leaseTimerAtMs = Infinity;
    if (this.host.stopped() || !this.host.isLeader()) return;
    const log = this.host.cfg.logger;
    const now = monotonicMs();
    const ids = this.lessor.expired(now, LEASE_REVOKES_PER_CHECK);
    // etcd revokes expired leases as root (authStore.WithRoot): with auth enabled, an entry without a
    // user fails the permission check at apply time and the lease would never go.
    const auth = this.host.auth;
    const header = auth.enabled ? { username: ROOT_USER, authRevision: auth.revision } : undefined;
    for (const id of ids) {
      this.host.propose({ leaseRevoke: { ID: id }, ...(header !== undefined ? { header } : {}) }).then(
        (o) => {
          if (o.ok) log.debug('lease expired and revoked', { 'lease-id': id.toString(16) });
          else log.warn('revoking an expired lease was refused; will retry', { 'lease-id': id.toString(16), error: o.error });
        },
        (err: unknown) => log.warn('failed to revoke an expired lease; will retry', { 'lease-id': id.toString(16), error: err }),
      );
    }
    if (ids.length === LEASE_REVOKES_PER_CHECK) this.armTimer(now + LEASE_REVOKE_CHECK_MS);
    else this.scheduleCheck();
  }

  /** KeepAlive: renewed by the leader (forwarded there from a follower). TTL 0 = unknown/expired. */
  async renew(id: bigint): Promise<number> {
    if (this.host.isLeader()) return this.renewHere(id);
    const body = Buffer.alloc(8);
    body.writeBigInt64BE(id);
    const reply = Buffer.from(await this.host.forwardToLeader('leaseRenew', body));
    return Number(reply.readBigInt64BE(0));
  }

  /** The leader's renewal: the TTL granted, 0 when the lease is unknown or expired. */
  renewHere(id: bigint): number {
    return renewed(this.lessor.renew(id, monotonicMs())) ?? 0;
  }

  /** Remaining TTL as the leader sees it: {remainingMs, ttlSeconds} or undefined when unknown. */
  async remaining(id: bigint): Promise<{ remainingMs: number; ttlSeconds: number } | undefined> {
    if (this.host.isLeader()) return this.remainingHere(id);
    const body = Buffer.alloc(8);
    body.writeBigInt64BE(id);
    const reply = JSON.parse(Buffer.from(await this.host.forwardToLeader('leaseTTL', body)).toString('utf8')) as { remainingMs: number; ttlSeconds: number } | null;
    return reply ?? undefined;
  }

  remainingHere(id: bigint): { remainingMs: number; ttlSeconds: number } | undefined {
    const l = this.lessor.get(id, monotonicMs());
    return l === undefined ? undefined : { remainingMs: l.remainingMs, ttlSeconds: l.ttlSeconds };
  }
}

const FORWARDED_CLIENT_ERROR = 'cairn-client-error:';
const FORWARDABLE: readonly ClientError['kind'][] = ['learnerNotReady', 'memberNotLearner', 'memberNotFound'];

/** A forwarded request's failure as the follower reports it to its client. */
export function mapForwardedError(err: unknown): Error {
  if (err instanceof ServerRefusal || err instanceof ClientError) return err;
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const msg = err instanceof Error ? err.message : String(err);
  const kind = FORWARDABLE.find((k) => msg.includes(`${FORWARDED_CLIENT_ERROR}${k}`));
  if (kind !== undefined) return new ClientError(kind);
  return cause instanceof ServerRefusal ? cause : new ServerRefusal('timeout', undefined, { cause: err });
}

export interface PeerHost {
  readonly clusterId: bigint;
  readonly members: MemberStore;
  readonly store: KvStore;
  readonly leases: Leases;
  leaderId(): bigint;
  isLeader(): boolean;
  /** A request to a peer over the transport, with the request timeout. */
  request(to: bigint, kind: string, body: Uint8Array): Promise<Uint8Array>;
  promoteMember(id: bigint): Promise<Member[]>;
}

/** Member-to-member requests: sent to the leader, and answered for peers. */
export class PeerRequests {
  constructor(private readonly host: PeerHost) {}

  forwardToLeader(kind: string, body: Uint8Array): Promise<Uint8Array> {
    const lead = this.host.leaderId();
    if (lead === 0n) return Promise.reject(new ServerRefusal('noLeader'));
    return this.host.request(lead, kind, body).catch((err: unknown) => {
      const msg = err instanceof Error ? err.message : String(err);
      if (msg.includes(FORWARDED_CLIENT_ERROR)) throw err;
      throw /not leader/.test(msg) ? new ServerRefusal('leaderChanged') : new ServerRefusal('timeout', undefined, { cause: err });
    });
  }

  async handle(kind: string, body: Uint8Array): Promise<Uint8Array> {
    const h = this.host;
    switch (kind) {
      case 'members':
        return encodeMembersReply(h.clusterId, h.members.all());
      case 'leaseRenew': {
        if (!h.isLeader()) throw new Error('not leader');
        const out = Buffer.alloc(8);
        out.writeBigInt64BE(BigInt(h.leases.renewHere(Buffer.from(body).readBigInt64BE(0))));
        return out;
      }
      case 'leaseTTL': {
        if (!h.isLeader()) throw new Error('not leader');
        const l = h.leases.remainingHere(Buffer.from(body).readBigInt64BE(0));
        return Buffer.from(JSON.stringify(l ?? null));
      }
      case 'hashkv':
        return answerHashRequest(h.store, decodeHashRequest(body));
      case 'promote': {
        if (!h.isLeader()) throw new Error('not leader');
        try {
          const members = await h.promoteMember(Buffer.from(body).readBigUInt64BE(0));
          return Buffer.from(JSON.stringify(members.length));
        } catch (err) {
          // The follower relays the leader's refusal as its own: carry the kind across.
          if (err instanceof ClientError) throw new Error(`${FORWARDED_CLIENT_ERROR}${err.kind}`);
          throw err;
        }
      }
      default:
        throw new Error(`unknown request kind ${JSON.stringify(kind)}`);
    }
  }
}
