// /metrics: Prometheus text with etcd's names, types, labels and help texts for the series
// dashboards and alerts use (E etcdserver/metrics.go, mvcc/metrics.go, lease/metrics.go,
// wal/metrics.go, mvcc/backend/metrics.go, rafthttp/metrics.go, go-grpc-prometheus), plus
// prom-client's process_* and nodejs_* defaults but gc and event loop lag (etcd has go_* instead).
//
// Nothing here runs on the request path. Values that exist as state (sizes, revisions, keys,
// leadership, watchers, pending proposals, counters kept by the store, the gRPC server and node/)
// are read by collect() callbacks when scraped; only durations are observed as they happen, through
// the slots of node/stats.ts that createMetrics fills.
//
// Every series etcd 3.6.8 exports after start and a few writes is here (test/metrics/etcd36-series.test.ts)
// except those with no honest meaning in Cairn that etcd has already moved by then: go_* and
// etcd_server_go_version (Cairn is not a Go program), etcd_debugging_store_reads_total/writes_total
// (etcd's v2 store, which Cairn does not have), etcd_debugging_disk_backend_commit_rebalance/spill_*
// (bbolt restructures its B+tree at commit; LMDB does it inline with each change, so a commit has no
// such phase). A few have a meaning in Cairn that etcd has not observed at that point and that Cairn
// never observes (histograms with zero count, counters and gauges at 0), each said where it is.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DEFAULT_QUOTA_BYTES } from '../base/limits.js';
import type { MemberInfo, MemberStatus, NodeStats, ValueSlot } from '../node/index.js';

/** What /metrics reads from the member (node/ Node satisfies it). */
export interface MetricsNode {
  readonly memberId: bigint;
  readonly store: {
    readonly currentRev: number;
    readonly compactRev: number;
    liveKeys(): number;
    readonly counts: { readonly ranges: number; readonly puts: number; readonly deletes: number; readonly txns: number; readonly putBytes: number; readonly compactedRevisions: number };
  };
  readonly watchable: { readonly watchers: number; readonly unsyncedWatchers: number; readonly eventsSent: number; readonly pendingEvents: number };
  readonly auth: { readonly revision: number };
  hasLeader(): boolean;
  isLeader(): boolean;
  isLearner(): boolean;
  /** LMDB read transactions this process holds open. */
  openReadTxns(): number;
  readonly maintenance: { status(): MemberStatus };
  pendingProposals(): number;
  members(): readonly MemberInfo[];
  peerStats(id: bigint): { readonly bytesSent: number; readonly bytesReceived: number; readonly dropped: number; readonly active: boolean } | undefined;
}

/** The gRPC server's per-method counters (api/grpc GrpcServer.methodStats). */
export interface GrpcMethodStats {
  methodStats(): readonly {
    readonly path: string;
    readonly kind: 'unary' | 'server_stream' | 'bidi_stream';
    readonly stats: { readonly started: number; readonly received: number; readonly sent: number; readonly receivedBytes: number; readonly sentBytes: number; readonly handled: readonly number[] };
  }[];
  measureHandlingTime(observer: (path: string, kind: 'unary' | 'server_stream' | 'bidi_stream') => (seconds: number) => void): void;
}

