// Pod 0 of a cluster restored from a backup: download the object into the data volume (streamed,
// size and SHA-256 checked against what the operator verified, before anything else is written),
// then `cairn snapshot restore` with --bump-revision and --mark-compacted (backup/'s defaults) for
// this member's name, peer URL and cluster token. The object comes from CAIRN_RESTORE (JSON, set by
// the operator once it verified the object) and the credentials from AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY (secretKeyRef env), the CA bundle from CAIRN_RESTORE_CA_PEM.
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { restoreMember, s3Client, type RestoreMember, type RestoreResult } from '../backup/index.js';

/** CAIRN_RESTORE as plan/desired.ts restoreEnv writes it (member/ does not import plan/). */
export interface RestoreOrder {
  uri: string;
  bucket: string;
  key: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  sha256: string;
  sizeBytes: number;
}

export const RESTORE_ORDER_ENV = 'CAIRN_RESTORE';
const DOWNLOAD_NAME = 'restore-download.snap';

/** CAIRN_RESTORE parsed at the gate: undefined when unset; a malformed value is an error naming the field. */
export function readRestoreOrder(env: NodeJS.ProcessEnv): RestoreOrder | undefined {
  const raw = env[RESTORE_ORDER_ENV];
  if (raw === undefined || raw === '') return undefined;
  const o = JSON.parse(raw) as Record<string, unknown>;
  const s = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v === '') throw new Error(`member: ${RESTORE_ORDER_ENV}.${k} must be a non-empty string`);
    return v;
  };
  const size = o['sizeBytes'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new Error(`member: ${RESTORE_ORDER_ENV}.sizeBytes must be a positive integer`);
  const out: RestoreOrder = { uri: s('uri'), bucket: s('bucket'), key: s('key'), region: s('region'), forcePathStyle: o['forcePathStyle'] === true, sha256: s('sha256'), sizeBytes: size };
  if (typeof o['endpoint'] === 'string') out.endpoint = o['endpoint'];
  return out;
}

/** `cairn` for backup/'s restore: a script running this image's dist/server/ctl/main.js with this node. */
export function cairnCommand(): string {
  const ctl = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'server', 'ctl', 'main.js');
  const path = join(tmpdir(), `cairn-ctl-${String(process.pid)}`);
  writeFileSync(path, `#!/bin/sh\nexec '${process.execPath}' '${ctl}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

export async function restoreFromBackup(order: RestoreOrder, member: RestoreMember, dataMount: string): Promise<RestoreResult & { tookMs: number }> {
  const t0 = Date.now();
  const keyId = process.env['AWS_ACCESS_KEY_ID'];
  const secret = process.env['AWS_SECRET_ACCESS_KEY'];
  const ca = process.env['CAIRN_RESTORE_CA_PEM'];
  const s3 = s3Client(
    { bucket: order.bucket, region: order.region, forcePathStyle: order.forcePathStyle, ...(order.endpoint !== undefined ? { endpoint: order.endpoint } : {}), ...(ca !== undefined && ca !== '' ? { caBundlePem: ca } : {}) },
    keyId !== undefined && secret !== undefined ? { accessKeyId: keyId, secretAccessKey: secret } : undefined,
  );
  const downloadPath = join(dataMount, DOWNLOAD_NAME);
  rmSync(downloadPath, { force: true });
  const bin = cairnCommand();
  try {
    const r = await restoreMember({ s3, bucket: order.bucket, key: order.key, expect: { sizeBytes: order.sizeBytes, sha256: order.sha256 }, downloadPath, member, cairnBin: bin });
    return { ...r, tookMs: Date.now() - t0 };
  } finally {
    rmSync(bin, { force: true });
    s3.destroy();
  }
}
