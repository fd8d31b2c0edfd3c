// The plugin's commands. Each takes a ClusterHandle (the EtcdCluster through the Kubernetes API and
// its members through port-forward tunnels) and returns a plain result; main.ts prints it as text
// (format.ts) or JSON. Progress of long operations goes to `progress` (stderr).
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupRef, Condition } from '../api/index.js';
import { SnapshotSource, verifiedSnapshotStream } from '../backup/index.js';
import type { AlarmName, RaisedAlarm } from '../etcd/index.js';
import { CliError, type ClusterHandle, type LiveMember } from './cluster.js';

export type Progress = (line: string) => void;

export interface MemberRow {
  name: string;
  id?: string;
  leader: boolean;
  learner: boolean;
  /** The member answered Status. */
  healthy: boolean;
  /** The server image tag the operator reports for the pod. */
  version?: string;
  /** The etcd API version the member reports. */
  apiVersion?: string;
  dbSize?: number;
  dbSizeInUse?: number;
  revision?: number;
  raftIndex?: number;
  errors: string[];
}

export interface AlarmRow {
  member: string;
  memberId: string;
  alarm: AlarmName;
}

export interface StatusResult {
  namespace: string;
  name: string;
  phase?: string;
  readyMembers?: string;
  version?: string;
  operation?: string;
  conditions: Array<Pick<Condition, 'type' | 'status' | 'reason' | 'message'>>;
  members: MemberRow[];
  alarms: AlarmRow[];
  lastBackup: BackupRef | null;
  nextBackup: string | null;
}

/** One row per running member pod, then one per member the operator reports whose pod is not running. */
function rowsOf(live: readonly LiveMember[], reported: ReadonlyArray<{ name: string; version?: string; learner?: boolean }>): MemberRow[] {
  const missing = reported
    .filter((r) => !live.some((m) => m.name === r.name))
    .map((r): MemberRow => ({ name: r.name, leader: false, learner: r.learner ?? false, healthy: false, ...(r.version !== undefined ? { version: r.version } : {}), errors: ['pod not running'] }));
  return [...liveRows(live, reported), ...missing];
}

function liveRows(live: readonly LiveMember[], reported: ReadonlyArray<{ name: string; version?: string }>): MemberRow[] {
  return live.map((m) => {
    const s = m.status;
    const version = reported.find((r) => r.name === m.name)?.version;
    return {
      name: m.name,
      ...(s !== undefined ? { id: s.memberId } : {}),
      leader: s !== undefined && s.leader === s.memberId,
      learner: s?.isLearner ?? false,
      healthy: s !== undefined && s.leader !== '0',
      ...(version !== undefined ? { version } : {}),
      ...(s !== undefined ? { apiVersion: s.version, dbSize: s.dbSize, dbSizeInUse: s.dbSizeInUse, revision: s.revision, raftIndex: s.raftIndex } : {}),
      errors: s?.errors ?? (m.error !== undefined ? [m.error] : []),
    };
  });
}

async function alarmsOf(h: ClusterHandle, live: readonly LiveMember[]): Promise<AlarmRow[]> {
  const answering = live.find((m) => m.status !== undefined);
  if (answering === undefined) throw new CliError(`EtcdCluster ${h.namespace}/${h.name}: no member answered`);
  const raised = await (await h.admin(answering.name)).alarmList();
  return raised.map((a) => ({ member: live.find((m) => m.status?.memberId === a.memberId)?.name ?? '?', memberId: a.memberId, alarm: a.alarm }));
}

