// /metrics: Prometheus text with etcd's names, types, labels and help texts for the series
// dashboards and alerts use (E etcdserver/metrics.go, mvcc/metrics.go, lease/metrics.go,
// wal/metrics.go, mvcc/backend/metrics.go, rafthttp/metrics.go, go-grpc-prometheus), plus
// prom-client's process_* and nodejs_* defaults but gc and event loop lag (etcd has go_* instead).
//
// Nothing here runs on the request path. Values that exist as state (sizes, revisions, keys,
// leadership, watchers, pending proposals, counters kept by the store, the gRPC server and node/)
// are read by collect() callbacks when scraped; only durations are observed as they happen, through
// the slots of node/stats.ts that createMetrics fills.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DEFAULT_QUOTA_BYTES } from '../base/limits.js';
import type { MemberInfo, MemberStatus, NodeStats } from '../node/index.js';

/** What /metrics reads from the member (node/ Node satisfies it). */
export interface MetricsNode {
  readonly memberId: bigint;
  readonly store: {
    readonly currentRev: number;
    readonly compactRev: number;
    liveKeys(): number;
    readonly counts: { readonly ranges: number; readonly puts: number; readonly deletes: number; readonly txns: number };
  };
  readonly watchable: { readonly watchers: number; readonly unsyncedWatchers: number };
  hasLeader(): boolean;
  isLeader(): boolean;
  isLearner(): boolean;
  readonly maintenance: { status(): MemberStatus };
  pendingProposals(): number;
  members(): readonly MemberInfo[];
  peerStats(id: bigint): { readonly bytesSent: number; readonly bytesReceived: number; readonly dropped: number } | undefined;
}

/** The gRPC server's per-method counters (api/grpc GrpcServer.methodStats). */
export interface GrpcMethodStats {
  methodStats(): readonly {
    readonly path: string;
    readonly kind: 'unary' | 'server_stream' | 'bidi_stream';
    readonly stats: { readonly started: number; readonly received: number; readonly sent: number; readonly handled: readonly number[] };
  }[];
  measureHandlingTime(observer: (path: string, kind: 'unary' | 'server_stream' | 'bidi_stream') => (seconds: number) => void): void;
}

export interface MetricsOptions {
  readonly node: MetricsNode;
  readonly stats: NodeStats;
  readonly grpc: GrpcMethodStats;
  /** The etcd version reported (Status.version): etcd_server_version{server_version}. */
  readonly version: string;
  /** --quota-backend-bytes (0 = etcd's 2 GiB default). */
  readonly quotaBackendBytes: number;
  /** --metrics=extensive: also grpc_server_handling_seconds per method (a clock read per call). */
  readonly extensive?: boolean;
  /** etcd 3.6's feature gates with their stage and resolved value: etcd_server_feature_enabled{name,stage}. */
  readonly featureGates?: readonly { readonly name: string; readonly stage: string; readonly enabled: boolean }[];
}

export interface Metrics {
  readonly registry: Registry;
  /** One scrape: what the HTTP layer serves on GET /metrics. */
  readonly handler: () => Promise<{ contentType: string; body: string }>;
  /** The HTTP layer's /health outcome (etcd_server_health_success / _failures). */
  readonly healthChecked: (ok: boolean) => void;
}

// etcd's buckets (prometheus.ExponentialBuckets(start, 2, count)).
const exponential = (start: number, count: number): number[] => Array.from({ length: count }, (_, i) => start * 2 ** i);
const DISK_BUCKETS = exponential(0.001, 14);
const SNAPSHOT_BUCKETS = exponential(0.01, 17);
const DEFRAG_BUCKETS = exponential(0.1, 13);
const PEER_RTT_BUCKETS = exponential(0.0001, 16);

/** grpc-go's codes.Code.String(), by code: go-grpc-prometheus's grpc_code label. */
const GRPC_CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
] as const;

const WATCH_PATH = '/etcdserverpb.Watch/Watch';

/** What one scrape reads from the member once (status() walks raft progress and LMDB stats). */
interface Scrape {
  readonly status: MemberStatus;
  readonly peers: { readonly id: string; readonly bytesSent: number; readonly bytesReceived: number; readonly dropped: number }[];
}

type Register = readonly Registry[];

