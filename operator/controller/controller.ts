// The reconcile loop: informers feed a per-cluster queue; each reconcile observes once, plans once,
// writes the status (through the status subresource, with the read resourceVersion: a conflict
// re-runs the reconcile) BEFORE acting, performs the one step, and requeues: at once after an
// action, after the planner's wait, or after the resync period. Failures back off per cluster.
import { PLURAL, VERSION, GROUP, type JsonObject } from '../api/index.js';
import { act, isAction, type ActContext } from '../act/index.js';
import { EtcdCallError } from '../etcd/index.js';
import { KubeError, makeKindInformer, resourcePath, type KindInformer, type KubeRest } from '../kube/index.js';
import { metaOf, observe, type Caches } from '../observe/index.js';
import { hashOf, names, plan, text, type Observed, type PlanSettings } from '../plan/index.js';
import type { Logger } from './log.js';
import type { OperatorMetrics } from './metrics.js';

export const RESYNC_MS = 30_000;
export const AFTER_ACTION_MS = 200;
export const AFTER_CONFLICT_MS = 100;
export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;
export const STALE_CACHE_RETRY_MS = 50;
export const TRANSIENT_RETRY_MS = 1000;

/** etcd's refusals that only mean "not yet" (the step is retried as planned again). */
function isTransientRefusal(e: unknown): boolean {
  return e instanceof EtcdCallError && /unhealthy cluster|not enough started members|in sync with leader|leader changed/.test(e.details);
}

export interface ControllerOptions {
  rest: KubeRest;
  /** Watch only this namespace (undefined: all). */
  namespace: string | undefined;
  defaultImage: string;
  settings: PlanSettings;
  /** This replica's name (Events' reportingInstance). */
  instance: string;
  log: Logger;
  metrics: OperatorMetrics;
  resyncMs?: number;
  /** Called on every EtcdCluster change (the backup runner's wake-up). */
  onClusterChange?: () => void;
}

const keyOf = (ns: string, name: string): string => `${ns}/${name}`;

/** Every object the operator owns carries this label (selectorLabels of plan/desired.ts). */
export const MANAGED_SELECTOR = 'app.kubernetes.io/name=cairn';

export class Controller {
  readonly caches: Caches;
  private readonly due = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  /** resourceVersions our status writes replaced: a cache still at one of them is stale. */
  private readonly replaced = new Map<string, string>();
  private running = false;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private synced = false;

  constructor(private readonly o: ControllerOptions) {
    const sel = MANAGED_SELECTOR;
    const inf = (kind: string, selector: string | undefined): KindInformer =>
      makeKindInformer(o.rest, kind, o.namespace, selector, (obj) => this.onObject(kind, obj), (k, err) => this.onInformerError(k, err));
    this.caches = {
      clusters: inf('EtcdCluster', undefined),
      statefulSets: inf('StatefulSet', sel),
      pods: inf('Pod', sel),
      pvcs: inf('PersistentVolumeClaim', sel),
      services: inf('Service', sel),
      pdbs: inf('PodDisruptionBudget', sel),
      serviceAccounts: inf('ServiceAccount', sel),
      roleBindings: inf('RoleBinding', sel),
      // A restore's backupRef names one (observe/upkeep.ts resolves it).
      backups: inf('EtcdBackup', undefined),
    };
  }

  /** True once every informer has listed. */
  get ready(): boolean {
    return this.synced;
  }

  private onObject(kind: string, obj: JsonObject): void {
    const m = metaOf(obj);
    const ns = typeof m['namespace'] === 'string' ? m['namespace'] : '';
    if (kind === 'EtcdCluster') {
      this.o.onClusterChange?.();
      this.enqueue(keyOf(ns, typeof m['name'] === 'string' ? m['name'] : ''), 0);
      return;
    }
    const labels = (m['labels'] ?? {}) as JsonObject;
    const inst = labels['app.kubernetes.io/instance'];
    if (typeof inst === 'string') this.enqueue(keyOf(ns, inst), 0);
  }

  private onInformerError(kind: string, err: unknown): void {
    this.o.metrics.errors.inc({ kind: 'informer' });
    this.o.log.log('warn', 'informer error; restarting it', { kind, error: err instanceof Error ? err.message : String(err) });
  }

  enqueue(key: string, delayMs: number): void {
    const at = Date.now() + delayMs;
    const cur = this.due.get(key);
    if (cur === undefined || at < cur) this.due.set(key, at);
    this.wake?.();
  }

  async start(): Promise<void> {
    this.running = true;
    await Promise.all(Object.values(this.caches).map((c: KindInformer) => c.start()));
    this.synced = true;
    for (const c of this.caches.clusters.list()) this.onObject('EtcdCluster', c);
    void this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    if (this.timer !== undefined) clearTimeout(this.timer);
    await Promise.all(Object.values(this.caches).map((c: KindInformer) => c.stop()));
  }

