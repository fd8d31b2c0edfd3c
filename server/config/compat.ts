// etcd 3.6.8's flags that are not plain settings of ours: the --experimental-* aliases of 3.6's
// names, --feature-gates, and every flag Cairn accepts but either refuses at a value it cannot honour
// (a message naming the flag and why) or accepts with no effect (a warning at start naming it and why,
// never silently). The lists here are checked against `etcd --help` by test/etcd36/flags.test.ts.

/** The 3.6 name -> its 3.4/3.5 --experimental-* spelling. The 3.6 name wins when both are given. */
export const ALIASES: Readonly<Record<string, string>> = {
  'snapshot-catchup-entries': 'experimental-snapshot-catchup-entries',
  'watch-progress-notify-interval': 'experimental-watch-progress-notify-interval',
  'corrupt-check-time': 'experimental-corrupt-check-time',
  'compact-hash-check-time': 'experimental-compact-hash-check-time',
  'compaction-batch-limit': 'experimental-compaction-batch-limit',
  'compaction-sleep-interval': 'experimental-compaction-sleep-interval',
  'warning-apply-duration': 'experimental-warning-apply-duration',
  'warning-unary-request-duration': 'experimental-warning-unary-request-duration',
  'bootstrap-defrag-threshold-megabytes': 'experimental-bootstrap-defrag-threshold-megabytes',
  'downgrade-check-time': 'experimental-downgrade-check-time',
  'memory-mlock': 'experimental-memory-mlock',
  'peer-skip-client-san-verification': 'experimental-peer-skip-client-san-verification',
  'enable-distributed-tracing': 'experimental-enable-distributed-tracing',
  'distributed-tracing-address': 'experimental-distributed-tracing-address',
  'distributed-tracing-service-name': 'experimental-distributed-tracing-service-name',
  'distributed-tracing-instance-id': 'experimental-distributed-tracing-instance-id',
  'distributed-tracing-sampling-rate': 'experimental-distributed-tracing-sampling-rate',
};

/** etcd 3.6's feature gates (server/features/etcd_features.go): name -> [stage, default]. */
export const FEATURE_GATES: Readonly<Record<string, readonly ['ALPHA' | 'BETA' | 'GA', boolean]>> = {
  CompactHashCheck: ['ALPHA', false],
  InitialCorruptCheck: ['ALPHA', false],
  LeaseCheckpoint: ['ALPHA', false],
  LeaseCheckpointPersist: ['ALPHA', false],
  SetMemberLocalAddr: ['ALPHA', false],
  StopGRPCServiceOnDefrag: ['ALPHA', false],
  TxnModeWriteWithSharedBuffer: ['BETA', true],
};

/** The --experimental-* booleans 3.6 replaced by a gate (set either way: the gate or the flag). */
export const GATE_FLAGS: Readonly<Record<string, string>> = {
  'experimental-initial-corrupt-check': 'InitialCorruptCheck',
  'experimental-compact-hash-check-enabled': 'CompactHashCheck',
  'experimental-enable-lease-checkpoint': 'LeaseCheckpoint',
  'experimental-enable-lease-checkpoint-persist': 'LeaseCheckpointPersist',
  'experimental-stop-grpc-service-on-defrag': 'StopGRPCServiceOnDefrag',
  'experimental-txn-mode-write-with-shared-buffer': 'TxnModeWriteWithSharedBuffer',
};

export class GateError extends Error {}

/** Go's strconv.ParseBool. */
function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/**
 * --feature-gates "A=true,B=false" as etcd's featuregate.Set: unknown names and bad values are
 * errors with etcd's text (the caller prefixes `invalid value "<v>" for flag -feature-gates: `).
 * AllAlpha / AllBeta set every gate of that stage first; explicit gates override them.
 */
