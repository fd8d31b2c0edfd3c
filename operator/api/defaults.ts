// Defaults of the EtcdCluster spec, written once: the CRD schema renders them as OpenAPI `default`s
// (the apiserver fills them in) and withDefaults applies the same values to a spec read from an
// older object, so the operator never depends on which of the two did it.
import type { AutoCompactionMode, EtcdClusterSpec, JsonObject, ReclaimPolicy, ServerOptions, VolumeSpec } from './types.js';

export const DEFAULTS = {
  replicas: 3,
  volumeSize: '1Gi',
  reclaimPolicy: 'Retain' as ReclaimPolicy,
  server: {
    quotaBackendBytes: 2 * 1024 ** 3,
    snapshotCount: 10_000,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    autoCompactionMode: 'periodic' as AutoCompactionMode,
    autoCompactionRetention: '1h',
  } satisfies ServerOptions,
} as const;

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
    quotaBackendBytes: n('quotaBackendBytes', d.quotaBackendBytes),
    snapshotCount: n('snapshotCount', d.snapshotCount),
    heartbeatIntervalMs: n('heartbeatIntervalMs', d.heartbeatIntervalMs),
    electionTimeoutMs: n('electionTimeoutMs', d.electionTimeoutMs),
    autoCompactionMode: o['autoCompactionMode'] === 'revision' ? 'revision' : d.autoCompactionMode,
    autoCompactionRetention: typeof o['autoCompactionRetention'] === 'string' ? o['autoCompactionRetention'] : d.autoCompactionRetention,
  };
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
  return spec;
}
