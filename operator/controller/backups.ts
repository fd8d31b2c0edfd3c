// The backup runner (issue 15), beside the cluster reconcile loop and never blocking it: on a tick
// (and on every EtcdBackup or EtcdCluster change) it
//   1. creates the scheduled EtcdBackup of each cluster whose schedule is due (backup-plan.ts:
//      scheduleDecision; a run missed while the operator was down is one backup, not a burst), and
//      reports lastScheduleTime/nextScheduleTime;
//   2. starts each Pending EtcdBackup (scheduled or on demand) whose cluster has no backup running
//      (BackupSlots: one at a time per cluster), as a promise of its own: credentials from the
//      Secret, members from observe(), backupCluster (the next member when one fails mid-snapshot),
//      all under one deadline (backup/deadline.ts: past it the run fails with reason Timeout and its
//      slot is freed), then the EtcdBackup status, BackupHealthy + status.backup on the cluster, an Event and the
//      metrics; after a success, retention deletes objects AND EtcdBackup records, oldest first;
//   3. marks Running records it is not running (the operator restarted mid-backup) Failed; their
//      partial upload is swept by the cluster's next backup.
// BackupHealthy says how the cluster's LAST finished backup went (scheduled or on demand). Every
// status write is a GET + PUT of the status subresource with the read resourceVersion (a conflict
// with the planner's write is retried), and changes only the fields this runner owns.
import {
  API_VERSION,
  BACKUP_CLUSTER_LABEL,
  BACKUP_KIND,
  BACKUP_PLURAL,
  BACKUP_SCHEDULED_LABEL,
  backupSpecWithDefaults,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  type BackupDestination,
  type Condition,
  type ConditionStatus,
  type EtcdBackup,
  type EtcdBackupStatus,
  type EtcdCluster,
  type EtcdClusterStatus,
  type JsonObject,
} from '../api/index.js';
import { recordEvent } from '../act/index.js';
import { backupCluster, BackupError, BackupSlots, deleteBackup, RunDeadline, s3Client, type BackupReason, type ClusterBackupResult, type S3Credentials } from '../backup/index.js';
import { KubeError, makeKindInformer, pathOf, resourcePath, type KindInformer, type KubeRest } from '../kube/index.js';
import { accessFor, CALL_TIMEOUT_MS, EtcdAdmin } from '../etcd/index.js';
import { metaOf, parseCluster } from '../observe/index.js';
import type { Observed } from '../plan/index.js';
import { candidatesOf, recordsToDelete, retentionPolicy, scheduleDecision, scheduledBackupName, startOf } from './backup-plan.js';
import type { Logger } from './log.js';
import type { OperatorMetrics } from './metrics.js';

export const BACKUP_TICK_MS = 5_000;
/** A change seen by an informer ticks this soon (changes in a burst share one tick). */
export const BACKUP_WAKE_MS = 200;
/** Status writes retried on a resourceVersion conflict at most this often. */
export const STATUS_WRITE_ATTEMPTS = 8;

export interface BackupRunnerOptions {
  rest: KubeRest;
  namespace: string | undefined;
  instance: string;
  log: Logger;
  metrics: OperatorMetrics;
  /** The controller's EtcdCluster cache. */
  clusters: () => JsonObject[];
  /** The controller's observation of a cluster (pods, members with Status). */
  observe: (raw: JsonObject) => Promise<Observed>;
  /**
   * The controller's EtcdBackup informer (caches.backups), shared: one watch; the controller calls
   * wake() on its changes (ControllerOptions.onBackupChange). Absent: the runner keeps its own.
   */
  backups?: KindInformer;
  tickMs?: number;
  /** Deadline of one backup run (default BACKUP_RUN_TIMEOUT_MS). */
  backupTimeoutMs?: number;
}

