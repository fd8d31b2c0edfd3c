// Command-line flags, ETCD_* environment variables and --config-file, with etcd's names and defaults
// (E server/etcdmain/config.go, help.go). Precedence as etcd: a config file, when given, replaces
// flags and environment; otherwise a flag beats its ETCD_<NAME> variable, which beats the default.
import { exitStatusHelp } from './exit.js';
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import {
  DEFAULT_LIMITS,
  ELECTION_TIMEOUT_MS,
  HEARTBEAT_INTERVAL_MS,
  SNAPSHOT_CATCHUP_ENTRIES_DEFAULT,
  SNAPSHOT_COUNT_DEFAULT,
  WAL_SEGMENT_BYTES,
  WAL_SEGMENT_BYTES_MIN,
  WATCHERS_MAX,
  WATCHERS_PER_STREAM_MAX,
  WATCH_PROGRESS_NOTIFY_INTERVAL_MIN_MS,
  WATCH_PROGRESS_NOTIFY_INTERVAL_MS,
} from '../base/limits.js';
import { isLevel, type Level } from '../base/log.js';
import { isUnixUrl, unixSocketPath } from '../api/listen.js';
import { ALIASES, DEPRECATED, FEATURE_GATES, GATE_FLAGS, GATES_REFUSED_ON, GateError, NO_EFFECT, REFUSED, SUBCOMMANDS_REFUSED, V2_DEPRECATION_LEVELS, parseFeatureGates } from './compat.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Kind = 'string' | 'int' | 'bool' | 'urls' | 'duration';

interface FlagSpec {
  readonly kind: Kind;
  readonly def: string;
  readonly help: string;
}

