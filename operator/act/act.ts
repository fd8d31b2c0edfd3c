// The executor: performs ONE planned step (a Kubernetes write or an etcd admin call) and records a
// Kubernetes Event for it (Normal when done, Warning when it failed). Steps that only change the
// status (journal, endOperation, wait, none) have nothing to do here: the controller writes status.
import type { EtcdCluster, JsonObject } from '../api/index.js';
import { DEFRAG_TIMEOUT_MS, EtcdAdmin, EtcdCallError } from '../etcd/index.js';
import { pathOf, type KubeRest } from '../kube/index.js';
import { BOOTSTRAP_ANNOTATION, FIELD_MANAGER, text, type Step } from '../plan/index.js';
import { consumeApproval, recoverySnapshot } from './recover.js';
import { verifyBackup } from './verify.js';

export const ADMIN_CALL_TIMEOUT_MS = 10_000;
export const EVENT_NOTE_BYTES_MAX = 1024;

export interface ActContext {
  rest: KubeRest;
  cluster: EtcdCluster;
  /** host:port of each member's client endpoint by member id (pods' IPs). */
  endpoints: ReadonlyMap<string, string>;
  /** The leader's id, if known. */
  leaderId: string | undefined;
  /** This operator's pod name (reportingInstance). */
  instance: string;
}

export class StepFailed extends Error {
  override readonly name = 'StepFailed';
}

/** Whether a step changes the world (and so gets an Event). */
export function isAction(step: Step): boolean {
  return !['none', 'wait', 'journal', 'endOperation'].includes(step.kind);
}

function adminEndpoints(ctx: ActContext): string[] {
  const leader = ctx.leaderId === undefined ? undefined : ctx.endpoints.get(ctx.leaderId);
  const rest = [...ctx.endpoints.values()].filter((e) => e !== leader);
  return leader === undefined ? rest : [leader, ...rest];
}

async function withMembers<T>(ctx: ActContext, fn: (c: EtcdAdmin) => Promise<T>, endpoints = adminEndpoints(ctx)): Promise<T> {
  let last: unknown = new StepFailed('no member endpoint');
  for (const ep of endpoints) {
    const c = new EtcdAdmin(ep, ADMIN_CALL_TIMEOUT_MS);
    try {
      return await fn(c);
    } catch (e) {
      last = e;
    } finally {
      c.close();
    }
  }
  throw last;
}

/** A step's outcome: what the Event says; `refused`: the step ran but its answer is a refusal (Warning). */
interface Done {
  note: string;
  refused?: boolean;
}

/** A compaction at a revision already compacted (by auto-compaction, say) has nothing left to do. */
function alreadyCompacted(e: unknown): boolean {
  return e instanceof EtcdCallError && /required revision has been compacted/.test(e.details);
}

async function upkeep(ctx: ActContext, step: Extract<Step, { kind: 'compact' | 'defragment' | 'disarmAlarm' }>): Promise<string> {
  switch (step.kind) {
    case 'compact':
      try {
        await withMembers(ctx, (c) => c.compact(step.revision, true));
        return `compacted the key history at revision ${String(step.revision)} (${step.why})`;
      } catch (e) {
        if (alreadyCompacted(e)) return `revision ${String(step.revision)} was already compacted (${step.why})`;
        throw e;
      }
    case 'defragment': {
      const ep = ctx.endpoints.get(step.id);
      if (ep === undefined) throw new StepFailed(`no endpoint for ${step.member} (${step.id})`);
      const c = new EtcdAdmin(ep, ADMIN_CALL_TIMEOUT_MS);
      const t0 = Date.now();
      try {
        await c.defragment(DEFRAG_TIMEOUT_MS);
      } finally {
        c.close();
      }
      return `defragmented ${step.member} (${step.id}) in ${String(Date.now() - t0)} ms (${step.why})`;
    }
    case 'disarmAlarm':
      await withMembers(ctx, (c) => c.alarmDisarm({ memberId: step.memberId, alarm: step.alarm }));
      return `disarmed the ${step.alarm} alarm of member ${step.memberId}`;
  }
}

async function perform(ctx: ActContext, step: Step): Promise<Done> {
  // Nothing to do but the Warning Event itself.
  if (step.kind === 'warn') return { note: step.note, refused: true };
  if (step.kind === 'note') return { note: step.note, refused: step.type === 'Warning' };
  const { namespace, name } = ctx.cluster.metadata;
  if (step.kind === 'recoverySnapshot') return { note: await recoverySnapshot(ctx.rest, namespace, name, step) };
  if (step.kind === 'consumeApproval') return { note: `${step.note}; ${await consumeApproval(ctx.rest, namespace, name, step.value)}` };
  if (step.kind === 'compact' || step.kind === 'defragment' || step.kind === 'disarmAlarm') return { note: await upkeep(ctx, step) };
  if (step.kind === 'verifyBackup') {
    const r = await verifyBackup(ctx.rest, ctx.cluster.metadata.namespace, ctx.cluster.metadata.name, step);
    return { note: r.note, refused: !r.ok };
  }
  return { note: await change(ctx, step) };
}

