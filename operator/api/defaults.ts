// Defaults of the EtcdCluster spec, written once: the CRD schema renders them as OpenAPI `default`s
// (the apiserver fills them in) and withDefaults applies the same values to a spec read from an
// older object, so the operator never depends on which of the two did it.
import { parseQuantity } from './quantity.js';
import type {
  BackupDestination,
  BackupSpec,
  BootstrapSpec,
  CompactionMode,
  CompactionSpec,
  DefragSpec,
  EtcdBackupSpec,
  EtcdClusterSpec,
  FromBackup,
  JsonObject,
  ReclaimPolicy,
  RetentionSpec,
  S3Location,
  S3Object,
  ServerOptions,
  VolumeSpec,
} from './types.js';

export const DEFAULTS = {
  replicas: 3,
  volumeSize: '1Gi',
  reclaimPolicy: 'Retain' as ReclaimPolicy,
  server: {
    snapshotCount: 10_000,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
  } satisfies ServerOptions,
  compaction: { mode: 'periodic' as CompactionMode, retention: '5m' } satisfies CompactionSpec,
  /** quotaFor: this share of the data volume ... */
  quotaShareOfData: 0.75,
  /** ... capped here (etcd's suggested maximum). */
  quotaMaxBytes: 8 * 1024 ** 3,
  retention: { keepLast: 7 } satisfies RetentionSpec,
  s3Region: 'us-east-1',
  accessKeyIdKey: 'AWS_ACCESS_KEY_ID',
  secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY',
  caBundleKey: 'ca.crt',
  minFragmentation: 20,
  rootPasswordKey: 'password',
} as const;

/** --quota-backend-bytes: spec.quotaBackendBytes, or 75% of the data volume capped at 8 GiB. */
export function quotaFor(spec: Pick<EtcdClusterSpec, 'quotaBackendBytes' | 'storage'>): number {
  if (spec.quotaBackendBytes !== undefined) return spec.quotaBackendBytes;
  return Math.min(DEFAULTS.quotaMaxBytes, Math.floor(DEFAULTS.quotaShareOfData * parseQuantity(spec.storage.data.size)));
}

function rec(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function volume(v: unknown): VolumeSpec {
  const o = rec(v);
  const out: VolumeSpec = { size: typeof o['size'] === 'string' ? o['size'] : DEFAULTS.volumeSize };
  if (typeof o['storageClassName'] === 'string') out.storageClassName = o['storageClassName'];
  return out;
}

function serverOptions(v: unknown): ServerOptions {
  const o = rec(v);
  const d = DEFAULTS.server;
  const n = (k: keyof ServerOptions, def: number): number => (typeof o[k] === 'number' ? o[k] : def);
  return {
    snapshotCount: n('snapshotCount', d.snapshotCount),
    heartbeatIntervalMs: n('heartbeatIntervalMs', d.heartbeatIntervalMs),
    electionTimeoutMs: n('electionTimeoutMs', d.electionTimeoutMs),
  };
}

const strOf = (o: Record<string, unknown>, k: string): string | undefined => (typeof o[k] === 'string' ? o[k] : undefined);
const numOf = (o: Record<string, unknown>, k: string): number | undefined => (typeof o[k] === 'number' ? o[k] : undefined);

function compaction(v: unknown): CompactionSpec {
  const o = rec(v);
  return { mode: o['mode'] === 'revision' ? 'revision' : DEFAULTS.compaction.mode, retention: strOf(o, 'retention') ?? DEFAULTS.compaction.retention };
}

function s3Location(v: unknown): S3Location {
  const o = rec(v);
  const out: S3Location = { bucket: strOf(o, 'bucket') ?? '', region: strOf(o, 'region') ?? DEFAULTS.s3Region, forcePathStyle: o['forcePathStyle'] === true };
  const prefix = strOf(o, 'prefix');
  if (prefix !== undefined) out.prefix = prefix;
  const endpoint = strOf(o, 'endpoint');
  if (endpoint !== undefined) out.endpoint = endpoint;
  if (typeof o['credentialsSecretRef'] === 'object' && o['credentialsSecretRef'] !== null) {
    const c = rec(o['credentialsSecretRef']);
    out.credentialsSecretRef = {
      name: strOf(c, 'name') ?? '',
      accessKeyIdKey: strOf(c, 'accessKeyIdKey') ?? DEFAULTS.accessKeyIdKey,
      secretAccessKeyKey: strOf(c, 'secretAccessKeyKey') ?? DEFAULTS.secretAccessKeyKey,
    };
  }
  if (typeof o['caBundleSecretRef'] === 'object' && o['caBundleSecretRef'] !== null) {
    const c = rec(o['caBundleSecretRef']);
    out.caBundleSecretRef = { name: strOf(c, 'name') ?? '', key: strOf(c, 'key') ?? DEFAULTS.caBundleKey };
  }
  return out;
}

/** A destination with its defaults (region, path style, Secret keys). */
export function destinationWithDefaults(v: unknown): BackupDestination {
  return { s3: s3Location(rec(v)['s3']) };
}

function retention(v: unknown): RetentionSpec {
  if (typeof v !== 'object' || v === null) return { ...DEFAULTS.retention };
  const o = rec(v);
  const out: RetentionSpec = {};
  const keepLast = numOf(o, 'keepLast');
  if (keepLast !== undefined) out.keepLast = keepLast;
  const keepDaily = numOf(o, 'keepDaily');
  if (keepDaily !== undefined) out.keepDaily = keepDaily;
  const maxAge = strOf(o, 'maxAge');
  if (maxAge !== undefined) out.maxAge = maxAge;
  return out;
}

function backup(v: unknown): BackupSpec {
  const o = rec(v);
  const out: BackupSpec = { schedule: strOf(o, 'schedule') ?? '', suspend: o['suspend'] === true, destination: destinationWithDefaults(o['destination']), retention: retention(o['retention']) };
  const tz = strOf(o, 'timeZone');
  if (tz !== undefined) out.timeZone = tz;
  return out;
}

function defrag(v: unknown): DefragSpec {
  const o = rec(v);
  const out: DefragSpec = { schedule: strOf(o, 'schedule') ?? '', minFragmentation: numOf(o, 'minFragmentation') ?? DEFAULTS.minFragmentation };
  const tz = strOf(o, 'timeZone');
  if (tz !== undefined) out.timeZone = tz;
  return out;
}

function bootstrap(v: unknown): BootstrapSpec {
  const from = rec(rec(v)['fromBackup']);
  const out: FromBackup = {};
  const ref = from['backupRef'];
  if (typeof ref === 'object' && ref !== null) out.backupRef = { name: strOf(rec(ref), 'name') ?? '' };
  const s3 = from['s3'];
  if (typeof s3 === 'object' && s3 !== null) {
    const obj: S3Object = { ...s3Location(s3), key: strOf(rec(s3), 'key') ?? '' };
    out.s3 = obj;
  }
  return { fromBackup: out };
}

/** The EtcdBackup spec with its defaults. */
export function backupSpecWithDefaults(raw: unknown): EtcdBackupSpec {
  const o = rec(raw);
  const out: EtcdBackupSpec = { clusterName: strOf(o, 'clusterName') ?? '' };
  if (typeof o['destination'] === 'object' && o['destination'] !== null) out.destination = destinationWithDefaults(o['destination']);
  return out;
}

function objectList(v: unknown): JsonObject[] | undefined {
  return Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x !== null && !Array.isArray(x)) as JsonObject[]) : undefined;
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/**
 * The spec with every default filled in, from the raw JSON of an object. Shapes are coerced (a
 * wrong-typed field reads as absent); the rules of validate.ts judge the values.
 */
