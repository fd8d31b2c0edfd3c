// The verifyBackup step: read a restore's backup object whole (size, SHA-256, its own trailer) before
// any member of the cluster exists, and record the outcome in status.restore (a JSON merge patch of
// the status subresource; the planner waits for it, RESTORE_VERIFY_DEADLINE_MS at most). The S3
// credentials and CA bundle come from the Secrets the location names, read here and never written
// anywhere. A refusal of the object (corrupt, truncated, size or checksum not the record's) is final;
// one of the store (unreachable, denied, missing) is marked retryable.
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GROUP, PLURAL, VERSION, type RestoreStatus, type S3Location } from '../api/index.js';
import { BackupError, classifyS3Error, META, s3Client, verifyObject, type S3Credentials } from '../backup/index.js';
import { resourcePath, type KubeRest } from '../kube/index.js';
import { RESTORE_VERIFY_DEADLINE_MS, type Step } from '../plan/index.js';

type VerifyStep = Extract<Step, { kind: 'verifyBackup' }>;

async function secretValue(rest: KubeRest, ns: string, name: string, key: string): Promise<string> {
  const s = await rest.get(resourcePath('v1', 'secrets', ns, name));
  const data = s['data'];
  const v = typeof data === 'object' && data !== null && !Array.isArray(data) ? data[key] : undefined;
  if (typeof v !== 'string') throw new BackupError('AccessDenied', `Secret ${ns}/${name} has no key ${key}`);
  return Buffer.from(v, 'base64').toString('utf8');
}

/** An S3 client for a location, with the credentials and CA bundle of its Secrets. */
export async function clientFor(rest: KubeRest, ns: string, loc: S3Location): Promise<S3Client> {
  let creds: S3Credentials | undefined;
  const ref = loc.credentialsSecretRef;
  if (ref !== undefined) creds = { accessKeyId: await secretValue(rest, ns, ref.name, ref.accessKeyIdKey), secretAccessKey: await secretValue(rest, ns, ref.name, ref.secretAccessKeyKey) };
  const ca = loc.caBundleSecretRef === undefined ? undefined : await secretValue(rest, ns, loc.caBundleSecretRef.name, loc.caBundleSecretRef.key);
  return s3Client(
    {
      bucket: loc.bucket,
      region: loc.region,
      forcePathStyle: loc.forcePathStyle,
      ...(loc.endpoint !== undefined ? { endpoint: loc.endpoint } : {}),
      ...(ca !== undefined ? { caBundlePem: ca } : {}),
    },
    creds,
  );
}

/** What the record says the object is: the EtcdBackup's status, else the object's own metadata. */
async function expected(s3: S3Client, step: VerifyStep): Promise<{ sizeBytes: number; sha256: string; revision: number }> {
  if (step.source.expect !== undefined) return step.source.expect;
  const { bucket, key } = step.source.location;
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((e: unknown) => {
    throw classifyS3Error(e, `read ${step.source.uri}`, bucket);
  });
  const sha256 = head.Metadata?.[META.sha256];
  const size = Number(head.Metadata?.[META.size] ?? head.ContentLength);
  if (sha256 === undefined) throw new BackupError('RestoreRefused', `backup ${step.source.uri} refused before restore: it carries no ${META.sha256} metadata (not a Cairn backup, or an incomplete one)`);
  return { sizeBytes: size, sha256, revision: Number(head.Metadata?.[META.revision] ?? 0) };
}

function withDeadline<T>(p: Promise<T>, ms: number, onTimeout: () => void, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new BackupError('EndpointUnreachable', `${what}: no outcome in ${String(ms / 1000)} s`));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface VerifyOutcome {
  ok: boolean;
  note: string;
}

/** Verifies the object and patches status.restore with the outcome; returns it for the Event. */
export async function verifyBackup(rest: KubeRest, ns: string, cluster: string, step: VerifyStep): Promise<VerifyOutcome> {
  const src = step.source;
  const at = new Date().toISOString();
  let restore: RestoreStatus;
  let s3: S3Client | undefined;
  try {
    s3 = await clientFor(rest, ns, src.location);
    const client = s3;
    const expect = await expected(client, step);
    const check = await withDeadline(verifyObject({ s3: client, bucket: src.location.bucket, key: src.location.key, expect }), RESTORE_VERIFY_DEADLINE_MS, () => client.destroy(), `verify ${src.uri}`);
    restore = { uri: src.uri, sha256: check.sha256, size: check.sizeBytes, revision: expect.revision, source: src.location, verifiedAt: at };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const final = e instanceof BackupError && e.reason === 'RestoreRefused';
    restore = { uri: src.uri, sha256: src.expect?.sha256 ?? '', size: src.expect?.sizeBytes ?? 0, revision: src.expect?.revision ?? 0, source: src.location, refusal: why, refusedAt: at, retryable: !final };
  } finally {
    s3?.destroy();
  }
  // verifyStartedAt: null drops the in-flight mark (merge patch); the rest replaces status.restore's fields.
  await rest.merge(`${resourcePath(`${GROUP}/${VERSION}`, PLURAL, ns, cluster)}/status`, { status: { restore: { ...restore, verifyStartedAt: null, ...(restore.refusal === undefined ? { refusal: null, refusedAt: null, retryable: null } : { verifiedAt: null }) } } });
  if (restore.refusal !== undefined) return { ok: false, note: restore.refusal };
  return { ok: true, note: `verified ${src.uri}: ${String(restore.size)} bytes, sha256 ${restore.sha256}, revision ${String(restore.revision)}` };
}
