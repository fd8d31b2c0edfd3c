// The CustomResourceDefinition of EtcdCluster as a plain object: OpenAPI v3 schema with the
// defaults of defaults.ts, the CEL rules of rules.ts (x-kubernetes-validations), printer columns and
// the status and scale subresources. crds/cairn.dev_etcdclusters.yaml is its YAML rendering
// (operator/tools/render-crds.ts; a test checks the committed file equals a fresh render).
import { DEFAULTS } from './defaults.js';
import { BACKUP_RULES, EXTRA_ARG_BYTES_MAX, EXTRA_ARGS_MAX, NAME_BYTES_MAX, RULES, type Rule } from './rules.js';
import { BACKUP_KIND, BACKUP_PLURAL, BACKUP_SHORT_NAMES, BACKUP_SINGULAR, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, type JsonObject } from './types.js';

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
      snapshotCount: int(d.snapshotCount, 1, '--snapshot-count'),
      heartbeatIntervalMs: { ...int(d.heartbeatIntervalMs, 10, '--heartbeat-interval'), maximum: 10_000 },
      electionTimeoutMs: { ...int(d.electionTimeoutMs, 50, '--election-timeout'), maximum: 50_000 },
    },
  };
}

const str = (maxLength: number, description: string): Schema => ({ type: 'string', maxLength, description });

function s3LocationProperties(): Record<string, Schema> {
  return {
    bucket: str(63, 'Bucket name.'),
    prefix: str(512, 'Key prefix; objects land under <prefix><cluster>/.'),
    endpoint: str(1024, 'http(s) URL of an S3-compatible endpoint; absent: AWS S3 of the region.'),
    region: { ...str(64, 'Region (signing).'), default: DEFAULTS.s3Region },
    forcePathStyle: { type: 'boolean', default: false, description: 'Path-style URLs (endpoint/bucket/key) instead of virtual-hosted.' },
    credentialsSecretRef: {
      type: 'object',
      description: 'Secret (same namespace) with the access key pair; absent: the operator\'s own credentials.',
      required: ['name'],
      properties: {
        name: str(253, 'Secret name.'),
        accessKeyIdKey: { ...str(253, 'Key of the access key id.'), default: DEFAULTS.accessKeyIdKey },
        secretAccessKeyKey: { ...str(253, 'Key of the secret access key.'), default: DEFAULTS.secretAccessKeyKey },
      },
    },
    caBundleSecretRef: {
      type: 'object',
      description: 'Secret (same namespace) with the PEM CA bundle of the endpoint.',
      required: ['name'],
      properties: { name: str(253, 'Secret name.'), key: { ...str(253, 'Key of the bundle.'), default: DEFAULTS.caBundleKey } },
    },
  };
}

function destination(description: string): Schema {
  return {
    type: 'object',
    description,
    required: ['s3'],
    properties: { s3: { type: 'object', required: ['bucket'], properties: s3LocationProperties() } },
  };
}

const schedule = (what: string): Schema => str(128, `Cron of ${what} (5 fields, or @hourly/@daily/@weekly/@monthly/@yearly).`);
const timeZone: Schema = str(64, 'IANA time zone of the schedule; absent: UTC.');

function backupSpecSchema(): Schema {
  return {
    type: 'object',
    description: 'Scheduled backups to S3-compatible object storage.',
    required: ['schedule', 'destination'],
    properties: {
      schedule: schedule('the backups'),
      timeZone,
      suspend: { type: 'boolean', default: false, description: 'No new scheduled backup while true.' },
      destination: destination('Where the backups go.'),
      retention: {
        type: 'object',
        description: 'Which backups to keep (objects and EtcdBackup records); the newest good one is always kept.',
        default: { ...DEFAULTS.retention },
        properties: {
          keepLast: { type: 'integer', format: 'int32', minimum: 1, description: 'The N newest good backups.' },
          keepDaily: { type: 'integer', format: 'int32', minimum: 1, description: 'The newest good backup of each of the D most recent days.' },
          maxAge: str(32, 'Good backups older than this are deleted (720h, 30d).'),
        },
      },
    },
  };
}

