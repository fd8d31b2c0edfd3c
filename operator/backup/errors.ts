// Why a backup or a restore failed, split by blame, with the reason the BackupHealthy condition
// carries (a CamelCase word, as Kubernetes condition reasons are) and a message naming the failure.
// classifyS3Error() is the one place that reads the AWS SDK's error shapes; everything above it sees
// a BackupError.

/** Condition reasons of BackupHealthy=False (and of a failed EtcdBackup). */
export const BACKUP_REASONS = [
  'BucketMissing',
  'AccessDenied',
  'EndpointUnreachable',
  'SnapshotFailed',
  'UploadFailed',
  'InvalidSchedule',
  'InvalidDestination',
  'RestoreRefused',
  'Timeout',
] as const;
export type BackupReason = (typeof BACKUP_REASONS)[number];

export class BackupError extends Error {
  override readonly name = 'BackupError';
  constructor(
    readonly reason: BackupReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function field(e: unknown, name: string): unknown {
  return typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[name] : undefined;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** The Node network error codes that mean "nobody answered at that address". */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'TimeoutError', 'RequestTimeout']);

/** Node's TLS verification error codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN, ...). */
const TLS_CODES = /^(UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED|CERT_|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/;

/** The error codes of an error and its causes (AggregateError's members too), outermost first. */
function codesOf(e: unknown, depth = 0): string[] {
  if (depth > 5 || typeof e !== 'object' || e === null) return [];
  const own = [str(field(e, 'code')), str(field(e, 'Code')), str(field(e, 'name'))].filter((c) => c !== '');
  const nested = field(e, 'errors');
  const fromList = Array.isArray(nested) ? nested.flatMap((n) => codesOf(n, depth + 1)) : [];
  return [...own, ...fromList, ...codesOf(field(e, 'cause'), depth + 1)];
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * An object-store failure as a BackupError: the bucket does not exist, the credentials are refused,
 * nobody answers at the endpoint, or another upload failure. `what` names the call ("upload to
 * s3://b/k"). A BackupError passes through unchanged.
 */
export function classifyS3Error(e: unknown, what: string, bucket: string): BackupError {
  if (e instanceof BackupError) return e;
  const codes = codesOf(e);
  const status = Number(field(field(e, '$metadata'), 'httpStatusCode'));
  const has = (...cs: string[]): boolean => cs.some((c) => codes.includes(c));
  const msg = messageOf(e);
  if (has('NoSuchBucket')) return new BackupError('BucketMissing', `${what}: bucket "${bucket}" does not exist`, { cause: e });
  if (has('AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden', 'AllAccessDisabled', 'InvalidToken', 'ExpiredToken') || status === 403) {
    return new BackupError('AccessDenied', `${what}: access denied (${codes[0] ?? `HTTP ${String(status)}`}: ${msg}); check the credentials and their permissions on bucket "${bucket}"`, { cause: e });
  }
  const tls = codes.find((c) => TLS_CODES.test(c));
  if (tls !== undefined) {
    return new BackupError('EndpointUnreachable', `${what}: the object store's TLS certificate was refused (${tls}: ${msg}); give the CA bundle that signed it`, { cause: e });
  }
  if (codes.some((c) => UNREACHABLE_CODES.has(c)) || /socket hang up|connect ECONNREFUSED|getaddrinfo/i.test(msg)) {
    return new BackupError('EndpointUnreachable', `${what}: the object store did not answer (${codes.find((c) => UNREACHABLE_CODES.has(c)) ?? msg})`, { cause: e });
  }
  if (has('NotFound') && status === 404 && what.startsWith('check bucket')) return new BackupError('BucketMissing', `${what}: bucket "${bucket}" does not exist`, { cause: e });
  return new BackupError('UploadFailed', `${what}: ${codes[0] ?? 'error'}: ${msg}`, { cause: e });
}