const FLAGS: Record<string, FlagSpec> = {
  name: { kind: 'string', def: 'default', help: 'Human-readable name for this member.' },
  'data-dir': { kind: 'string', def: '', help: 'Path to the data directory (default "${name}.cairn").' },
  'wal-dir': { kind: 'string', def: '', help: 'Path to the dedicated WAL directory (default "<data-dir>/member/wal").' },
  'listen-client-urls': { kind: 'urls', def: 'http://localhost:2379', help: 'List of URLs to listen on for client traffic.' },
  'advertise-client-urls': { kind: 'urls', def: 'http://localhost:2379', help: 'List of this member\'s client URLs to advertise to the public.' },
  'listen-peer-urls': { kind: 'urls', def: 'http://localhost:2380', help: 'List of URLs to listen on for peer traffic.' },
  'initial-advertise-peer-urls': { kind: 'urls', def: 'http://localhost:2380', help: 'List of this member\'s peer URLs to advertise to the rest of the cluster.' },
  'initial-cluster': { kind: 'string', def: 'default=http://localhost:2380', help: 'Initial cluster configuration for bootstrapping (name=peer-url pairs, comma separated).' },
  'initial-cluster-state': { kind: 'string', def: 'new', help: 'Initial cluster state (\'new\' or \'existing\').' },
  'initial-cluster-token': { kind: 'string', def: 'etcd-cluster', help: 'Initial cluster token for the etcd cluster during bootstrap.' },
  'snapshot-catchup-entries': { kind: 'int', def: String(SNAPSHOT_CATCHUP_ENTRIES_DEFAULT), help: 'Number of entries for a slow follower to catch up after compacting the raft log entries.' },
  'experimental-snapshot-catchup-entries': { kind: 'int', def: String(SNAPSHOT_CATCHUP_ENTRIES_DEFAULT), help: 'Number of entries for a slow follower to catch up after compacting the raft log entries (etcd 3.5 name).' },
  'max-request-bytes': { kind: 'int', def: String(DEFAULT_LIMITS.requestBytesMax), help: 'Maximum client request size in bytes the server will accept.' },
  'max-txn-ops': { kind: 'int', def: String(DEFAULT_LIMITS.txnOpsMax), help: 'Maximum number of operations permitted in a transaction.' },
  'quota-backend-bytes': { kind: 'int', def: String(DEFAULT_LIMITS.backendQuotaBytes), help: 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).' },
  'wal-segment-bytes': { kind: 'int', def: String(WAL_SEGMENT_BYTES), help: 'Cairn only: size at which a WAL segment file is closed and a new one started (etcd: 64 MB fixed).' },
  'snapshot-count': { kind: 'int', def: String(SNAPSHOT_COUNT_DEFAULT), help: 'Number of committed transactions between releases of WAL segments already held by the backend.' },
  'heartbeat-interval': { kind: 'int', def: String(HEARTBEAT_INTERVAL_MS), help: 'Time (in milliseconds) of a heartbeat interval (with --election-timeout, sets the minimum lease TTL as in etcd).' },
  'election-timeout': { kind: 'int', def: String(ELECTION_TIMEOUT_MS), help: 'Time (in milliseconds) for an election to timeout (the minimum lease TTL is ceil(1.5 x this)).' },
  'experimental-watch-progress-notify-interval': { kind: 'duration', def: '10m0s', help: 'Duration of periodic watch progress notifications (etcd 3.4/3.5 name).' },
  'watch-progress-notify-interval': { kind: 'duration', def: '10m0s', help: 'Duration of periodic watch progress notifications (etcd 3.6 name; the same setting).' },
  'max-watchers-per-stream': { kind: 'int', def: String(WATCHERS_PER_STREAM_MAX), help: 'Cairn only: most watchers one Watch stream may hold (etcd has no limit).' },
  'max-watchers': { kind: 'int', def: String(WATCHERS_MAX), help: 'Cairn only: most watchers the server holds over all streams (etcd has no limit).' },
  'listen-metrics-urls': { kind: 'string', def: '', help: 'List of URLs to listen on for the metrics and health endpoints.' },
  metrics: { kind: 'string', def: 'basic', help: 'Set level of detail for exported metrics, specify \'extensive\' to include server side grpc histogram metrics.' },
  'enable-grpc-gateway': { kind: 'bool', def: 'true', help: 'Enable GRPC gateway (the HTTP/JSON API on the client port).' },
  'strict-reconfig-check': { kind: 'bool', def: 'true', help: 'Reject reconfiguration requests that would cause quorum loss.' },
  'cert-file': { kind: 'string', def: '', help: 'Path to the client server TLS cert file.' },
  'key-file': { kind: 'string', def: '', help: 'Path to the client server TLS key file.' },
  'client-cert-auth': { kind: 'bool', def: 'false', help: 'Enable client cert authentication.' },
  'trusted-ca-file': { kind: 'string', def: '', help: 'Path to the client server TLS trusted CA cert file.' },
  'peer-cert-file': { kind: 'string', def: '', help: 'Path to the peer server TLS cert file.' },
  'peer-key-file': { kind: 'string', def: '', help: 'Path to the peer server TLS key file.' },
  'peer-client-cert-auth': { kind: 'bool', def: 'false', help: 'Enable peer client cert authentication.' },
  'peer-trusted-ca-file': { kind: 'string', def: '', help: 'Path to the peer server TLS trusted CA file.' },
  'cipher-suites': { kind: 'string', def: '', help: 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Node).' },
  'tls-min-version': { kind: 'string', def: 'TLS1.2', help: 'Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.' },
  'tls-max-version': { kind: 'string', def: '', help: 'Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to Node).' },
  'auth-token': { kind: 'string', def: 'simple', help: 'Specify auth token specific options, e.g. \'simple\' or \'jwt,pub-key=<path>,priv-key=<path>,sign-method=RS256,ttl=5m\'.' },
  'auth-token-ttl': { kind: 'int', def: '300', help: 'The lifetime in seconds of the auth token.' },
  'bcrypt-cost': { kind: 'int', def: '10', help: 'Specify bcrypt algorithm cost factor for auth password hashing.' },
  'auto-compaction-mode': { kind: 'string', def: 'periodic', help: 'Interpret \'auto-compaction-retention\' one of: periodic|revision. \'periodic\' for duration based retention, defaulting to hours if no time unit is provided (e.g. \'5m\'). \'revision\' for revision number based retention.' },
  'auto-compaction-retention': { kind: 'string', def: '0', help: 'Auto compaction retention for mvcc key value store. 0 means disable auto compaction.' },
  'auto-compaction-revision-interval': { kind: 'duration', def: '5m0s', help: 'Cairn only: how often revision-mode auto compaction checks the revision (etcd: fixed 5m).' },
  'experimental-initial-corrupt-check': { kind: 'bool', def: 'false', help: 'Enable to check data corruption before serving any client/peer traffic.' },
  'experimental-corrupt-check-time': { kind: 'duration', def: '0s', help: 'Duration of time between cluster corruption check passes (etcd 3.4/3.5 name).' },
  'corrupt-check-time': { kind: 'duration', def: '0s', help: 'Duration of time between cluster corruption check passes (etcd 3.6 name; the same setting).' },
  'log-level': { kind: 'string', def: 'info', help: 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.' },
  logger: { kind: 'string', def: 'zap', help: 'Currently only supports \'zap\' for structured logging.' },
  'log-outputs': { kind: 'string', def: 'default', help: 'Specify \'stdout\' or \'stderr\' to skip journald logging even when running under systemd, or list of comma separated output targets.' },
  'log-format': { kind: 'string', def: 'json', help: 'Configures log format. Only supports json.' },
  // etcd 3.6 flags below: honoured, refused at values Cairn cannot honour, or accepted with no effect (see compat.ts).
  'feature-gates': { kind: 'string', def: '', help: 'Comma-separated Gate=true|false pairs (etcd 3.6\'s gates: CompactHashCheck, InitialCorruptCheck, LeaseCheckpoint, LeaseCheckpointPersist, SetMemberLocalAddr, StopGRPCServiceOnDefrag, TxnModeWriteWithSharedBuffer, AllAlpha, AllBeta).' },
  'experimental-compact-hash-check-enabled': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --feature-gates=CompactHashCheck (the leader compares members\' hashes at each compaction).' },
  'compact-hash-check-time': { kind: 'duration', def: '1m', help: 'Period of the compaction hash check (with --feature-gates=CompactHashCheck=true).' },
  'experimental-compact-hash-check-time': { kind: 'duration', def: '1m', help: 'etcd 3.5 name of --compact-hash-check-time.' },
  'experimental-enable-lease-checkpoint': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --feature-gates=LeaseCheckpoint.' },
  'experimental-enable-lease-checkpoint-persist': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --feature-gates=LeaseCheckpointPersist.' },
  'experimental-stop-grpc-service-on-defrag': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --feature-gates=StopGRPCServiceOnDefrag.' },
  'experimental-txn-mode-write-with-shared-buffer': { kind: 'bool', def: 'true', help: 'etcd 3.5 name of --feature-gates=TxnModeWriteWithSharedBuffer (no effect).' },
  'compaction-batch-limit': { kind: 'int', def: '1000', help: 'Revisions one compaction step removes at most (it visits at most as many keys; 0 = 1000).' },
  'experimental-compaction-batch-limit': { kind: 'int', def: '1000', help: 'etcd 3.5 name of --compaction-batch-limit.' },
  'compaction-sleep-interval': { kind: 'duration', def: '10ms', help: 'Pause between compaction steps (not given: none beyond the next event-loop turn).' },
  'experimental-compaction-sleep-interval': { kind: 'duration', def: '10ms', help: 'etcd 3.5 name of --compaction-sleep-interval.' },
  'warning-apply-duration': { kind: 'duration', def: '100ms', help: 'Slow-apply warning threshold (no effect).' },
  'experimental-warning-apply-duration': { kind: 'duration', def: '100ms', help: 'etcd 3.5 name of --warning-apply-duration.' },
  'warning-unary-request-duration': { kind: 'duration', def: '300ms', help: 'Time duration after which a warning is generated if a unary request takes longer (etcd\'s "request stats" log line).' },
  'experimental-warning-unary-request-duration': { kind: 'duration', def: '300ms', help: 'etcd 3.5 name of --warning-unary-request-duration.' },
  'bootstrap-defrag-threshold-megabytes': { kind: 'int', def: '0', help: 'Defragment at start when that frees at least this many megabytes (0 = never).' },
  'experimental-bootstrap-defrag-threshold-megabytes': { kind: 'int', def: '0', help: 'etcd 3.5 name of --bootstrap-defrag-threshold-megabytes.' },
  'downgrade-check-time': { kind: 'duration', def: '5s', help: 'Period of downgrade status checks (no effect).' },
  'experimental-downgrade-check-time': { kind: 'duration', def: '5s', help: 'etcd 3.5 name of --downgrade-check-time.' },
  'memory-mlock': { kind: 'bool', def: 'false', help: 'Keep the database pages in RAM (refused when true).' },
  'experimental-memory-mlock': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --memory-mlock.' },
  'peer-skip-client-san-verification': { kind: 'bool', def: 'false', help: 'Skip the check of peer client certificates\' SANs against the remote address.' },
  'experimental-peer-skip-client-san-verification': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --peer-skip-client-san-verification.' },
  'enable-distributed-tracing': { kind: 'bool', def: 'false', help: 'OpenTelemetry tracing (refused when true).' },
  'experimental-enable-distributed-tracing': { kind: 'bool', def: 'false', help: 'etcd 3.5 name of --enable-distributed-tracing.' },
  'distributed-tracing-address': { kind: 'string', def: 'localhost:4317', help: 'Tracing collector (no effect: tracing is refused).' },
  'experimental-distributed-tracing-address': { kind: 'string', def: 'localhost:4317', help: 'etcd 3.5 name of --distributed-tracing-address.' },
  'distributed-tracing-service-name': { kind: 'string', def: 'etcd', help: 'Tracing service name (no effect).' },
  'experimental-distributed-tracing-service-name': { kind: 'string', def: 'etcd', help: 'etcd 3.5 name of --distributed-tracing-service-name.' },
  'distributed-tracing-instance-id': { kind: 'string', def: '', help: 'Tracing instance id (no effect).' },
  'experimental-distributed-tracing-instance-id': { kind: 'string', def: '', help: 'etcd 3.5 name of --distributed-tracing-instance-id.' },
  'distributed-tracing-sampling-rate': { kind: 'int', def: '0', help: 'Tracing samples per million (no effect).' },
  'experimental-distributed-tracing-sampling-rate': { kind: 'int', def: '0', help: 'etcd 3.5 name of --distributed-tracing-sampling-rate.' },
  'initial-election-tick-advance': { kind: 'bool', def: 'true', help: 'Fast-forward the first election timeout at boot (refused when false).' },
  'listen-client-http-urls': { kind: 'string', def: '', help: 'List of URLs to listen on for http only client traffic (the gateway, /health, /version ...); HTTP/1.1 is then no longer served on --listen-client-urls.' },
  'max-snapshots': { kind: 'int', def: '5', help: 'Snapshot files kept (no effect: Cairn keeps none).' },
  'max-wals': { kind: 'int', def: '5', help: 'WAL files kept (no effect: segments are released when the backend holds them).' },
  'backend-bbolt-freelist-type': { kind: 'string', def: 'map', help: 'bbolt free list type, map or array (no effect on LMDB).' },
  'backend-batch-interval': { kind: 'duration', def: '0', help: 'bbolt commit interval (no effect).' },
  'backend-batch-limit': { kind: 'int', def: '0', help: 'bbolt commit batch size (no effect).' },
  'max-concurrent-streams': { kind: 'string', def: 'math.MaxUint32', help: 'Maximum concurrent HTTP/2 streams each client connection may open.' },
  'grpc-keepalive-min-time': { kind: 'duration', def: '5s', help: 'Minimum client ping interval (no effect: pings are accepted at any rate).' },
  'grpc-keepalive-interval': { kind: 'duration', def: '2h', help: 'Server-to-client ping period (no effect).' },
  'grpc-keepalive-timeout': { kind: 'duration', def: '20s', help: 'Server-to-client ping timeout (no effect).' },
  'socket-reuse-port': { kind: 'bool', def: 'false', help: 'SO_REUSEPORT on listeners (refused when true).' },
  'socket-reuse-address': { kind: 'bool', def: 'false', help: 'SO_REUSEADDR on listeners (Node always sets it).' },
  'raft-read-timeout': { kind: 'duration', def: '5s', help: 'Peer connection read timeout (no effect).' },
  'raft-write-timeout': { kind: 'duration', def: '5s', help: 'Peer connection write timeout (no effect).' },
  discovery: { kind: 'string', def: '', help: 'v2 discovery URL (refused when set).' },
  'discovery-token': { kind: 'string', def: '', help: 'v3 discovery token (no effect: discovery is refused).' },
  'discovery-endpoints': { kind: 'string', def: '', help: 'v3 discovery endpoints (refused when set).' },
  'discovery-dial-timeout': { kind: 'duration', def: '2s', help: 'v3 discovery option (no effect).' },
  'discovery-request-timeout': { kind: 'duration', def: '5s', help: 'v3 discovery option (no effect).' },
  'discovery-keepalive-time': { kind: 'duration', def: '2s', help: 'v3 discovery option (no effect).' },
  'discovery-keepalive-timeout': { kind: 'duration', def: '6s', help: 'v3 discovery option (no effect).' },
  'discovery-insecure-transport': { kind: 'bool', def: 'true', help: 'v3 discovery option (no effect).' },
  'discovery-insecure-skip-tls-verify': { kind: 'bool', def: 'false', help: 'v3 discovery option (no effect).' },
  'discovery-cert': { kind: 'string', def: '', help: 'v3 discovery option (no effect).' },
  'discovery-key': { kind: 'string', def: '', help: 'v3 discovery option (no effect).' },
  'discovery-cacert': { kind: 'string', def: '', help: 'v3 discovery option (no effect).' },
  'discovery-user': { kind: 'string', def: '', help: 'v3 discovery option (no effect).' },
  'discovery-password': { kind: 'string', def: '', help: 'v3 discovery option (no effect).' },
  'discovery-fallback': { kind: 'string', def: 'exit', help: 'Discovery failure behaviour (only \'exit\').' },
  'discovery-proxy': { kind: 'string', def: '', help: 'v2 discovery option (no effect).' },
  'discovery-srv': { kind: 'string', def: '', help: 'DNS SRV discovery domain (refused when set).' },
  'discovery-srv-name': { kind: 'string', def: '', help: 'DNS SRV discovery option (no effect).' },
  'pre-vote': { kind: 'bool', def: 'true', help: 'Raft Pre-Vote (always on; refused when false).' },
  'v2-deprecation': { kind: 'string', def: 'write-only', help: 'Phase of v2store deprecation: write-only, write-only-drop-data or gone (Cairn has no v2 store).' },
  'max-learners': { kind: 'int', def: '1', help: 'Maximum learner members (refused unless 1).' },
  'client-cert-file': { kind: 'string', def: '', help: 'Certificate to present when dialling the client port (refused when set: Cairn never does).' },
  'client-key-file': { kind: 'string', def: '', help: 'Key of --client-cert-file (refused when set).' },
  'client-crl-file': { kind: 'string', def: '', help: 'Path to the client certificate revocation list file.' },
  'client-cert-allowed-hostname': { kind: 'string', def: '', help: 'Comma-separated SAN hostnames; a client certificate must be valid for one of them.' },
  'auto-tls': { kind: 'bool', def: 'false', help: 'Client TLS using a generated self-signed certificate (in <data-dir>/fixtures/client) when --cert-file/--key-file are not given.' },
  'peer-client-cert-file': { kind: 'string', def: '', help: 'Certificate presented when dialling peers (default: --peer-cert-file).' },
  'peer-client-key-file': { kind: 'string', def: '', help: 'Key of --peer-client-cert-file (default: --peer-key-file).' },
  'peer-cert-allowed-cn': { kind: 'string', def: '', help: 'Comma-separated list of allowed CNs for inter-peer TLS authentication.' },
  'peer-cert-allowed-hostname': { kind: 'string', def: '', help: 'Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.' },
  'peer-auto-tls': { kind: 'bool', def: 'false', help: 'Peer TLS using generated self-signed certificates (in <data-dir>/fixtures/peer) when --peer-cert-file/--peer-key-file are not given.' },
  'self-signed-cert-validity': { kind: 'int', def: '1', help: 'Validity in years of the certificates --auto-tls and --peer-auto-tls generate.' },
  'peer-crl-file': { kind: 'string', def: '', help: 'Path to the peer certificate revocation list file.' },
  cors: { kind: 'string', def: '*', help: 'CORS origins of the gateway (only \'*\', every origin).' },
  'host-whitelist': { kind: 'string', def: '*', help: 'Acceptable Host headers (only \'*\').' },
  'enable-pprof': { kind: 'bool', def: 'false', help: 'Go profiling endpoints (refused when true).' },
  'enable-log-rotation': { kind: 'bool', def: 'false', help: 'Log file rotation (refused when true).' },
  'log-rotation-config-json': { kind: 'string', def: '{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}', help: 'Log rotation settings (no effect).' },
  'force-new-cluster': { kind: 'bool', def: 'false', help: 'Force a new one-member cluster (refused when true).' },
  'unsafe-no-fsync': { kind: 'bool', def: 'false', help: 'Disable fsync (refused when true).' },
  'config-file': { kind: 'string', def: '', help: 'Path to the server configuration file (YAML; keys are flag names).' },
  version: { kind: 'bool', def: 'false', help: 'Print the version and exit.' },
  help: { kind: 'bool', def: 'false', help: 'Show this help and exit.' },
};

/** Certificate files of one TLS side, as etcd's transport.TLSInfo. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** '' = no CA given (clients' certificates are then not verified unless clientCertAuth). */
  readonly trustedCaFile: string;
  readonly clientCertAuth: boolean;
  /** --client-crl-file / --peer-crl-file ('' = none). */
  readonly crlFile: string;
  /** --peer-cert-allowed-cn (peer side only). */
  readonly allowedCns: readonly string[];
  /** --client-cert-allowed-hostname / --peer-cert-allowed-hostname. */
  readonly allowedHostnames: readonly string[];
  /** --auto-tls / --peer-auto-tls with no certificate files given: main generates them (certFile/keyFile are '' until then). */
  readonly autoTls: boolean;
  /** Peer side: --peer-client-cert-file / --peer-client-key-file ('' = present certFile/keyFile when dialling). */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** Peer side: --peer-skip-client-san-verification. */
  readonly skipClientSanVerify: boolean;
  /** Set by main for generated (auto TLS) certificates: dials do not verify the other side. */
  readonly insecureSkipVerify?: boolean;
}