function gauge(registers: Register, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [...registers],
    collect() {
      this.set(read());
    },
  });
}

/** A counter whose total is kept elsewhere (a plain number): re-read at each scrape. */
function counter(registers: Register, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [...registers],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** Open file descriptors of this process (Linux /proc; 0 elsewhere). */
function fdUsed(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

/** The soft limit on open files (Linux /proc/self/limits; 0 when unknown). */
function fdLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** A gauge of 1 with one label carrying the value (etcd's version and id gauges). */
function infoGauge(registers: Register, name: string, help: string, label: string, value: () => string): void {
  new Gauge({
    name,
    help,
    labelNames: [label],
    registers: [...registers],
    collect() {
      this.reset();
      this.set({ [label]: value() }, 1);
    },
  });
}

function histogram(registers: Register, name: string, help: string, buckets: number[], slot: NodeStats['walFsync']): void {
  const h = new Histogram({ name, help, buckets, registers: [...registers] });
  slot.observe = (seconds) => h.observe(seconds);
}

/**
 * prom-client's default metrics (collectDefaultMetrics) except the two that cost on the request
 * path: `gc` (a PerformanceObserver entry and a JS callback per garbage collection) and
 * `eventLoopLag` (a 10 ms timer sampling the loop). The others read process state when scraped.
 * They are prom-client's own modules (lib/metrics/<name>.js, each `(registry, config) => void`);
 * one missing in another prom-client version is skipped rather than stopping the server.
 */
const DEFAULT_METRICS = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
] as const;

function registerDefaultMetrics(registry: Registry): void {
  const load = createRequire(import.meta.url);
  for (const name of DEFAULT_METRICS) {
    let register: unknown;
    try {
      register = load(`prom-client/lib/metrics/${name}`);
    } catch {
      continue;
    }
    if (typeof register === 'function') (register as (r: Registry, config: object) => void)(registry, {});
  }
}

function splitPath(path: string): { service: string; method: string } {
  const slash = path.lastIndexOf('/');
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

/** Builds the registry and installs the duration observers in `opts.stats`. */
export function createMetrics(opts: MetricsOptions): Metrics {
  const { node, stats, grpc } = opts;
  const registry = new Registry();
  const regs: Register = [registry];
  let scrape: Scrape | undefined;
  const take = (): Scrape => {
    const peers = node
      .members()
      .filter((m) => m.id !== node.memberId)
      .flatMap((m) => {
        const s = node.peerStats(m.id);
        return s === undefined ? [] : [{ id: m.id.toString(16), bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, dropped: s.dropped }];
      });
    return { status: node.maintenance.status(), peers };
  };
  const now = (): Scrape => (scrape ??= take());

  // ---- etcd_server_* (etcdserver/metrics.go) ----
  gauge(regs, 'etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (node.hasLeader() ? 1 : 0));
  gauge(regs, 'etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (node.isLeader() ? 1 : 0));
  gauge(regs, 'etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', () => (node.isLearner() ? 1 : 0));
  counter(regs, 'etcd_server_leader_changes_seen_total', 'The number of leader changes seen.', () => stats.leaderChanges);
  // etcd exports committed and applied as gauges (the raft indexes), not counters.
  gauge(regs, 'etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => now().status.raftIndex);
  gauge(regs, 'etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => now().status.raftAppliedIndex);
  gauge(regs, 'etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => node.pendingProposals());
  counter(regs, 'etcd_server_proposals_failed_total', 'The total number of failed proposals seen.', () => stats.proposalsFailed);
  counter(regs, 'etcd_server_heartbeat_send_failures_total', 'The total number of leader heartbeat send failures (likely overloaded from slow disk).', () => stats.heartbeatSendFailures);
  counter(regs, 'etcd_server_slow_apply_total', 'The total number of slow apply requests (likely overloaded from slow disk).', () => stats.slowApplies);
  gauge(regs, 'etcd_server_snapshot_apply_in_progress_total', '1 if the server is applying the incoming snapshot. 0 if none.', () => (stats.snapshotsInstalling > 0 ? 1 : 0));
  const quota = opts.quotaBackendBytes > 0 ? opts.quotaBackendBytes : DEFAULT_QUOTA_BYTES;
  gauge(regs, 'etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', () => quota);
  const gates = opts.featureGates ?? [];
  new Gauge({
    name: 'etcd_server_feature_enabled',
    help: 'Whether or not a feature is enabled. 1 is enabled, 0 is not.',
    labelNames: ['name', 'stage'],
    registers: [...regs],
    collect() {
      this.reset();
      for (const g of gates) this.set({ name: g.name, stage: g.stage }, g.enabled ? 1 : 0);
    },
  });
  new Gauge({
    name: 'etcd_network_known_peers',
    help: 'The current number of known peers.',
    labelNames: ['Local', 'Remote'],
    registers: [...regs],
    collect() {
      this.reset();
      const local = node.memberId.toString(16);
      for (const m of node.members()) this.set({ Local: local, Remote: m.id.toString(16) }, 1);
    },
  });
  gauge(regs, 'os_fd_used', 'The number of used file descriptors.', () => fdUsed());
  gauge(regs, 'os_fd_limit', 'The file descriptor limit.', () => fdLimit());
  infoGauge(regs, 'etcd_server_version', "Which version is running. 1 for 'server_version' label with current version.", 'server_version', () => opts.version);
  const clusterVersion = opts.version.split('.').slice(0, 2).join('.');
  infoGauge(regs, 'etcd_cluster_version', "Which version is running. 1 for 'cluster_version' label with current cluster version", 'cluster_version', () => clusterVersion);
  const serverId = node.memberId.toString(16);
  infoGauge(regs, 'etcd_server_id', "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", 'server_id', () => serverId);
  let healthOk = 0;
  let healthFailed = 0;
  counter(regs, 'etcd_server_health_success', 'The total number of successful health checks', () => healthOk);
  counter(regs, 'etcd_server_health_failures', 'The total number of failed health checks', () => healthFailed);

  // ---- etcd_mvcc_* and etcd_debugging_mvcc_* (mvcc/metrics.go) ----
  const dbSize = 'Total size of the underlying database physically allocated in bytes.';
  gauge(regs, 'etcd_mvcc_db_total_size_in_bytes', dbSize, () => now().status.dbSizeBytes);
  gauge(regs, 'etcd_debugging_mvcc_db_total_size_in_bytes', dbSize, () => now().status.dbSizeBytes);
  gauge(regs, 'etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', () => now().status.dbSizeInUseBytes);
  const counts = node.store.counts;
  counter(regs, 'etcd_mvcc_range_total', 'Total number of ranges seen by this member.', () => counts.ranges);
  counter(regs, 'etcd_mvcc_put_total', 'Total number of puts seen by this member.', () => counts.puts);
  counter(regs, 'etcd_mvcc_delete_total', 'Total number of deletes seen by this member.', () => counts.deletes);
  counter(regs, 'etcd_mvcc_txn_total', 'Total number of txns seen by this member.', () => counts.txns);
  gauge(regs, 'etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => node.store.liveKeys());
  gauge(regs, 'etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => node.store.currentRev);
  gauge(regs, 'etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => node.store.compactRev);
  gauge(regs, 'etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => node.watchable.watchers);
  gauge(regs, 'etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', () => node.watchable.unsyncedWatchers);
  // One mvcc watch stream per open gRPC Watch call: started and not yet handled.
  const watchStreams = (): number => {
    const w = grpc.methodStats().find((m) => m.path === WATCH_PATH);
    return w === undefined ? 0 : w.stats.started - w.stats.handled.reduce((a, b) => a + b, 0);
  };
  gauge(regs, 'etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.', watchStreams);

  // ---- etcd_debugging_lease_* (lease/metrics.go) ----
  counter(regs, 'etcd_debugging_lease_granted_total', 'The total number of granted leases.', () => stats.leasesGranted);
  counter(regs, 'etcd_debugging_lease_revoked_total', 'The total number of revoked leases.', () => stats.leasesRevoked);
  counter(regs, 'etcd_debugging_lease_renewed_total', 'The number of renewed leases seen by the leader.', () => stats.leasesRenewed);

  // ---- etcd_disk_* (wal/metrics.go, mvcc/backend/metrics.go) ----
  histogram(regs, 'etcd_disk_wal_fsync_duration_seconds', 'The latency distributions of fsync called by WAL.', DISK_BUCKETS, stats.walFsync);
  histogram(regs, 'etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.', DISK_BUCKETS, stats.backendCommit);
  histogram(regs, 'etcd_disk_backend_snapshot_duration_seconds', 'The latency distribution of backend snapshots.', SNAPSHOT_BUCKETS, stats.backendSnapshot);
  histogram(regs, 'etcd_disk_backend_defrag_duration_seconds', 'The latency distribution of backend defragmentation.', DEFRAG_BUCKETS, stats.backendDefrag);

  // ---- etcd_network_peer_* (rafthttp/metrics.go) ----
  const rtt = new Histogram({ name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round-Trip-Time histogram between peers', labelNames: ['To'], buckets: PEER_RTT_BUCKETS, registers: [registry] });
  stats.peerRoundTrip.observe = (to, seconds) => rtt.observe({ To: to }, seconds);
  const peerCounter = (name: string, help: string, label: 'To' | 'From', read: (p: Scrape['peers'][number]) => number): void => {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of now().peers) {
          const v = read(p);
          // etcd's vectors have a child only once something was counted for that peer.
          if (v > 0) this.inc({ [label]: p.id }, v);
        }
      },
    });
  };
  peerCounter('etcd_network_peer_sent_bytes_total', 'The total number of bytes sent to peers.', 'To', (p) => p.bytesSent);
  peerCounter('etcd_network_peer_received_bytes_total', 'The total number of bytes received from peers.', 'From', (p) => p.bytesReceived);
  peerCounter('etcd_network_peer_sent_failures_total', 'The total number of send failures from peers.', 'To', (p) => p.dropped);

  // ---- grpc_server_* (go-grpc-prometheus; every registered method is pre-initialised, as etcd's) ----
  const methodLabels = new Map<string, { grpc_method: string; grpc_service: string; grpc_type: string }>();
  const labelsOf = (path: string, kind: string): { grpc_method: string; grpc_service: string; grpc_type: string } => {
    let l = methodLabels.get(path);
    if (l === undefined) {
      const { service, method } = splitPath(path);
      l = { grpc_method: method, grpc_service: service, grpc_type: kind };
      methodLabels.set(path, l);
    }
    return l;
  };
  const grpcCounter = (name: string, help: string, read: (s: ReturnType<GrpcMethodStats['methodStats']>[number]['stats']) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['grpc_method', 'grpc_service', 'grpc_type'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of grpc.methodStats()) this.inc(labelsOf(m.path, m.kind), read(m.stats));
      },
    });
  };
  grpcCounter('grpc_server_started_total', 'Total number of RPCs started on the server.', (s) => s.started);
  grpcCounter('grpc_server_msg_received_total', 'Total number of RPC stream messages received on the server.', (s) => s.received);
  grpcCounter('grpc_server_msg_sent_total', 'Total number of gRPC stream messages sent by the server.', (s) => s.sent);
  new Counter({
    name: 'grpc_server_handled_total',
    help: 'Total number of RPCs completed on the server, regardless of success or failure.',
    labelNames: ['grpc_code', 'grpc_method', 'grpc_service', 'grpc_type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const m of grpc.methodStats()) {
        const l = labelsOf(m.path, m.kind);
        GRPC_CODE_NAMES.forEach((code, i) => this.inc({ ...l, grpc_code: code }, m.stats.handled[i] ?? 0));
      }
    },
  });

  if (opts.extensive === true) {
    // go-grpc-prometheus's handling-time histogram, which etcd registers with --metrics=extensive.
    const handling = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      labelNames: ['grpc_method', 'grpc_service', 'grpc_type'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    grpc.measureHandlingTime((path, kind) => {
      const child = handling.labels(labelsOf(path, kind));
      return (seconds) => child.observe(seconds);
    });
  }

  // ---- process_* and nodejs_* (etcd has go_* and process_*) ----
  registerDefaultMetrics(registry);

  return {
    registry,
    handler: async () => {
      scrape = take();
      try {
        // prom-client 15 writes NaN as "Nan" (e.g. an event loop lag mean before any sample); the text
        // format (and etcd) spell it NaN.
        return { contentType: registry.contentType, body: (await registry.metrics()).replace(/ Nan$/gm, ' NaN') };
      } finally {
        scrape = undefined;
      }
    },
    healthChecked: (ok) => {
      if (ok) healthOk++;
      else healthFailed++;
    },
  };
}
