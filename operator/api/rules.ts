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

export const MESSAGES = {
  replicas: 'replicas must be 1, 3, 5 or 7: an even count tolerates no more failures than the odd count below it',
  version: 'version must look like 1.2.3 or v1.2.3 (an optional -suffix), the server image tag',
  shrink: 'a volume cannot shrink (the claim keeps its data); set a size at least the current one',
  storageClass: 'storageClassName is immutable: a claim cannot move to another class (create a new cluster and restore a snapshot)',
  extraArgFormat: 'each extraArgs entry must be --flag or --flag=value',
  extraArgOwned: `extraArgs may not set a flag the operator owns (${OWNED_FLAGS.map((f) => `--${f}`).join(', ')}); use the typed field`,
  timeouts: 'server.electionTimeoutMs must be at least 5 times server.heartbeatIntervalMs',
  quantity: 'size must be a quantity such as 8Gi or 500M',
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
];