/** A flag accepted although it changes nothing in Cairn (main logs one warning naming each). */
export interface NoEffectFlag {
  readonly flag: string;
  readonly value: string;
  readonly reason: string;
}

export type AuthTokenConfig =
  | { readonly kind: 'simple' }
  | { readonly kind: 'jwt'; readonly pubKeyFile: string; readonly privKeyFile: string; readonly signMethod: string; readonly ttlMs: number };

export type AutoCompaction =
  | { readonly mode: 'periodic'; readonly periodMs: number }
  | { readonly mode: 'revision'; readonly retentionRevs: number; readonly checkIntervalMs: number };

export interface Config {
  readonly name: string;
  readonly dataDir: string;
  readonly walDir: string;
  readonly listenClientUrls: readonly URL[];
  readonly advertiseClientUrls: readonly URL[];
  readonly listenPeerUrls: readonly URL[];
  readonly initialAdvertisePeerUrls: readonly URL[];
  readonly initialCluster: string;
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly snapshotCatchupEntries: number;
  readonly requestBytesMax: number;
  readonly txnOpsMax: number;
  readonly quotaBackendBytes: number;
  readonly snapshotCount: number;
  readonly walSegmentBytes: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly watchProgressNotifyIntervalMs: number;
  readonly watchersPerStreamMax: number;
  readonly watchersMax: number;
  readonly listenMetricsUrls: readonly URL[];
  /** --listen-client-http-urls (empty: HTTP shares the client URLs). */
  readonly listenClientHttpUrls: readonly URL[];
  readonly metricsExtensive: boolean;
  readonly enableGrpcGateway: boolean;
  /** --strict-reconfig-check: refuse membership changes that could lose quorum (etcd's default: on). */
  readonly strictReconfigCheck: boolean;
  /** Client-facing TLS (--cert-file etc.); undefined when the client URLs are http. */
  readonly clientTls: TlsFiles | undefined;
  /** Peer TLS (--peer-cert-file etc.); undefined when the peer URLs are http. */
  readonly peerTls: TlsFiles | undefined;
  /** --cipher-suites as given (Go/IANA names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); empty = Node's defaults. */
  readonly cipherSuites: readonly string[];
  readonly tlsMinVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly tlsMaxVersion: 'TLSv1.2' | 'TLSv1.3' | undefined;
  /** --auth-token, parsed: simple tokens, or JWT with its options (keys as etcd's: pub-key, priv-key, sign-method, ttl). */
  readonly authToken: AuthTokenConfig;
  readonly authTokenTtlSec: number;
  readonly bcryptCost: number;
  readonly autoCompactionMode: 'periodic' | 'revision';
  /** --auto-compaction-retention as given ('0' = off; periodic: a duration, or hours when unitless). */
  readonly autoCompactionRetention: string;
  /** The two flags above, parsed; undefined when auto compaction is off. */
  readonly autoCompaction: AutoCompaction | undefined;
  readonly initialCorruptCheck: boolean;
  /** Cross-member hash check period (0 = off). */
  readonly corruptCheckTimeMs: number;
  /** --feature-gates=CompactHashCheck=true (or --experimental-compact-hash-check-enabled). */
  readonly compactHashCheck: boolean;
  /** --feature-gates=StopGRPCServiceOnDefrag=true (or --experimental-stop-grpc-service-on-defrag): NOT_SERVING during a defrag. */
  readonly stopGrpcServiceOnDefrag: boolean;
  /** --compact-hash-check-time (default 1m). */
  readonly compactHashCheckTimeMs: number;
  /** --compaction-batch-limit when given (revisions per step). */
  readonly compactionBatchLimit: number | undefined;
  /** --compaction-sleep-interval when given (ms). */
  readonly compactionSleepIntervalMs: number | undefined;
  /** --warning-unary-request-duration (or its --experimental-* spelling; 0 = etcd's 300ms), in ms: slower unary calls are logged. */
  readonly warningUnaryRequestMs: number;
  /** --bootstrap-defrag-threshold-megabytes in bytes (0 = no defragmentation at start). */
  readonly bootstrapDefragThresholdBytes: number;
  readonly logLevel: Level;
  readonly logOutputs: readonly string[];
  /** --max-concurrent-streams per client connection. */
  readonly maxConcurrentStreams: number;
  /** --self-signed-cert-validity, in years (for --auto-tls / --peer-auto-tls). */
  readonly selfSignedCertValidityYears: number;
  /** --feature-gates resolved (with the --experimental-* booleans that set the same gates). */
  readonly featureGates: ReadonlyMap<string, boolean>;
  /** Flags given at a value other than the default that have no effect in Cairn. */
  readonly noEffect: readonly NoEffectFlag[];
  /** etcd's deprecation warning for each deprecated flag given (compat.ts DEPRECATED). */
  readonly deprecated: readonly string[];
  readonly showVersion: boolean;
  readonly showHelp: boolean;
}

