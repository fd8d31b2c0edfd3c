// The Kubernetes objects an EtcdCluster owns, built from its spec (pure): the member ServiceAccount
// and RoleBinding, the headless peer Service, the client Service, the PodDisruptionBudget and the
// StatefulSet. Each carries a spec-hash annotation of its own content, so "is it up to date" is one
// string comparison; the StatefulSet's replicas are left out of its hash (scaling is a step of its own).
import { API_VERSION, KIND, parseQuantity, quotaFor, type EtcdCluster, type EtcdClusterSpec, type Json, type JsonObject } from '../api/index.js';
import { healthPort, tlsEnv, tlsServerArgs, tlsVolumeMounts, tlsVolumes } from './tls.js';

export const FIELD_MANAGER = 'cairn-operator';
export const HASH_ANNOTATION = 'cairn.dev/spec-hash';
export const BOOTSTRAP_ANNOTATION = 'cairn.dev/bootstrap-token';
export const MEMBER_CLUSTER_ROLE = 'cairn-member';
export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
/** The member entrypoint's own port: /livez that stays green while it waits to be added. */
export const AGENT_PORT = 2381;
export const DATA_MOUNT = '/var/lib/cairn/data';
export const WAL_MOUNT = '/var/lib/cairn/wal';
export const TERMINATION_GRACE_S = 30;

export const names = {
  peerService: (c: string): string => `${c}-peer`,
  clientService: (c: string): string => `${c}-client`,
  pdb: (c: string): string => c,
  statefulSet: (c: string): string => c,
  serviceAccount: (c: string): string => `${c}-member`,
  roleBinding: (c: string): string => `${c}-member`,
  pod: (c: string, ordinal: number): string => `${c}-${String(ordinal)}`,
  pvc: (c: string, volume: 'data' | 'wal', ordinal: number): string => `${volume}-${c}-${String(ordinal)}`,
};

/** The member's advertised peer URL (stable DNS name through the headless Service; https with spec.tls.peer). */
export function peerUrl(cluster: string, namespace: string, ordinal: number, scheme: 'http' | 'https' = 'http'): string {
  return `${scheme}://${names.pod(cluster, ordinal)}.${names.peerService(cluster)}.${namespace}.svc:${String(PEER_PORT)}`;
}

export function clientUrl(cluster: string, namespace: string, ordinal: number): string {
  return `http://${names.pod(cluster, ordinal)}.${names.peerService(cluster)}.${namespace}.svc:${String(CLIENT_PORT)}`;
}

/** The ordinal a peer URL of this cluster names, or undefined. */
export function ordinalOfPeerUrl(cluster: string, namespace: string, url: string): number | undefined {
  const m = /^(https?):\/\/(.+)-(\d+)\.(.+)\.(.+)\.svc:(\d+)$/.exec(url);
  if (m === null || m[2] !== cluster || m[4] !== names.peerService(cluster) || m[5] !== namespace) return undefined;
  const n = Number(m[3]);
  return peerUrl(cluster, namespace, n, m[1] === 'https' ? 'https' : 'http') === url ? n : undefined;
}

export function ordinalOfName(cluster: string, podName: string): number | undefined {
  const prefix = `${cluster}-`;
  if (!podName.startsWith(prefix)) return undefined;
  const rest = podName.slice(prefix.length);
  return /^(0|[1-9]\d*)$/.test(rest) ? Number(rest) : undefined;
}

export function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** The cluster token: unique per EtcdCluster object (its uid). */
export function clusterToken(c: EtcdCluster): string {
  return `${c.metadata.name}-${c.metadata.uid}`;
}

/** The token the members use: the recorded one (a quorum-loss recovery replaces it), else clusterToken. */
export function activeToken(c: EtcdCluster): string {
  return c.status?.clusterToken ?? clusterToken(c);
}

/** The image the spec asks for: image, else the default repository at `version`, else the default. */
export function targetImage(spec: EtcdClusterSpec, defaultImage: string): string {
  if (spec.image !== undefined) return spec.image;
  if (spec.version === undefined) return defaultImage;
  const at = defaultImage.lastIndexOf(':');
  const repo = at > defaultImage.lastIndexOf('/') ? defaultImage.slice(0, at) : defaultImage;
  return `${repo}:${spec.version}`;
}