export function parseFeatureGates(raw: string): Map<string, boolean> {
  const given = new Map<string, boolean>();
  for (const part of raw.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    const eq = s.indexOf('=');
    const k = (eq < 0 ? s : s.slice(0, eq)).trim();
    if (eq < 0) throw new GateError(`missing bool value for ${k}`);
    const v = s.slice(eq + 1).trim();
    const b = parseGoBool(v);
    if (b === undefined) throw new GateError(`invalid value of ${k}=${v}, err: strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
    if (k !== 'AllAlpha' && k !== 'AllBeta' && FEATURE_GATES[k] === undefined) throw new GateError(`unrecognized feature gate: ${k}`);
    given.set(k, b);
  }
  const out = new Map<string, boolean>();
  for (const [name, [stage, def]] of Object.entries(FEATURE_GATES)) {
    const all = stage === 'ALPHA' ? given.get('AllAlpha') : stage === 'BETA' ? given.get('AllBeta') : undefined;
    out.set(name, given.get(name) ?? all ?? def);
  }
  return out;
}

/** Gates Cairn cannot turn on, and why (a refusal names the gate). */
export const GATES_REFUSED_ON: Readonly<Record<string, string>> = {
  SetMemberLocalAddr: 'Cairn does not bind peer dials to the advertised peer address',
};

/** Gates accepted at any value: what they mean in Cairn. */
export const GATES_MEANING: Readonly<Record<string, string>> = {
  CompactHashCheck: 'the leader compares the members\' hashes at each compaction and raises CORRUPT on a minority (server/node/compacthash.ts)',
  InitialCorruptCheck: 'the hash check against the other members before serving (as --experimental-initial-corrupt-check)',
  LeaseCheckpoint: 'lease remaining TTLs are kept by the leader as etcd 3.6 always does; the gate changes nothing (accepted at any value)',
  LeaseCheckpointPersist: 'as LeaseCheckpoint',
  StopGRPCServiceOnDefrag: 'grpc.health.v1.Health says NOT_SERVING while this member defragments, so health-checking clients go to other members (server/api/grpchealth.ts)',
  TxnModeWriteWithSharedBuffer: 'a bbolt buffer-sharing optimisation with no effect on answers; LMDB reads in a write txn see its writes either way',
};

/**
 * A flag refused unless its value is one Cairn honours: `ok` says which values; `reason` says why
 * others cannot be. The refusal: `--<flag>=<value> is not supported by Cairn: <reason>`.
 */
export interface Refusal {
  readonly ok: (v: string) => boolean;
  readonly reason: string;
}

const falsy = (v: string): boolean => /^(0|f|false)$/i.test(v.trim());
const truthy = (v: string): boolean => /^(1|t|true)$/i.test(v.trim());
const empty = (v: string): boolean => v.trim() === '';

export const REFUSED: Readonly<Record<string, Refusal>> = {
  'force-new-cluster': { ok: falsy, reason: 'Cairn cannot rewrite a member into a new one-member cluster; restore a snapshot with `cairn snapshot restore` instead' },
  'unsafe-no-fsync': { ok: falsy, reason: 'the WAL always fsyncs (an entry is acknowledged only when durable on a quorum)' },
  'pre-vote': { ok: truthy, reason: 'Cairn\'s raft always runs the Pre-Vote phase' },
  'initial-election-tick-advance': { ok: truthy, reason: 'Cairn always fast-forwards the first election timeout as etcd\'s default does' },
  'max-learners': { ok: (v) => v.trim() === '1', reason: 'Cairn allows one learner at a time (etcd\'s default)' },
  'enable-pprof': { ok: falsy, reason: 'there is no Go runtime to profile (use node --cpu-prof / --heap-prof)' },
  'memory-mlock': { ok: falsy, reason: 'Node cannot mlock the LMDB map' },
  'experimental-memory-mlock': { ok: falsy, reason: 'Node cannot mlock the LMDB map' },
  'socket-reuse-port': { ok: falsy, reason: 'this Node version cannot set SO_REUSEPORT on listeners' },
  'enable-log-rotation': { ok: falsy, reason: 'Cairn does not rotate its log files (use logrotate with copytruncate, or log to stderr)' },
  'enable-distributed-tracing': { ok: falsy, reason: 'Cairn exports no OpenTelemetry traces' },
  'experimental-enable-distributed-tracing': { ok: falsy, reason: 'Cairn exports no OpenTelemetry traces' },
  discovery: { ok: empty, reason: 'v2 discovery is not implemented; give --initial-cluster' },
  'discovery-srv': { ok: empty, reason: 'DNS SRV discovery is not implemented; give --initial-cluster' },
  'discovery-endpoints': { ok: empty, reason: 'v3 discovery is not implemented; give --initial-cluster' },
  'client-cert-file': { ok: empty, reason: 'Cairn never dials its own client port (the gateway is served in process), so there is nothing to present it to' },
  'client-key-file': { ok: empty, reason: 'Cairn never dials its own client port (the gateway is served in process), so there is nothing to present it to' },
  cors: { ok: (v) => ['', '*'].includes(v.trim()), reason: 'the gateway allows every origin (etcd\'s default \'*\'); no other list is implemented' },
  'host-whitelist': { ok: (v) => ['', '*'].includes(v.trim()), reason: 'the gateway answers every Host (etcd\'s default \'*\'); no other list is implemented' },
  'discovery-fallback': { ok: (v) => v.trim() === 'exit', reason: 'etcd 3.6 only knows \'exit\'' },
};

/**
 * Flags accepted (their value checked) that change nothing in Cairn, and why. Given at a value other
 * than the default, each is named in one warning at start.
 */
export const NO_EFFECT: Readonly<Record<string, string>> = {
  'backend-bbolt-freelist-type': 'bbolt only; LMDB keeps its own free list',
  'backend-batch-interval': 'bbolt commit batching; each apply batch is one LMDB transaction',
  'backend-batch-limit': 'bbolt commit batching; each apply batch is one LMDB transaction',
  'max-snapshots': 'Cairn keeps no snapshot files (a snapshot is an LMDB copy made on demand)',
  'max-wals': 'WAL segments are released once the backend holds their entries (see --snapshot-count)',
  'raft-read-timeout': 'peer streams use their own heartbeat-based liveness',
  'raft-write-timeout': 'peer streams use their own heartbeat-based liveness',
  'grpc-keepalive-min-time': 'Cairn accepts client pings at any rate (never too_many_pings)',
  'grpc-keepalive-interval': 'Cairn does not ping idle clients; TCP keepalive is on',
  'grpc-keepalive-timeout': 'Cairn does not ping idle clients; TCP keepalive is on',
  'socket-reuse-address': 'Node always sets SO_REUSEADDR on TCP listeners',
  'downgrade-check-time': 'Cairn has no cluster downgrade to watch over',
  'experimental-downgrade-check-time': 'Cairn has no cluster downgrade to watch over',
  'warning-apply-duration': 'Cairn does not log slow applies',
  'experimental-warning-apply-duration': 'Cairn does not log slow applies',
  'experimental-txn-mode-write-with-shared-buffer': GATES_MEANING['TxnModeWriteWithSharedBuffer'] ?? '',
  'experimental-enable-lease-checkpoint': GATES_MEANING['LeaseCheckpoint'] ?? '',
  'experimental-enable-lease-checkpoint-persist': GATES_MEANING['LeaseCheckpoint'] ?? '',
  'log-rotation-config-json': 'only used with --enable-log-rotation, which Cairn refuses',
  'v2-deprecation': 'Cairn has no v2 store at all (etcd 3.6 enforces write-only or later the same way)',
  ...Object.fromEntries(
    ['discovery-token', 'discovery-dial-timeout', 'discovery-request-timeout', 'discovery-keepalive-time', 'discovery-keepalive-timeout', 'discovery-insecure-transport', 'discovery-insecure-skip-tls-verify', 'discovery-cert', 'discovery-key', 'discovery-cacert', 'discovery-user', 'discovery-password', 'discovery-proxy', 'discovery-srv-name'].map((f) => [f, 'only used with discovery, which Cairn refuses']),
  ),
  ...Object.fromEntries(
    ['distributed-tracing-address', 'distributed-tracing-service-name', 'distributed-tracing-instance-id', 'distributed-tracing-sampling-rate'].flatMap((f) => [
      [f, 'only used with tracing, which Cairn refuses'],
      [`experimental-${f}`, 'only used with tracing, which Cairn refuses'],
    ]),
  ),
};

/** etcd's --v2-deprecation values that 3.6 accepts. */
export const V2_DEPRECATION_LEVELS = ['write-only', 'write-only-drop-data', 'gone'];

/** The subcommands etcd has that Cairn does not. */
export const SUBCOMMANDS_REFUSED: Readonly<Record<string, string>> = {
  gateway: 'the TCP pass-through proxy (`etcd gateway`) is not part of Cairn; use a TCP load balancer or list every member\'s client URL in the client',
  'grpc-proxy': 'the gRPC proxy (`etcd grpc-proxy`) is not part of Cairn; point clients at the members\' client URLs',
};

/**
 * etcd 3.6.8's deprecation warnings (etcdmain/config.go deprecatedFlags), logged once each at start for
 * every such flag given (command line, config file or environment), with etcd's words.
 */
export const DEPRECATED: Readonly<Record<string, string>> = {
  'max-snapshots': '--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.',
  'v2-deprecation': '--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.',
  'experimental-compact-hash-check-enabled': "--experimental-compact-hash-check-enabled is deprecated in 3.6 and will be decommissioned in 3.7. Use '--feature-gates=CompactHashCheck=true' instead.",
  'experimental-compact-hash-check-time': "--experimental-compact-hash-check-time is deprecated in 3.6 and will be decommissioned in 3.7. Use '--compact-hash-check-time' instead.",
  'experimental-txn-mode-write-with-shared-buffer': "--experimental-txn-mode-write-with-shared-buffer is deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=TxnModeWriteWithSharedBuffer=true' instead.",
  'experimental-corrupt-check-time': "--experimental-corrupt-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--corrupt-check-time' instead.",
  'experimental-compaction-batch-limit': "--experimental-compaction-batch-limit is deprecated in v3.6 and will be decommissioned in v3.7. Use '--compaction-batch-limit' instead.",
  'experimental-watch-progress-notify-interval': "--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
  'experimental-warning-apply-duration': "--experimental-warning-apply-duration is deprecated in v3.6 and will be decommissioned in v3.7. Use '--warning-apply-duration' instead.",
  'experimental-bootstrap-defrag-threshold-megabytes': "--experimental-bootstrap-defrag-threshold-megabytes is deprecated in v3.6 and will be decommissioned in v3.7. Use '--bootstrap-defrag-threshold-megabytes' instead.",
  'experimental-memory-mlock': "--experimental-memory-mlock is deprecated in v3.6 and will be decommissioned in v3.7. Use '--memory-mlock' instead.",
  'experimental-snapshot-catchup-entries': "--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead.",
  'experimental-compaction-sleep-interval': "--experimental-compaction-sleep-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use 'compaction-sleep-interval' instead.",
  'experimental-downgrade-check-time': "--experimental-downgrade-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--downgrade-check-time' instead.",
  'experimental-enable-distributed-tracing': '--experimental-enable-distributed-tracing is deprecated in 3.6 and will be decommissioned in 3.7. Use --enable-distributed-tracing instead.',
  'experimental-distributed-tracing-address': '--experimental-distributed-tracing-address is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-address instead.',
  'experimental-distributed-tracing-service-name': '--experimental-distributed-tracing-service-name is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-service-name instead.',
  'experimental-distributed-tracing-instance-id': '--experimental-distributed-tracing-instance-id is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-instance-id instead.',
  'experimental-distributed-tracing-sampling-rate': '--experimental-distributed-tracing-sampling-rate is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-sampling-rate instead.',
};
