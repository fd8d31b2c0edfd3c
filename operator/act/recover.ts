// The quorum-loss recovery's own steps (plan/recover.ts):
//   - recoverySnapshot: the survivor's member agent (operator/member/recover.ts, POST
//     /recovery-snapshot on the agent port) streams the member's own Maintenance.Snapshot onto its
//     data volume, verified and fsynced, and answers with file, size, SHA-256 and revision; that is
//     merge-patched into status.recovery.snapshot (the planner's next stage waits for it). The agent
//     refuses while its cluster has quorum and for another member id. Idempotent: asked again for
//     the same token it answers with the file it already has.
//   - consumeApproval: removes the approval annotation with a JSON patch that first tests its value
//     (an approval changed meanwhile is left alone).
import { GROUP, PLURAL, RECOVERY_APPROVAL_ANNOTATION, VERSION, type RecoverySnapshot } from '../api/index.js';
import { KubeError, pathOf, resourcePath, type KubeRest } from '../kube/index.js';
import { AGENT_PORT, type Step } from '../plan/index.js';

/** Longest the agent may take to stream and check the snapshot (a 1 GiB database: under a minute). */
export const RECOVERY_SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

type SnapshotStep = Extract<Step, { kind: 'recoverySnapshot' }>;

/** Asks the survivor's agent for the snapshot and records it in status.recovery.snapshot; returns the Event note. */
export async function recoverySnapshot(rest: KubeRest, ns: string, cluster: string, step: SnapshotStep): Promise<string> {
  const pod = await rest.get(pathOf('Pod', ns, step.pod));
  const status = pod['status'];
  const ip = typeof status === 'object' && status !== null && !Array.isArray(status) ? status['podIP'] : undefined;
  if (typeof ip !== 'string' || ip === '') throw new Error(`pod ${step.pod} has no IP`);
  const r = await fetch(`http://${ip}:${String(AGENT_PORT)}/recovery-snapshot`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: step.token, memberId: step.memberId }),
    signal: AbortSignal.timeout(RECOVERY_SNAPSHOT_TIMEOUT_MS),
  });
  const body = (await r.json().catch(() => ({}))) as Record<string, unknown>;
  if (!r.ok) throw new Error(`the agent of ${step.pod} refused the snapshot (HTTP ${String(r.status)}): ${typeof body['error'] === 'string' ? body['error'] : JSON.stringify(body)}`);
  const num = (k: string): number => {
    const v = body[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`the agent of ${step.pod} answered without ${k}: ${JSON.stringify(body)}`);
    return v;
  };
  const str = (k: string): string => {
    const v = body[k];
    if (typeof v !== 'string' || v === '') throw new Error(`the agent of ${step.pod} answered without ${k}: ${JSON.stringify(body)}`);
    return v;
  };
  const snapshot: RecoverySnapshot = { file: str('file'), pvc: `data-${step.pod}`, sizeBytes: num('sizeBytes'), sha256: str('sha256'), revision: num('revision'), takenAt: str('takenAt') };
  await rest.merge(`${resourcePath(`${GROUP}/${VERSION}`, PLURAL, ns, cluster)}/status`, { status: { recovery: { snapshot } } });
  return `snapshot of ${step.pod} (member ${step.memberId}) on its volume ${snapshot.pvc}: ${snapshot.file}, ${String(snapshot.sizeBytes)} bytes, sha256 ${snapshot.sha256}, revision ${String(snapshot.revision)}`;
}

/** Removes the approval annotation if it still has `value`; returns what happened. */
export async function consumeApproval(rest: KubeRest, ns: string, cluster: string, value: string): Promise<string> {
  const key = RECOVERY_APPROVAL_ANNOTATION.replace(/~/g, '~0').replace(/\//g, '~1');
  const ops = [
    { op: 'test', path: `/metadata/annotations/${key}`, value },
    { op: 'remove', path: `/metadata/annotations/${key}` },
  ];
  try {
    await rest.request('PATCH', resourcePath(`${GROUP}/${VERSION}`, PLURAL, ns, cluster), ops, 'application/json-patch+json');
    return `the approval ${RECOVERY_APPROVAL_ANNOTATION}=${value} removed`;
  } catch (e) {
    // 422: the test failed (changed or removed meanwhile); 404: the cluster is gone.
    if (e instanceof KubeError && (e.status === 422 || e.notFound)) return `the approval ${RECOVERY_APPROVAL_ANNOTATION}=${value} had changed or gone; left as it is`;
    throw e;
  }
}