function upkeepSchemas(): Record<string, Schema> {
  const c = DEFAULTS.compaction;
  return {
    quotaBackendBytes: { type: 'integer', format: 'int64', minimum: 0, description: '--quota-backend-bytes; absent: 75% of the data volume, at most 8 GiB.' },
    compaction: {
      type: 'object',
      description: 'Auto-compaction (--auto-compaction-mode, --auto-compaction-retention).',
      default: { ...c },
      properties: {
        mode: { type: 'string', enum: ['periodic', 'revision'], default: c.mode },
        retention: { ...str(32, 'periodic: a duration (5m, 1h); revision: a revision count.'), default: c.retention },
      },
    },
    defrag: {
      type: 'object',
      description: 'Scheduled defragmentation, one member at a time, followers first.',
      required: ['schedule'],
      properties: {
        schedule: schedule('defragmentation'),
        timeZone,
        minFragmentation: { type: 'integer', format: 'int32', minimum: 0, maximum: 100, default: DEFAULTS.minFragmentation, description: 'Only members with at least this % of their file free.' },
      },
    },
    bootstrap: {
      type: 'object',
      description: 'How the cluster starts; read only at creation, immutable.',
      required: ['fromBackup'],
      properties: {
        fromBackup: {
          type: 'object',
          description: 'Every member restored from one backup: exactly one of backupRef and s3.',
          properties: {
            backupRef: { type: 'object', required: ['name'], properties: { name: str(253, 'An EtcdBackup in this namespace.') } },
            s3: { type: 'object', required: ['bucket', 'key'], properties: { ...s3LocationProperties(), key: str(1024, 'Object key.') } },
          },
        },
      },
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
      ...upkeepSchemas(),
      backup: backupSpecSchema(),
      auth: {
        type: 'object',
        description: 'etcd authentication managed by the operator: root (root role) gets the Secret\'s password, the operator its own user cairn-operator (root role), then auth is enabled. Absent: auth disabled.',
        required: ['rootSecretRef'],
        properties: {
          rootSecretRef: {
            type: 'object',
            description: 'Secret (same namespace) with root\'s password; a changed password is set as root\'s.',
            required: ['name'],
            properties: { name: str(253, 'Secret name.'), key: { ...str(253, 'Key of the password.'), default: DEFAULTS.rootPasswordKey } },
          },
        },
      },
      tls: {
        type: 'object',
        description: 'TLS of the client and peer ports, independently (set at creation). Each side: secretName (cert-manager keys tls.crt, tls.key, ca.crt; checked, then copied to the Secret the members mount) or, absent, certificates issued and renewed by the operator from its CA (Secret <cluster>-ca).',
        properties: {
          client: {
            type: 'object',
            description: 'Client TLS; client certificates are required.',
            properties: {
              secretName: str(253, "The user's Secret (tls.crt, tls.key, ca.crt); absent: issued by the operator."),
              operatorSecretName: str(253, "With secretName: the operator's client certificate (tls.crt, tls.key), signed by the client Secret's ca.crt."),
            },
          },
          peer: { type: 'object', description: 'Peer TLS (peer certificates required).', properties: { secretName: str(253, "The user's Secret (tls.crt, tls.key, ca.crt); absent: issued by the operator.") } },
        },
      },
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
      backup: {
        type: 'object',
        properties: {
          lastSuccessfulBackup: {
            type: 'object',
            required: ['name', 'uri', 'time'],
            properties: { name: s(), uri: s(2048), time: { type: 'string', format: 'date-time' }, revision: i, size: i },
          },
          lastScheduleTime: { type: 'string', format: 'date-time' },
          nextScheduleTime: { type: 'string', format: 'date-time' },
        },
      },
      maintenance: {
        type: 'object',
        properties: {
          lastDefragTime: { type: 'string', format: 'date-time' },
          nospaceSince: { type: 'string', format: 'date-time' },
          round: {
            type: 'object',
            required: ['kind', 'startedAt', 'attempted'],
            properties: {
              kind: { type: 'string', enum: ['Scheduled', 'NoSpace'] },
              startedAt: { type: 'string', format: 'date-time' },
              compactRevision: i,
              attempted: { type: 'array', maxItems: 16, items: s(32) },
            },
          },
        },
      },
      restore: {
        type: 'object',
        properties: {
          uri: s(2048),
          sha256: s(64),
          size: i,
          revision: i,
          finishedAt: { type: 'string', format: 'date-time' },
          source: { type: 'object', properties: { ...s3LocationProperties(), key: s(1024) } },
          verifyStartedAt: { type: 'string', format: 'date-time' },
          verifiedAt: { type: 'string', format: 'date-time' },
          refusal: s(4096),
          refusedAt: { type: 'string', format: 'date-time' },
          retryable: { type: 'boolean' },
        },
      },
      tls: { type: 'object', properties: { client: { type: 'object', required: ['secret', 'serial', 'notAfter'], properties: { secret: s(), serial: s(64), notAfter: { type: 'string', format: 'date-time' }, from: s() } }, peer: { type: 'object', required: ['secret', 'serial', 'notAfter'], properties: { secret: s(), serial: s(64), notAfter: { type: 'string', format: 'date-time' }, from: s() } } } },
      auth: {
        type: 'object',
        required: ['enabled'],
        properties: { enabled: { type: 'boolean' }, user: s(), rootSecretVersion: s(), enabledAt: { type: 'string', format: 'date-time' } },
      },
      quorumLoss: {
        type: 'object',
        required: ['since', 'lost', 'survivors'],
        properties: {
          since: { type: 'string', format: 'date-time' },
          lost: { type: 'array', maxItems: 16, items: s() },
          survivors: {
            type: 'array',
            maxItems: 16,
            items: {
              type: 'object',
              required: ['name', 'id', 'learner', 'raftAppliedIndex', 'raftIndex', 'revision'],
              properties: { name: s(), id: s(32), learner: { type: 'boolean' }, raftAppliedIndex: i, raftIndex: i, revision: i },
            },
          },
          lastKnownRevision: i,
          confirmedAt: { type: 'string', format: 'date-time' },
        },
      },
      recovery: {
        type: 'object',
        required: ['stage', 'survivor', 'survivorId', 'ordinal', 'approvedAt', 'previousToken', 'token', 'rejoining'],
        properties: {
          stage: { type: 'string', enum: ['Approved', 'Restarting', 'Growing', 'Completed', 'Cancelled'] },
          survivor: s(),
          survivorId: s(32),
          ordinal: { type: 'integer' },
          approvedAt: { type: 'string', format: 'date-time' },
          previousToken: s(),
          previousClusterId: s(32),
          token: s(),
          rejoining: { type: 'array', maxItems: 16, items: s() },
          lastKnownRevision: i,
          snapshot: {
            type: 'object',
            required: ['file', 'pvc', 'sizeBytes', 'sha256', 'revision', 'takenAt'],
            properties: { file: s(1024), pvc: s(), sizeBytes: i, sha256: s(64), revision: i, takenAt: { type: 'string', format: 'date-time' } },
          },
          restartAt: { type: 'string', format: 'date-time' },
          restoredAt: { type: 'string', format: 'date-time' },
          finishedAt: { type: 'string', format: 'date-time' },
          message: s(4096),
        },
      },
      recoveryRefusal: {
        type: 'object',
        required: ['approval', 'reason', 'at'],
        properties: { approval: s(), reason: s(4096), at: { type: 'string', format: 'date-time' } },
      },
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
  withRules(root, RULES);
  return root;
}

function withRules(root: Schema, rules: readonly Rule[]): void {
  for (const r of rules) {
    const node = nodeAt(root, r.at);
    const list = (node['x-kubernetes-validations'] as Schema[] | undefined) ?? [];
    list.push({ rule: r.cel, message: r.message });
    node['x-kubernetes-validations'] = list;
  }
}

/** The openAPIV3Schema of EtcdBackup. */
export function backupOpenApiSchema(): Schema {
  const t = (maxLength = 256): Schema => ({ type: 'string', maxLength });
  const i: Schema = { type: 'integer', format: 'int64' };
  const time: Schema = { type: 'string', format: 'date-time' };
  const cond = conditionSchema();
  (cond['properties'] as Record<string, Schema>)['type'] = { type: 'string', enum: ['Complete', 'Failed'] };
  const root: Schema = {
    type: 'object',
    description: 'One backup of an EtcdCluster to S3-compatible object storage (on demand, or created by the cluster\'s schedule).',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: {
        type: 'object',
        required: ['clusterName'],
        properties: {
          clusterName: str(NAME_BYTES_MAX, 'The EtcdCluster (same namespace); immutable.'),
          destination: destination("Where the backup goes; absent: the cluster's spec.backup.destination."),
        },
      },
      status: {
        type: 'object',
        properties: {
          phase: { type: 'string', enum: ['Pending', 'Running', 'Succeeded', 'Failed'] },
          observedGeneration: i,
          conditions: { type: 'array', items: cond, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
          uri: t(2048),
          key: t(1024),
          size: i,
          sha256: t(64),
          revision: i,
          member: t(),
          serverVersion: t(64),
          startTime: time,
          completionTime: time,
          attempts: { type: 'integer', format: 'int32' },
          message: t(32768),
        },
      },
    },
  };
  withRules(root, BACKUP_RULES);
  return root;
}

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const BACKUP_CRD_NAME = `${BACKUP_PLURAL}.${GROUP}`;

const col = (name: string, type: string, jsonPath: string, priority = 0): Schema => ({ name, type, jsonPath, ...(priority > 0 ? { priority } : {}) });

interface CrdParts {
  name: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  schema: Schema;
  subresources: Schema;
  columns: Schema[];
}

/** A namespaced CRD with one served and stored version. */
function crdObject(p: CrdParts): JsonObject {
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: p.name },
      spec: {
        group: GROUP,
        names: { kind: p.kind, listKind: `${p.kind}List`, plural: p.plural, singular: p.singular, shortNames: p.shortNames },
        scope: 'Namespaced',
        versions: [{ name: VERSION, served: true, storage: true, schema: { openAPIV3Schema: p.schema }, subresources: p.subresources, additionalPrinterColumns: p.columns }],
      },
    }),
  ) as JsonObject;
}

