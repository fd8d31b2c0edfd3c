// The CustomResourceDefinition of EtcdCluster as a plain object: OpenAPI v3 schema with the
// defaults of defaults.ts, the CEL rules of rules.ts (x-kubernetes-validations), printer columns and
// the status and scale subresources. crds/cairn.dev_etcdclusters.yaml is its YAML rendering
// (operator/tools/render-crds.ts; a test checks the committed file equals a fresh render).
import { DEFAULTS } from './defaults.js';
import { EXTRA_ARG_BYTES_MAX, EXTRA_ARGS_MAX, NAME_BYTES_MAX, RULES } from './rules.js';
import { GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, type JsonObject } from './types.js';

type Schema = { [k: string]: unknown };

const opaqueObject = (description: string): Schema => ({ type: 'object', description, 'x-kubernetes-preserve-unknown-fields': true });
const opaqueList = (description: string): Schema => ({ type: 'array', description, items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } });

function volume(what: string): Schema {
  return {
    type: 'object',
    description: `The ${what} volume (one PersistentVolumeClaim per member).`,
    default: { size: DEFAULTS.volumeSize },
    required: ['size'],
    properties: {
      size: { type: 'string', maxLength: 32, default: DEFAULTS.volumeSize, description: 'A quantity (8Gi); may grow, never shrink.' },
      storageClassName: { type: 'string', maxLength: 253, description: 'Immutable; absent: the default class.' },
    },
  };
}

function serverOptions(): Schema {
  const d = DEFAULTS.server;
  const int = (def: number, min: number, description: string): Schema => ({ type: 'integer', format: 'int64', minimum: min, default: def, description });
  return {
    type: 'object',
    description: 'Typed server options (each one etcd flag).',
    default: { ...d },
    properties: {
      quotaBackendBytes: int(d.quotaBackendBytes, 0, '--quota-backend-bytes'),
      snapshotCount: int(d.snapshotCount, 1, '--snapshot-count'),
      heartbeatIntervalMs: { ...int(d.heartbeatIntervalMs, 10, '--heartbeat-interval'), maximum: 10_000 },
      electionTimeoutMs: { ...int(d.electionTimeoutMs, 50, '--election-timeout'), maximum: 50_000 },
      autoCompactionMode: { type: 'string', enum: ['periodic', 'revision'], default: d.autoCompactionMode, description: '--auto-compaction-mode' },
      autoCompactionRetention: { type: 'string', maxLength: 32, pattern: '^[0-9]+(h|m|s)?$', default: d.autoCompactionRetention, description: '--auto-compaction-retention' },
    },
  };
}

function specSchema(): Schema {
  return {
    type: 'object',
    description: 'The desired cluster.',
    properties: {
      replicas: { type: 'integer', format: 'int32', default: DEFAULTS.replicas, description: 'Voting members: 1, 3, 5 or 7.' },
      version: { type: 'string', maxLength: 64, description: 'Server version: a tag of the default image repository.' },
      image: { type: 'string', maxLength: 512, description: 'Full image reference; wins over version.' },
      storage: {
        type: 'object',
        default: { data: { size: DEFAULTS.volumeSize }, wal: { size: DEFAULTS.volumeSize }, reclaimPolicy: DEFAULTS.reclaimPolicy },
        properties: {
          data: volume('data'),
          wal: volume('WAL (--wal-dir)'),
          reclaimPolicy: { type: 'string', enum: ['Retain', 'Delete'], default: DEFAULTS.reclaimPolicy, description: 'Volumes kept or deleted with the cluster.' },
        },
      },
      resources: opaqueObject('Container resources of the server.'),
      affinity: opaqueObject('Pod affinity; default: preferred anti-affinity by hostname.'),
      topologySpreadConstraints: opaqueList('Pod topology spread constraints.'),
      nodeSelector: { type: 'object', additionalProperties: { type: 'string' } },
      tolerations: opaqueList('Pod tolerations.'),
      priorityClassName: { type: 'string', maxLength: 253 },
      server: serverOptions(),
      extraArgs: {
        type: 'array',
        maxItems: EXTRA_ARGS_MAX,
        default: [],
        items: { type: 'string', maxLength: EXTRA_ARG_BYTES_MAX },
        description: 'Further server flags (--flag=value); flags the operator owns are refused.',
      },
      paused: { type: 'boolean', default: false, description: 'No reconciling while true.' },
    },
  };
}