/** The tag of an image reference ("" when none). */
export function imageTag(image: string): string {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? image.slice(at + 1) : '';
}

export function selectorLabels(c: EtcdCluster): Record<string, string> {
  return { 'app.kubernetes.io/name': 'cairn', 'app.kubernetes.io/instance': c.metadata.name };
}

export function labelSelector(c: EtcdCluster): string {
  return Object.entries(selectorLabels(c))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function labels(c: EtcdCluster): Record<string, string> {
  return { ...selectorLabels(c), 'app.kubernetes.io/managed-by': FIELD_MANAGER };
}

/** FNV-1a 32-bit over a canonical JSON (sorted keys), hex. */
export function hashOf(v: unknown): string {
  const s = canonical(v);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function meta(c: EtcdCluster, name: string, extra: JsonObject = {}): JsonObject {
  return {
    name,
    namespace: c.metadata.namespace,
    labels: labels(c),
    ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: c.metadata.name, uid: c.metadata.uid, controller: true, blockOwnerDeletion: true }],
    ...extra,
  };
}

/** Adds the spec-hash annotation computed over the object without it (and without `omit` paths). */
function hashed(o: JsonObject, hashInput: unknown = o): JsonObject {
  const m = o['metadata'] as JsonObject;
  m['annotations'] = { ...((m['annotations'] as JsonObject | undefined) ?? {}), [HASH_ANNOTATION]: hashOf(hashInput) };
  return o;
}

/** The server flags of the typed options plus extraArgs (the entrypoint adds the per-member ones). */
export function serverArgs(spec: EtcdClusterSpec): string[] {
  const s = spec.server;
  return [
    `--quota-backend-bytes=${String(quotaFor(spec))}`,
    `--snapshot-count=${String(s.snapshotCount)}`,
    `--heartbeat-interval=${String(s.heartbeatIntervalMs)}`,
    `--election-timeout=${String(s.electionTimeoutMs)}`,
    `--auto-compaction-mode=${spec.compaction.mode}`,
    `--auto-compaction-retention=${spec.compaction.retention}`,
    ...tlsServerArgs(spec),
    ...spec.extraArgs,
  ];
}

export function serviceAccount(c: EtcdCluster): JsonObject {
  return hashed({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(c, names.serviceAccount(c.metadata.name)) });
}

/** Lets the member pods read their own Pod (the bootstrap grant) through the API. */
export function roleBinding(c: EtcdCluster): JsonObject {
  return hashed({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(c, names.roleBinding(c.metadata.name)),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: MEMBER_CLUSTER_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: names.serviceAccount(c.metadata.name), namespace: c.metadata.namespace }],
  });
}

export function peerService(c: EtcdCluster): JsonObject {
  return hashed({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(c, names.peerService(c.metadata.name)),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(c),
      ports: [
        { name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT },
        { name: 'peer', port: PEER_PORT, targetPort: PEER_PORT },
      ],
    },
  });
}

export function clientService(c: EtcdCluster): JsonObject {
  return hashed({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(c, names.clientService(c.metadata.name)),
    spec: { type: 'ClusterIP', selector: selectorLabels(c), ports: [{ name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT }] },
  });
}

export function podDisruptionBudget(c: EtcdCluster, spec: EtcdClusterSpec): JsonObject {
  return hashed({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(c, names.pdb(c.metadata.name)),
    spec: { minAvailable: quorum(spec.replicas), selector: { matchLabels: selectorLabels(c) } },
  });
}

function defaultAffinity(c: EtcdCluster): JsonObject {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(c) } } },
      ],
    },
  };
}

