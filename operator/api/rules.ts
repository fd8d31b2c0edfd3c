// The validation rules of the EtcdCluster spec, written once: each rule carries its CEL expression
// (rendered into the CRD as x-kubernetes-validations at the schema node `at`) and the same check in
// TypeScript (validate.ts runs it at the operator's gate), with one message for both. A transition
// rule (one that reads oldSelf) runs only on updates, as in the apiserver.
import { isQuantity, parseQuantity, QUANTITY_PATTERN } from './quantity.js';

/** Flags the operator sets itself; extraArgs may not name them. */
export const OWNED_FLAGS: readonly string[] = [
  'name',
  'data-dir',
  'wal-dir',
  'listen-client-urls',
  'advertise-client-urls',
  'listen-peer-urls',
  'initial-advertise-peer-urls',
  'initial-cluster',
  'initial-cluster-state',
  'initial-cluster-token',
  'listen-metrics-urls',
  'quota-backend-bytes',
  'snapshot-count',
  'heartbeat-interval',
  'election-timeout',
  'auto-compaction-mode',
  'auto-compaction-retention',
  'config-file',
  'log-format',
  'logger',
  'version',
  'help',
];

export const ALLOWED_REPLICAS: readonly number[] = [1, 3, 5, 7];
export const EXTRA_ARGS_MAX = 64;
export const EXTRA_ARG_BYTES_MAX = 256;
export const NAME_BYTES_MAX = 40;

/** "0.1.0", "v3.6.0", "1.2.3-rc.1": the image tag the version selects. */
export const VERSION_PATTERN = '^v?(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$';
export const EXTRA_ARG_PATTERN = '^--[a-z0-9][a-z0-9-]*(=.*)?$';
const OWNED_FLAG_RE = `^--(${OWNED_FLAGS.join('|')})(=.*)?$`;

// Cron, checked by a pattern both in CEL and in TypeScript (no backslashes: CEL and JSON escaping
// differ). Each field: *, a value or a range of the field's bounds, an optional /step, lists with
// commas; day-of-month may be L (last day), day-of-week N#k (k-th weekday) or NL (last one). The
// controller also parses it with croner (a zone it does not know, or a date that never comes, is
// reported in BackupHealthy).
const names = (xs: string): string => xs.split(' ').flatMap((x) => [x, x.toLowerCase()]).join('|');
const cronField = (v: string, extra: readonly string[] = []): string => {
  const item = [`(?:[*]|${v}(?:-${v})?)(?:[/][0-9]{1,2})?`, ...extra].join('|');
  return `(?:${item})(?:,(?:${item}))*`;
};
const MINUTE = '[0-5]?[0-9]';
const HOUR = '(?:[01]?[0-9]|2[0-3])';
const DAY = '(?:0?[1-9]|[12][0-9]|3[01])';
const MONTH = `(?:0?[1-9]|1[0-2]|${names('JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC')})`;
const WEEKDAY = `(?:[0-7]|${names('SUN MON TUE WED THU FRI SAT')})`;
export const CRON_NICKNAMES: readonly string[] = ['@hourly', '@daily', '@weekly', '@monthly', '@yearly'];
export const CRON_PATTERN =
  `^(?:${CRON_NICKNAMES.join('|')}|${cronField(MINUTE)} +${cronField(HOUR)} +${cronField(DAY, ['L'])} +${cronField(MONTH)} +${cronField(WEEKDAY, [`${WEEKDAY}#[1-5L]`, `${WEEKDAY}L`])})$`;
/** An IANA zone name's shape ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+3"). */
export const TIME_ZONE_PATTERN = '^[A-Za-z][A-Za-z0-9_+-]*([/][A-Za-z0-9_+-]+)*$';
/** S3 bucket names (lower case, digits, dots, hyphens; 3-63). */
export const BUCKET_PATTERN = '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$';
export const ENDPOINT_PATTERN = '^https?://[^ /?#]+(/[^ ?#]*)?$';
/** retention.maxAge: "720h", "30d", "1w2d". */
export const DURATION_PATTERN = '^([0-9]+[smhdw])+$';
/** compaction.retention: "5m", "1h" (periodic) or a revision count (revision). */
export const COMPACTION_RETENTION_PATTERN = '^[0-9]+(h|m|s)?$';