/** The EtcdBackup CustomResourceDefinition object. */
export function backupCrd(): JsonObject {
  return crdObject({
    name: BACKUP_CRD_NAME,
    kind: BACKUP_KIND,
    plural: BACKUP_PLURAL,
    singular: BACKUP_SINGULAR,
    shortNames: BACKUP_SHORT_NAMES,
    schema: backupOpenApiSchema(),
    subresources: { status: {} },
    columns: [
      col('Cluster', 'string', '.spec.clusterName'),
      col('Phase', 'string', '.status.phase'),
      col('Size', 'integer', '.status.size'),
      col('Revision', 'integer', '.status.revision'),
      col('Age', 'date', '.metadata.creationTimestamp'),
      col('URI', 'string', '.status.uri', 1),
    ],
  });
}

/** The whole CustomResourceDefinition object. */
export function crd(): JsonObject {
  return crdObject({
    name: CRD_NAME,
    kind: KIND,
    plural: PLURAL,
    singular: SINGULAR,
    shortNames: SHORT_NAMES,
    schema: openApiSchema(),
    subresources: {
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    },
    columns: [
      col('Replicas', 'integer', '.spec.replicas'),
      col('Ready', 'string', '.status.readyMembers'),
      col('Phase', 'string', '.status.phase'),
      col('Version', 'string', '.status.currentVersion'),
      col('Operation', 'string', '.status.operation.type'),
      col('Age', 'date', '.metadata.creationTimestamp'),
      col('Image', 'string', '.status.currentImage', 1),
    ],
  });
}