function env(c: EtcdCluster, spec: EtcdClusterSpec): Json[] {
  const field = (name: string, path: string): JsonObject => ({ name, valueFrom: { fieldRef: { fieldPath: path } } });
  const value = (name: string, v: string): JsonObject => ({ name, value: v });
  return [
    field('POD_NAME', 'metadata.name'),
    field('POD_NAMESPACE', 'metadata.namespace'),
    value('CAIRN_CLUSTER', c.metadata.name),
    value('CAIRN_PEER_SERVICE', names.peerService(c.metadata.name)),
    value('CAIRN_CLIENT_SERVICE', names.clientService(c.metadata.name)),
    value('CAIRN_CLUSTER_TOKEN', activeToken(c)),
    value('CAIRN_DATA_DIR', DATA_MOUNT),
    value('CAIRN_WAL_DIR', WAL_MOUNT),
    value('CAIRN_AGENT_PORT', String(AGENT_PORT)),
    value('CAIRN_SERVER_ARGS', JSON.stringify(serverArgs(spec))),
    ...tlsEnv(names.peerService(c.metadata.name), spec),
    ...restoreEnv(c, spec),
    ...recoverEnv(c),
  ];
}

export const RESTORE_ENV = { order: 'CAIRN_RESTORE', accessKeyId: 'AWS_ACCESS_KEY_ID', secretAccessKey: 'AWS_SECRET_ACCESS_KEY', caBundle: 'CAIRN_RESTORE_CA_PEM' } as const;

/**
 * The restore's environment, once the planner verified the object (status.restore.verifiedAt): the
 * object (CAIRN_RESTORE) and its credentials as secretKeyRef env from the location's Secrets (never
 * in the spec or the arguments). Every pod gets it: a pod that finds another cluster's data on its
 * volume moves it aside; only pod 0, granted, restores.
 */
function restoreEnv(c: EtcdCluster, spec: EtcdClusterSpec): JsonObject[] {
  const r = c.status?.restore;
  if (spec.bootstrap === undefined || r?.verifiedAt === undefined || r.source === undefined) return [];
  // A quorum-loss recovery's token replaced the restore's: its own order (recoverEnv) is the one.
  if (recoverOrder(c) !== undefined) return [];
  const loc = r.source;
  // member/restore.ts RestoreOrder reads this (member/ does not import plan/).
  const order = { uri: r.uri, bucket: loc.bucket, key: loc.key, region: loc.region, forcePathStyle: loc.forcePathStyle, sha256: r.sha256, sizeBytes: r.size, ...(loc.endpoint !== undefined ? { endpoint: loc.endpoint } : {}) };
  const secret = (name: string, secretName: string, key: string): JsonObject => ({ name, valueFrom: { secretKeyRef: { name: secretName, key } } });
  const out: JsonObject[] = [{ name: RESTORE_ENV.order, value: JSON.stringify(order) }];
  const cred = loc.credentialsSecretRef;
  if (cred !== undefined) out.push(secret(RESTORE_ENV.accessKeyId, cred.name, cred.accessKeyIdKey), secret(RESTORE_ENV.secretAccessKey, cred.name, cred.secretAccessKeyKey));
  if (loc.caBundleSecretRef !== undefined) out.push(secret(RESTORE_ENV.caBundle, loc.caBundleSecretRef.name, loc.caBundleSecretRef.key));
  return out;
}

export const RECOVER_ENV = 'CAIRN_RECOVER';

/** What the survivor restores from, once a recovery passed its point of no return (the token switched). */
function recoverOrder(c: EtcdCluster): JsonObject | undefined {
  const r = c.status?.recovery;
  if (r?.snapshot === undefined || r.restartAt === undefined || c.status?.clusterToken !== r.token) return undefined;
  return { survivor: r.survivor, token: r.token, file: r.snapshot.file, sha256: r.snapshot.sha256, sizeBytes: r.snapshot.sizeBytes };
}

/**
 * A recovered cluster's order (member/restore.ts RecoverOrder reads it): every pod moves another
 * token's data aside (the old cluster's: kept, never started); the survivor, granted, restores its
 * snapshot file as the new one-member cluster. Kept after the recovery (no template change).
 */
function recoverEnv(c: EtcdCluster): JsonObject[] {
  const order = recoverOrder(c);
  return order === undefined ? [] : [{ name: RECOVER_ENV, value: JSON.stringify(order) }];
}

function claim(c: EtcdCluster, volume: 'data' | 'wal', size: string, storageClassName: string | undefined): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: volume, labels: selectorLabels(c) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: size } },
      ...(storageClassName !== undefined ? { storageClassName } : {}),
    },
  };
}

