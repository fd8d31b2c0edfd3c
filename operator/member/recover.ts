// A quorum-loss recovery in the member pods (operator/plan/recover.ts decides; this only executes):
//   - the agent's POST /recovery-snapshot (asked by the operator, on the survivor only): stream this
//     member's own Maintenance.Snapshot (served without quorum) into <data volume>/recovery/
//     <token>.snapshot, verified on the way (backup/'s SnapshotVerifier: chunk count and SHA-256
//     trailer), fsynced, renamed into place, its revision read by `cairn snapshot status`, and a
//     .json record beside it. Refused while this member's cluster has quorum (a linearizable member
//     list answers) or when this member is not the one named. Asked again for the same token, it
//     answers with the file it already has (the operator may have crashed before recording it).
//   - CAIRN_RECOVER (set by the operator at the point of no return): every pod moves the old token's
//     data aside (decide.ts moveAside); the survivor, granted, restores the snapshot file (size and
//     SHA-256 checked first) as the new one-member cluster: `cairn snapshot restore` with this pod's
//     name, peer URL and the NEW token, --bump-revision/--mark-compacted (backup/'s defaults).
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { restoreFile, SnapshotSource, snapshotRevision, verifiedSnapshotStream, type RestoreMember, type RestoreResult } from '../backup/index.js';
import { EtcdAdmin, type EtcdAccess } from '../etcd/index.js';
import { envOrder } from './restore.js';

export const RECOVER_ORDER_ENV = 'CAIRN_RECOVER';
export const RECOVERY_DIR = 'recovery';

/** CAIRN_RECOVER as plan/desired.ts recoverEnv writes it (member/ does not import plan/). */
export interface RecoverOrder {
  /** The survivor's pod name: the one pod that restores. */
  survivor: string;
  /** The new cluster token. */
  token: string;
  /** The snapshot file, relative to the data volume. */
  file: string;
  sha256: string;
  sizeBytes: number;
}

/** CAIRN_RECOVER parsed at the gate: undefined when unset; a malformed value is an error naming the field. */
export function readRecoverOrder(env: NodeJS.ProcessEnv): RecoverOrder | undefined {
  const o = envOrder(env, RECOVER_ORDER_ENV);
  if (o === undefined) return undefined;
  const size = o.sizeBytes();
  const s = o.str;
  const file = s('file');
  if (file.startsWith('/') || file.split('/').includes('..')) throw new Error(`member: ${RECOVER_ORDER_ENV}.file must be a path inside the data volume`);
  return { survivor: s('survivor'), token: s('token'), file, sha256: s('sha256'), sizeBytes: size };
}

export interface SnapshotRecord {
  /** Relative to the data volume. */
  file: string;
  sizeBytes: number;
  sha256: string;
  revision: number;
  memberId: string;
  takenAt: string;
}

export class RecoveryRefused extends Error {
  override readonly name = 'RecoveryRefused';
}

const TOKEN_RE = /^[A-Za-z0-9._-]{1,200}$/;
const MEMBER_ID_RE = /^[0-9a-f]{1,16}$/;

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Takes (or finds) this member's recovery snapshot for `token` on the data volume. `access`: how this
 * member's own client port is reached; with spec.tls.client, https with the mounted member
 * certificate (valid for client auth, with 127.0.0.1 among its names) and the cluster's CA
 * (accessFromTlsDir of CAIRN_CLIENT_TLS_DIR); undefined: plaintext.
 */
export async function takeRecoverySnapshot(o: { dataMount: string; clientEndpoint: string; token: string; memberId: string; cairnBin: string; access?: EtcdAccess | undefined }): Promise<SnapshotRecord> {
  if (!TOKEN_RE.test(o.token)) throw new RecoveryRefused(`token ${JSON.stringify(o.token)} is not a cluster token`);
  if (!MEMBER_ID_RE.test(o.memberId)) throw new RecoveryRefused(`member id ${JSON.stringify(o.memberId)} is not a hex member id`);
  const dir = join(o.dataMount, RECOVERY_DIR);
  const rel = `${RECOVERY_DIR}/${o.token}.snapshot`;
  const final = join(o.dataMount, rel);
  const meta = `${final}.json`;
  if (existsSync(final) && existsSync(meta)) {
    const rec = JSON.parse(readFileSync(meta, 'utf8')) as SnapshotRecord;
    if (rec.memberId === o.memberId) return rec;
  }
  const admin = new EtcdAdmin(o.clientEndpoint, 3000, o.access);
  try {
    const st = await admin.status();
    if (st.memberId !== o.memberId) throw new RecoveryRefused(`this member is ${st.memberId}, not ${o.memberId}`);
    const quorum = await admin.memberList(true).then(
      () => true,
      () => false,
    );
    if (quorum) throw new RecoveryRefused('this member\'s cluster has quorum (a linearizable member list answers): no recovery snapshot');
  } finally {
    admin.close();
  }
  mkdirSync(dir, { recursive: true });
  // One recovery's snapshot at a time on the volume: older ones (other tokens) go.
  for (const n of readdirSync(dir)) if (!n.startsWith(`${o.token}.`)) rmSync(join(dir, n), { force: true, recursive: true });
  const part = `${final}.part`;
  rmSync(part, { force: true });
  const src = new SnapshotSource(o.clientEndpoint, o.access?.channelCredentials());
  const takenAt = new Date().toISOString();
  try {
    const { stream } = verifiedSnapshotStream(src);
    await pipeline(stream, createWriteStream(part, { flags: 'wx' }));
    const v = stream.result();
    if (v === undefined) throw new Error('the snapshot stream ended without verifying');
    await fsyncPath(part);
    renameSync(part, final);
    await fsyncPath(dir);
    const revision = await snapshotRevision(o.cairnBin, final);
    const rec: SnapshotRecord = { file: rel, sizeBytes: v.objectBytes, sha256: v.objectSha256, revision, memberId: o.memberId, takenAt };
    writeFileSync(`${meta}.tmp`, `${JSON.stringify(rec)}\n`);
    await fsyncPath(`${meta}.tmp`);
    renameSync(`${meta}.tmp`, meta);
    await fsyncPath(dir);
    return rec;
  } catch (e) {
    rmSync(part, { force: true });
    throw e;
  } finally {
    src.close();
  }
}

/** The survivor's restore: the snapshot file checked against the order, then `cairn snapshot restore` (bumped, compaction marked). */
export async function restoreFromRecovery(order: RecoverOrder, member: RestoreMember, dataMount: string, cairnBin: string): Promise<RestoreResult & { tookMs: number }> {
  const t0 = Date.now();
  const r = await restoreFile({ file: join(dataMount, order.file), expect: { sizeBytes: order.sizeBytes, sha256: order.sha256 }, member, cairnBin });
  return { ...r, tookMs: Date.now() - t0 };
}
