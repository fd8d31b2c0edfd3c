// Process entry: configuration, logging, storage, the gRPC server, signals. The only place (with
// node/) that touches process-wide state. One process serves clients and owns the WAL.
import { createWriteStream } from 'node:fs';
import { FEATURE_GATES, EXIT_BAD_FLAGS, EXIT_BUG, EXIT_FAILURE, EXIT_MEMBER_REMOVED, loadConfig, usage, ConfigError, type Config, type TlsFiles } from './config/index.js';
import { join } from 'node:path';
import { selfCert } from './base/selfcert.js';
import { createLogger, type LogSink, type Logger } from './base/log.js';
import { AssertionFailure } from './base/errors.js';
import { checkTlsSettings, serverTls, type TlsConfig } from './base/tls.js';
import { BootstrapError, LocalAuth, LocalLeases, LocalWriter, Node, RemovedMemberError, fatalCause } from './node/index.js';
import { authApi, Authorizer, ClientRequests, clusterApi, electionApi, kvApi, createGrpcServer, leaseApi, lockApi, maintenanceApi, watchHandler } from './api/index.js';
import { JwtTokens } from './auth/index.js';
import { boltImage } from './snap/index.js';
import { CAIRN_VERSION, ETCD_CLUSTER_VERSION, ETCD_COMPAT_VERSION } from './version.js';
import type { GrpcServer } from './api/grpc/index.js';
// client and metrics listeners (gateway helper)
import { clientAddress, isClientProtocolError, Listeners } from './api/listen.js';
import { createHttpHandlers, type HealthAlarm, type HealthSource } from './api/http/index.js';
import type { ReadPath } from './node/index.js';
import { AlarmType, decodeRangeRequest, encodeRangeRequest } from '../proto/gen/etcdserverpb.js';
// metrics (metrics helper)
import { createMetrics, type Metrics } from './api/metrics.js';
import { GrpcHealth } from './api/grpchealth.js';
import type { MaintenanceApi } from './api/maintenance.js';
import { nodeStats } from './node/index.js';

function sinkFor(outputs: readonly string[]): LogSink {
  const sinks = outputs.map((o): LogSink => {
    if (o === 'default' || o === 'stderr') return (l) => process.stderr.write(l);
    if (o === 'stdout') return (l) => process.stdout.write(l);
    const file = createWriteStream(o, { flags: 'a' });
    return (l) => file.write(l);
  });
  return (line) => sinks.forEach((s) => s(line));
}

// ---------- client and metrics listeners (gateway helper) ----------

/** The keys-only limit-1 Range etcd's /health, /livez and /readyz make (served as root: no auth). */
const HEALTH_RANGE = { key: Buffer.from('health'), keysOnly: true, limit: 1 };

/** etcd_server_feature_enabled's series: every gate (AllAlpha/AllBeta first, as etcd lists them) with its stage and value. */
function featureGateMetrics(cfg: Config): { name: string; stage: string; enabled: boolean }[] {
  const stages = Object.entries(FEATURE_GATES).map(([name, [stage]]) => ({ name, stage, enabled: cfg.featureGates.get(name) === true }));
  return [{ name: 'AllAlpha', stage: 'ALPHA', enabled: false }, { name: 'AllBeta', stage: 'BETA', enabled: false }, ...stages];
}

/** The Defragment RPC, telling the gRPC health service when it starts and ends (etcd's maintenanceServer does). */
function withDefragHealth(api: MaintenanceApi, health: GrpcHealth, log: Logger): MaintenanceApi {
  return {
    ...api,
    defragment: async () => {
      log.info('starting defragment');
      health.defragStarted();
      try {
        const out = await api.defragment();
        log.info('finished defragment');
        return out;
      } catch (err) {
        log.warn('failed to defragment', { error: err });
        throw err;
      } finally {
        health.defragFinished();
      }
    },
  };
}

