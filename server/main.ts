// Process entry: configuration, logging, storage, the gRPC server, signals. The only place (with
// node/) that touches process-wide state. One process serves clients and owns the WAL.
import { createWriteStream } from 'node:fs';
import { loadConfig, usage, ConfigError, type Config } from './config/index.js';
import { createLogger, type LogSink, type Logger } from './base/log.js';
import type { TlsConfig } from './base/tls.js';
import { BootstrapError, LocalLeases, LocalWriter, Node } from './node/index.js';
import { clusterApi, kvApi, createGrpcServer, leaseApi, maintenanceApi, watchHandler } from './api/index.js';
import { CAIRN_VERSION, ETCD_COMPAT_VERSION } from './version.js';
import type { GrpcServer } from './api/grpc/index.js';

function sinkFor(outputs: readonly string[]): LogSink {
  const sinks = outputs.map((o): LogSink => {
    if (o === 'default' || o === 'stderr') return (l) => process.stderr.write(l);
    if (o === 'stdout') return (l) => process.stdout.write(l);
    const file = createWriteStream(o, { flags: 'a' });
    return (l) => file.write(l);
  });
  return (line) => sinks.forEach((s) => s(line));
}

async function listenAll(cfg: Config, server: GrpcServer, log: Logger): Promise<void> {
  for (const u of cfg.listenClientUrls) {
    const port = await server.listen(u.hostname.replace(/^\[(.*)\]$/, '$1'), Number(u.port));
    log.debug('now serving client', { address: `${u.hostname}:${port}` });
  }
}

/** What a storage fault does: log it and stop the process (fail-stop; restart recovers from the WAL). */
function fatalExit(log: Logger): (err: Error) => void {
  return (err) => {
    log.error('fatal storage error; stopping', { error: err });
    process.exit(1);
  };
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

async function run(cfg: Config, log: Logger): Promise<void> {
  log.info('starting cairn', { version: CAIRN_VERSION, name: cfg.name, 'data-dir': cfg.dataDir, 'node-version': process.version });
  const fatal = fatalExit(log);
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
      log.error('stopping: this member was removed from the cluster', { error: err });
      process.exit(1);
    },
    peerTls: tlsConfig(cfg, cfg.peerTls),
  });
  const local = new LocalWriter(node);
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
  });
  const hdr = { identity: node, currentRevision: () => node.store.currentRev };
  const services = {
    kv: kvApi(local.reads, local, cfg.txnOpsMax),
    lease: leaseApi(leases),
    watch,
    cluster: clusterApi(node, hdr),
    maintenance: maintenanceApi(node, hdr, { version: ETCD_COMPAT_VERSION, backendQuotaBytes: cfg.quotaBackendBytes, writes: local, log: log.child('maintenance') }),
  };
  const server = createGrpcServer(log.child('api'), services, { requestBytesMax: cfg.requestBytesMax, onFatal: fatal, leader: node, electionTimeoutMs: cfg.electionTimeoutMs });
  if (cfg.initialCorruptCheck) await node.initialCorruptCheck();
  await node.ready();
  await listenAll(cfg, server, log);
  log.info('ready to serve client requests');
  for (const u of cfg.listenClientUrls) log.warn('serving client traffic insecurely; this is strongly discouraged!', { address: u.host });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('received signal; shutting down', { signal });
    server
      .close()
      .then(() => node.close())
      .then(
        () => {
          log.info('stopped');
          process.exit(0);
        },
        (err: unknown) => {
          log.error('error while stopping', { error: err });
          process.exit(1);
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
      process.exit(2);
    }
    throw err;
  }
  if (cfg.showHelp) {
    process.stdout.write(usage());
    return;
  }
  if (cfg.showVersion) {
    process.stdout.write(`cairn Version: ${CAIRN_VERSION}\nNode Version: ${process.version}\nOS/Arch: ${process.platform}/${process.arch}\n`);
    return;
  }
  const log = createLogger(cfg.logLevel, sinkFor(cfg.logOutputs));
  run(cfg, log).catch((err: unknown) => {
    log.error('failed to start', { error: err });
    if (err instanceof BootstrapError) process.stderr.write(`cairn-server: ${err.message}\n`);
    process.exit(1);
  });
}

main();