export interface MetricsOptions {
  readonly node: MetricsNode;
  readonly stats: NodeStats;
  readonly grpc: GrpcMethodStats;
  /** Calls by client-api-version (api/server.ts ClientRequests): etcd_server_client_requests_total. */
  readonly clientRequests?: { readonly unary: ReadonlyMap<string, number>; readonly stream: ReadonlyMap<string, number> };
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
const APPLY_BUCKETS = exponential(0.0001, 20);
const HASH_BUCKETS = exponential(0.01, 15);
const LEASE_TTL_BUCKETS = exponential(1, 24);
/** Go's time.Duration.Microseconds() as etcd's apply and range histograms take it: whole microseconds. */
const wholeMicros = (seconds: number): number => Math.floor(seconds * 1e6) / 1e6;
/** Go's `time.Since(start) / time.Millisecond` as etcd's compaction histograms take it: whole milliseconds. */
const wholeMillis = (seconds: number): number => Math.floor(seconds * 1000);

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
  readonly peers: { readonly id: string; readonly bytesSent: number; readonly bytesReceived: number; readonly dropped: number; readonly active: boolean }[];
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

/** The soft limit on address space (Linux /proc/self/limits; 'unlimited' as Go's client reads it, 2^64-1). */
function addressSpaceLimit(): number {
  try {
    const m = /^Max address space\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m === null ? 0 : m[1] === 'unlimited' ? 2 ** 64 - 1 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** IP octets in and out (Linux /proc/self/net/netstat, IpExt: the network namespace's, as Go's client reads them). */
function ipOctets(): { inBytes: number; outBytes: number } {
  try {
    const [names, values] = readFileSync('/proc/self/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('IpExt:')).map((l) => l.split(/\s+/));
    const at = (name: string): number => Number(values?.[names?.indexOf(name) ?? -1] ?? 0);
    return { inBytes: at('InOctets'), outBytes: at('OutOctets') };
  } catch {
    return { inBytes: 0, outBytes: 0 };
  }
}

/** The series of a labelled family as they are when scraped: each one's labels and value. */
type Rows = () => Iterable<readonly [labels: Record<string, string>, value: number]>;

/**
 * The labels with their names in sorted order: prom-client writes a series' labels in the order of its
 * label object's keys, client_golang (etcd) in sorted order, and tools and tests match the text
 * (etcd's e2e greps `grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",...}`).
 */
function sortedLabels<L extends Record<string, string>>(labels: L): L {
  const keys = Object.keys(labels);
  if (keys.every((k, i) => i === 0 || (keys[i - 1] as string) < k)) return labels;
  const out: Record<string, string> = {};
  for (const k of keys.sort()) out[k] = labels[k] as string;
  return out as L;
}

/**
 * A labelled gauge or counter whose series are read when scraped: only those `rows` gives exist (a
 * counter's totals are kept elsewhere and re-read, as `counter` does).
 */
function labelled(kind: 'gauge' | 'counter', registers: Register, name: string, help: string, labelNames: readonly string[], rows: Rows): void {
  const config = { name, help, labelNames: [...labelNames], registers: [...registers] };
  if (kind === 'gauge') {
    new Gauge({
      ...config,
      collect() {
        this.reset();
        for (const [labels, value] of rows()) this.set(sortedLabels(labels), value);
      },
    });
    return;
  }
  new Counter({
    ...config,
    collect() {
      this.reset();
      for (const [labels, value] of rows()) this.inc(sortedLabels(labels), value);
    },
  });
}

/** A gauge per peer: Local is this member's id, Remote the peer's, both in hex; `values` gives each peer's value. */
function peerGauge(registers: Register, name: string, help: string, local: bigint, values: () => readonly (readonly [remote: string, value: number])[]): void {
  const localHex = local.toString(16);
  labelled('gauge', registers, name, help, ['Local', 'Remote'], () => values().map(([remote, value]) => [{ Local: localHex, Remote: remote }, value] as const));
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

/** A histogram fed by a node/ slot, its value converted first when etcd rounds it (`as`). */
function histogram(registers: Register, name: string, help: string, buckets: number[], slot: ValueSlot, as: (v: number) => number = (v) => v): void {
  const h = new Histogram({ name, help, buckets, registers: [...registers] });
  slot.observe = (v) => h.observe(as(v));
}

/**
 * A histogram etcd exports that Cairn never observes: what it measures does not happen in Cairn
 * (the reason is given where it is registered), and etcd has not observed it yet after start.
 */
function neverObserved(registers: Register, name: string, help: string, buckets: number[]): void {
  new Histogram({ name, help, buckets, registers: [...registers] });
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

/** One series per label set, for series etcd keeps per label (e.g. op and success). */
function labelledHistogram(registers: Register, name: string, help: string, labelNames: readonly string[], buckets: number[]): (labels: Record<string, string>) => (v: number) => void {
  const h = new Histogram({ name, help, labelNames: [...labelNames], buckets, registers: [...registers] });
  const children = new Map<string, (v: number) => void>();
  return (labels) => {
    const key = labelNames.map((n) => labels[n]).join('\0');
    let child = children.get(key);
    if (child === undefined) {
      const c = h.labels(sortedLabels(labels));
      child = (v) => c.observe(v);
      children.set(key, child);
    }
    return child;
  };
}

/**
 * Series etcd 3.6 exports beyond those of etcd 3.4 (and the debugging ones dashboards rarely use),
 * each with what it measures in Cairn.
 */
function registerEtcd36Series(regs: Register, opts: MetricsOptions, now: () => Scrape): void {
  const { node, stats, grpc } = opts;
  const sumGrpc = (read: (s: ReturnType<GrpcMethodStats['methodStats']>[number]['stats']) => number) => (): number => grpc.methodStats().reduce((n, m) => n + read(m.stats), 0);

  // ---- etcd_server_*, etcd_debugging_server_* (etcdserver/metrics.go, etcdserver/txn/metrics.go) ----
  counter(regs, 'etcd_server_learner_promote_successes', 'The total number of successful learner promotions while this member is leader.', () => stats.learnersPromoted);
  counter(regs, 'etcd_server_read_indexes_failed_total', 'The total number of failed read indexes seen.', () => stats.readIndexesFailed);
  counter(regs, 'etcd_server_slow_read_indexes_total', "The total number of pending read indexes not in sync with leader's or timed out read index requests.", () => stats.slowReadIndexes);
  counter(regs, 'etcd_debugging_server_lease_expired_total', 'The total number of expired leases.', () => stats.leasesExpired);
  const requests = opts.clientRequests;
  const byType = requests === undefined ? [] : ([['unary', requests.unary], ['stream', requests.stream]] as const);
  labelled('counter', regs, 'etcd_server_client_requests_total', 'The total number of client requests per client version.', ['type', 'client_api_version'], () =>
    byType.flatMap(([type, counts]) => [...counts].map(([version, n]) => [{ type, client_api_version: version }, n] as const)),
  );
  // Every applied request but membership changes, by etcd's op name (as etcd's dispatch), in whole microseconds.
  const apply = labelledHistogram(regs, 'etcd_server_apply_duration_seconds', 'The latency distributions of v2 apply called by backend.', ['version', 'op', 'success'], APPLY_BUCKETS);
  stats.apply.observe = (op, success, seconds) => apply({ version: 'v3', op, success: String(success) })(wholeMicros(seconds));
  const range = labelledHistogram(regs, 'etcd_server_range_duration_seconds', 'The latency distributions of txn.Range', ['success'], APPLY_BUCKETS);
  const rangeOk = range({ success: 'true' });
  const rangeFailed = range({ success: 'false' });
  stats.range.observe = (success, seconds) => (success ? rangeOk : rangeFailed)(wholeMicros(seconds));
  gauge(regs, 'etcd_debugging_auth_revision', 'The current revision of auth store.', () => node.auth.revision);

  // ---- etcd_mvcc_*, etcd_debugging_mvcc_* (mvcc/metrics.go) ----
  const counts = node.store.counts;
  gauge(regs, 'etcd_debugging_mvcc_total_put_size_in_bytes', 'The total size of put kv pairs seen by this member.', () => counts.putBytes);
  counter(regs, 'etcd_debugging_mvcc_db_compaction_keys_total', 'Total number of db keys compacted.', () => counts.compactedRevisions);
  gauge(regs, 'etcd_debugging_mvcc_db_compaction_last', 'The unix time of the last db compaction. Resets to 0 on start.', () => stats.lastCompactionUnixSec);
  // A pause is one compaction step (a write transaction removing old revisions; etcd: one batch), in whole ms.
  histogram(regs, 'etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds', 'Bucketed histogram of db compaction pause duration.', exponential(1, 13), stats.compactionStep, wholeMillis);
  histogram(regs, 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', 'Bucketed histogram of db compaction total duration.', exponential(100, 14), stats.compactionTotal, wholeMillis);
  // etcd compacts its in-memory key index before the database; Cairn's key index is in LMDB and is
  // compacted with the revisions (the db compaction above): no index pause to observe.
  neverObserved(regs, 'etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds', 'Bucketed histogram of index compaction pause duration.', exponential(0.5, 14));
  counter(regs, 'etcd_debugging_mvcc_events_total', 'Total number of events sent by this member.', () => node.watchable.eventsSent);
  gauge(regs, 'etcd_debugging_mvcc_pending_events_total', 'Total number of pending events to be sent.', () => node.watchable.pendingEvents);
  gauge(regs, 'etcd_mvcc_db_open_read_transactions', 'The number of currently open read transactions', () => node.openReadTxns());
  histogram(regs, 'etcd_mvcc_hash_duration_seconds', 'The latency distribution of storage hash operation.', HASH_BUCKETS, stats.hash);
  histogram(regs, 'etcd_mvcc_hash_rev_duration_seconds', 'The latency distribution of storage hash by revision operation.', HASH_BUCKETS, stats.hashRev);

  // ---- etcd_debugging_lease_ttl_total (lease/metrics.go): each granted lease's TTL, as applied ----
  histogram(regs, 'etcd_debugging_lease_ttl_total', 'Bucketed histogram of lease TTLs.', LEASE_TTL_BUCKETS, stats.leaseTtl);

  // ---- etcd_disk_* (wal/metrics.go, mvcc/backend/metrics.go) ----
  histogram(regs, 'etcd_disk_wal_write_duration_seconds', 'The latency distributions of write called by WAL.', DISK_BUCKETS, stats.walWrite);
  gauge(regs, 'etcd_disk_wal_write_bytes_total', 'Total number of bytes written in WAL.', () => stats.walWriteBytes);
  gauge(regs, 'etcd_disk_defrag_inflight', 'Whether or not defrag is active on the member. 1 means active, 0 means not.', () => (stats.defragsRunning > 0 ? 1 : 0));

  // ---- etcd_snap_*, etcd_debugging_snap_* (snap/metrics.go) ----
  // etcd saves a raft snapshot every --snapshot-count entries (a .snap file, fsynced); Cairn's
  // snapshot point makes LMDB durable (its fsync) and releases the WAL before it (node/compaction.ts).
  histogram(regs, 'etcd_snap_fsync_duration_seconds', 'The latency distributions of fsync called by snap.', DISK_BUCKETS, stats.snapshotFsync);
  histogram(regs, 'etcd_debugging_snap_save_total_duration_seconds', 'The total latency distributions of save called by snapshot.', DISK_BUCKETS, stats.snapshotSave);
  // A snapshot received from the leader (etcd: the v3 db file it saves from the leader's stream).
  histogram(regs, 'etcd_snap_db_save_total_duration_seconds', 'The total latency distributions of v3 snapshot save', exponential(0.1, 10), stats.snapshotDbSave);
  histogram(regs, 'etcd_snap_db_fsync_duration_seconds', 'The latency distributions of fsyncing .snap.db file', DISK_BUCKETS, stats.snapshotDbFsync);
  // etcd marshals the snapshot (membership and the raft snapshot record) into the .snap file; Cairn's
  // snapshot point writes no such record: nothing to marshal.
  neverObserved(regs, 'etcd_debugging_snap_save_marshalling_duration_seconds', 'The marshalling cost distributions of save called by snapshot.', DISK_BUCKETS);

  // ---- etcd_network_* (v3rpc/metrics.go, rafthttp/metrics.go) ----
  counter(regs, 'etcd_network_client_grpc_received_bytes_total', 'The total number of bytes received from grpc clients.', sumGrpc((s) => s.receivedBytes));
  counter(regs, 'etcd_network_client_grpc_sent_bytes_total', 'The total number of bytes sent to grpc clients.', sumGrpc((s) => s.sentBytes));
  // etcd's series appears when a peer's stream first comes up, and drops to 0 while it is down.
  const seen = (p: Scrape['peers'][number]): boolean => p.active || p.bytesSent > 0 || p.bytesReceived > 0;
  peerGauge(regs, 'etcd_network_active_peers', 'The current number of active peer connections.', node.memberId, () => now().peers.filter(seen).map((p) => [p.id, p.active ? 1 : 0] as const));

  // ---- etcd_grpc_proxy_* (grpcproxy/metrics.go): etcd's server process registers them and never
  // moves them (only `etcd grpc-proxy` does); Cairn has no gRPC proxy (the subcommand is refused). ----
  gauge(regs, 'etcd_grpc_proxy_watchers_coalescing_total', 'Total number of current watchers coalescing', () => 0);
  counter(regs, 'etcd_grpc_proxy_events_coalescing_total', 'Total number of events coalescing', () => 0);
  gauge(regs, 'etcd_grpc_proxy_cache_keys_total', 'Total number of keys/ranges cached', () => 0);
  gauge(regs, 'etcd_grpc_proxy_cache_hits_total', 'Total number of cache hits', () => 0);
  gauge(regs, 'etcd_grpc_proxy_cache_misses_total', 'Total number of cache misses', () => 0);

  // ---- etcd_debugging_store_* (v2store/metrics.go): etcd's v2 store keeps its members there but has
  // no TTL keys and no v2 watchers, so these stay at 0 in etcd; Cairn has no v2 store at all. ----
  counter(regs, 'etcd_debugging_store_expires_total', 'Total number of expired keys.', () => 0);
  counter(regs, 'etcd_debugging_store_watch_requests_total', 'Total number of incoming watch requests (new or reestablished).', () => 0);
  gauge(regs, 'etcd_debugging_store_watchers', 'Count of currently active watchers.', () => 0);
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
        return s === undefined ? [] : [{ id: m.id.toString(16), bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, dropped: s.dropped, active: s.active }];
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
  labelled('gauge', regs, 'etcd_server_feature_enabled', 'Whether or not a feature is enabled. 1 is enabled, 0 is not.', ['name', 'stage'], () => gates.map((g) => [{ name: g.name, stage: g.stage }, g.enabled ? 1 : 0] as const));
  peerGauge(regs, 'etcd_network_known_peers', 'The current number of known peers.', node.memberId, () => node.members().map((m) => [m.id.toString(16), 1] as const));
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
  // An LMDB commit writes the transaction's dirty pages: bbolt's commit.write phase (bbolt also
  // rebalances and spills its B+tree at commit, which LMDB does inline with each change).
  const commit = new Histogram({ name: 'etcd_disk_backend_commit_duration_seconds', help: 'The latency distributions of commit called by backend.', buckets: DISK_BUCKETS, registers: [registry] });
  const commitWrite = new Histogram({ name: 'etcd_debugging_disk_backend_commit_write_duration_seconds', help: 'The latency distributions of commit.write called by bboltdb backend.', buckets: DISK_BUCKETS, registers: [registry] });
  stats.backendCommit.observe = (seconds) => {
    commit.observe(seconds);
    commitWrite.observe(seconds);
  };
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
        GRPC_CODE_NAMES.forEach((code, i) => this.inc({ grpc_code: code, ...l }, m.stats.handled[i] ?? 0));
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

  registerEtcd36Series(regs, opts, now);

  // ---- promhttp_* (client_golang's promhttp.InstrumentMetricHandler around etcd's /metrics) ----
  let scrapesInFlight = 0;
  const scrapes = new Map<string, number>([['200', 0], ['500', 0], ['503', 0]]);
  gauge(regs, 'promhttp_metric_handler_requests_in_flight', 'Current number of scrapes being served.', () => scrapesInFlight);
  new Counter({
    name: 'promhttp_metric_handler_requests_total',
    help: 'Total number of scrapes by HTTP status code.',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of scrapes) this.inc({ code }, n);
    },
  });

  // ---- process_* and nodejs_* (etcd has go_* and process_*) ----
  registerDefaultMetrics(registry);
  // client_golang's process collector has these three besides prom-client's.
  gauge(regs, 'process_virtual_memory_max_bytes', 'Maximum amount of virtual memory available in bytes.', addressSpaceLimit);
  counter(regs, 'process_network_receive_bytes_total', 'Number of bytes received by the process over the network.', () => ipOctets().inBytes);
  counter(regs, 'process_network_transmit_bytes_total', 'Number of bytes sent by the process over the network.', () => ipOctets().outBytes);

  return {
    registry,
    handler: async () => {
      scrape = take();
      scrapesInFlight++;
      let code = '500';
      try {
        // prom-client 15 writes NaN as "Nan" (e.g. an event loop lag mean before any sample), and a
        // labelled histogram's bucket with `le` first; the text format (and etcd) spell it NaN, and
        // client_golang writes `le` after the series' own labels (sorted: sortedLabels).
        const text = (await registry.metrics()).replace(/ Nan$/gm, ' NaN').replace(/^(\w+_bucket)\{(le="[^"]*"),(.+)\} /gm, '$1{$3,$2} ');
        const out = { contentType: registry.contentType, body: text };
        code = '200';
        return out;
      } finally {
        scrape = undefined;
        scrapesInFlight--;
        // Counted once the scrape is served, as promhttp does: a scrape does not see itself.
        scrapes.set(code, (scrapes.get(code) ?? 0) + 1);
      }
    },
    healthChecked: (ok) => {
      if (ok) healthOk++;
      else healthFailed++;
    },
  };
}