/** What /health, /livez and /readyz ask of this member. */
function healthSource(node: Node, reads: ReadPath): HealthSource {
  const serializable = decodeRangeRequest(encodeRangeRequest({ ...HEALTH_RANGE, serializable: true }));
  const linearizable = decodeRangeRequest(encodeRangeRequest(HEALTH_RANGE));
  return {
    hasLeader: () => node.hasLeader(),
    isLearner: () => node.isLearner(),
    alarms: () => node.maintenance.activeAlarms().flatMap((a): HealthAlarm[] => (a.alarm === AlarmType.NOSPACE ? [{ memberId: a.memberID, alarm: 'NOSPACE' }] : a.alarm === AlarmType.CORRUPT ? [{ memberId: a.memberID, alarm: 'CORRUPT' }] : [])),
    serializableRange: async () => void (await reads.range(serializable)),
    linearizableRange: async () => void (await reads.range(linearizable)),
  };
}

/**
 * The client and metrics listeners with their handlers (gateway routes, health, metrics), not yet
 * listening: built before the member is ready, so the work does not delay its first applies after it
 * joins (a learner promoted then would serve as a learner meanwhile).
 */
function clientListeners(cfg: Config, server: GrpcServer, metrics: Metrics, node: Node, reads: ReadPath, log: Logger): Listeners {
  const httpLog = log.child('http');
  const onError = (err: Error, where: string): void => {
    if (isClientProtocolError(err)) httpLog.debug('http: error while serving', { where, error: err });
    else httpLog.warn('http: error while serving', { where, error: err });
  };
  const clientTls = tlsConfig(cfg, cfg.clientTls);
  const handlers = createHttpHandlers({
    grpc: server,
    source: healthSource(node, reads),
    versions: () => ({ etcdserver: ETCD_COMPAT_VERSION, etcdcluster: ETCD_CLUSTER_VERSION }),
    metrics: metrics.handler,
    onHealthChecked: metrics.healthChecked,
    requestTimeoutMs: 5000 + 2 * cfg.electionTimeoutMs,
    gateway: cfg.enableGrpcGateway,
    raftStatus: () => {
      const st = node.raftStatus();
      return { id: st.id, term: st.hardState.term, vote: st.hardState.vote, commit: st.hardState.commit, lead: st.softState.lead, role: st.softState.role, applied: st.applied, progress: st.progress, leadTransferee: st.leadTransferee };
    },
    onError,
  });
  return new Listeners({
    grpc: server,
    clientHttp: handlers.client,
    metricsHttp: handlers.metrics,
    tls: clientTls === undefined ? undefined : serverTls(clientTls.files, clientTls.settings, log.child('tls')),
    maxConcurrentStreams: cfg.maxConcurrentStreams,
    httpSplit: cfg.listenClientHttpUrls.length > 0,
    onError,
  });
}

/** gRPC and HTTP on every --listen-client-urls port, health and metrics on --listen-metrics-urls. */
async function listenAll(cfg: Config, listeners: Listeners, log: Logger): Promise<Listeners> {
  // http://h:p and https://h:p together: one listener serves both (etcd's cmux).
  const hostsOf = (protocol: string): Set<string> => new Set(cfg.listenClientUrls.filter((u) => u.protocol === protocol).map((u) => u.host));
  const plain = hostsOf('http:');
  const mixed = new Set([...hostsOf('https:')].filter((h) => plain.has(h)));
  for (const u of cfg.listenClientUrls) {
    const isMixed = mixed.has(u.host) && (u.protocol === 'http:' || u.protocol === 'https:');
    if (isMixed && u.protocol === 'http:') continue; // served by its https twin's listener
    const port = await (isMixed ? listeners.listenClientMixed(u) : listeners.listenClient(u));
    log.debug('now serving client', { address: clientAddress(u, port), ...(isMixed ? { protocols: 'http and https' } : {}) });
  }
  for (const u of cfg.listenClientHttpUrls) {
    const port = await listeners.listenClientHttp(u);
    log.info('serving client http traffic', { address: `${u.protocol}//${u.hostname}:${port}` });
  }
  for (const u of cfg.listenMetricsUrls) {
    const port = await listeners.listenMetrics(u);
    log.info('serving metrics and health', { address: `${u.protocol}//${u.hostname}:${port}` });
  }
  return listeners;
}

// ---------- end of listeners ----------

/**
 * What a fatal error does (fail-stop; a restart recovers from the WAL): a bug (AssertionFailure: a raft
 * invariant, an unexpected exception) exits EXIT_BUG, a storage fault EXIT_FAILURE; the cause is logged.
 */
