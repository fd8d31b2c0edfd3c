// Observation of one EtcdCluster: its Kubernetes objects from the informer caches (parsed at this
// gate into the planner's plain types) and the members' view through the etcd API (the member
// list from any running pod, then each member's Status at its pod's IP), gathered once per reconcile.
import { API_VERSION, KIND, parseQuantity, withDefaults, type EtcdCluster, type Json, type JsonObject } from '../api/index.js';
import { EtcdAdmin } from '../etcd/index.js';
import type { KindInformer } from '../kube/index.js';
import {
  AGENT_PORT,
  BOOTSTRAP_ANNOTATION,
  CLIENT_PORT,
  HASH_ANNOTATION,
  ordinalOfName,
  ordinalOfPeerUrl,
  type Observed,
  type MemberState,
  type ObservedAlarm,
  type ObservedMember,
  type ObservedPod,
  type ObservedPvc,
  type ObservedStatefulSet,
  type PlanSettings,
} from '../plan/index.js';

import { defragDue, restoreSource } from './upkeep.js';

export const MEMBER_CALL_TIMEOUT_MS = 3000;

export interface Caches {
  clusters: KindInformer;
  statefulSets: KindInformer;
  pods: KindInformer;
  pvcs: KindInformer;
  services: KindInformer;
  pdbs: KindInformer;
  serviceAccounts: KindInformer;
  roleBindings: KindInformer;
  /** EtcdBackups (a restore's backupRef names one). */
  backups?: KindInformer;
}

const obj = (v: Json | undefined): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {});
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
const str = (v: Json | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: Json | undefined): number | undefined => (typeof v === 'number' ? v : undefined);

export function metaOf(o: JsonObject): JsonObject {
  return obj(o['metadata']);
}

/** The EtcdCluster as typed data (spec defaulted; status as we wrote it). */
export function parseCluster(o: JsonObject): EtcdCluster {
  const m = metaOf(o);
  const c: EtcdCluster = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: str(m['name']) ?? '', namespace: str(m['namespace']) ?? '', uid: str(m['uid']) ?? '', generation: num(m['generation']) ?? 0 },
    spec: withDefaults(o['spec']),
  };
  const rv = str(m['resourceVersion']);
  if (rv !== undefined) c.metadata.resourceVersion = rv;
  const del = str(m['deletionTimestamp']);
  if (del !== undefined) c.metadata.deletionTimestamp = del;
  // The cairn.dev/ annotations only (a quorum-loss recovery's approval, plan/recover.ts).
  const ann = Object.entries(obj(m['annotations'])).filter((e): e is [string, string] => e[0].startsWith('cairn.dev/') && typeof e[1] === 'string');
  if (ann.length > 0) c.metadata.annotations = Object.fromEntries(ann);
  if (o['status'] !== undefined) c.status = obj(o['status']);
  return c;
}

function inNamespace(list: JsonObject[], ns: string): JsonObject[] {
  return list.filter((o) => metaOf(o)['namespace'] === ns);
}

function ownedBy(o: JsonObject, uid: string): boolean {
  return arr(metaOf(o)['ownerReferences']).some((r) => obj(r)['uid'] === uid);
}

function hashOfObject(o: JsonObject): string | undefined {
  return str(obj(metaOf(o)['annotations'])[HASH_ANNOTATION]);
}

function parsePod(cluster: string, o: JsonObject): (ObservedPod & { ip?: string }) | undefined {
  const m = metaOf(o);
  const name = str(m['name']) ?? '';
  const ordinal = ordinalOfName(cluster, name);
  if (ordinal === undefined) return undefined;
  const spec = obj(o['spec']);
  const status = obj(o['status']);
  const container = arr(spec['containers']).map(obj).find((c) => c['name'] === 'cairn');
  const cs = arr(status['containerStatuses']).map(obj).find((c) => c['name'] === 'cairn');
  const ready = arr(status['conditions']).map(obj).some((c) => c['type'] === 'Ready' && c['status'] === 'True');
  const grant = str(obj(m['annotations'])[BOOTSTRAP_ANNOTATION]);
  const ip = str(status['podIP']);
  const pod: ObservedPod & { ip?: string } = {
    name,
    ordinal,
    phase: str(status['phase']) ?? 'Unknown',
    ready,
    image: str(container?.['image']) ?? '',
    revision: str(obj(m['labels'])['controller-revision-hash']) ?? '',
    restarts: num(cs?.['restartCount']) ?? 0,
    deleting: m['deletionTimestamp'] !== undefined,
    createdAt: str(m['creationTimestamp']) ?? new Date(0).toISOString(),
  };
  if (grant !== undefined) pod.bootstrapGrant = grant;
  if (ip !== undefined) pod.ip = ip;
  // Why the entrypoint last exited (its termination message: a failed restore says why).
  const term = obj(obj(cs?.['lastState'])['terminated']);
  const exitCode = num(term['exitCode']);
  if (exitCode !== undefined && exitCode !== 0) pod.lastTermination = { exitCode, message: str(term['message']) ?? '' };
  return pod;
}