export const MESSAGES = {
  replicas: 'replicas must be 1, 3, 5 or 7: an even count tolerates no more failures than the odd count below it',
  version: 'version must look like 1.2.3 or v1.2.3 (an optional -suffix), the server image tag',
  shrink: 'a volume cannot shrink (the claim keeps its data); set a size at least the current one',
  storageClass: 'storageClassName is immutable: a claim cannot move to another class (create a new cluster and restore a snapshot)',
  extraArgFormat: 'each extraArgs entry must be --flag or --flag=value',
  extraArgOwned: `extraArgs may not set a flag the operator owns (${OWNED_FLAGS.map((f) => `--${f}`).join(', ')}); use the typed field`,
  timeouts: 'server.electionTimeoutMs must be at least 5 times server.heartbeatIntervalMs',
  quantity: 'size must be a quantity such as 8Gi or 500M',
  schedule: `schedule must be a cron expression of 5 fields "minute hour day-of-month month day-of-week" (e.g. "0 3 * * *" daily at 03:00, "*/15 * * * *") or one of ${CRON_NICKNAMES.join(', ')}`,
  timeZone: 'timeZone must be an IANA time zone name such as UTC or Europe/Berlin',
  bucket: 's3.bucket must be an S3 bucket name: 3-63 lower-case letters, digits, dots or hyphens',
  endpoint: 's3.endpoint must be an http:// or https:// URL (https://s3.example.com:9000)',
  maxAge: 'retention.maxAge must be a duration such as 720h, 30d or 1w',
  compactionRetention: 'compaction.retention must be a duration (5m, 1h) for mode periodic, a revision count (1000) for mode revision',
  bootstrapImmutable: 'spec.bootstrap is immutable: it is read only when the cluster is created (to restore, create a new cluster from the backup)',
  fromBackupOne: 'spec.bootstrap.fromBackup needs exactly one of backupRef and s3',
  clusterNameImmutable: 'spec.clusterName is immutable: create another EtcdBackup for another cluster',
  tlsSides: 'spec.tls: which sides have TLS (client, peer) is set at creation (the members\' URLs carry the scheme); a side\'s secretName may change',
} as const;

/** A node of the JSON being validated (the spec or one of its objects). */
export type Node = Record<string, unknown>;

export interface Rule {
  /** Dotted path of the schema node the rule sits on (`spec`, `spec.storage.data`). */
  readonly at: string;
  readonly cel: string;
  readonly message: string;
  /** The same rule in TypeScript over the node (and the old node for a transition rule). */
  readonly check: (self: Node, old: Node | undefined) => boolean;
  /** True if the rule reads oldSelf (runs on updates only). */
  readonly transition: boolean;
}

function str(n: Node, k: string): string | undefined {
  const v = n[k];
  return typeof v === 'string' ? v : undefined;
}

function num(n: Node, k: string): number | undefined {
  const v = n[k];
  return typeof v === 'number' ? v : undefined;
}

function sameClass(self: Node, old: Node | undefined): boolean {
  if (old === undefined) return true;
  return str(self, 'storageClassName') === str(old, 'storageClassName');
}

function noShrink(self: Node, old: Node | undefined): boolean {
  if (old === undefined) return true;
  const a = str(self, 'size');
  const b = str(old, 'size');
  if (a === undefined || b === undefined || !isQuantity(a) || !isQuantity(b)) return true;
  return parseQuantity(a) >= parseQuantity(b);
}

function volumeRules(at: string): Rule[] {
  return [
    {
      at,
      cel: "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
      message: MESSAGES.storageClass,
      check: sameClass,
      transition: true,
    },
    {
      at,
      cel: '!isQuantity(self.size) || !isQuantity(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0',
      message: MESSAGES.shrink,
      check: noShrink,
      transition: true,
    },
  ];
}

function matches(pattern: string): (v: unknown) => boolean {
  const re = new RegExp(pattern);
  return (v) => typeof v === 'string' && re.test(v);
}