const keyOf = (ns: string, name: string): string => `${ns}/${name}`;
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The EtcdBackup as typed data (spec defaulted). */
export function parseBackup(o: JsonObject): EtcdBackup {
  const m = metaOf(o);
  const s = str;
  const b: EtcdBackup = {
    apiVersion: API_VERSION,
    kind: BACKUP_KIND,
    metadata: { name: s(m['name']), namespace: s(m['namespace']), uid: s(m['uid']), generation: typeof m['generation'] === 'number' ? m['generation'] : 0 },
    spec: backupSpecWithDefaults(o['spec']),
  };
  if (typeof m['resourceVersion'] === 'string') b.metadata.resourceVersion = m['resourceVersion'];
  if (typeof m['creationTimestamp'] === 'string') b.metadata.creationTimestamp = m['creationTimestamp'];
  if (typeof m['deletionTimestamp'] === 'string') b.metadata.deletionTimestamp = m['deletionTimestamp'];
  const labels = m['labels'];
  if (typeof labels === 'object' && labels !== null && !Array.isArray(labels)) b.metadata.labels = Object.fromEntries(Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const st = o['status'];
  if (typeof st === 'object' && st !== null && !Array.isArray(st)) b.status = st;
  return b;
}

/** Sets a condition, keeping its transition time while its status does not change. */
export function setCondition<T extends { type: string; status: ConditionStatus; lastTransitionTime: string }>(list: readonly T[], c: T): T[] {
  const prev = list.find((x) => x.type === c.type);
  const next = prev !== undefined && prev.status === c.status ? { ...c, lastTransitionTime: prev.lastTransitionTime } : c;
  return [...list.filter((x) => x.type !== c.type), next];
}

export class BackupRunner {
  private readonly informer: KindInformer;
  private readonly slots = new BackupSlots();
  /** EtcdBackups (ns/name) this process is running. */
  private readonly running = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopped = false;

  /** The informer is the controller's (started and stopped by it). */
  private readonly shared: boolean;

  constructor(private readonly o: BackupRunnerOptions) {
    this.shared = o.backups !== undefined;
    this.informer = o.backups ?? makeKindInformer(
      o.rest,
      BACKUP_KIND,
      o.namespace,
      undefined,
      () => this.wake(),
      (kind, err) => {
        o.metrics.errors.inc({ kind: 'informer' });
        o.log.log('warn', 'informer error; restarting it', { kind, error: messageOf(err) });
      },
    );
  }

  async start(): Promise<void> {
    if (!this.shared) await this.informer.start();
    this.wake();
  }

  /** Stops ticking; backups in flight finish (their promises are awaited). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (!this.shared) await this.informer.stop();
    await Promise.allSettled([...this.running.values()]);
  }

  /** Ticks soon (an EtcdCluster or EtcdBackup changed). */
  wake(delayMs = BACKUP_WAKE_MS): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    if (this.ticking) return this.wake();
    this.ticking = true;
    try {
      for (const raw of this.o.clusters()) {
        try {
          await this.schedule(raw);
        } catch (e) {
          this.o.metrics.errors.inc({ kind: 'backup' });
          this.o.log.log('error', 'backup schedule failed', { cluster: keyOf(str(metaOf(raw)['namespace']), str(metaOf(raw)['name'])), error: messageOf(e) });
        }
      }
      const backups = this.informer
        .list()
        .map(parseBackup)
        .sort((a, b) => startOf(a) - startOf(b));
      for (const b of backups) {
        try {
          await this.consider(b);
        } catch (e) {
          this.o.metrics.errors.inc({ kind: 'backup' });
          this.o.log.log('error', 'backup bookkeeping failed', { backup: keyOf(b.metadata.namespace, b.metadata.name), error: messageOf(e) });
        }
      }
    } finally {
      this.ticking = false;
      if (!this.stopped) this.wake(this.o.tickMs ?? BACKUP_TICK_MS);
    }
  }

  // ---------- the schedule ----------

  private async schedule(raw: JsonObject): Promise<void> {
    const c = parseCluster(raw);
    const b = c.spec.backup;
    if (b === undefined || c.metadata.deletionTimestamp !== undefined) return;
    const now = new Date();
    const created = str(metaOf(raw)['creationTimestamp']) || now.toISOString();
    const last = new Date(c.status?.backup?.lastScheduleTime ?? created);
    const d = scheduleDecision(b, last, now);
    if (d.due !== undefined) await this.createScheduled(c, raw, d.due);
    await this.updateCluster(c, (s) => {
      const backup = { ...(s.backup ?? {}) };
      if (d.due !== undefined) backup.lastScheduleTime = d.due.toISOString();
      if (d.next !== undefined) backup.nextScheduleTime = d.next.toISOString();
      else delete backup.nextScheduleTime;
      s.backup = backup;
      const cur = s.conditions?.find((x) => x.type === 'BackupHealthy');
      if (d.problem !== undefined) return this.healthy(s, c, 'False', 'InvalidSchedule', d.problem);
      if (b.suspend) return this.healthy(s, c, 'Unknown', 'Suspended', 'spec.backup.suspend is true: no scheduled backups');
      if (cur === undefined || cur.reason === 'Suspended' || cur.reason === 'InvalidSchedule') {
        if (s.backup.lastSuccessfulBackup !== undefined) return this.healthy(s, c, 'True', 'BackupSucceeded', `last backup ${s.backup.lastSuccessfulBackup.uri}`);
        return this.healthy(s, c, 'Unknown', 'NoBackupYet', `no backup yet; the next at ${d.next?.toISOString() ?? '(never)'}`);
      }
      return undefined;
    }, true);
  }

  private async createScheduled(c: EtcdCluster, raw: JsonObject, due: Date): Promise<void> {
    const name = scheduledBackupName(c.metadata.name, due);
    const body = {
      apiVersion: API_VERSION,
      kind: BACKUP_KIND,
      metadata: {
        name,
        namespace: c.metadata.namespace,
        labels: { [BACKUP_CLUSTER_LABEL]: c.metadata.name, [BACKUP_SCHEDULED_LABEL]: 'true' },
        ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: c.metadata.name, uid: str(metaOf(raw)['uid']), controller: true, blockOwnerDeletion: true }],
      },
      spec: { clusterName: c.metadata.name },
    };
    try {
      await this.o.rest.post(pathOf(BACKUP_KIND, c.metadata.namespace), body);
      this.o.log.log('info', 'scheduled backup created', { cluster: keyOf(c.metadata.namespace, c.metadata.name), backup: name, due: due.toISOString() });
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
    }
  }

  private healthy(s: EtcdClusterStatus, c: EtcdCluster, status: ConditionStatus, reason: string, message: string): undefined {
    const cond: Condition = { type: 'BackupHealthy', status, reason, message: message.slice(0, 4096), observedGeneration: c.metadata.generation, lastTransitionTime: new Date().toISOString() };
    s.conditions = setCondition(s.conditions ?? [], cond);
    return undefined;
  }

  /** GET the cluster, apply `mutate` to its status, PUT it back if it changed (retried on conflicts). */
  private async updateCluster(c: EtcdCluster, mutate: (s: EtcdClusterStatus) => void, fromCache = false): Promise<void> {
    const path = resourcePath(`${GROUP}/${VERSION}`, PLURAL, c.metadata.namespace, c.metadata.name);
    if (fromCache) {
      // `c` is this tick's cache: nothing to write as far as it knows means no GET (every 5 s).
      const cached = JSON.stringify(c.status ?? {});
      const probe = JSON.parse(cached) as EtcdClusterStatus;
      mutate(probe);
      if (sameIgnoringTimes(cached, probe)) return;
    }
    for (let i = 0; i < STATUS_WRITE_ATTEMPTS; i++) {
      let cur: JsonObject;
      try {
        cur = await this.o.rest.get(path);
      } catch (e) {
        if (e instanceof KubeError && e.notFound) return;
        throw e;
      }
      const before = JSON.stringify(cur['status'] ?? {});
      const status = JSON.parse(before) as EtcdClusterStatus;
      const withTimes = JSON.stringify(status);
      mutate(status);
      if (sameIgnoringTimes(withTimes, status)) return;
      try {
        await this.o.rest.put(`${path}/status`, { ...cur, status });
        return;
      } catch (e) {
        if (!(e instanceof KubeError && e.conflict)) throw e;
        this.o.metrics.errors.inc({ kind: 'conflict' });
      }
    }
    throw new Error(`status of ${c.metadata.namespace}/${c.metadata.name}: ${String(STATUS_WRITE_ATTEMPTS)} conflicts in a row`);
  }

  // ---------- running EtcdBackups ----------

  private async consider(b: EtcdBackup): Promise<void> {
    const key = keyOf(b.metadata.namespace, b.metadata.name);
    if (b.metadata.deletionTimestamp !== undefined || this.running.has(key)) return;
    const phase = b.status?.phase ?? 'Pending';
    if (phase === 'Running') {
      await this.writeBackup(b, { ...b.status, phase: 'Failed', completionTime: new Date().toISOString(), message: 'interrupted: the operator stopped during the backup (its partial upload is swept by the next backup)' }, 'Failed', 'UploadFailed');
      return;
    }
    if (phase !== 'Pending') return;
    const release = this.slots.tryAcquire(keyOf(b.metadata.namespace, b.spec.clusterName));
    if (release === undefined) return; // another backup of this cluster runs: this one waits
    const run = this.run(b).finally(() => {
      release();
      this.running.delete(key);
      this.wake();
    });
    this.running.set(key, run);
  }

  private async run(b: EtcdBackup): Promise<void> {
    const ns = b.metadata.namespace;
    const start = new Date();
    const raw = this.o.clusters().find((x) => metaOf(x)['namespace'] === ns && metaOf(x)['name'] === b.spec.clusterName);
    const running: EtcdBackupStatus = { phase: 'Running', observedGeneration: b.metadata.generation, startTime: start.toISOString(), attempts: 0 };
    const fresh = await this.writeBackup(b, running);
    if (fresh === undefined) return; // changed meanwhile: the next tick looks again
    let cluster: EtcdCluster | undefined;
    try {
      if (raw === undefined) throw new BackupError('InvalidDestination', `EtcdCluster ${ns}/${b.spec.clusterName} does not exist`);
      cluster = parseCluster(raw);
      const dest = b.spec.destination ?? cluster.spec.backup?.destination;
      if (dest === undefined) throw new BackupError('InvalidDestination', `no destination: set spec.destination of the EtcdBackup or spec.backup.destination of EtcdCluster ${b.spec.clusterName}`);
      const result = await this.upload(cluster, raw, dest, b.spec.destination === undefined);
      await this.succeeded(fresh, cluster, result, start);
      if (b.spec.destination === undefined && cluster.spec.backup !== undefined) await this.pruneRecords(cluster, dest);
    } catch (e) {
      const err = e instanceof BackupError ? e : new BackupError('UploadFailed', messageOf(e), { cause: e });
      await this.failed(fresh, cluster, err, start);
    }
  }

  private async upload(c: EtcdCluster, raw: JsonObject, dest: BackupDestination, ownDestination: boolean): Promise<ClusterBackupResult> {
    // One deadline bounds the whole run (Secrets, observation, every member tried, retention): past it
    // the run fails with reason Timeout and run()'s caller releases the cluster's slot.
    const deadline = new RunDeadline(`backup of cluster ${c.metadata.namespace}/${c.metadata.name}`, this.o.backupTimeoutMs);
    try {
      return await this.uploadUnder(deadline, c, raw, dest, ownDestination);
    } finally {
      deadline.dispose();
    }
  }

  private async uploadUnder(deadline: RunDeadline, c: EtcdCluster, raw: JsonObject, dest: BackupDestination, ownDestination: boolean): Promise<ClusterBackupResult> {
    const d = dest.s3;
    const ref = d.credentialsSecretRef;
    const ca = d.caBundleSecretRef;
    const creds = ref !== undefined ? await deadline.run('reading the credentials Secret', () => this.credentials(c.metadata.namespace, ref)) : undefined;
    const caBundlePem = ca !== undefined ? await deadline.run('reading the CA bundle Secret', () => this.secretValue(c.metadata.namespace, ca.name, ca.key)) : undefined;
    const s3 = s3Client(
      {
        bucket: d.bucket,
        region: d.region,
        forcePathStyle: d.forcePathStyle,
        ...(d.prefix !== undefined ? { prefix: d.prefix } : {}),
        ...(d.endpoint !== undefined ? { endpoint: d.endpoint } : {}),
        ...(caBundlePem !== undefined ? { caBundlePem } : {}),
      },
      creds,
    );
    try {
      const obs = await deadline.run('observing the members', () => this.o.observe(raw));
      const members = candidatesOf(obs);
      const retention = ownDestination && c.spec.backup !== undefined ? retentionPolicy(c.spec.backup.retention) : undefined;
      const log = (line: Record<string, unknown>): void => {
        const { level, msg, ...rest } = line;
        this.o.log.log(level === 'error' || level === 'warn' || level === 'debug' ? level : 'info', typeof msg === 'string' ? msg : 'backup', rest);
      };
      return await backupCluster({
        s3,
        bucket: d.bucket,
        ...(d.prefix !== undefined ? { prefix: d.prefix } : {}),
        cluster: `${c.metadata.namespace}-${c.metadata.name}`,
        members,
        now: () => new Date(),
        log,
        ...(retention !== undefined ? { retention } : {}),
        ...memberCredentials(members.map((m) => m.endpoint)),
        deadline,
      });
    } finally {
      s3.destroy();
    }
  }

  private async secretValue(ns: string, name: string, key: string): Promise<string> {
    let secret: JsonObject;
    try {
      secret = await this.o.rest.get(pathOf('Secret', ns, name));
    } catch (e) {
      if (e instanceof KubeError && e.notFound) throw new BackupError('InvalidDestination', `Secret ${ns}/${name} does not exist`, { cause: e });
      throw e;
    }
    const data = (secret['data'] ?? {}) as Record<string, unknown>;
    const v = data[key];
    if (typeof v !== 'string') throw new BackupError('InvalidDestination', `Secret ${ns}/${name} has no key "${key}"`);
    return Buffer.from(v, 'base64').toString('utf8');
  }

  private async credentials(ns: string, ref: { name: string; accessKeyIdKey: string; secretAccessKeyKey: string }): Promise<S3Credentials> {
    return { accessKeyId: (await this.secretValue(ns, ref.name, ref.accessKeyIdKey)).trim(), secretAccessKey: (await this.secretValue(ns, ref.name, ref.secretAccessKeyKey)).trim() };
  }

  private async succeeded(b: EtcdBackup, c: EtcdCluster, r: ClusterBackupResult, start: Date): Promise<void> {
    const rec = r.record;
    const obs = c.status?.members ?? [];
    const member = obs.find((m) => m.id === rec.memberId)?.name ?? rec.memberId;
    const end = rec.end.toISOString();
    await this.writeBackup(
      b,
      {
        ...b.status,
        phase: 'Succeeded',
        uri: rec.uri,
        key: rec.key,
        size: rec.sizeBytes,
        sha256: rec.sha256,
        revision: rec.revision,
        member,
        serverVersion: rec.serverVersion,
        completionTime: end,
        attempts: r.attempts.length,
        message: `${String(rec.sizeBytes)} bytes from ${member}${r.pruned.length > 0 ? `; retention deleted ${String(r.pruned.length)} object(s)` : ''}`,
      },
      'Complete',
      'BackupSucceeded',
    );
    const seconds = (rec.end.getTime() - start.getTime()) / 1000;
    await this.updateCluster(c, (s) => {
      const prev = s.backup?.lastSuccessfulBackup;
      if (prev === undefined || Date.parse(prev.time) <= rec.end.getTime()) {
        s.backup = { ...(s.backup ?? {}), lastSuccessfulBackup: { name: b.metadata.name, uri: rec.uri, time: end, revision: rec.revision, size: rec.sizeBytes } };
      }
      return this.healthy(s, c, 'True', 'BackupSucceeded', `${b.metadata.name}: ${rec.uri} (${String(rec.sizeBytes)} bytes, revision ${String(rec.revision)}) in ${seconds.toFixed(1)} s`);
    });
    const labels = { namespace: c.metadata.namespace, name: c.metadata.name };
    this.o.metrics.backupLastSuccess.set(labels, rec.end.getTime() / 1000);
    this.o.metrics.backupDuration.set(labels, seconds);
    this.o.metrics.backupSize.set(labels, rec.sizeBytes);
    this.o.metrics.backups.inc(labels);
    this.o.log.log('info', 'backup succeeded', { backup: b.metadata.name, cluster: labels, uri: rec.uri, bytes: rec.sizeBytes, seconds, mbPerS: rec.sizeBytes / 1e6 / Math.max(seconds, 0.001), pruned: r.pruned });
    await this.event(c, 'Normal', 'BackupSucceeded', `${b.metadata.name}: ${rec.uri}, ${String(rec.sizeBytes)} bytes, revision ${String(rec.revision)}, from ${member}`);
  }

  private async failed(b: EtcdBackup, c: EtcdCluster | undefined, err: BackupError, start: Date): Promise<void> {
    const reason: BackupReason = err.reason;
    await this.writeBackup(b, { ...b.status, phase: 'Failed', completionTime: new Date().toISOString(), message: `${reason}: ${err.message}`.slice(0, 32_000) }, 'Failed', reason);
    this.o.metrics.backupFailures.inc({ namespace: b.metadata.namespace, name: b.spec.clusterName, reason });
    this.o.log.log('error', 'backup failed', { backup: b.metadata.name, cluster: b.spec.clusterName, reason, error: err.message, seconds: (Date.now() - start.getTime()) / 1000 });
    if (c === undefined) return;
    await this.updateCluster(c, (s) => this.healthy(s, c, 'False', reason, `${b.metadata.name}: ${err.message}`));
    await this.event(c, 'Warning', 'BackupFailed', `${b.metadata.name}: ${reason}: ${err.message}`);
  }

  /** Writes the EtcdBackup's status (PUT with its resourceVersion); undefined on a conflict. */
  private async writeBackup(b: EtcdBackup, status: EtcdBackupStatus, cond?: 'Complete' | 'Failed', reason?: string): Promise<EtcdBackup | undefined> {
    const next: EtcdBackupStatus = { ...status, observedGeneration: b.metadata.generation };
    if (cond !== undefined) {
      const c = { type: cond, status: 'True' as ConditionStatus, reason: reason ?? cond, message: (status.message ?? '').slice(0, 4096), observedGeneration: b.metadata.generation, lastTransitionTime: new Date().toISOString() };
      next.conditions = setCondition(b.status?.conditions ?? [], c);
    }
    const path = resourcePath(`${GROUP}/${VERSION}`, BACKUP_PLURAL, b.metadata.namespace, b.metadata.name);
    try {
      const out = await this.o.rest.put(`${path}/status`, { apiVersion: API_VERSION, kind: BACKUP_KIND, metadata: { name: b.metadata.name, namespace: b.metadata.namespace, resourceVersion: b.metadata.resourceVersion }, spec: b.spec, status: next });
      return parseBackup(out);
    } catch (e) {
      if (e instanceof KubeError && (e.conflict || e.notFound)) return undefined;
      throw e;
    }
  }

  /** Retention of the records (to the cluster's own destination): the record and its object. */
  private async pruneRecords(c: EtcdCluster, dest: BackupDestination): Promise<void> {
    const spec = c.spec.backup;
    if (spec === undefined) return;
    const mine = this.informer
      .list()
      .map(parseBackup)
      .filter((x) => x.metadata.namespace === c.metadata.namespace && x.spec.clusterName === c.metadata.name && x.spec.destination === undefined && x.metadata.deletionTimestamp === undefined);
    const gone = recordsToDelete(mine, retentionPolicy(spec.retention), Date.now());
    if (gone.length === 0) return;
    const creds = dest.s3.credentialsSecretRef !== undefined ? await this.credentials(c.metadata.namespace, dest.s3.credentialsSecretRef) : undefined;
    const d = dest.s3;
    const s3 = s3Client({ bucket: d.bucket, region: d.region, forcePathStyle: d.forcePathStyle, ...(d.endpoint !== undefined ? { endpoint: d.endpoint } : {}) }, creds);
    try {
      for (const x of gone) {
        if (x.status?.key !== undefined) await deleteBackup(s3, d.bucket, x.status.key);
        try {
          await this.o.rest.delete(pathOf(BACKUP_KIND, x.metadata.namespace, x.metadata.name));
        } catch (e) {
          if (!(e instanceof KubeError && e.notFound)) throw e;
        }
        this.o.log.log('info', 'retention deleted a backup', { cluster: c.metadata.name, backup: x.metadata.name, key: x.status?.key });
      }
    } finally {
      s3.destroy();
    }
  }

  private async event(c: EtcdCluster, type: 'Normal' | 'Warning', reason: string, note: string): Promise<void> {
    const err = await recordEvent({ rest: this.o.rest, cluster: c, endpoints: new Map(), leaderId: undefined, instance: this.o.instance }, type, reason, 'Backup', note);
    if (err !== undefined) this.o.log.log('warn', 'event not recorded', { reason, error: messageOf(err) });
  }
}

/** Whether the mutated status equals the old one except for condition transition times. */
function sameIgnoringTimes(before: string, after: EtcdClusterStatus): boolean {
  const strip = (s: EtcdClusterStatus): unknown => ({ ...s, conditions: (s.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: '' })) });
  return JSON.stringify(strip(JSON.parse(before) as EtcdClusterStatus)) === JSON.stringify(strip(after));
}

/** spec.auth/TLS: the channel credentials (token on every call) of the access the auth manager registered for the members. */
function memberCredentials(endpoints: readonly string[]): { memberCredentials?: ReturnType<NonNullable<ReturnType<typeof accessFor>>['callChannelCredentials']> } {
  const ep = endpoints.find((e) => accessFor(e) !== undefined);
  const access = ep === undefined ? undefined : accessFor(ep);
  if (ep === undefined || access === undefined) return {};
  return { memberCredentials: access.callChannelCredentials(() => new EtcdAdmin(ep, CALL_TIMEOUT_MS, access)) };
}