function parsePvc(cluster: string, o: JsonObject): ObservedPvc | undefined {
  const m = metaOf(o);
  const name = str(m['name']) ?? '';
  const hit = /^(data|wal)-(.+)$/.exec(name);
  if (hit === null) return undefined;
  const volume = hit[1] === 'data' ? 'data' : 'wal';
  const ordinal = ordinalOfName(cluster, hit[2] ?? '');
  if (ordinal === undefined) return undefined;
  const req = str(obj(obj(obj(o['spec'])['resources'])['requests'])['storage']) ?? '0';
  let requestBytes = 0;
  try {
    requestBytes = parseQuantity(req);
  } catch {
    requestBytes = 0;
  }
  return { name, ordinal, volume, requestBytes, deleting: m['deletionTimestamp'] !== undefined, createdAt: str(m['creationTimestamp']) ?? new Date(0).toISOString() };
}

function parseStatefulSet(o: JsonObject): ObservedStatefulSet {
  const m = metaOf(o);
  const spec = obj(o['spec']);
  const status = obj(o['status']);
  const claims = arr(spec['volumeClaimTemplates']).map(obj);
  const size = (n: string): string => str(obj(obj(obj(claims.find((c) => metaOf(c)['name'] === n)?.['spec'])['resources'])['requests'])['storage']) ?? '1Gi';
  const settled = (num(status['observedGeneration']) ?? -1) >= (num(m['generation']) ?? 0);
  const out: ObservedStatefulSet = { replicas: num(spec['replicas']) ?? 0, hash: hashOfObject(o) ?? '', claimSizes: { data: size('data'), wal: size('wal') } };
  const rev = str(status['updateRevision']);
  if (settled && rev !== undefined) out.updateRevision = rev;
  return out;
}

export interface KubeView {
  cluster: EtcdCluster;
  objects: Record<string, string>;
  statefulSet?: ObservedStatefulSet;
  pods: Array<ObservedPod & { ip?: string }>;
  pvcs: ObservedPvc[];
}

/** The cluster's Kubernetes objects from the caches. */
export function kubeView(caches: Caches, raw: JsonObject): KubeView {
  const cluster = parseCluster(raw);
  const { name, namespace, uid } = cluster.metadata;
  const objects: Record<string, string> = {};
  const kinds: Array<[KindInformer, string]> = [
    [caches.services, 'Service'],
    [caches.pdbs, 'PodDisruptionBudget'],
    [caches.serviceAccounts, 'ServiceAccount'],
    [caches.roleBindings, 'RoleBinding'],
  ];
  for (const [inf, kind] of kinds) {
    for (const o of inNamespace(inf.list(), namespace)) {
      const h = hashOfObject(o);
      if (ownedBy(o, uid) && h !== undefined) objects[`${kind}/${str(metaOf(o)['name']) ?? ''}`] = h;
    }
  }
  const sts = inNamespace(caches.statefulSets.list(), namespace).find((o) => metaOf(o)['name'] === name && ownedBy(o, uid));
  const pods = inNamespace(caches.pods.list(), namespace).flatMap((o) => {
    const p = parsePod(name, o);
    return p === undefined || obj(metaOf(o)['labels'])['app.kubernetes.io/instance'] !== name ? [] : [p];
  });
  const pvcs = inNamespace(caches.pvcs.list(), namespace).flatMap((o) => {
    const p = parsePvc(name, o);
    return p === undefined || obj(metaOf(o)['labels'])['app.kubernetes.io/instance'] !== name ? [] : [p];
  });
  const v: KubeView = { cluster, objects, pods, pvcs };
  if (sts !== undefined) v.statefulSet = parseStatefulSet(sts);
  return v;
}