function envName(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Splits argv into flag -> raw value, etcd/Go style: -f, --f, --f=v, --f v; booleans take no separate value. */
export function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
    if (m === null) throw new ConfigError(`'${arg}' is not a valid flag`);
    const name = m[1] as string;
    const spec = FLAGS[name];
    if (spec === undefined) throw new ConfigError(`flag provided but not defined: -${name}`);
    // Given twice: the last one wins, as Go's flag package (etcd accepts it).
    let value = m[2];
    if (value === undefined) {
      if (spec.kind === 'bool') value = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new ConfigError(`flag needs an argument: -${name}`);
        value = next;
        i++;
      }
    }
    out.set(name, value);
  }
  return out;
}

/** etcd's config file nests TLS settings under these keys (embed.Config's securityConfig). */
const TRANSPORT_SECURITY_KEYS: Record<string, '' | 'peer-'> = { 'client-transport-security': '', 'peer-transport-security': 'peer-' };
const SECURITY_FIELDS = ['cert-file', 'key-file', 'trusted-ca-file', 'client-cert-auth'];

/** etcd's other securityConfig fields, as the flag each stands for (undefined: not one of them). */
function nestedTlsFlag(prefix: '' | 'peer-', field: string): string | undefined {
  const peer = prefix === 'peer-';
  const m: Record<string, string | undefined> = {
    'auto-tls': `${prefix}auto-tls`,
    'crl-file': peer ? 'peer-crl-file' : 'client-crl-file',
    'allowed-cn': peer ? 'peer-cert-allowed-cn' : undefined,
    'allowed-hostname': peer ? 'peer-cert-allowed-hostname' : 'client-cert-allowed-hostname',
    'client-cert-file': `${prefix}client-cert-file`,
    'client-key-file': `${prefix}client-key-file`,
    'skip-client-san-verification': peer ? 'peer-skip-client-san-verification' : undefined,
  };
  return m[field];
}

