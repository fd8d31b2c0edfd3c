// Leader election on a coordination.k8s.io/v1 Lease: acquire when free or expired, renew every
// RENEW_MS; a replica that fails to renew within the lease duration stops leading (the process
// exits, so a new leader never overlaps with a stale one for longer than the lease).
import type { JsonObject } from '../api/index.js';
import { KubeError, pathOf, type KubeRest } from '../kube/index.js';

export const LEASE_DURATION_S = 15;
export const RENEW_MS = 2000;

function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  private lastRenewMs = 0;
  leading = false;

  constructor(
    private readonly rest: KubeRest,
    private readonly namespace: string,
    private readonly name: string,
    private readonly identity: string,
    private readonly onLost: () => void,
  ) {}

  private path(): string {
    return pathOf('Lease', this.namespace, this.name);
  }

  /** One attempt to take or renew the lease. */
  async tryAcquire(): Promise<boolean> {
    const now = new Date();
    let lease: JsonObject | undefined;
    try {
      lease = await this.rest.get(this.path());
    } catch (e) {
      if (!(e instanceof KubeError && e.notFound)) throw e;
    }
    const spec: JsonObject = { holderIdentity: this.identity, leaseDurationSeconds: LEASE_DURATION_S, renewTime: microTime(now) };
    if (lease === undefined) {
      await this.rest.post(pathOf('Lease', this.namespace), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace }, spec: { ...spec, acquireTime: microTime(now) } });
      return true;
    }
    const s = (lease['spec'] ?? {}) as JsonObject;
    const holder = typeof s['holderIdentity'] === 'string' ? s['holderIdentity'] : '';
    const renew = typeof s['renewTime'] === 'string' ? Date.parse(s['renewTime']) : 0;
    const duration = typeof s['leaseDurationSeconds'] === 'number' ? s['leaseDurationSeconds'] : LEASE_DURATION_S;
    if (holder !== this.identity && holder !== '' && now.getTime() < renew + duration * 1000) return false;
    const acquire = holder === this.identity && typeof s['acquireTime'] === 'string' ? s['acquireTime'] : microTime(now);
    const transitions = (typeof s['leaseTransitions'] === 'number' ? s['leaseTransitions'] : 0) + (holder === this.identity ? 0 : 1);
    // PUT with the read resourceVersion: a competing writer makes this a 409, never a double leader.
    await this.rest.put(this.path(), { ...lease, spec: { ...spec, acquireTime: acquire, leaseTransitions: transitions } });
    return true;
  }

  /** Resolves once leading; then keeps renewing in the background. */
  async run(): Promise<void> {
    for (;;) {
      const ok = await this.tryAcquire().catch(() => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, RENEW_MS));
    }
    this.leading = true;
    this.lastRenewMs = Date.now();
    this.timer = setInterval(() => {
      this.tryAcquire().then(
        (ok) => {
          // false: another replica holds a valid lease: we are no longer the leader.
          if (ok) this.lastRenewMs = Date.now();
          else this.lose();
        },
        () => {
          if (Date.now() - this.lastRenewMs > LEASE_DURATION_S * 1000) this.lose();
        },
      );
    }, RENEW_MS);
  }

  private lose(): void {
    this.leading = false;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.onLost();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}