async function withAdmin<T>(endpoint: string, fn: (c: EtcdAdmin) => Promise<T>): Promise<T | undefined> {
  const c = new EtcdAdmin(endpoint, MEMBER_CALL_TIMEOUT_MS);
  try {
    return await fn(c);
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}

type Listed = Awaited<ReturnType<EtcdAdmin['memberList']>>;

/** The first answer of `list` from the pods (ready ones first) and the endpoint that gave it. */
async function firstList(k: KubeView, linearizable: boolean): Promise<{ listed: Listed; via: string } | undefined> {
  const candidates = k.pods.filter((p) => p.ready && p.ip !== undefined).concat(k.pods.filter((p) => !p.ready && p.ip !== undefined));
  for (const p of candidates) {
    const via = `${p.ip ?? ''}:${String(CLIENT_PORT)}`;
    const listed = await withAdmin(via, (c) => c.memberList(linearizable));
    if (listed !== undefined) return { listed, via };
  }
  return undefined;
}

/** Each listed member with its own Status answer (asked at its pod's IP). */
function withStatuses(k: KubeView, listed: Listed): Promise<ObservedMember[]> {
  const { name, namespace } = k.cluster.metadata;
  const endpointOf = (ordinal: number): string | undefined => {
    const ip = k.pods.find((p) => p.ordinal === ordinal && !p.deleting)?.ip;
    return ip === undefined ? undefined : `${ip}:${String(CLIENT_PORT)}`;
  };
  return Promise.all(
    listed.members.map(async (m): Promise<ObservedMember> => {
      const peerURL = m.peerURLs[0] ?? '';
      const base: ObservedMember = { id: m.id, name: m.name, peerURL, learner: m.isLearner };
      const ordinal = ordinalOfPeerUrl(name, namespace, peerURL);
      const ep = ordinal === undefined ? undefined : endpointOf(ordinal);
      if (ep === undefined || m.name === '') return base;
      const s = await withAdmin(ep, (c) => c.status());
      if (s === undefined || s.memberId !== m.id) return base;
      return { ...base, status: { leader: s.leader, raftIndex: s.raftIndex, raftAppliedIndex: s.raftAppliedIndex, dbSize: s.dbSize, dbSizeInUse: s.dbSizeInUse, revision: s.revision, errors: s.errors } };
    }),
  );
}

/**
 * The members as the cluster reports them (a linearizable list), each with its own Status
 * (undefined: no answer). When no member answers the linearizable list (no quorum), the list one
 * member knows on its own, with the Statuses, as localMembers (quorum-loss reporting only).
 */
export async function memberView(k: KubeView): Promise<{ members?: ObservedMember[]; clusterId?: string; alarms?: ObservedAlarm[]; localMembers?: ObservedMember[] }> {
  const first = await firstList(k, true);
  if (first === undefined) {
    const local = await firstList(k, false);
    return local === undefined ? {} : { localMembers: await withStatuses(k, local.listed) };
  }
  const alarms = await withAdmin(first.via, (c) => c.alarmList());
  const members = await withStatuses(k, first.listed);
  return { members, clusterId: first.listed.clusterId, ...(alarms !== undefined ? { alarms } : {}) };
}

export const AGENT_CALL_TIMEOUT_MS = 1500;

/** The member entrypoint's state from its agent port (undefined: no answer). */
async function agentState(ip: string): Promise<MemberState | undefined> {
  try {
    const r = await fetch(`http://${ip}:${String(AGENT_PORT)}/state`, { signal: AbortSignal.timeout(AGENT_CALL_TIMEOUT_MS) });
    const j = (await r.json()) as { state?: unknown };
    return j.state === 'waiting' || j.state === 'dataLost' || j.state === 'running' ? j.state : undefined;
  } catch {
    return undefined;
  }
}

/** One full observation. */
export async function observe(caches: Caches, raw: JsonObject, now: string, defaultImage: string, settings: PlanSettings): Promise<Observed> {
  const k = kubeView(caches, raw);
  const [mv] = await Promise.all([
    memberView(k),
    ...k.pods.map(async (p) => {
      if (p.ip === undefined || p.deleting) return;
      const st = await agentState(p.ip);
      if (st !== undefined) p.memberState = st;
    }),
  ]);
  const o: Observed = { now, cluster: k.cluster, objects: k.objects, pods: k.pods, pvcs: k.pvcs, defaultImage, settings };
  if (k.statefulSet !== undefined) o.statefulSet = k.statefulSet;
  if (mv.members !== undefined) o.members = mv.members;
  if (mv.clusterId !== undefined) o.clusterId = mv.clusterId;
  if (mv.alarms !== undefined) o.alarms = mv.alarms;
  if (mv.localMembers !== undefined) o.localMembers = mv.localMembers;
  o.defragDue = defragDue(k.cluster, str(metaOf(raw)['creationTimestamp']), now);
  const source = restoreSource(k.cluster, caches.backups?.list(), caches.clusters.list().map(parseCluster));
  if (source !== undefined) o.restoreSource = source;
  return o;
}