function fatalExit(log: Logger): (err: Error) => void {
  return (err) => {
    if (err instanceof AssertionFailure) {
      log.error('internal error (a bug); stopping', { error: err, stack: err.stack, 'cause-stack': err.cause instanceof Error ? err.cause.stack : undefined, 'exit-code': EXIT_BUG });
      process.exit(EXIT_BUG);
    }
    log.error('fatal storage error; stopping', { error: err, 'exit-code': EXIT_FAILURE });
    process.exit(EXIT_FAILURE);
  };
}

/** How long a removed member may take to close its storage before it exits anyway. */
const REMOVED_CLOSE_MS = 5_000;

/**
 * The one line a supervisor looks for when this member was removed (found while running, or at start
 * on a removed member's data dir), then exit status EXIT_MEMBER_REMOVED.
 */
function exitRemoved(log: Logger, cfg: Config, err: Error): never {
  log.error('the member has been permanently removed from the cluster; exiting: never restart it on this data dir (remove the data dir and add the member again)', {
    'data-dir': cfg.dataDir,
    'exit-code': EXIT_MEMBER_REMOVED,
    reason: err.message,
  });
  process.exit(EXIT_MEMBER_REMOVED);
}

/** One side's certificate files with the process-wide TLS flags (base/tls.ts); undefined = no certificates. */
function tlsConfig(cfg: Config, files: Config['peerTls']): TlsConfig | undefined {
  if (files === undefined) return undefined;
  return { files, settings: { cipherSuites: cfg.cipherSuites, minVersion: cfg.tlsMinVersion, maxVersion: cfg.tlsMaxVersion } };
}

/** A URL flag as etcd prints it: scheme://host:port without a trailing slash. */
function urlString(u: URL): string {
  return `${u.protocol}//${u.host}`;
}

/** The host of each URL, for the SANs of an auto TLS certificate. */
function hostsOf(urls: readonly URL[]): string[] {
  return urls.map((u) => u.hostname);
}

/** --auto-tls / --peer-auto-tls without certificate files: self-signed certificates under <data-dir>/fixtures, as etcd. */
function withAutoTls(cfg: Config, log: Logger): Config {
  const gen = (files: TlsFiles | undefined, side: 'client' | 'peer', urls: readonly URL[]): TlsFiles | undefined => {
    if (files === undefined || !files.autoTls || files.certFile !== '') return files;
    const made = selfCert(join(cfg.dataDir, 'fixtures', side), hostsOf(urls), cfg.selfSignedCertValidityYears, new Date(), side === 'peer');
    log.info(`automatically generated ${side} TLS certificate`, { 'cert-file': made.certFile, 'key-file': made.keyFile, hosts: hostsOf(urls) });
    return { ...files, ...made, insecureSkipVerify: true };
  };
  return { ...cfg, clientTls: gen(cfg.clientTls, 'client', cfg.listenClientUrls), peerTls: gen(cfg.peerTls, 'peer', cfg.listenPeerUrls) };
}