function conditionSchema(): Schema {
  return {
    type: 'object',
    required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
    properties: {
      type: { type: 'string', maxLength: 316 },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
      reason: { type: 'string', maxLength: 1024 },
      message: { type: 'string', maxLength: 32768 },
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
      lastTransitionTime: { type: 'string', format: 'date-time' },
    },
  };
}

function statusSchema(): Schema {
  const s = (maxLength = 256): Schema => ({ type: 'string', maxLength });
  const i: Schema = { type: 'integer', format: 'int64' };
  return {
    type: 'object',
    properties: {
      phase: s(32),
      conditions: { type: 'array', items: conditionSchema(), 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
      members: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name'],
          properties: {
            name: s(),
            id: s(32),
            learner: { type: 'boolean' },
            leader: { type: 'boolean' },
            healthy: { type: 'boolean' },
            version: s(),
            dbSize: i,
            revision: i,
            unhealthySince: { type: 'string', format: 'date-time' },
          },
        },
      },
      observedGeneration: i,
      currentVersion: s(),
      currentImage: s(512),
      operation: {
        type: 'object',
        required: ['type', 'member', 'ordinal', 'startedAt', 'reason'],
        properties: {
          type: { type: 'string', enum: ['Create', 'ScaleUp', 'ScaleDown', 'Replace', 'Upgrade'] },
          member: s(),
          ordinal: { type: 'integer' },
          memberId: s(32),
          image: s(512),
          startedAt: { type: 'string', format: 'date-time' },
          reason: s(1024),
        },
      },
      clusterToken: s(),
      clusterId: s(32),
      stoppedRollout: s(512),
      readyMembers: s(32),
      replicas: { type: 'integer', format: 'int32' },
      selector: s(1024),
    },
  };
}

/** Schema node at a dotted path (`spec.storage.data`) under the root object schema. */
function nodeAt(root: Schema, path: string): Schema {
  let cur = root;
  for (const k of path.split('.')) {
    const props = cur['properties'] as Record<string, Schema> | undefined;
    const next = props?.[k];
    if (next === undefined) throw new Error(`schema has no node ${path}`);
    cur = next;
  }
  return cur;
}

/** The openAPIV3Schema of the served version. */
export function openApiSchema(): Schema {
  const root: Schema = {
    type: 'object',
    description: 'A Cairn cluster: an etcd-compatible datastore run by the Cairn operator.',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: {
        type: 'object',
        properties: { name: { type: 'string', maxLength: NAME_BYTES_MAX, pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$' } },
      },
      spec: specSchema(),
      status: statusSchema(),
    },
  };
  for (const r of RULES) {
    const node = nodeAt(root, r.at);
    const list = (node['x-kubernetes-validations'] as Schema[] | undefined) ?? [];
    list.push({ rule: r.cel, message: r.message });
    node['x-kubernetes-validations'] = list;
  }
  return root;
}

export const CRD_NAME = `${PLURAL}.${GROUP}`;

/** The whole CustomResourceDefinition object. */
export function crd(): JsonObject {
  const col = (name: string, type: string, jsonPath: string, priority = 0): Schema => ({ name, type, jsonPath, ...(priority > 0 ? { priority } : {}) });
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: CRD_NAME },
      spec: {
        group: GROUP,
        names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES },
        scope: 'Namespaced',
        versions: [
          {
            name: VERSION,
            served: true,
            storage: true,
            schema: { openAPIV3Schema: openApiSchema() },
            subresources: {
              status: {},
              scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
            },
            additionalPrinterColumns: [
              col('Replicas', 'integer', '.spec.replicas'),
              col('Ready', 'string', '.status.readyMembers'),
              col('Phase', 'string', '.status.phase'),
              col('Version', 'string', '.status.currentVersion'),
              col('Operation', 'string', '.status.operation.type'),
              col('Age', 'date', '.metadata.creationTimestamp'),
              col('Image', 'string', '.status.currentImage', 1),
            ],
          },
        ],
      },
    }),
  ) as JsonObject;
}