export const RULES: readonly Rule[] = [
  {
    at: 'spec',
    cel: `!has(self.version) || self.version.matches('${VERSION_PATTERN}')`,
    message: MESSAGES.version,
    check: (s) => s['version'] === undefined || matches(VERSION_PATTERN)(s['version']),
    transition: false,
  },
  {
    at: 'spec',
    cel: `!has(self.extraArgs) || self.extraArgs.all(a, a.matches('${EXTRA_ARG_PATTERN}'))`,
    message: MESSAGES.extraArgFormat,
    check: (s) => {
      const a = s['extraArgs'];
      return !Array.isArray(a) || a.every(matches(EXTRA_ARG_PATTERN));
    },
    transition: false,
  },
  {
    at: 'spec.storage.data',
    cel: `self.size.matches('${QUANTITY_PATTERN}')`,
    message: MESSAGES.quantity,
    check: (s) => matches(QUANTITY_PATTERN)(s['size']),
    transition: false,
  },
  {
    at: 'spec.storage.wal',
    cel: `self.size.matches('${QUANTITY_PATTERN}')`,
    message: MESSAGES.quantity,
    check: (s) => matches(QUANTITY_PATTERN)(s['size']),
    transition: false,
  },
  {
    at: 'spec',
    cel: 'has(self.tls) == has(oldSelf.tls) && (!has(self.tls) || (has(self.tls.client) == has(oldSelf.tls.client) && has(self.tls.peer) == has(oldSelf.tls.peer)))',
    message: MESSAGES.tlsSides,
    check: (s, old) => {
      if (old === undefined) return true;
      const side = (n: Node, k: string): boolean => typeof n['tls'] === 'object' && n['tls'] !== null && (n['tls'] as Node)[k] !== undefined;
      return (s['tls'] !== undefined) === (old['tls'] !== undefined) && side(s, 'client') === side(old, 'client') && side(s, 'peer') === side(old, 'peer');
    },
    transition: true,
  },
  {
    at: 'spec',
    cel: `self.replicas in [${ALLOWED_REPLICAS.join(', ')}]`,
    message: MESSAGES.replicas,
    check: (s) => ALLOWED_REPLICAS.includes(num(s, 'replicas') ?? -1),
    transition: false,
  },
  {
    at: 'spec',
    cel: `!has(self.extraArgs) || self.extraArgs.all(a, !a.matches('${OWNED_FLAG_RE}'))`,
    message: MESSAGES.extraArgOwned,
    check: (s) => {
      const a = s['extraArgs'];
      const re = new RegExp(OWNED_FLAG_RE);
      return !Array.isArray(a) || a.every((x) => typeof x !== 'string' || !re.test(x));
    },
    transition: false,
  },
  {
    at: 'spec.server',
    cel: 'self.electionTimeoutMs >= 5 * self.heartbeatIntervalMs',
    message: MESSAGES.timeouts,
    check: (s) => (num(s, 'electionTimeoutMs') ?? 0) >= 5 * (num(s, 'heartbeatIntervalMs') ?? 0),
    transition: false,
  },
  ...volumeRules('spec.storage.data'),
  ...volumeRules('spec.storage.wal'),
  ...scheduleRules('spec.backup'),
  ...scheduleRules('spec.defrag'),
  ...s3Rules('spec.backup.destination.s3'),
  ...s3Rules('spec.bootstrap.fromBackup.s3'),
  {
    at: 'spec.backup.retention',
    cel: `!has(self.maxAge) || self.maxAge.matches('${DURATION_PATTERN}')`,
    message: MESSAGES.maxAge,
    check: (s) => s['maxAge'] === undefined || matches(DURATION_PATTERN)(s['maxAge']),
    transition: false,
  },
  {
    at: 'spec.compaction',
    cel: `self.retention.matches('${COMPACTION_RETENTION_PATTERN}') && (self.mode == 'periodic' || self.retention.matches('^[0-9]+$'))`,
    message: MESSAGES.compactionRetention,
    check: (s) => matches(COMPACTION_RETENTION_PATTERN)(s['retention']) && (s['mode'] !== 'revision' || matches('^[0-9]+$')(s['retention'])),
    transition: false,
  },
  {
    at: 'spec',
    cel: 'has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)',
    message: MESSAGES.bootstrapImmutable,
    check: (s, old) => old === undefined || JSON.stringify(s['bootstrap']) === JSON.stringify(old['bootstrap']),
    transition: true,
  },
  {
    at: 'spec.bootstrap.fromBackup',
    cel: 'has(self.backupRef) != has(self.s3)',
    message: MESSAGES.fromBackupOne,
    check: (s) => (s['backupRef'] !== undefined) !== (s['s3'] !== undefined),
    transition: false,
  },
];

function scheduleRules(at: string): Rule[] {
  return [
    {
      at,
      cel: `self.schedule.matches('${CRON_PATTERN}')`,
      message: MESSAGES.schedule,
      check: (s) => matches(CRON_PATTERN)(s['schedule']),
      transition: false,
    },
    {
      at,
      cel: `!has(self.timeZone) || self.timeZone.matches('${TIME_ZONE_PATTERN}')`,
      message: MESSAGES.timeZone,
      check: (s) => s['timeZone'] === undefined || matches(TIME_ZONE_PATTERN)(s['timeZone']),
      transition: false,
    },
  ];
}

/** Rules of an S3 location (the cluster's destination, a bootstrap object, an EtcdBackup's). */
export function s3Rules(at: string): Rule[] {
  return [
    {
      at,
      cel: `self.bucket.matches('${BUCKET_PATTERN}')`,
      message: MESSAGES.bucket,
      check: (s) => matches(BUCKET_PATTERN)(s['bucket']),
      transition: false,
    },
    {
      at,
      cel: `!has(self.endpoint) || self.endpoint.matches('${ENDPOINT_PATTERN}')`,
      message: MESSAGES.endpoint,
      check: (s) => s['endpoint'] === undefined || matches(ENDPOINT_PATTERN)(s['endpoint']),
      transition: false,
    },
  ];
}

/** The rules of the EtcdBackup spec. */
export const BACKUP_RULES: readonly Rule[] = [
  {
    at: 'spec',
    cel: 'self.clusterName == oldSelf.clusterName',
    message: MESSAGES.clusterNameImmutable,
    check: (s, old) => old === undefined || s['clusterName'] === old['clusterName'],
    transition: true,
  },
  ...s3Rules('spec.destination.s3'),
];
