// Shared by the membership tests: the targets every scenario runs on (Cairn, and the references
// etcd 3.4 (Debian's) and etcd 3.6 (built by hack/install-kube.sh), whose answers are the oracle),
// Cluster API calls reduced to comparable outcomes, and the grow/shrink steps an operator takes.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { statusName } from '../harness/client.js';
import type { CallResult, Msg } from '../harness/client.js';
import type { Cluster, ClusterMember, ClusterOptions } from '../harness/cluster.js';
import { etcd36Bin, etcdBin } from '../harness/bins.js';
import { missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import type { TargetKind } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';

export interface Target {
  /** 'cairn', 'etcd-3.4' or 'etcd-3.6'. */
  readonly label: string;
  readonly kind: TargetKind;
  /** etcd only: resolves the binary (throws MissingPrerequisite when it is not installed). */
  readonly bin?: () => string;
}

/** The targets of a differential test: Cairn and the references etcd 3.4 (Debian's) and etcd 3.6 (hack/install-kube.sh). */
export const TARGETS: readonly Target[] = [
  { label: 'cairn', kind: 'cairn' },
  { label: 'etcd-3.4', kind: 'etcd', bin: etcdBin },
  { label: 'etcd-3.6', kind: 'etcd', bin: etcd36Bin },
];

/**
 * The cluster options of a target, or undefined when its binary is missing (the test is then
 * skipped with the reason, or fails under CI=true: test/harness/prereq.ts).
 */
export function clusterOpts(tc: TestContext, t: Target, opts: ClusterOptions): ClusterOptions | undefined {
  const bin = t.bin;
  if (bin === undefined) return opts;
  let path = '';
  const missing = missingPrerequisite(() => (path = bin()));
  if (missing !== undefined) {
    skipOrFail(tc, missing);
    return undefined;
  }
  return { ...opts, etcdBin: path };
}

/** A Cluster API answer as one comparable string: "ok" or "<CODE> <details>". */
export function outcome(r: CallResult<Msg>): string {
  return r.ok ? 'ok' : `${statusName(r.code)} ${r.details}`;
}

export const NOT_ENOUGH_STARTED = 'UNKNOWN etcdserver: re-configuration failed due to not enough started members';
export const UNHEALTHY = 'UNAVAILABLE etcdserver: unhealthy cluster';
export const LEARNER_NOT_READY = 'FAILED_PRECONDITION etcdserver: can only promote a learner member which is in sync with leader';

const RECONFIG_RETRY_MS = 20_000;
const CALL_MS = 10_000;

export function memberAdd(c: Cluster, via: string, peerUrl: string, learner: boolean): Promise<CallResult<Msg>> {
  return c.client(via).unary('Cluster', 'MemberAdd', { peerURLs: [peerUrl], isLearner: learner }, { timeoutMs: CALL_MS });
}

export function memberRemove(c: Cluster, via: string, id: string): Promise<CallResult<Msg>> {
  return c.client(via).unary('Cluster', 'MemberRemove', { ID: id }, { timeoutMs: CALL_MS });
}

export function memberPromote(c: Cluster, via: string, id: string): Promise<CallResult<Msg>> {
  return c.client(via).unary('Cluster', 'MemberPromote', { ID: id }, { timeoutMs: CALL_MS });
}

/** Repeats a call while it answers `retryOn` (a transient refusal), up to RECONFIG_RETRY_MS; returns the last answer. */
export async function retryWhile(retryOn: readonly string[], call: () => Promise<CallResult<Msg>>, ms = RECONFIG_RETRY_MS): Promise<CallResult<Msg>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await call();
    if (!retryOn.includes(outcome(r)) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** The member id (decimal string) a MemberAdd answer gives the new member. */
export function addedId(r: CallResult<Msg>): string {
  assert.ok(r.ok, `MemberAdd: ${outcome(r)}`);
  const m = r.value['member'];
  const id = typeof m === 'object' && m !== null ? (m as Msg)['ID'] : undefined;
  assert.ok(typeof id === 'string' && id !== '0', `MemberAdd answer without a member id: ${JSON.stringify(r.value)}`);
  return id;
}

/**
 * What `etcdctl member add` prints as ETCD_INITIAL_CLUSTER: every member of the list (the new one,
 * still nameless, under `name`) with its peer URLs.
 */
export async function initialClusterAfterAdd(c: Cluster, name: string, peerUrl: string): Promise<string> {
  // MemberList answers from the member asked (not linearizable): one that has not applied the add yet
  // leaves the new member out, and etcd then refuses to start it ("couldn't find local name").
  let list = await c.memberList();
  await pollUntil(`the member list naming ${peerUrl}`, async () => (list = await c.memberList()).some((m) => m.peerURLs.includes(peerUrl)), 10_000, 50);
  return list.flatMap((m) => m.peerURLs.map((p) => `${p === peerUrl ? name : m.name}=${p}`)).join(',');
}

/**
 * The operator's scale-up step: MemberAdd (voter or learner; retried while etcd's strict check says
 * "unhealthy cluster"), then the new member started with --initial-cluster-state existing.
 */
export async function addAndStart(c: Cluster, via: string, name: string, learner: boolean): Promise<{ member: ClusterMember; id: string }> {
  const m = await c.reserve(name);
  const r = await retryWhile([UNHEALTHY], () => memberAdd(c, via, m.peerUrl, learner));
  const id = addedId(r);
  const ic = await initialClusterAfterAdd(c, name, m.peerUrl);
  await c.startNew(name, ic, 'existing');
  return { member: m, id };
}

/**
 * Promotes a learner once it has caught up (retried while the leader says it is not in sync, or
 * unhealthy), then waits until the member itself has applied its promotion (its Status says voter).
 */
export async function promoteWhenReady(c: Cluster, via: string, name: string, id: string): Promise<void> {
  const r = await retryWhile([LEARNER_NOT_READY, UNHEALTHY], () => memberPromote(c, via, id));
  assert.equal(outcome(r), 'ok', `MemberPromote ${name}`);
  await pollUntil(`${name} applying its promotion`, async () => (await c.status(name))?.isLearner === false, 10_000, 50);
}

/** A Put through one member and a linearizable Range of it through every running member. */
export async function writeAndReadEverywhere(c: Cluster, via: string, key: string, value: string): Promise<void> {
  const put = await c.client(via).put({ key: Buffer.from(key), value: Buffer.from(value) });
  assert.equal(outcome(put), 'ok', `Put ${key} via ${via}`);
  for (const m of c.running()) {
    let got = '';
    await pollUntil(
      `${key}=${value} on ${m.name}`,
      async () => {
        const r = await c.client(m.name).range({ key: Buffer.from(key) });
        const kvs = r.ok && Array.isArray(r.value['kvs']) ? (r.value['kvs'] as Msg[]) : [];
        got = r.ok ? Buffer.from((kvs[0]?.['value'] as Buffer | undefined) ?? Buffer.alloc(0)).toString() : outcome(r);
        return got === value;
      },
      15_000,
      100,
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)} (last: ${got})`);
    });
  }
}

/** Voters and learners by name, sorted, from the member list (nameless = "<unstarted>"). */
export async function roster(c: Cluster): Promise<string[]> {
  const list = await c.memberList();
  return list.map((m) => `${m.name === '' ? '<unstarted>' : m.name}${m.isLearner ? ' (learner)' : ''}`).sort();
}

/** Polls the member list (a member answers from what it has applied) until roster() equals `want`. */
export async function expectRoster(c: Cluster, want: readonly string[], why = 'member list'): Promise<void> {
  let got: string[] = [];
  await pollUntil(
    `${why}: ${want.join(', ')}`,
    async () => {
      got = await roster(c);
      return JSON.stringify(got) === JSON.stringify([...want].sort());
    },
    10_000,
    100,
  ).catch(() => assert.deepEqual(got, [...want].sort(), why));
}