/** One nested TLS block as flags (e.g. peer-transport-security.cert-file -> peer-cert-file). */
function transportSecurity(path: string, key: string, prefix: '' | 'peer-', v: unknown): [string, string][] {
  if (v === null || v === undefined) return [];
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`config file ${path}: '${key}' must be a mapping`);
  const out: [string, string][] = [];
  for (const [field, value] of Object.entries(v)) {
    const mapped = nestedTlsFlag(prefix, field);
    if (mapped !== undefined) {
      out.push([mapped, String(value)]);
      continue;
    }
    if (!SECURITY_FIELDS.includes(field)) {
      // etcd's other fields (auto-tls, crl-file, allowed-cn ...) are not supported: say so rather than ignore them.
      if (value === false || value === '' || value === null) continue;
      throw new ConfigError(`config file ${path}: '${key}.${field}' is not supported by Cairn`);
    }
    out.push([`${prefix}${field}`, String(value)]);
  }
  return out;
}

function fromConfigFile(path: string): Map<string, string> {
  let doc: unknown;
  try {
    doc = yaml.load(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (doc === null || doc === undefined) return new Map();
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path}: expected a mapping of flag names to values`);
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(doc)) {
    const prefix = TRANSPORT_SECURITY_KEYS[k];
    if (prefix !== undefined) {
      for (const [flag, value] of transportSecurity(path, k, prefix, v)) out.set(flag, value);
      continue;
    }
    if (FLAGS[k] === undefined) throw new ConfigError(`config file ${path}: unknown key '${k}'`);
    out.set(k, Array.isArray(v) ? v.map(String).join(',') : String(v));
  }
  return out;
}

function int(name: string, raw: string): number {
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`invalid value "${raw}" for flag -${name}: parse error`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`invalid value "${raw}" for flag -${name}: value out of range`);
  return n;
}

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("100ms", "1m30s", "10m0s"), in milliseconds. */
export function duration(name: string, raw: string): number {
  const s = raw.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let at = 0;
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (m === null) throw new ConfigError(`invalid value "${raw}" for flag -${name}: parse error`);
    ms += Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] ?? NaN);
    at = re.lastIndex;
  }
  if (s.length === 0 || !Number.isFinite(ms)) throw new ConfigError(`invalid value "${raw}" for flag -${name}: parse error`);
  return ms;
}

function bool(name: string, raw: string): boolean {
  if (/^(1|t|true)$/i.test(raw)) return true;
  if (/^(0|f|false)$/i.test(raw)) return false;
  throw new ConfigError(`invalid boolean value "${raw}" for -${name}`);
}

/**
 * What a unix:// or unixs:// URL may be in a URL flag: 'none' (http or https only: peer and metrics
 * URLs), 'listen' (a socket file, etcd's listener: host + path), 'advertise' (etcd's checkHostURLs
 * wants host:port even there: unix://localhost:2379 passes, unix:///tmp/a.sock does not).
 */
/** Which unix URLs a flag takes: none, client listen (a socket path), client advertise (host:port), peer (unix://name:port, no unixs). */
type UnixUse = 'none' | 'listen' | 'advertise' | 'peer';

function urls(name: string, raw: string, unix: UnixUse = 'none'): URL[] {
  return raw.split(',').map((s) => {
    let u: URL;
    try {
      u = new URL(s.trim());
    } catch {
      throw new ConfigError(`invalid value "${raw}" for flag -${name}: "${s}" is not a URL`);
    }
    if (unix === 'peer' && u.protocol === 'unixs:') throw new ConfigError(`--${name}: "${s.trim()}": TLS over a unix socket is not supported between members (use unix:// or https://)`);
    if (unix !== 'none' && isUnixUrl(u)) {
      if (unix === 'listen') {
        try {
          unixSocketPath(u);
        } catch (err) {
          throw new ConfigError(`--${name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      } else if (u.hostname === '' || u.port === '') {
        const form = unix === 'peer' ? 'a unix peer URL has the form unix://name:port, the socket file "name:port" in the working directory' : 'an advertised unix URL has the form unix://host:port';
        throw new ConfigError(`--${name} "${s.trim()}" must be "host:port" (as in etcd, ${form})`);
      } else if (u.pathname !== '') throw new ConfigError(`--${name}: URL "${s.trim()}" must not contain a path`);
      return u;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`--${name}: URL scheme must be ${unix === 'none' ? 'http or https' : unix === 'peer' ? 'http, https or unix' : 'http, https, unix or unixs'}, got "${u.protocol}"`);
    if (u.port === '') throw new ConfigError(`--${name}: URL "${s}" needs a port`);
    return u;
  });
}

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const sub = argv[0] === undefined ? undefined : SUBCOMMANDS_REFUSED[argv[0]];
  if (sub !== undefined) throw new ConfigError(`subcommand '${argv[0] ?? ''}' is not supported: ${sub}`);
  const flags = parseArgs(argv);
  const file = flags.get('config-file') ?? env[envName('config-file')] ?? '';
  const given = file !== '' ? fromConfigFile(file) : flags;
  /** The value given for `name` itself (flag or file, else its environment variable), if any. */
  const set = (name: string): string | undefined => given.get(name) ?? (file === '' ? env[envName(name)] : undefined);
  const raw = (name: string): string => {
    const spec = FLAGS[name];
    if (spec === undefined) throw new ConfigError(`internal: no flag ${name}`);
    const alias = ALIASES[name];
    return set(name) ?? (alias === undefined ? undefined : set(alias)) ?? spec.def;
  };
  const noEffect = checkAll(set);
  const featureGates = gates(raw, set);
  const name = raw('name');
  const logLevel = raw('log-level');
  if (!isLevel(logLevel) && logLevel !== 'panic') throw new ConfigError(`invalid --log-level "${logLevel}"`);
  if (raw('logger') !== 'zap') throw new ConfigError(`invalid --logger "${raw('logger')}": only 'zap' (structured JSON) is supported`);
  if (raw('log-format') !== 'json') throw new ConfigError(`invalid --log-format "${raw('log-format')}": only 'json' is supported`);
  const cfg: Config = {
    name,
    dataDir: raw('data-dir') !== '' ? raw('data-dir') : `${name}.cairn`,
    walDir: raw('wal-dir'),
    listenClientUrls: urls('listen-client-urls', raw('listen-client-urls'), 'listen'),
    advertiseClientUrls: urls('advertise-client-urls', raw('advertise-client-urls'), 'advertise'),
    listenPeerUrls: urls('listen-peer-urls', raw('listen-peer-urls'), 'peer'),
    initialAdvertisePeerUrls: urls('initial-advertise-peer-urls', raw('initial-advertise-peer-urls'), 'peer'),
    initialCluster: initialCluster(given, env, file !== '', name, raw),
    initialClusterState: clusterState(raw('initial-cluster-state')),
    initialClusterToken: raw('initial-cluster-token'),
    snapshotCatchupEntries: int('snapshot-catchup-entries', given.has('snapshot-catchup-entries') || env[envName('snapshot-catchup-entries')] !== undefined ? raw('snapshot-catchup-entries') : raw('experimental-snapshot-catchup-entries')),
    requestBytesMax: int('max-request-bytes', raw('max-request-bytes')),
    txnOpsMax: int('max-txn-ops', raw('max-txn-ops')),
    quotaBackendBytes: int('quota-backend-bytes', raw('quota-backend-bytes')),
    snapshotCount: int('snapshot-count', raw('snapshot-count')),
    walSegmentBytes: int('wal-segment-bytes', raw('wal-segment-bytes')),
    heartbeatIntervalMs: int('heartbeat-interval', raw('heartbeat-interval')),
    electionTimeoutMs: int('election-timeout', raw('election-timeout')),
    watchProgressNotifyIntervalMs: Math.max(givenOrAlias(set, 'watch-progress-notify-interval', (v, flag) => duration(flag, v)) ?? WATCH_PROGRESS_NOTIFY_INTERVAL_MS, WATCH_PROGRESS_NOTIFY_INTERVAL_MIN_MS),
    watchersPerStreamMax: int('max-watchers-per-stream', raw('max-watchers-per-stream')),
    watchersMax: int('max-watchers', raw('max-watchers')),
    listenMetricsUrls: raw('listen-metrics-urls') === '' ? [] : urls('listen-metrics-urls', raw('listen-metrics-urls')),
    listenClientHttpUrls: raw('listen-client-http-urls') === '' ? [] : urls('listen-client-http-urls', raw('listen-client-http-urls')),
    metricsExtensive: metricsMode(raw('metrics')),
    enableGrpcGateway: bool('enable-grpc-gateway', raw('enable-grpc-gateway')),
    strictReconfigCheck: bool('strict-reconfig-check', raw('strict-reconfig-check')),
    clientTls: tlsFiles('', raw),
    peerTls: tlsFiles('peer-', raw),
    cipherSuites: raw('cipher-suites') === '' ? [] : raw('cipher-suites').split(',').map((c) => c.trim()),
    tlsMinVersion: tlsVersion('tls-min-version', raw('tls-min-version')) ?? 'TLSv1.2',
    tlsMaxVersion: tlsVersion('tls-max-version', raw('tls-max-version')),
    authToken: authToken(raw('auth-token')),
    authTokenTtlSec: int('auth-token-ttl', raw('auth-token-ttl')),
    bcryptCost: int('bcrypt-cost', raw('bcrypt-cost')),
    autoCompactionMode: compactionMode(raw('auto-compaction-mode')),
    autoCompactionRetention: raw('auto-compaction-retention'),
    autoCompaction: autoCompaction(compactionMode(raw('auto-compaction-mode')), raw('auto-compaction-retention'), duration('auto-compaction-revision-interval', raw('auto-compaction-revision-interval'))),
    initialCorruptCheck: featureGates.get('InitialCorruptCheck') === true,
    corruptCheckTimeMs: givenOrAlias(set, 'corrupt-check-time', (v, flag) => duration(flag, v)) ?? 0,
    compactHashCheck: featureGates.get('CompactHashCheck') === true,
    stopGrpcServiceOnDefrag: featureGates.get('StopGRPCServiceOnDefrag') === true,
    compactHashCheckTimeMs: duration('compact-hash-check-time', raw('compact-hash-check-time')),
    compactionBatchLimit: givenOrAlias(set, 'compaction-batch-limit', (v, flag) => {
      const n = int(flag, v);
      return n > 0 ? n : undefined; // etcd: 0 or less is its default
    }),
    bootstrapDefragThresholdBytes: Math.max(0, int('bootstrap-defrag-threshold-megabytes', raw('bootstrap-defrag-threshold-megabytes'))) * 1024 * 1024,
    compactionSleepIntervalMs: givenOrAlias(set, 'compaction-sleep-interval', (v, flag) => duration(flag, v)),
    warningUnaryRequestMs: givenOrAlias(set, 'warning-unary-request-duration', (v, flag) => duration(flag, v)) || duration('warning-unary-request-duration', FLAGS['warning-unary-request-duration']?.def ?? '300ms'),
    logLevel: logLevel === 'panic' ? 'fatal' : logLevel,
    logOutputs: raw('log-outputs').split(','),
    maxConcurrentStreams: concurrentStreams(raw('max-concurrent-streams')),
    selfSignedCertValidityYears: int('self-signed-cert-validity', raw('self-signed-cert-validity')),
    featureGates,
    noEffect,
    deprecated: Object.entries(DEPRECATED).filter(([flag]) => set(flag) !== undefined).map(([, message]) => message),
    showVersion: bool('version', raw('version')),
    showHelp: bool('help', raw('help')),
  };
  // etcd refuses the 3.6 name and its --experimental-* spelling together for this one flag (etcdmain parseWarningUnaryRequestDuration).
  if (set('warning-unary-request-duration') !== undefined && set('experimental-warning-unary-request-duration') !== undefined) {
    throw new ConfigError('both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set. Use only --warning-unary-request-duration');
  }
  if (cfg.requestBytesMax <= 0) throw new ConfigError('--max-request-bytes must be positive');
  if (cfg.txnOpsMax <= 0) throw new ConfigError('--max-txn-ops must be positive');
  if (cfg.snapshotCount <= 0) throw new ConfigError('--snapshot-count must be positive');
  if (cfg.heartbeatIntervalMs <= 0) throw new ConfigError('--heartbeat-interval must be positive');
  if (cfg.electionTimeoutMs < 5 * cfg.heartbeatIntervalMs) throw new ConfigError(`--election-timeout[${cfg.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${cfg.heartbeatIntervalMs}ms]`);
  if (cfg.watchersPerStreamMax <= 0 || cfg.watchersMax <= 0) throw new ConfigError('--max-watchers-per-stream and --max-watchers must be positive');
  if (cfg.bcryptCost < 4 || cfg.bcryptCost > 31) throw new ConfigError(`invalid --bcrypt-cost ${cfg.bcryptCost}: must be between 4 and 31`);
  if (cfg.authTokenTtlSec <= 0) throw new ConfigError('--auth-token-ttl must be positive');
  if (cfg.selfSignedCertValidityYears <= 0) throw new ConfigError('--self-signed-cert-validity must be positive');
  checkTlsUrls(cfg);
  if (cfg.walSegmentBytes < WAL_SEGMENT_BYTES_MIN) throw new ConfigError(`--wal-segment-bytes must be at least ${WAL_SEGMENT_BYTES_MIN}`);
  return cfg;
}

function list(v: string): string[] {
  return v.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function tlsFiles(prefix: '' | 'peer-', raw: (n: string) => string): TlsFiles | undefined {
  const certFile = raw(`${prefix}cert-file`);
  const keyFile = raw(`${prefix}key-file`);
  const trustedCaFile = raw(`${prefix}trusted-ca-file`);
  const clientCertAuth = bool(`${prefix}client-cert-auth`, raw(`${prefix}client-cert-auth`));
  const autoTls = bool(`${prefix}auto-tls`, raw(`${prefix}auto-tls`));
  const rest = {
    crlFile: raw(prefix === 'peer-' ? 'peer-crl-file' : 'client-crl-file'),
    allowedCns: prefix === 'peer-' ? list(raw('peer-cert-allowed-cn')) : [],
    allowedHostnames: list(raw(prefix === 'peer-' ? 'peer-cert-allowed-hostname' : 'client-cert-allowed-hostname')),
    clientCertFile: prefix === 'peer-' ? raw('peer-client-cert-file') : '',
    clientKeyFile: prefix === 'peer-' ? raw('peer-client-key-file') : '',
    skipClientSanVerify: prefix === 'peer-' && bool('peer-skip-client-san-verification', raw('peer-skip-client-san-verification')),
  };
  if ((rest.clientCertFile === '') !== (rest.clientKeyFile === '')) throw new ConfigError('--peer-client-cert-file and --peer-client-key-file must be given together');
  if (certFile === '' && keyFile === '') {
    // etcd: auto TLS only when no certificate files are given (otherwise it warns and uses the files).
    if (autoTls) return { certFile, keyFile, trustedCaFile: '', clientCertAuth, autoTls: true, ...rest };
    if (trustedCaFile !== '' || clientCertAuth) throw new ConfigError(`--${prefix}trusted-ca-file and --${prefix}client-cert-auth need --${prefix}cert-file and --${prefix}key-file`);
    return undefined;
  }
  if (certFile === '' || keyFile === '') throw new ConfigError(`--${prefix}cert-file and --${prefix}key-file must be given together`);
  return { certFile, keyFile, trustedCaFile, clientCertAuth, autoTls: false, ...rest };
}

/**
 * Every flag given (on the command line, in the file or as ETCD_*): its value checked by kind, refused
 * at a value Cairn cannot honour (compat.ts REFUSED, naming the flag and why), and listed when it has
 * no effect in Cairn and differs from the default.
 */
function checkAll(set: (name: string) => string | undefined): NoEffectFlag[] {
  const out: NoEffectFlag[] = [];
  for (const [name, spec] of Object.entries(FLAGS)) {
    const v = set(name);
    if (v === undefined) continue;
    if (spec.kind === 'bool') bool(name, v);
    else if (spec.kind === 'int') int(name, v);
    else if (spec.kind === 'duration' && v.trim() !== '') duration(name, v);
    const refusal = REFUSED[name];
    if (refusal !== undefined && !refusal.ok(v)) throw new ConfigError(`--${name}=${v} is not supported by Cairn: ${refusal.reason}`);
    const why = NO_EFFECT[name];
    if (why !== undefined && v !== spec.def) out.push({ flag: name, value: v, reason: why });
  }
  const v2 = set('v2-deprecation');
  if (v2 !== undefined && !V2_DEPRECATION_LEVELS.includes(v2)) throw new ConfigError(`invalid value "${v2}" for flag -v2-deprecation: invalid value "${v2}"`);
  return out;
}

/** --feature-gates with etcd's errors, merged with the --experimental-* booleans naming the same gates; gates Cairn cannot honour refused. */
function gates(raw: (n: string) => string, set: (name: string) => string | undefined): Map<string, boolean> {
  let out: Map<string, boolean>;
  try {
    out = parseFeatureGates(raw('feature-gates'));
  } catch (err) {
    if (err instanceof GateError) throw new ConfigError(`invalid value "${raw('feature-gates')}" for flag -feature-gates: ${err.message}`);
    throw err;
  }
  for (const [flag, gate] of Object.entries(GATE_FLAGS)) {
    const v = set(flag);
    // etcd 3.6: the gate wins when both are given; else the old flag sets it.
    if (v !== undefined && !new RegExp(`(^|,)\\s*${gate}\\s*=`).test(raw('feature-gates'))) out.set(gate, bool(flag, v));
  }
  for (const [gate, on] of out) {
    const why = GATES_REFUSED_ON[gate];
    if (on && why !== undefined) throw new ConfigError(`--feature-gates ${gate}=true is not supported by Cairn: ${why}`);
    if (FEATURE_GATES[gate] === undefined) throw new ConfigError(`internal: gate ${gate}`);
  }
  return out;
}

/** --max-concurrent-streams: a uint32 (etcd's default math.MaxUint32 is printed by name). */
function concurrentStreams(v: string): number {
  if (v === 'math.MaxUint32') return 2 ** 32 - 1;
  const n = int('max-concurrent-streams', v);
  if (n < 0 || n > 2 ** 32 - 1) throw new ConfigError(`invalid value "${v}" for flag -max-concurrent-streams: value out of range`);
  return n;
}

/** https (and unixs) URLs need certificates (etcd refuses to start otherwise); certificates with only http URLs are allowed (etcd warns). */
function checkTlsUrls(cfg: Config): void {
  const https = (us: readonly URL[]): boolean => us.some((u) => u.protocol === 'https:');
  if (https(cfg.listenClientUrls) && cfg.clientTls === undefined) throw new ConfigError('--listen-client-urls has an https URL but no --cert-file/--key-file were given');
  if (cfg.listenClientUrls.some((u) => u.protocol === 'unixs:') && cfg.clientTls === undefined) throw new ConfigError('--listen-client-urls has a unixs URL (TLS on a unix socket) but no --cert-file/--key-file were given');
  if (https(cfg.listenClientHttpUrls) && cfg.clientTls === undefined) throw new ConfigError('--listen-client-http-urls has an https URL but no --cert-file/--key-file were given');
  if (https(cfg.listenMetricsUrls) && cfg.clientTls === undefined) throw new ConfigError('client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url'); // etcd's ErrMissingClientTLSInfoForMetricsURL
  if (https(cfg.listenPeerUrls) && cfg.peerTls === undefined) throw new ConfigError('--listen-peer-urls has an https URL but no --peer-cert-file/--peer-key-file were given');
}

function tlsVersion(flag: string, v: string): 'TLSv1.2' | 'TLSv1.3' | undefined {
  if (v === '') return undefined;
  if (v === 'TLS1.2') return 'TLSv1.2';
  if (v === 'TLS1.3') return 'TLSv1.3';
  throw new ConfigError(`invalid value "${v}" for flag -${flag}: unsupported TLS version (TLS1.2 or TLS1.3)`);
}

function metricsMode(v: string): boolean {
  if (v === 'basic') return false;
  if (v === 'extensive') return true;
  throw new ConfigError(`invalid value "${v}" for flag -metrics: 'basic' or 'extensive'`);
}

/** etcd's parse: periodic = a duration, or whole hours when unitless; revision = a revision count; 0 = off. */
function autoCompaction(mode: 'periodic' | 'revision', retention: string, checkIntervalMs: number): AutoCompaction | undefined {
  const r = retention.trim();
  if (mode === 'revision') {
    if (!/^\d+$/.test(r)) throw new ConfigError(`invalid value "${retention}" for flag -auto-compaction-retention: revision mode needs a revision count`);
    const n = Number(r);
    return n === 0 ? undefined : { mode, retentionRevs: n, checkIntervalMs: Math.max(1, checkIntervalMs) };
  }
  const periodMs = /^\d+$/.test(r) ? Number(r) * 3_600_000 : duration('auto-compaction-retention', r);
  return periodMs <= 0 ? undefined : { mode, periodMs };
}

function compactionMode(v: string): 'periodic' | 'revision' {
  if (v === 'periodic' || v === 'revision') return v;
  throw new ConfigError(`unknown auto-compaction-mode "${v}"`);
}

/** --auth-token: 'simple', or 'jwt' with comma-separated key=value options (etcd's auth.NewTokenProvider). */
export function authToken(spec: string): AuthTokenConfig {
  const [kind, ...opts] = spec.split(',');
  if (kind === 'simple') return { kind: 'simple' };
  if (kind !== 'jwt') throw new ConfigError(`unknown token type: ${kind ?? ''}`);
  const o = new Map<string, string>();
  for (const kv of opts) {
    const at = kv.indexOf('=');
    if (at <= 0) throw new ConfigError(`invalid --auth-token option "${kv}"`);
    const key = kv.slice(0, at);
    if (!['pub-key', 'priv-key', 'sign-method', 'ttl'].includes(key)) throw new ConfigError(`unknown token option "${key}"`);
    o.set(key, kv.slice(at + 1));
  }
  const signMethod = o.get('sign-method') ?? '';
  if (signMethod === '') throw new ConfigError('jwt token: sign-method is required');
  return { kind: 'jwt', pubKeyFile: o.get('pub-key') ?? '', privKeyFile: o.get('priv-key') ?? '', signMethod, ttlMs: duration('auth-token ttl', o.get('ttl') ?? '5m') };
}

/** Either spelling of the corruption-check period (the 3.6 name wins when both are given). */
/** A flag's value parsed when it (or its --experimental-* alias) was given; undefined otherwise. */
function givenOrAlias<T>(set: (name: string) => string | undefined, name: string, parse: (v: string, flag: string) => T): T | undefined {
  const v = set(name);
  if (v !== undefined) return parse(v, name);
  const alias = ALIASES[name];
  const old = alias === undefined ? undefined : set(alias);
  return old === undefined || alias === undefined ? undefined : parse(old, alias);
}


function clusterState(v: string): 'new' | 'existing' {
  if (v === 'new' || v === 'existing') return v;
  throw new ConfigError(`invalid value "${v}" for flag -initial-cluster-state: valid values are "new" or "existing"`);
}

/** etcd: without --initial-cluster, a member named other than "default" bootstraps as name=each advertised peer URL. */
function initialCluster(given: Map<string, string>, env: NodeJS.ProcessEnv, fromFile: boolean, name: string, raw: (n: string) => string): string {
  const set = given.has('initial-cluster') || (!fromFile && env[envName('initial-cluster')] !== undefined);
  if (set) return raw('initial-cluster');
  return raw('initial-advertise-peer-urls')
    .split(',')
    .map((u) => `${name}=${u.trim()}`)
    .join(',');
}

/** Either spelling of the progress-notify flag (the 3.6 name wins when both are given), floored at etcd's 100 ms. */

export function usage(): string {
  const lines = Object.entries(FLAGS).map(([k, s]) => `  --${k}${s.kind === 'bool' ? '' : ` '${s.def}'`}\n        ${s.help} (env ${envName(k)})`);
  return `Usage:\n\n  cairn-server [flags]\n\nFlags:\n${lines.join('\n')}\n\n${exitStatusHelp()}`;
}

/** Every flag name Cairn accepts (without the dashes), with its kind and default as --help prints them. */
export function flagTable(): ReadonlyMap<string, { readonly kind: string; readonly def: string }> {
  return new Map(Object.entries(FLAGS).map(([k, s]) => [k, { kind: s.kind, def: s.def }]));
}
