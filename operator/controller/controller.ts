// The reconcile loop: informers feed a per-cluster queue; each reconcile observes once, plans once,
// writes the status (through the status subresource, with the read resourceVersion: a conflict
// re-runs the reconcile) BEFORE acting, performs the one step, and requeues: at once after an
// action, after the planner's wait, or after the resync period. Failures back off per cluster.
import { PLURAL, VERSION, GROUP, type Condition, type EtcdClusterStatus, type JsonObject } from '../api/index.js';
import { act, isAction, type ActContext } from '../act/index.js';
import { EtcdCallError } from '../etcd/index.js';
import { KubeError, makeKindInformer, resourcePath, type KindInformer, type KubeRest } from '../kube/index.js';
import { kubeView, metaOf, observe, type Caches } from '../observe/index.js';
import { AuthManager, type AuthOutcome } from './auth.js';
import { TlsManager, type TlsOutcome } from './tls.js';
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
  /** Called on every EtcdBackup change (the backup runner shares this watch). */
  onBackupChange?: () => void;
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
  /** spec.auth: the operator's etcd credentials per cluster (controller/auth.ts). */
  readonly auth: AuthManager;
  /** spec.tls: the members' certificates and the operator's client certificate (controller/tls.ts). */
  readonly tls: TlsManager;
  /** Pod IP -> the name a member's certificate is checked against, per cluster. */
  private readonly serverNames = new Map<string, Map<string, string>>();

  constructor(private readonly o: ControllerOptions) {
    this.auth = new AuthManager(o.rest);
    this.tls = new TlsManager(o.rest);
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
    if (kind === 'EtcdBackup') {
      // One watch serves both: the backup runner's wake-up, and a restore waiting for this backup (backupRef).
      this.o.onBackupChange?.();
      for (const c of this.caches.clusters.list()) {
        const cm = metaOf(c);
        const ref = ((((c['spec'] ?? {}) as JsonObject)['bootstrap'] ?? {}) as JsonObject)['fromBackup'];
        const name = ((ref ?? {}) as JsonObject)['backupRef'];
        if (cm['namespace'] === ns && ((name ?? {}) as JsonObject)['name'] === m['name']) this.enqueue(keyOf(ns, text(cm['name'])), 0);
      }
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
      this.auth.forget(key);
      this.tls.forget(key);
      this.serverNames.delete(key);
      return undefined;
    }
    const rv = metaOf(raw)['resourceVersion'];
    if (typeof rv === 'string' && this.replaced.get(key) === rv) return STALE_CACHE_RETRY_MS;
    const [auth, tls] = await this.prepareSecurity(key, raw);
    if (auth.block) {
      // Auth is on and the operator cannot log in: report it, observe nothing (every member would look unhealthy).
      const prev = (raw['status'] ?? {}) as EtcdClusterStatus;
      const status = withTls(withAuth(prev, auth, new Date().toISOString(), metaOf(raw)['generation']), tls, new Date().toISOString(), metaOf(raw)['generation'], prev);
      if (hashOf(JSON.parse(JSON.stringify(status)) as unknown) !== hashOf(raw['status'] ?? {})) {
        const written = await this.writeStatus(key, raw, status as unknown as JsonObject);
        if (!written) return AFTER_CONFLICT_MS;
      }
      return auth.requeueMs ?? RESYNC_MS;
    }
    const obs = await observe(this.caches, raw, new Date().toISOString(), this.o.defaultImage, this.o.settings);
    const p = plan(obs);
    p.status = withTls(withAuth(p.status, auth, obs.now, obs.cluster.metadata.generation, obs.cluster.status), tls, obs.now, obs.cluster.metadata.generation, obs.cluster.status);
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
    const next = step.kind === 'wait' ? step.requeueMs : (this.o.resyncMs ?? RESYNC_MS);
    return auth.requeueMs === undefined ? next : Math.min(next, auth.requeueMs);
  }

  /**
   * The certificate manager's and then the auth manager's pass for a cluster, with its members'
   * endpoints (ready pods first): the access every etcd call of this reconcile uses.
   */
  private async prepareSecurity(key: string, raw: JsonObject): Promise<[AuthOutcome, TlsOutcome]> {
    const k = kubeView(this.caches, raw);
    const live = k.pods.filter((p) => p.ip !== undefined && !p.deleting);
    const { name, namespace } = k.cluster.metadata;
    const byIp = new Map(live.map((p) => [p.ip ?? '', `${p.name}.${names.peerService(name)}.${namespace}.svc`]));
    this.serverNames.set(key, byIp);
    const tls = await this.tls.prepare(k.cluster, (ep) => this.serverNames.get(key)?.get(ep.slice(0, ep.lastIndexOf(':'))));
    const eps = [...live.filter((p) => p.ready), ...live.filter((p) => !p.ready)].map((p) => `${p.ip ?? ''}:2379`);
    return [await this.auth.prepare(k.cluster, eps, tls.client), tls];
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

/** The status with the auth manager's part: status.auth and the AuthReady condition (kept if it says the same). */
export function withAuth(status: EtcdClusterStatus, auth: AuthOutcome, now: string, generation: unknown, prevStatus: EtcdClusterStatus = status): EtcdClusterStatus {
  const out: EtcdClusterStatus = { ...status };
  const a = auth.status ?? prevStatus.auth;
  if (a !== undefined) out.auth = a;
  else delete out.auth;
  const prev = prevStatus.conditions?.find((c) => c.type === 'AuthReady');
  const others = (status.conditions ?? []).filter((c) => c.type !== 'AuthReady');
  const c = auth.condition;
  if (c === undefined) {
    out.conditions = prev === undefined || out.auth?.enabled === false || a === undefined ? others : [...others, prev];
    return out;
  }
  const same = prev !== undefined && prev.status === c.status && prev.reason === c.reason;
  const cond: Condition = {
    type: 'AuthReady',
    status: c.status,
    reason: c.reason,
    message: same && c.reason === prev.reason && c.status !== 'False' ? prev.message : c.message,
    observedGeneration: typeof generation === 'number' ? generation : 0,
    lastTransitionTime: prev !== undefined && prev.status === c.status ? prev.lastTransitionTime : now,
  };
  out.conditions = [...others, cond];
  return out;
}

/** The status with the certificate manager's part: status.tls and the TLSReady condition. */
export function withTls(status: EtcdClusterStatus, tls: TlsOutcome, now: string, generation: unknown, prevStatus: EtcdClusterStatus = status): EtcdClusterStatus {
  const out: EtcdClusterStatus = { ...status };
  const others = (status.conditions ?? []).filter((c) => c.type !== 'TLSReady');
  if (tls.condition === undefined) {
    delete out.tls;
    out.conditions = others;
    return out;
  }
  if (tls.status !== undefined) out.tls = tls.status;
  const prev = prevStatus.conditions?.find((c) => c.type === 'TLSReady');
  const c = tls.condition;
  out.conditions = [
    ...others,
    {
      type: 'TLSReady',
      status: c.status,
      reason: c.reason,
      message: c.message,
      observedGeneration: typeof generation === 'number' ? generation : 0,
      lastTransitionTime: prev !== undefined && prev.status === c.status ? prev.lastTransitionTime : now,
    },
  ];
  return out;
}
