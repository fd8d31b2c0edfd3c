// Process entry: configuration, logging, storage, the gRPC server, signals. The only place (with
// node/) that touches process-wide state.
//
// Processes: the primary owns the WAL and applies every write (node/). Unless --client-processes is
// 0, it forks that many client processes (node:cluster shares the listening sockets among them);
// each serves gRPC, validates requests, answers reads from the shared LMDB file itself and forwards
// writes to the primary over IPC. A client process whose primary is gone exits at once.
import cluster, { type Worker } from 'node:cluster';
import { createWriteStream } from 'node:fs';
import { loadConfig, usage, ConfigError, type Config } from './config/index.js';
import { createLogger, type LogSink, type Logger } from './base/log.js';
import { Backend } from './storage/backend/index.js';
import { BACKEND_MAP_BYTES } from './base/limits.js';
import { LocalWriter, Node, RemoteWriter, SINGLE_MEMBER_TERM, SharedReader, backendPathOf, serveWrites, type Channel } from './node/index.js';
import { kvApi, createGrpcServer } from './api/index.js';
import { CAIRN_VERSION } from './version.js';
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

type ControlMsg = { readonly t: 'ready' } | { readonly t: 'stop' };

function isControl(m: unknown, t: ControlMsg['t']): boolean {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === t;
}

/** Starts the client processes; resolves once every one of them listens on every client URL. */
async function forkClients(cfg: Config, local: LocalWriter, log: Logger, stopping: () => boolean): Promise<Worker[]> {
  cluster.setupPrimary({ serialization: 'advanced' });
  const workers: Worker[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 0; i < cfg.clientProcesses; i++) {
    const w = cluster.fork({ CAIRN_CLIENT_PROCESS: String(i) });
    serveWrites(w, local);
    ready.push(
      new Promise<void>((resolve, reject) => {
        w.on('message', (m: unknown) => {
          if (isControl(m, 'ready')) resolve();
        });
        w.once('exit', (code, signal) => reject(new Error(`client process ${i} exited before it was ready (code ${String(code)}, signal ${String(signal)})`)));
      }),
    );
    w.on('exit', (code, signal) => {
      if (stopping()) return;
      log.error('client process exited; stopping the member', { process: i, code, signal });
      process.exit(1);
    });
    workers.push(w);
  }
  await Promise.all(ready);
  return workers;
}

async function runPrimary(cfg: Config, log: Logger): Promise<void> {
  log.info('starting cairn', { version: CAIRN_VERSION, name: cfg.name, 'data-dir': cfg.dataDir, 'node-version': process.version, 'client-processes': cfg.clientProcesses });
  const fatal = fatalExit(log);
  const node = await Node.open({
    name: cfg.name,
    dataDir: cfg.dataDir,
    walDir: cfg.walDir,
    requestBytesMax: cfg.requestBytesMax,
    snapshotCount: cfg.snapshotCount,
    walSegmentBytes: cfg.walSegmentBytes,
    logger: log.child('node'),
    onFatal: fatal,
  });
  const local = new LocalWriter(node);
  let stopping = false;
  let stopServing: () => Promise<void>;
  if (cfg.clientProcesses === 0) {
    const server = createGrpcServer(log.child('api'), kvApi(local.reads, local, cfg.txnOpsMax), { requestBytesMax: cfg.requestBytesMax, onFatal: fatal });
    await listenAll(cfg, server, log);
    stopServing = () => server.close();
  } else {
    const workers = await forkClients(cfg, local, log, () => stopping);
    stopServing = async () => {
      const exits = workers.map((w) => (w.isDead() ? Promise.resolve() : new Promise<void>((res) => w.once('exit', () => res()))));
      for (const w of workers) if (w.isConnected()) w.send({ t: 'stop' } satisfies ControlMsg);
      await Promise.all(exits);
    };
  }
  log.info('ready to serve client requests');
  for (const u of cfg.listenClientUrls) log.warn('serving client traffic insecurely; this is strongly discouraged!', { address: u.host });
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('received signal; shutting down', { signal });
    stopServing()
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

async function runClientProcess(cfg: Config, log: Logger): Promise<void> {
  const fatal = fatalExit(log);
  // The primary coordinates shutdown; a terminal's Ctrl-C reaches the whole process group.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  process.on('disconnect', () => process.exit(1));
  const backend = Backend.open(backendPathOf(cfg.dataDir), BACKEND_MAP_BYTES);
  const reader = new SharedReader(backend, SINGLE_MEMBER_TERM);
  const writer = new RemoteWriter(process as unknown as Channel);
  const server = createGrpcServer(log, kvApi(reader.reads, writer, cfg.txnOpsMax), { requestBytesMax: cfg.requestBytesMax, onFatal: fatal });
  await listenAll(cfg, server, log);
  process.on('message', (m: unknown) => {
    if (!isControl(m, 'stop')) return;
    void server
      .close()
      .then(() => {
        writer.close();
        return backend.close();
      })
      .finally(() => process.exit(0));
  });
  process.send?.({ t: 'ready' } satisfies ControlMsg);
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
  const sink = sinkFor(cfg.logOutputs);
  if (cluster.isWorker) {
    const log = createLogger(cfg.logLevel, sink, `cairn/client-${process.env['CAIRN_CLIENT_PROCESS'] ?? '?'}`);
    runClientProcess(cfg, log).catch((err: unknown) => {
      log.error('client process failed to start', { error: err });
      process.exit(1);
    });
    return;
  }
  const log = createLogger(cfg.logLevel, sink);
  runPrimary(cfg, log).catch((err: unknown) => {
    log.error('failed to start', { error: err });
    process.exit(1);
  });
}

main();