/** The cluster: the operator's status, each member's own Status, alarms, the last backup. */
export async function status(h: ClusterHandle): Promise<StatusResult> {
  const st = await h.status();
  const live = await h.live();
  return {
    namespace: h.namespace,
    name: h.name,
    ...(st.phase !== undefined ? { phase: st.phase } : {}),
    ...(st.readyMembers !== undefined ? { readyMembers: st.readyMembers } : {}),
    ...(st.currentVersion !== undefined ? { version: st.currentVersion } : {}),
    ...(st.operation !== undefined ? { operation: st.operation.type } : {}),
    conditions: (st.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
    members: rowsOf(live, st.members ?? []),
    alarms: await alarmsOf(h, live),
    lastBackup: st.backup?.lastSuccessfulBackup ?? null,
    nextBackup: st.backup?.nextScheduleTime ?? null,
  };
}

export interface ListedRow {
  name: string;
  id: string;
  learner: boolean;
  peerURLs: string[];
  clientURLs: string[];
}

/** The member list (as the first answering member sees it). */
export async function members(h: ClusterHandle): Promise<ListedRow[]> {
  const { members: list } = await h.memberList();
  return list.map((m) => ({ name: m.name, id: m.id, learner: m.isLearner, peerURLs: m.peerURLs, clientURLs: m.clientURLs }));
}

export interface DefragRow {
  member: string;
  dbSizeBefore: number;
  dbSizeAfter: number;
  ms: number;
}

/** Defragments the members one at a time, followers first and the leader last (or only `only`). */
export async function defrag(h: ClusterHandle, progress: Progress, only?: string): Promise<DefragRow[]> {
  const live = await h.live();
  const targets = live.filter((m) => only === undefined || m.name === only);
  if (targets.length === 0) throw new CliError(`no member ${String(only)} (members: ${live.map((m) => m.name).join(', ')})`);
  const down = targets.find((m) => m.status === undefined);
  if (down !== undefined) throw new CliError(`member ${down.name} does not answer (${String(down.error)}); nothing defragmented`);
  const isLeader = (m: LiveMember): boolean => m.status !== undefined && m.status.leader === m.status.memberId;
  const order = [...targets.filter((m) => !isLeader(m)), ...targets.filter(isLeader)];
  const out: DefragRow[] = [];
  for (const [i, m] of order.entries()) {
    const admin = await h.admin(m.name);
    const before = (await admin.status()).dbSize;
    progress(`defrag: ${m.name} (${String(i + 1)}/${String(order.length)}), database ${formatBytes(before)}...`);
    const t0 = Date.now();
    await admin.defragment();
    const after = (await admin.status()).dbSize;
    const ms = Date.now() - t0;
    progress(`defrag: ${m.name} done in ${String(ms)} ms, database ${formatBytes(before)} -> ${formatBytes(after)}`);
    out.push({ member: m.name, dbSizeBefore: before, dbSizeAfter: after, ms });
  }
  return out;
}

/** Compacts the key history up to `revision` (default: the current revision). */
export async function compact(h: ClusterHandle, revision?: number): Promise<{ revision: number }> {
  const { pod } = await h.leaderPod();
  const admin = await h.admin(pod);
  const rev = revision ?? (await admin.status()).revision;
  await admin.compact(rev);
  return { revision: rev };
}

export interface SnapshotResult {
  file: string;
  member: string;
  bytes: number;
  sha256: string;
  revision: number;
}

/** Counts bytes going through and reports progress at most every `everyMs`. */
function counter(total: number, progress: Progress, everyMs = 1000): Transform & { bytes: () => number } {
  let bytes = 0;
  let last = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      bytes += chunk.length;
      const now = Date.now();
      if (now - last >= everyMs) {
        last = now;
        progress(`snapshot: ${formatBytes(bytes)} of ~${formatBytes(total)} (${String(total > 0 ? Math.min(100, Math.floor((bytes * 100) / total)) : 0)}%)`);
      }
      cb(null, chunk);
    },
  });
  return Object.assign(t, { bytes: () => bytes });
}

/**
 * Streams Maintenance.Snapshot of one member (`member`, else the leader) to `file`: written to
 * file.part, verified (the trailer's SHA-256 over the data) and then renamed; a failure leaves no file.
 */
export async function snapshot(h: ClusterHandle, file: string, progress: Progress, member?: string): Promise<SnapshotResult> {
  const pod = member ?? (await h.leaderPod()).pod;
  const src = new SnapshotSource(await h.endpoint(pod), await h.channelCredentials(pod));
  const part = `${file}.part`;
  try {
    const info = await src.status();
    progress(`snapshot: from ${pod} (member ${info.memberId}, revision ${String(info.revision)}, database ${formatBytes(info.dbSizeBytes)})`);
    const { stream } = verifiedSnapshotStream(src);
    const count = counter(info.dbSizeBytes, progress);
    const sha = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
        sha.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(stream, count, hashing, createWriteStream(part));
    const v = stream.result();
    const sha256 = sha.digest('hex');
    if (v === undefined || v.objectSha256 !== sha256) throw new CliError(`snapshot from ${pod}: the file's SHA-256 ${sha256} is not the verified stream's`);
    await rename(part, file);
    progress(`snapshot: ${formatBytes(v.objectBytes)} written to ${file}, verified`);
    return { file, member: pod, bytes: v.objectBytes, sha256, revision: info.revision };
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  } finally {
    src.close();
  }
}

/** Moves the leadership to the member (pod) `target`, through the current leader. */
export async function moveLeader(h: ClusterHandle, target: string): Promise<{ from: string; to: string }> {
  const { members: list } = await h.memberList();
  const t = list.find((m) => m.name === target);
  if (t === undefined) throw new CliError(`no member ${target} (members: ${list.map((m) => m.name).join(', ')})`);
  if (t.isLearner) throw new CliError(`member ${target} is a learner: it cannot lead`);
  const leader = await h.leaderPod();
  if (leader.id === t.id) return { from: leader.pod, to: target };
  await (await h.admin(leader.pod)).moveLeader(t.id);
  return { from: leader.pod, to: target };
}

/** The raised alarms. */
export async function alarmList(h: ClusterHandle): Promise<AlarmRow[]> {
  return alarmsOf(h, await h.live());
}

/** Disarms every raised alarm (as etcdctl alarm disarm); returns what was disarmed. */
export async function alarmDisarm(h: ClusterHandle): Promise<AlarmRow[]> {
  const live = await h.live();
  const raised = await alarmsOf(h, live);
  const answering = live.find((m) => m.status !== undefined);
  if (answering === undefined) return raised;
  const admin = await h.admin(answering.name);
  for (const a of raised) {
    const r: RaisedAlarm = { memberId: a.memberId, alarm: a.alarm };
    await admin.alarmDisarm(r);
  }
  return raised;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${String(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u] ?? 'TiB'}`;
}