export function withDefaults(raw: unknown): EtcdClusterSpec {
  const o = rec(raw);
  const storage = rec(o['storage']);
  const spec: EtcdClusterSpec = {
    replicas: typeof o['replicas'] === 'number' ? o['replicas'] : DEFAULTS.replicas,
    storage: {
      data: volume(storage['data']),
      wal: volume(storage['wal']),
      reclaimPolicy: storage['reclaimPolicy'] === 'Delete' ? 'Delete' : DEFAULTS.reclaimPolicy,
    },
    server: serverOptions(o['server']),
    compaction: compaction(o['compaction']),
    extraArgs: Array.isArray(o['extraArgs']) ? o['extraArgs'].filter((x): x is string => typeof x === 'string') : [],
    paused: o['paused'] === true,
  };
  if (typeof o['version'] === 'string') spec.version = o['version'];
  if (typeof o['image'] === 'string') spec.image = o['image'];
  if (typeof o['priorityClassName'] === 'string') spec.priorityClassName = o['priorityClassName'];
  const resources = o['resources'];
  if (typeof resources === 'object' && resources !== null && !Array.isArray(resources)) spec.resources = resources as JsonObject;
  const affinity = o['affinity'];
  if (typeof affinity === 'object' && affinity !== null && !Array.isArray(affinity)) spec.affinity = affinity as JsonObject;
  const tsc = objectList(o['topologySpreadConstraints']);
  if (tsc !== undefined) spec.topologySpreadConstraints = tsc;
  const tol = objectList(o['tolerations']);
  if (tol !== undefined) spec.tolerations = tol;
  const ns = stringMap(o['nodeSelector']);
  if (ns !== undefined) spec.nodeSelector = ns;
  const quota = numOf(o, 'quotaBackendBytes');
  if (quota !== undefined) spec.quotaBackendBytes = quota;
  if (typeof o['backup'] === 'object' && o['backup'] !== null) spec.backup = backup(o['backup']);
  if (typeof o['defrag'] === 'object' && o['defrag'] !== null) spec.defrag = defrag(o['defrag']);
  if (typeof o['bootstrap'] === 'object' && o['bootstrap'] !== null) spec.bootstrap = bootstrap(o['bootstrap']);
  if (typeof o['auth'] === 'object' && o['auth'] !== null) {
    const ref = rec(rec(o['auth'])['rootSecretRef']);
    spec.auth = { rootSecretRef: { name: strOf(ref, 'name') ?? '', key: strOf(ref, 'key') ?? DEFAULTS.rootPasswordKey } };
  }
  if (typeof o['tls'] === 'object' && o['tls'] !== null) {
    const t = rec(o['tls']);
    spec.tls = {};
    if (typeof t['client'] === 'object' && t['client'] !== null) {
      const c = rec(t['client']);
      const secretName = strOf(c, 'secretName');
      const operatorSecretName = strOf(c, 'operatorSecretName');
      spec.tls.client = { ...(secretName !== undefined ? { secretName } : {}), ...(operatorSecretName !== undefined ? { operatorSecretName } : {}) };
    }
    if (typeof t['peer'] === 'object' && t['peer'] !== null) {
      const secretName = strOf(rec(t['peer']), 'secretName');
      spec.tls.peer = secretName !== undefined ? { secretName } : {};
    }
  }
  return spec;
}