function podSpec(c: EtcdCluster, spec: EtcdClusterSpec, image: string): JsonObject {
  const probe = (path: string, port: number, failureThreshold: number): JsonObject => ({
    httpGet: { path, port },
    periodSeconds: 5,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const out: JsonObject = {
    serviceAccountName: names.serviceAccount(c.metadata.name),
    terminationGracePeriodSeconds: TERMINATION_GRACE_S,
    affinity: spec.affinity ?? defaultAffinity(c),
    containers: [
      {
        name: 'cairn',
        image,
        imagePullPolicy: 'IfNotPresent',
        command: ['node', 'dist/operator/member/main.js'],
        env: env(c, spec),
        ports: [
          { name: 'client', containerPort: CLIENT_PORT },
          { name: 'peer', containerPort: PEER_PORT },
          { name: 'agent', containerPort: AGENT_PORT },
        ],
        readinessProbe: probe('/readyz', healthPort(spec, CLIENT_PORT), 3),
        livenessProbe: probe('/livez', AGENT_PORT, 6),
        volumeMounts: [
          { name: 'data', mountPath: DATA_MOUNT },
          { name: 'wal', mountPath: WAL_MOUNT },
          ...tlsVolumeMounts(spec),
        ],
        ...(spec.resources !== undefined ? { resources: spec.resources } : {}),
      },
    ],
  };
  const volumes = tlsVolumes(c.metadata.name, spec);
  if (volumes.length > 0) out['volumes'] = volumes;
  if (spec.topologySpreadConstraints !== undefined) out['topologySpreadConstraints'] = spec.topologySpreadConstraints;
  if (spec.nodeSelector !== undefined) out['nodeSelector'] = spec.nodeSelector;
  if (spec.tolerations !== undefined) out['tolerations'] = spec.tolerations;
  if (spec.priorityClassName !== undefined) out['priorityClassName'] = spec.priorityClassName;
  return out;
}

/**
 * The StatefulSet: Parallel pod management (a member whose peers are down must still be started, or
 * a full restart could never regain quorum), OnDelete updates (the operator rolls pods one at a
 * time), a data and a WAL claim template. The claim templates keep the sizes of `claimSizes` (the
 * sizes at creation: templates are immutable; grown sizes are patched into the claims).
 */
export function statefulSet(c: EtcdCluster, spec: EtcdClusterSpec, image: string, replicas: number, claimSizes: { data: string; wal: string }): JsonObject {
  const body: JsonObject = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(c, names.statefulSet(c.metadata.name)),
    spec: {
      serviceName: names.peerService(c.metadata.name),
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: spec.storage.reclaimPolicy === 'Delete' ? 'Delete' : 'Retain', whenScaled: 'Retain' },
      selector: { matchLabels: selectorLabels(c) },
      template: { metadata: { labels: labels(c) }, spec: podSpec(c, spec, image) },
      volumeClaimTemplates: [
        claim(c, 'data', claimSizes.data, spec.storage.data.storageClassName),
        claim(c, 'wal', claimSizes.wal, spec.storage.wal.storageClassName),
      ],
    },
  };
  const hashInput = JSON.parse(JSON.stringify(body)) as JsonObject;
  const o = hashed(body, hashInput);
  (o['spec'] as JsonObject)['replicas'] = replicas;
  return o;
}

/** Every owned object except the StatefulSet, in creation order. */
export function supportObjects(c: EtcdCluster, spec: EtcdClusterSpec): JsonObject[] {
  return [serviceAccount(c), roleBinding(c), peerService(c), clientService(c), podDisruptionBudget(c, spec)];
}

/** A JSON value as text: strings as they are, anything else as JSON. */
export function text(v: Json | undefined): string {
  return typeof v === 'string' ? v : JSON.stringify(v ?? null);
}

/** "Kind/name" of an object: the key of Observed.objects. */
export function objectKey(o: JsonObject): string {
  const m = o['metadata'] as JsonObject;
  return `${text(o['kind'])}/${text(m['name'])}`;
}

export function specHashOf(o: JsonObject): string {
  const m = o['metadata'] as JsonObject;
  const a = m['annotations'] as JsonObject;
  return text(a[HASH_ANNOTATION]);
}

/** Volume sizes compared in bytes. */
export function sizeBytes(q: string): number {
  return parseQuantity(q);
}
