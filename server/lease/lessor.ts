// Lease expiry bookkeeping (etcd's lessor, minus persistence): which leases exist, when each
// expires, renewals, and which expired leases to revoke next. Pure: the caller passes the time
// (monotonic milliseconds) and owns the timer; revocation itself goes through the log (apply/).
//
// Invariants:
// - Every lease in `leases` has exactly one entry in the heap; an entry's time is <= the lease's
//   expiry (renewals only move expiry later, so a popped early entry is pushed back at the new time).
// - A lease handed out by `expired` is not handed out again before `retryMs` has passed.
import { assert } from '../base/errors.js';

interface Lease {
  readonly id: bigint;
  readonly ttlSeconds: number;
  expiryMs: number;
  /** Set once its revocation was proposed: when to propose again if it is still here. */
  retryAtMs: number;
}

interface HeapEntry {
  readonly id: bigint;
  readonly atMs: number;
}

/** etcd's expiredLeaseRetryInterval: an expired lease whose revoke did not apply is retried after this. */
const REVOKE_RETRY_MS = 3000;

export interface LeaseView {
  readonly id: bigint;
  readonly ttlSeconds: number;
  /** Milliseconds left (negative once expired). */
  readonly remainingMs: number;
}

export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  private readonly heap: HeapEntry[] = [];

  get size(): number {
    return this.leases.size;
  }

  /** A lease granted (or loaded at start: etcd refreshes every lease to its full TTL then). */
  granted(id: bigint, ttlSeconds: number, nowMs: number): void {
    assert(!this.leases.has(id), `lease ${id} is granted once`);
    const lease: Lease = { id, ttlSeconds, expiryMs: nowMs + ttlSeconds * 1000, retryAtMs: 0 };
    this.leases.set(id, lease);
    this.push({ id, atMs: lease.expiryMs });
  }

  /** A lease revoked (by a client or by expiry); its heap entry is dropped lazily. */
  revoked(id: bigint): void {
    this.leases.delete(id);
  }

  /** KeepAlive: the granted TTL, or undefined when the lease is unknown or already expired. */
  renew(id: bigint, nowMs: number): number | undefined {
    const l = this.leases.get(id);
    if (l === undefined || l.expiryMs <= nowMs) return undefined;
    l.expiryMs = nowMs + l.ttlSeconds * 1000;
    return l.ttlSeconds;
  }

  get(id: bigint, nowMs: number): LeaseView | undefined {
    const l = this.leases.get(id);
    return l === undefined ? undefined : { id, ttlSeconds: l.ttlSeconds, remainingMs: l.expiryMs - nowMs };
  }

  /** Every lease, soonest expiry first (etcd's Leases order). */
  all(nowMs: number): LeaseView[] {
    return [...this.leases.values()].sort((a, b) => a.expiryMs - b.expiryMs).map((l) => ({ id: l.id, ttlSeconds: l.ttlSeconds, remainingMs: l.expiryMs - nowMs }));
  }

  /** Up to `max` expired leases to revoke now (each not again before REVOKE_RETRY_MS). */
  expired(nowMs: number, max: number): bigint[] {
    const out: bigint[] = [];
    while (out.length < max) {
      const top = this.heap[0];
      if (top === undefined || top.atMs > nowMs) break;
      this.pop();
      const l = this.leases.get(top.id);
      if (l === undefined) continue;
      if (l.expiryMs > nowMs) {
        this.push({ id: l.id, atMs: l.expiryMs });
        continue;
      }
      if (l.retryAtMs > nowMs) {
        this.push({ id: l.id, atMs: l.retryAtMs });
        continue;
      }
      l.retryAtMs = nowMs + REVOKE_RETRY_MS;
      this.push({ id: l.id, atMs: l.retryAtMs });
      out.push(l.id);
    }
    return out;
  }

  /** When `expired` may next return something (undefined: no lease). */
  nextCheckMs(): number | undefined {
    return this.heap[0]?.atMs;
  }

  private push(e: HeapEntry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as HeapEntry;
      if (parent.atMs <= e.atMs) break;
      h[i] = parent;
      i = p;
    }
    h[i] = e;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && (h[r] as HeapEntry).atMs < (h[l] as HeapEntry).atMs ? r : l;
      const child = h[c] as HeapEntry;
      if (child.atMs >= last.atMs) break;
      h[i] = child;
      i = c;
    }
    h[i] = last;
  }
}