  private next(): [string, number] | undefined {
    let best: [string, number] | undefined;
    for (const [k, at] of this.due) if (best === undefined || at < best[1]) best = [k, at];
    return best;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const n = this.next();
      const waitMs = n === undefined ? RESYNC_MS : Math.max(0, n[1] - Date.now());
      if (waitMs > 0) {
        await new Promise<void>((r) => {
          this.wake = r;
          this.timer = setTimeout(r, waitMs);
        });
        this.wake = undefined;
        if (this.timer !== undefined) clearTimeout(this.timer);
        continue;
      }
      if (n === undefined) continue;
      this.due.delete(n[0]);
      await this.reconcileKey(n[0]);
    }
  }

  private async reconcileKey(key: string): Promise<void> {
    const end = this.o.metrics.duration.startTimer();
    try {
      const requeueMs = await this.reconcile(key);
      this.failures.delete(key);
      this.o.metrics.reconciles.inc({ result: 'ok' });
      if (requeueMs !== undefined) this.enqueue(key, requeueMs);
    } catch (e) {
      if (isTransientRefusal(e)) {
        // The leader refuses membership changes until every member has been active a while
        // ("unhealthy cluster"): expected right after a promotion; retry soon, without backoff.
        this.o.metrics.reconciles.inc({ result: 'retry' });
        this.o.log.log('info', 'the cluster refused a step for now; retrying', { cluster: key, error: e instanceof Error ? e.message : String(e) });
        this.enqueue(key, TRANSIENT_RETRY_MS);
        return;
      }
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (n - 1));
      this.o.metrics.reconciles.inc({ result: 'error' });
      this.o.metrics.errors.inc({ kind: e instanceof KubeError ? 'kube' : (e as { name?: string }).name === 'EtcdCallError' ? 'etcd' : 'other' });
      this.o.log.log('error', 'reconcile failed', { cluster: key, error: e instanceof Error ? e.message : String(e), retryInMs: delay });
      this.enqueue(key, delay);
    } finally {
      end();
    }
  }

  private findCluster(key: string): JsonObject | undefined {
    return this.caches.clusters.list().find((c) => {
      const m = metaOf(c);
      return keyOf(text(m['namespace']), text(m['name'])) === key;
    });
  }

  /** One reconcile; returns the requeue delay (undefined: nothing to come back for). */
  async reconcile(key: string): Promise<number | undefined> {
    const raw = this.findCluster(key);
    const [ns = '', name = ''] = key.split('/');
    if (raw === undefined) {
      this.o.metrics.forget(ns, name);
      this.replaced.delete(key);
      return undefined;
    }
    const rv = metaOf(raw)['resourceVersion'];
    if (typeof rv === 'string' && this.replaced.get(key) === rv) return STALE_CACHE_RETRY_MS;
    const obs = await observe(this.caches, raw, new Date().toISOString(), this.o.defaultImage, this.o.settings);
    const p = plan(obs);
    this.record(ns, name, obs, p.status.conditions?.find((c) => c.type === 'Available')?.status === 'True');
    const before = hashOf(raw['status'] ?? {});
    if (hashOf(JSON.parse(JSON.stringify(p.status)) as unknown) !== before) {
      const written = await this.writeStatus(key, raw, p.status as unknown as JsonObject);
      if (!written) return AFTER_CONFLICT_MS;
    }
    const step = p.step;
    if (isAction(step)) {
      const ctx = this.actContext(obs);
      const done = await act(ctx, step, p.reason);
      this.o.metrics.steps.inc({ kind: step.kind });
      this.o.log.log('info', done, { cluster: key, step: step.kind, reason: p.reason });
      return AFTER_ACTION_MS;
    }
    if (step.kind === 'journal' || step.kind === 'endOperation') {
      this.o.log.log('info', p.reason, { cluster: key, step: step.kind });
      return AFTER_ACTION_MS;
    }
    if (step.kind === 'wait') return step.requeueMs;
    return this.o.resyncMs ?? RESYNC_MS;
  }

  /** One observation of a cluster from the caches (the backup runner's view of the members). */
  observeCluster(raw: JsonObject): Promise<Observed> {
    return observe(this.caches, raw, new Date().toISOString(), this.o.defaultImage, this.o.settings);
  }

  private record(ns: string, name: string, obs: Observed, available: boolean): void {
    const ms = obs.members ?? [];
    this.o.metrics.members.set({ namespace: ns, name }, ms.length);
    this.o.metrics.voters.set({ namespace: ns, name }, ms.filter((m) => !m.learner).length);
    this.o.metrics.healthy.set({ namespace: ns, name }, ms.filter((m) => m.status !== undefined && m.status.leader !== '0').length);
    this.o.metrics.available.set({ namespace: ns, name }, available ? 1 : 0);
  }

  /** PUT of the status subresource with the read resourceVersion; false on a conflict. */
  private async writeStatus(key: string, raw: JsonObject, status: JsonObject): Promise<boolean> {
    const m = metaOf(raw);
    const path = `${resourcePath(`${GROUP}/${VERSION}`, PLURAL, text(m['namespace']), text(m['name']))}/status`;
    try {
      await this.o.rest.put(path, { ...raw, status });
      if (typeof m['resourceVersion'] === 'string') this.replaced.set(key, m['resourceVersion']);
      return true;
    } catch (e) {
      if (e instanceof KubeError && e.conflict) {
        this.o.metrics.errors.inc({ kind: 'conflict' });
        return false;
      }
      throw e;
    }
  }

  private actContext(obs: Observed): ActContext {
    const endpoints = new Map<string, string>();
    const ips = new Map<number, string>();
    for (const p of obs.pods as ReadonlyArray<{ ordinal: number; ip?: string; deleting: boolean }>) if (p.ip !== undefined && !p.deleting) ips.set(p.ordinal, p.ip);
    const c = obs.cluster.metadata;
    for (const m of obs.members ?? []) {
      for (const [ordinal, ip] of ips) if (m.name === names.pod(c.name, ordinal) || m.peerURL.includes(`//${names.pod(c.name, ordinal)}.`)) endpoints.set(m.id, `${ip}:2379`);
    }
    const leaderId = (obs.members ?? []).find((m) => m.status !== undefined && m.status.leader !== '0')?.status?.leader;
    return { rest: this.o.rest, cluster: obs.cluster, endpoints, leaderId, instance: this.o.instance };
  }
}
