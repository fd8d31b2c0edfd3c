// Leases. Lease expiry runs on the leader only (a new leader restarts every lease's clock);
// KeepAlive and TimeToLive on a follower are forwarded to the leader (peer.ts).
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import { Lessor, type LeaseStore } from '../lease/index.js';
import { ROOT_USER, type AuthStore } from '../auth/index.js';
import type { ApplyOutcome, LeaseChanges } from '../apply/index.js';
import { LEASE_REVOKES_PER_CHECK, LEASE_REVOKE_CHECK_MS } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import { nodeStats, renewed } from './stats.js';
import { monotonicMs } from './clock.js';

export interface LeasesHost {
  readonly cfg: NodeConfig;
  readonly leaseStore: LeaseStore;
  readonly auth: AuthStore;
  isLeader(): boolean;
  stopped(): boolean;
  propose(req: InternalRequestInit): Promise<ApplyOutcome>;
  /** KeepAlive and TimeToLive on a follower: answered by the leader (peer.ts). */
  forwardRenew(id: bigint): Promise<number>;
  forwardTTL(id: bigint): Promise<{ remainingMs: number; ttlSeconds: number } | undefined>;
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
    for (const g of changes.granted) {
      this.lessor.granted(g.id, g.ttlSeconds, now);
      nodeStats.leaseTtl.observe(g.ttlSeconds);
    }
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
          if (o.ok) {
            nodeStats.leasesExpired++;
            log.debug('lease expired and revoked', { 'lease-id': id.toString(16) });
          }
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
    return this.host.forwardRenew(id);
  }

  /** The leader's renewal: the TTL granted, 0 when the lease is unknown or expired. */
  renewHere(id: bigint): number {
    return renewed(this.lessor.renew(id, monotonicMs())) ?? 0;
  }

  /** Remaining TTL as the leader sees it: {remainingMs, ttlSeconds} or undefined when unknown. */
  async remaining(id: bigint): Promise<{ remainingMs: number; ttlSeconds: number } | undefined> {
    if (this.host.isLeader()) return this.remainingHere(id);
    return this.host.forwardTTL(id);
  }

  remainingHere(id: bigint): { remainingMs: number; ttlSeconds: number } | undefined {
    const l = this.lessor.get(id, monotonicMs());
    return l === undefined ? undefined : { remainingMs: l.remainingMs, ttlSeconds: l.ttlSeconds };
  }
}