async function change(ctx: ActContext, step: Exclude<Step, { kind: 'compact' | 'defragment' | 'disarmAlarm' | 'verifyBackup' | 'warn' | 'note' | 'recoverySnapshot' | 'consumeApproval' }>): Promise<string> {
  const ns = ctx.cluster.metadata.namespace;
  const { rest } = ctx;
  switch (step.kind) {
    case 'none':
    case 'wait':
    case 'journal':
    case 'endOperation':
      return '';
    case 'apply': {
      const md = step.object['metadata'] as JsonObject;
      const kind = text(step.object['kind']);
      await rest.apply(pathOf(kind, ns, text(md['name'])), step.object, FIELD_MANAGER);
      return `applied ${kind}/${text(md['name'])}`;
    }
    case 'grantBootstrap':
      await rest.merge(pathOf('Pod', ns, step.pod), { metadata: { annotations: { [BOOTSTRAP_ANNOTATION]: step.token } } });
      return `granted ${step.pod} the bootstrap of a new one-member cluster`;
    case 'revokeBootstrap':
      await rest.merge(pathOf('Pod', ns, step.pod), { metadata: { annotations: { [BOOTSTRAP_ANNOTATION]: null } } });
      return `revoked the bootstrap grant of ${step.pod}`;
    case 'memberAddLearner': {
      const id = await withMembers(ctx, (c) => c.memberAddLearner(step.peerURL));
      return `added ${step.member} as learner ${id} (${step.peerURL})`;
    }
    case 'memberPromote':
      await withMembers(ctx, (c) => c.memberPromote(step.id));
      return `promoted ${step.member} (${step.id}) to voter`;
    case 'memberRemove':
      await withMembers(ctx, (c) => c.memberRemove(step.id));
      return `removed ${step.member} (${step.id}) from the cluster`;
    case 'moveLeader': {
      const ep = ctx.endpoints.get(step.from);
      if (ep === undefined) throw new StepFailed(`no endpoint for the leader ${step.from}`);
      await withMembers(ctx, (c) => c.moveLeader(step.to), [ep]);
      return `moved leadership from ${step.from} to ${step.toMember} (${step.to})`;
    }
    case 'scaleStatefulSet':
      await rest.merge(`${pathOf('StatefulSet', ns, ctx.cluster.metadata.name)}?fieldManager=${FIELD_MANAGER}`, { spec: { replicas: step.replicas } });
      return `scaled the StatefulSet to ${String(step.replicas)}`;
    case 'deletePod':
      await rest.delete(pathOf('Pod', ns, step.pod));
      return `deleted pod ${step.pod}`;
    case 'deletePvc':
      await rest.delete(pathOf('PersistentVolumeClaim', ns, step.pvc));
      return `deleted claim ${step.pvc}`;
    case 'resizePvc':
      await rest.merge(pathOf('PersistentVolumeClaim', ns, step.pvc), { spec: { resources: { requests: { storage: step.size } } } });
      return `resized claim ${step.pvc} to ${step.size}`;
  }
}

const REASONS: Readonly<Record<string, string>> = {
  apply: 'Applied',
  grantBootstrap: 'BootstrapGranted',
  revokeBootstrap: 'BootstrapRevoked',
  memberAddLearner: 'MemberAdded',
  memberPromote: 'MemberPromoted',
  memberRemove: 'MemberRemoved',
  moveLeader: 'LeaderMoved',
  scaleStatefulSet: 'Scaled',
  deletePod: 'PodDeleted',
  deletePvc: 'VolumeDeleted',
  resizePvc: 'VolumeResized',
  compact: 'Compacted',
  defragment: 'Defragmented',
  disarmAlarm: 'AlarmDisarmed',
  verifyBackup: 'BackupVerified',
  recoverySnapshot: 'RecoverySnapshotTaken',
  consumeApproval: 'RecoveryCompleted',
};

function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Records an events.k8s.io/v1 Event about the EtcdCluster; failures to record are returned, not thrown. */
export async function recordEvent(ctx: ActContext, type: 'Normal' | 'Warning', reason: string, action: string, note: string): Promise<unknown> {
  const c = ctx.cluster.metadata;
  const ev = {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { generateName: `${c.name}-`, namespace: c.namespace },
    eventTime: microTime(new Date()),
    reportingController: 'cairn.dev/operator',
    reportingInstance: ctx.instance,
    action,
    reason,
    note: note.slice(0, EVENT_NOTE_BYTES_MAX),
    type,
    regarding: { apiVersion: ctx.cluster.apiVersion, kind: ctx.cluster.kind, name: c.name, namespace: c.namespace, uid: c.uid },
  };
  try {
    await ctx.rest.post(pathOf('Event', c.namespace), ev);
    return undefined;
  } catch (e) {
    return e;
  }
}

/** Performs the step; an Event says what happened (or why it failed). Throws the failure. */
export async function act(ctx: ActContext, step: Step, reason: string): Promise<string> {
  if (!isAction(step)) return '';
  const r = REASONS[step.kind] ?? step.kind;
  try {
    const d = await perform(ctx, step);
    const done = d.note;
    // Applying unchanged support objects is routine: only membership and volume changes are events.
    const warning = step.kind === 'warn' || step.kind === 'note' ? step.reason : 'RestoreRefused';
    const normal = step.kind === 'note' ? step.reason : r;
    // A note's text is its reason already.
    const text = step.kind === 'note' ? done : `${done} (${reason})`;
    const failed = step.kind === 'apply' ? undefined : d.refused === true ? await recordEvent(ctx, 'Warning', warning, step.kind, text) : await recordEvent(ctx, 'Normal', normal, step.kind, text);
    return failed === undefined ? done : `${done} (the Event was not recorded: ${failed instanceof Error ? failed.message : JSON.stringify(failed)})`;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    await recordEvent(ctx, 'Warning', `${r}Failed`, step.kind, `${step.kind} failed: ${msg} (${reason})`);
    throw e;
  }
}
