// Helpers of the upkeep, restore and quorum-loss e2e files (test/operator/e2e/{upkeep,restore,quorum-loss}.test.ts): an
// EtcdCluster's status read through kubectl and polled until a predicate holds, its conditions,
// and its Events in time order.
import type { TestContext } from 'node:test';
import { join } from 'node:path';
import { pollUntil } from '../../harness/poll.js';
import { localkubeImage, localkubeMissing, type LocalKube } from '../../harness/localkube.js';
import { REPO_ROOT } from '../../harness/procs.js';
import { skipOrFail } from '../../harness/prereq.js';

/** False (the test skipped, or failed under CI) when a localkube prerequisite is missing. */
export function needLocalkube(t: TestContext): boolean {
  const missing = localkubeMissing();
  if (missing === undefined) return true;
  skipOrFail(t, missing);
  return false;
}

export type Obj = Record<string, unknown>;
export const asObj = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});

export interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}

export async function statusOf(lk: LocalKube, ns: string, name: string): Promise<Obj> {
  const r = await lk.kubectl(['get', 'etcdcluster', '-n', ns, name, '-o', 'json']);
  return r.code === 0 ? asObj((JSON.parse(r.stdout) as Obj)['status']) : {};
}

export function condOf(st: Obj, type: string): Cond | undefined {
  return ((st['conditions'] ?? []) as Cond[]).find((c) => c.type === type);
}

/** Polls the status until `pred` holds; the failure names the last status and the operator's log tail. */
export async function waitStatus(lk: LocalKube, ns: string, name: string, what: string, pred: (st: Obj) => boolean, timeoutMs: number): Promise<Obj> {
  let last: Obj = {};
  await pollUntil(
    `${ns}/${name}: ${what}`,
    async () => {
      last = await statusOf(lk, ns, name);
      return pred(last);
    },
    timeoutMs,
    500,
  ).catch(async (e: unknown) => {
    const log = await lk.kubectl(['-n', 'cairn-system', 'logs', 'deploy/cairn-operator', '--tail=25']);
    throw new Error(`${String(e)}\nstatus: ${JSON.stringify(last)}\noperator log tail:\n${log.stdout}`);
  });
  return last;
}

/** Available, `voters` healthy voters, no operation, phase Running. */
export function availableWith(voters: number): (st: Obj) => boolean {
  return (st) => {
    const members = (st['members'] ?? []) as Obj[];
    return condOf(st, 'Available')?.status === 'True' && st['operation'] === undefined && st['phase'] === 'Running' && members.length === voters && members.every((m) => m['healthy'] === true && m['learner'] === false);
  };
}

export interface ClusterEvent {
  reason: string;
  note: string;
  time: string;
}

/** The EtcdCluster's Events, oldest first. */
export async function eventsOf(lk: LocalKube, ns: string, name: string): Promise<ClusterEvent[]> {
  const out = await lk.kubectlOk(['get', 'events.events.k8s.io', '-n', ns, '--field-selector', `regarding.name=${name},regarding.kind=EtcdCluster`, '-o', 'json']);
  const items = ((JSON.parse(out) as Obj)['items'] ?? []) as Obj[];
  return items.map((e) => ({ reason: String(e['reason']), note: String(e['note']), time: typeof e['eventTime'] === 'string' ? e['eventTime'] : '' })).sort((a, b) => a.time.localeCompare(b.time));
}

/** A 3-member EtcdCluster on 256Mi volumes (the WAL on local-nvme) with `spec` merged in. */
export function clusterManifest(ns: string, name: string, reclaimPolicy: 'Retain' | 'Delete', spec: Obj = {}): string {
  const storage = { data: { size: '256Mi' }, wal: { size: '256Mi', storageClassName: 'local-nvme' }, reclaimPolicy };
  return JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name, namespace: ns }, spec: { replicas: 3, storage, ...spec } });
}

/** The operator of this checkout on localkube: image built and imported, CRDs and RBAC applied, the Deployment cairn-operator restarted on it. */
export async function deployCheckoutOperator(lk: LocalKube, t: TestContext): Promise<void> {
  t.diagnostic(`image built and imported in ${String(await localkubeImage('localhost/cairn:dev'))} s`);
  await lk.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', join(REPO_ROOT, 'crds')]);
  await lk.kubectlOk(['apply', '-f', join(REPO_ROOT, 'operator', 'manifests', '01-rbac.yaml')]);
  await lk.kubectlOk(['-n', 'cairn-system', 'rollout', 'restart', 'deploy/cairn-operator']);
  await lk.kubectlOk(['-n', 'cairn-system', 'rollout', 'status', 'deploy/cairn-operator', '--timeout=180s'], { timeoutMs: 200_000 });
}
