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

/**
 * An order the operator passes to a member as JSON in the environment variable `name` (CAIRN_RESTORE,
 * CAIRN_RECOVER): undefined when unset; its fields read through `str` (a non-empty string) and
 * `sizeBytes` (a positive integer), each refusal naming the variable and the field.
 */
export function envOrder(env: NodeJS.ProcessEnv, name: string): { raw: Record<string, unknown>; str: (k: string) => string; sizeBytes: () => number } | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const raw = JSON.parse(text) as Record<string, unknown>;
  const str = (k: string): string => {
    const v = raw[k];
    if (typeof v !== 'string' || v === '') throw new Error(`member: ${name}.${k} must be a non-empty string`);
    return v;
  };
  const sizeBytes = (): number => {
    const size = raw['sizeBytes'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new Error(`member: ${name}.sizeBytes must be a positive integer`);
    return size;
  };
  return { raw, str, sizeBytes };
}

/** CAIRN_RESTORE parsed at the gate: undefined when unset; a malformed value is an error naming the field. */
export function readRestoreOrder(env: NodeJS.ProcessEnv): RestoreOrder | undefined {
  const o = envOrder(env, RESTORE_ORDER_ENV);
  if (o === undefined) return undefined;
  const size = o.sizeBytes();
  const s = o.str;
  const out: RestoreOrder = { uri: s('uri'), bucket: s('bucket'), key: s('key'), region: s('region'), forcePathStyle: o.raw['forcePathStyle'] === true, sha256: s('sha256'), sizeBytes: size };
  if (typeof o.raw['endpoint'] === 'string') out.endpoint = o.raw['endpoint'];
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