async function run(given: Config, log: Logger): Promise<void> {
  log.info('starting cairn', {
    version: CAIRN_VERSION,
    name: given.name,
    'data-dir': given.dataDir,
    'node-version': process.version,
    'snapshot-count': given.snapshotCount,
    'snapshot-catchup-entries': given.snapshotCatchupEntries,
    'heartbeat-interval': `${given.heartbeatIntervalMs}ms`,
    'election-timeout': `${given.electionTimeoutMs}ms`,
    'quota-backend-bytes': given.quotaBackendBytes,
    'max-request-bytes': given.requestBytesMax,
    // etcd 3.6 enforces its default whatever is given; Cairn has no v2 store at all.
    'v2-deprecation': 'write-only',
  });
  for (const message of given.deprecated) log.warn(message);
  for (const f of given.noEffect) log.warn(`flag --${f.flag} has no effect in Cairn`, { value: f.value, reason: f.reason });
  const cfg = withAutoTls(given, log);
  // TLS flags (cipher suites, versions) are checked before anything touches the data dir (etcd: "unexpected TLS cipher suite").
  const tls = tlsConfig(cfg, cfg.clientTls ?? cfg.peerTls);
  if (tls !== undefined) checkTlsSettings(tls.settings);
  const fatal = fatalExit(log);
  // An exception nothing handled is a bug (or an I/O error nobody expected): fail-stop with its cause.
  process.on('uncaughtException', (err) => fatal(fatalCause(err)));
  // Set once they exist (a removal can be learned only after both).
  const late: { listeners?: Listeners; node?: Node } = {};
  const node = await Node.open({
    name: cfg.name,
    dataDir: cfg.dataDir,
    walDir: cfg.walDir,
    requestBytesMax: cfg.requestBytesMax,
    snapshotCount: cfg.snapshotCount,
    snapshotCatchupEntries: cfg.snapshotCatchupEntries,
    walSegmentBytes: cfg.walSegmentBytes,
    quotaBackendBytes: cfg.quotaBackendBytes,
    autoCompaction: cfg.autoCompaction,
    corruptCheckMs: cfg.corruptCheckTimeMs,
    ...(cfg.compactHashCheck ? { compactHashCheckMs: cfg.compactHashCheckTimeMs } : {}),
    bootstrapDefragThresholdBytes: cfg.bootstrapDefragThresholdBytes,
    ...(cfg.compactionBatchLimit === undefined ? {} : { compactionBatchKeys: cfg.compactionBatchLimit }),
    ...(cfg.compactionSleepIntervalMs === undefined ? {} : { compactionSleepMs: cfg.compactionSleepIntervalMs }),
    cluster: {
      name: cfg.name,
      initialCluster: cfg.initialCluster,
      initialClusterState: cfg.initialClusterState,
      initialClusterToken: cfg.initialClusterToken,
      initialAdvertisePeerUrls: cfg.initialAdvertisePeerUrls.map(urlString),
    },
    listenPeerUrls: cfg.listenPeerUrls.map(urlString),
    advertiseClientUrls: cfg.advertiseClientUrls.map(urlString),
    heartbeatMs: cfg.heartbeatIntervalMs,
    electionMs: cfg.electionTimeoutMs,
    logger: log.child('node'),
    onFatal: fatal,
    onRemoved: (err) => {
      // Close the storage first (bounded), so a restart on this data dir finds the removal on disk.
      const closing = (late.listeners?.close() ?? Promise.resolve()).then(() => late.node?.close());
      const deadline = new Promise<void>((r) => setTimeout(r, REMOVED_CLOSE_MS).unref());
      void Promise.race([closing, deadline])
        .catch(() => undefined)
        .then(() => exitRemoved(log, cfg, err));
    },
    peerTls: tlsConfig(cfg, cfg.peerTls),
    strictReconfigCheck: cfg.strictReconfigCheck,
  });
  late.node = node;
  const local = new LocalWriter(node);
  // auth (auth helper): tokens as --auth-token / --auth-token-ttl say; the cert CN is the user with --client-cert-auth.
  node.auth.simpleTokens.ttlMs = cfg.authTokenTtlSec * 1000;
  const authz = new Authorizer(new LocalAuth(node), {
    jwt: cfg.authToken.kind === 'jwt' ? new JwtTokens(cfg.authToken, () => Date.now()) : undefined,
    certCommonNameIsUser: cfg.clientTls?.clientCertAuth === true,
  });
  const leases = new LocalLeases(node, local, { electionTimeoutMs: cfg.electionTimeoutMs, heartbeatIntervalMs: cfg.heartbeatIntervalMs });
  const watch = watchHandler({
    hub: node.watchable,
    identity: node,
    requestBytesMax: cfg.requestBytesMax,
    watchersPerStreamMax: cfg.watchersPerStreamMax,
    watchersMax: cfg.watchersMax,
    progressIntervalMs: cfg.watchProgressNotifyIntervalMs,
    every: (ms, fn) => {
      const t = setInterval(fn, ms);
      return () => clearInterval(t);
    },
    log: log.child('watch'),
    authz,
  });
  const hdr = { identity: node, currentRevision: () => node.store.currentRev };
  const kv = kvApi(local.reads, local, cfg.txnOpsMax, authz);
  const lease = leaseApi(leases, authz);
  // etcd's lock and election services run on the caller's own KV and Lease calls and this member's watchers.
  const recipes = { kv, lease, hub: node.watchable, authz };
  // grpc.health.v1.Health: SERVING; NOT_SERVING during a Defragment with StopGRPCServiceOnDefrag (as etcd's healthNotifier).
  const health = new GrpcHealth({ stopServiceOnDefrag: cfg.stopGrpcServiceOnDefrag, log: log.child('api') });
  const services = {
    kv,
    lease,
    lock: lockApi(recipes),
    election: electionApi(recipes, { identity: node, log: log.child('election'), onFatal: fatal }),
    auth: authApi(authz, { bcryptCost: cfg.bcryptCost }),
    watch,
    cluster: clusterApi(node, hdr, node),
    maintenance: withDefragHealth(maintenanceApi(node.maintenance, hdr, { version: ETCD_COMPAT_VERSION, backendQuotaBytes: cfg.quotaBackendBytes, writes: local, snapshotImage: boltImage, log: log.child('maintenance') }), health, log.child('maintenance')),
    health,
  };
  const clientRequests = new ClientRequests();
  const requestStats = { warnAfterMs: cfg.warningUnaryRequestMs, debug: cfg.logLevel === 'debug' };
  const server = createGrpcServer(log.child('api'), services, { requestBytesMax: cfg.requestBytesMax, onFatal: fatal, leader: node, electionTimeoutMs: cfg.electionTimeoutMs, authz, requestStats, clientRequests });
  // metrics (metrics helper): etcd's series; duration observers (WAL fsync, commits, RTT, a joining
  // member's snapshot) count from here on, before this member catches up.
  const metrics = createMetrics({ node, stats: nodeStats, grpc: server, clientRequests, version: ETCD_COMPAT_VERSION, quotaBackendBytes: cfg.quotaBackendBytes, extensive: cfg.metricsExtensive, featureGates: featureGateMetrics(cfg) });
  if (cfg.initialCorruptCheck) await node.initialCorruptCheck();
  const prepared = clientListeners(cfg, server, metrics, node, local.reads, log);
  await node.ready();
  const serving = await listenAll(cfg, prepared, log);
  late.listeners = serving;
  log.info('ready to serve client requests');
  for (const u of cfg.listenClientUrls) {
    if (u.protocol === 'https:' || u.protocol === 'unixs:') log.info('serving client traffic securely', { address: clientAddress(u) });
    else log.warn('serving client traffic insecurely; this is strongly discouraged!', { address: clientAddress(u) });
  }
  let stopping = false;
  // As etcd: stop serving clients, hand leadership to a caught-up voter (bounded by the request
  // timeout), close the storage, then end by the same signal (etcd's osutil.HandleInterrupts
  // re-raises it: shells see 143 for SIGTERM, 130 for SIGINT).
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info('received signal; shutting down', { signal });
    health.close();
    serving
      .close()
      .then(() => node.transferLeadershipForStop())
      .then(() => node.close())
      .then(
        () => {
          log.info('stopped', { signal });
          process.removeAllListeners(signal);
          process.kill(process.pid, signal);
        },
        (err: unknown) => {
          log.error('error while stopping', { error: err });
          process.exit(EXIT_FAILURE);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function main(): void {
  let cfg: Config;
  try {
    cfg = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cairn-server: error verifying flags, ${err.message}. See 'cairn-server --help'.\n`);
      process.exit(EXIT_BAD_FLAGS);
    }
    throw err;
  }
  if (cfg.showHelp) {
    process.stdout.write(usage());
    return;
  }
  if (cfg.showVersion) {
    // etcd's first line (tools and etcd's e2e framework read the version from "etcd Version:"), then Cairn's own.
    process.stdout.write(`etcd Version: ${ETCD_COMPAT_VERSION}\ncairn Version: ${CAIRN_VERSION}\nNode Version: ${process.version}\nOS/Arch: ${process.platform}/${process.arch}\n`);
    return;
  }
  const log = createLogger(cfg.logLevel, sinkFor(cfg.logOutputs));
  run(cfg, log).catch((err: unknown) => {
    if (err instanceof RemovedMemberError) exitRemoved(log, cfg, err);
    log.error('failed to start', { error: err });
    if (err instanceof BootstrapError) process.stderr.write(`cairn-server: ${err.message}\n`);
    process.exit(EXIT_FAILURE);
  });
}

main();
