// kube-apiserver on Cairn vs on etcd: the same Kubernetes workload through a real kube-apiserver
// (test/harness/kube.ts), backed first by the reference etcd (3.6.8, built by
// hack/install-kube.sh), then by Cairn (CAIRN_BENCH_KUBE_ORDER swaps them), each fresh: a new
// backend (1 member, or a 3-member cluster) and a new apiserver with default flags. Prints a
// markdown table and writes bench-kube-results.json in the cwd. A benchmark, not a test: it asserts
// nothing about speed, and a phase that fails prints its error and the run goes on.
//
// Phases (all in one namespace, after an initial list gives the resourceVersion RV0):
//   create        10,000 ConfigMaps (one ~256-byte data value each) POSTed by 32 clients, each on
//                 its own keep-alive HTTPS connection, as fast as answered: creates/s, client
//                 p50/p99, and the apiserver's own p99 for POST configmaps (from its /metrics:
//                 apiserver_request_duration_seconds bucket deltas over the phase, interpolated as
//                 PromQL's histogram_quantile does; coarse buckets: 5, 25, 50, 100, 200 ms, ...) and
//                 its storage p99 (etcd_request_duration_seconds, operation create: the apiserver's
//                 round trip to the backend). Backend / apiserver / bench CPU in cores.
//   create-watch  a watch opened from RV0 before the first POST counts the ADDED events (reopened
//                 from the last resourceVersion seen when the apiserver closes it, as client-go
//                 does; it closes a watcher that falls behind, which a busy machine provokes); lag is
//                 POST acknowledged -> event read (an event read before its POST's answer counts 0;
//                 how many did is a row of its own)
//   list-full     the whole namespace listed unpaginated, 3 times, resourceVersion unset (a
//                 consistent read: the apiserver asks the backend for its current revision, then
//                 answers from its watch cache or the backend): objects/s, apiserver LIST p99, and
//                 how many list calls reached the backend (storage calls)
//   list-paged    the same with limit=500 and the continue chain
//   watch-replay  a new watch from RV0: time until all created objects' ADDED events arrived (the
//                 apiserver's watch cache replays them; it goes to the backend only when RV0 is
//                 older than the cache holds)
// With the watch cache on (the default), Kubernetes 1.34 answers both list phases and the replay
// from it (storage list calls 0): the backend then shows only in create and create-watch, and the
// other rows measure the apiserver (and the machine's noise). CAIRN_BENCH_KUBE_APISERVER_ARGS=
// --watch-cache=false sends lists and watches to the backend.
// Peak RSS (VmHWM) of the backend (summed over members) and of kube-apiserver after all phases.
// Ratio column: > 1 means Cairn did better; throughput cairn/etcd, latency and memory etcd/cairn.
// Everything runs on this machine's CPUs: bench, apiserver and backend compete for them (the CPU
// rows tell who was saturated). Under a minute for both backends at the defaults on 2 CPUs (40-45 s
// with the machine otherwise busy: load average 3-6).
//
// Run without the npm script's installs:
//   npx tsc -p tsconfig.json && node dist/test/bench/kube.js
//
// Environment (all optional):
//   CAIRN_BENCH_KUBE_OBJECTS          ConfigMaps to create (default 10000)
//   CAIRN_BENCH_KUBE_CLIENTS          concurrent creating clients, one connection each (default 32)
//   CAIRN_BENCH_KUBE_MEMBERS          backend members: 1 (default) or 3
//   CAIRN_BENCH_KUBE_ORDER            etcd,cairn (default) or cairn,etcd
//   CAIRN_BENCH_KUBE_VALUE_BYTES      size of each ConfigMap's data value (default 256)
//   CAIRN_BENCH_KUBE_LIST_REPS        repetitions of each list phase (default 3)
//   CAIRN_BENCH_KUBE_PAGE             page size of list-paged (default 500)
//   CAIRN_BENCH_KUBE_PHASE_TIMEOUT_S  a phase's time limit (default 300)
//   CAIRN_BENCH_KUBE_APISERVER_ARGS   extra kube-apiserver flags, space-separated
//                                     (e.g. --watch-cache=false: lists and watches go to the backend)
//   CAIRN_BENCH_KUBE_LOG_DIR          if set, the apiserver's log and every member's stderr go there
//                                     as <side>-kube-apiserver.log, <side>-<member>.log
//   CAIRN_BENCH_KUBE_OUT              results file (default ./bench-kube-results.json)
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { join, resolve } from 'node:path';
import type { Cluster } from '../harness/cluster.js';
import { startBackend, startKubeApiserver, type KubeApiserver } from '../harness/kube.js';
import type { TargetKind } from '../harness/procs.js';
import {
  LineSplitter,
  formatKubeTable,
  betterRatio,
  histogramCount,
  histogramDelta,
  histogramQuantile,
  parseHistogram,
  parseWatchLine,
  percentile,
} from './kube-report.js';
import type { FigureSpec, Figures } from './kube-report.js';
import { envPositiveInt, envString, errorText, ownCpuSeconds, processCpuSeconds, waitFor } from './loadlib.js';

// ---- limits and defaults ----

const OBJECTS_DEFAULT = 10_000;
const CLIENTS_DEFAULT = 32;
const VALUE_BYTES_DEFAULT = 256;
const LIST_REPS_DEFAULT = 3;
const PAGE_DEFAULT = 500;
const PHASE_TIMEOUT_S_DEFAULT = 300;
const NAMESPACE = 'cairn-bench';
const NAME_PREFIX = 'bench-';
const REQUEST_TIMEOUT_MS = 60_000;
const LIST_TIMEOUT_MS = 120_000;
const WATCH_READY_TIMEOUT_MS = 30_000;
/** After the last create is answered, how long its watch may take to deliver the rest. */
const WATCH_DRAIN_MS = 60_000;
/** Server-side watch timeout asked for (longer than any phase). */
const WATCH_SERVER_TIMEOUT_S = 1800;
/** Reopens of one watch (after the apiserver closed it) before the phase gives up. */
const WATCH_REOPENS_MAX = 50;
const ERROR_TEXT_MAX = 300;
const KIB_PER_MIB = 1024;
const MS_PER_S = 1000;
const P50 = 0.5;
const P99 = 0.99;

const SIDES: readonly TargetKind[] = ['etcd', 'cairn'];

interface Config {
  readonly objects: number;
  readonly clients: number;
  readonly members: number;
  readonly order: readonly TargetKind[];
  readonly valueBytes: number;
  readonly listReps: number;
  readonly page: number;
  readonly phaseTimeoutMs: number;
  readonly apiserverArgs: readonly string[];
  readonly logDir: string | undefined;
  readonly out: string;
}

function isSide(s: string): s is TargetKind {
  return (SIDES as readonly string[]).includes(s);
}

function readConfig(): Config {
  const members = envPositiveInt('CAIRN_BENCH_KUBE_MEMBERS', 1);
  if (members !== 1 && members !== 3) throw new Error(`CAIRN_BENCH_KUBE_MEMBERS must be 1 or 3, got ${members}`);
  const orderRaw = envString('CAIRN_BENCH_KUBE_ORDER') ?? 'etcd,cairn';
  const order = orderRaw.split(',').map((s) => s.trim());
  if (order.length !== 2 || !order.every(isSide) || new Set(order).size !== 2) {
    throw new Error(`CAIRN_BENCH_KUBE_ORDER must be "etcd,cairn" or "cairn,etcd", got ${JSON.stringify(orderRaw)}`);
  }
  return {
    objects: envPositiveInt('CAIRN_BENCH_KUBE_OBJECTS', OBJECTS_DEFAULT),
    clients: envPositiveInt('CAIRN_BENCH_KUBE_CLIENTS', CLIENTS_DEFAULT),
    members,
    order: order.filter(isSide),
    valueBytes: envPositiveInt('CAIRN_BENCH_KUBE_VALUE_BYTES', VALUE_BYTES_DEFAULT),
    listReps: envPositiveInt('CAIRN_BENCH_KUBE_LIST_REPS', LIST_REPS_DEFAULT),
    page: envPositiveInt('CAIRN_BENCH_KUBE_PAGE', PAGE_DEFAULT),
    phaseTimeoutMs: envPositiveInt('CAIRN_BENCH_KUBE_PHASE_TIMEOUT_S', PHASE_TIMEOUT_S_DEFAULT) * MS_PER_S,
    apiserverArgs: (envString('CAIRN_BENCH_KUBE_APISERVER_ARGS') ?? '').split(/\s+/).filter((a) => a !== ''),
    logDir: envString('CAIRN_BENCH_KUBE_LOG_DIR'),
    out: resolve(envString('CAIRN_BENCH_KUBE_OUT') ?? 'bench-kube-results.json'),
  };
}

/** The table's rows, in order; keys index a side's figures. */
const FIGURES: readonly FigureSpec[] = [
  { key: 'create.perSec', phase: 'create', label: 'creates/s', better: 'higher', digits: 0 },
  { key: 'create.clientP50Ms', phase: 'create', label: 'client p50 ms', better: 'lower', digits: 1 },
  { key: 'create.clientP99Ms', phase: 'create', label: 'client p99 ms', better: 'lower', digits: 1 },
  { key: 'create.apiserverP99Ms', phase: 'create', label: 'apiserver POST p99 ms', better: 'lower', digits: 1 },
  { key: 'create.storageP99Ms', phase: 'create', label: 'apiserver->backend create p99 ms', better: 'lower', digits: 1 },
  { key: 'create.errors', phase: 'create', label: 'failed creates', better: 'info', digits: 0 },
  { key: 'create.backendCores', phase: 'create', label: 'backend CPU cores', better: 'info', digits: 2 },
  { key: 'create.apiserverCores', phase: 'create', label: 'apiserver CPU cores', better: 'info', digits: 2 },
  { key: 'create.benchCores', phase: 'create', label: 'bench CPU cores', better: 'info', digits: 2 },
  { key: 'create.backendCpuMsPerCreate', phase: 'create', label: 'backend CPU ms per create', better: 'lower', digits: 2 },
  { key: 'watch.events', phase: 'create-watch', label: 'ADDED events seen', better: 'info', digits: 0 },
  { key: 'watch.earlyEvents', phase: 'create-watch', label: 'events read before the POST answer', better: 'info', digits: 0 },
  { key: 'watch.reopens', phase: 'create-watch', label: 'watch reopened (apiserver closed it)', better: 'info', digits: 0 },
  { key: 'watch.lagP50Ms', phase: 'create-watch', label: 'lag p50 ms', better: 'lower', digits: 1 },
  { key: 'watch.lagP99Ms', phase: 'create-watch', label: 'lag p99 ms', better: 'lower', digits: 1 },
  { key: 'listFull.objectsPerSec', phase: 'list-full', label: 'objects/s', better: 'higher', digits: 0 },
  { key: 'listFull.msPerList', phase: 'list-full', label: 'ms per list (mean)', better: 'lower', digits: 0 },
  { key: 'listFull.apiserverP99Ms', phase: 'list-full', label: 'apiserver LIST p99 ms', better: 'lower', digits: 1 },
  { key: 'listFull.storageCalls', phase: 'list-full', label: 'storage list calls', better: 'info', digits: 0 },
  { key: 'listPaged.objectsPerSec', phase: 'list-paged', label: 'objects/s', better: 'higher', digits: 0 },
  { key: 'listPaged.msPerList', phase: 'list-paged', label: 'ms per list (mean)', better: 'lower', digits: 0 },
  { key: 'listPaged.apiserverP99Ms', phase: 'list-paged', label: 'apiserver LIST p99 ms (per page)', better: 'lower', digits: 1 },
  { key: 'listPaged.storageCalls', phase: 'list-paged', label: 'storage list calls', better: 'info', digits: 0 },
  { key: 'replay.eventsPerSec', phase: 'watch-replay', label: 'events/s', better: 'higher', digits: 0 },
  { key: 'replay.reopens', phase: 'watch-replay', label: 'watch reopened (apiserver closed it)', better: 'info', digits: 0 },
  { key: 'replay.seconds', phase: 'watch-replay', label: 'seconds to all events', better: 'lower', digits: 2 },
  { key: 'startup.apiserverReadyS', phase: 'startup', label: 'apiserver start to /readyz s', better: 'lower', digits: 1 },
  { key: 'rss.backendMiB', phase: 'memory', label: 'backend peak RSS MiB', better: 'lower', digits: 0 },
  { key: 'rss.apiserverMiB', phase: 'memory', label: 'apiserver peak RSS MiB', better: 'lower', digits: 0 },
];

// ---- HTTPS to the apiserver ----

interface Reply {
  readonly status: number;
  readonly body: Buffer;
}

/** Requests to one apiserver with its admin token; each caller brings its own Agent (connection pool). */
class ApiHttp {
  private readonly ca: Buffer;
  private readonly agents: Agent[] = [];

  constructor(
    readonly api: KubeApiserver,
  ) {
    this.ca = readFileSync(api.caFile);
  }

  /** A keep-alive pool of at most maxSockets connections (closed by close()). */
  agent(maxSockets: number): Agent {
    const a = new Agent({ keepAlive: true, maxSockets, ca: this.ca });
    this.agents.push(a);
    return a;
  }

  private headers(body: string | undefined): Record<string, string | number> {
    return {
      authorization: `Bearer ${this.api.token}`,
      accept: 'application/json',
      ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
    };
  }

  call(agent: Agent, method: string, path: string, body?: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Reply> {
    return new Promise((res, rej) => {
      const req = httpsRequest(new URL(path, this.api.url), { method, agent, headers: this.headers(body), timeout: timeoutMs }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => res({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
        r.on('error', rej);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', rej);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** GET expecting 200 and JSON. */
  async getJson(agent: Agent, path: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
    const r = await this.call(agent, 'GET', path, undefined, timeoutMs);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${clip(r.body.toString('utf8'))}`);
    return JSON.parse(r.body.toString('utf8'));
  }

  /** A GET that streams: the response goes to onResponse as it arrives (a watch). */
  stream(path: string, onResponse: (r: IncomingMessage) => void): ClientRequest {
    const req = httpsRequest(new URL(path, this.api.url), { method: 'GET', agent: false, ca: this.ca, headers: this.headers(undefined) }, onResponse);
    req.end();
    return req;
  }

  close(): void {
    for (const a of this.agents.splice(0)) a.destroy();
  }
}

/**
 * A watch on a collection from a resourceVersion, as client-go's reflector keeps one: when the
 * apiserver ends the stream (it closes a watcher that falls behind: "Forcing ... watcher close due
 * to unresponsiveness"), it is opened again from the last resourceVersion seen, so no event is lost
 * or repeated; reopens counts those. An ERROR event (e.g. 410 Gone), a non-200 answer or too many
 * reopens end it for good: failure() says why. `ready` resolves on the first 200 response head.
 */
class Watch {
  readonly ready: Promise<void>;
  reopens = 0;
  private lastRv: string;
  private req: ClientRequest | undefined;
  private failed: string | undefined;
  private closed = false;

  constructor(
    private readonly http: ApiHttp,
    private readonly collection: string,
    fromRv: string,
    private readonly onEvent: (type: string, name: string, atMs: number) => void,
  ) {
    this.lastRv = fromRv;
    this.ready = this.open();
    this.ready.catch(() => undefined);
  }

  failure(): string | undefined {
    return this.failed;
  }

  close(): void {
    this.closed = true;
    this.req?.destroy();
  }

  private fail(why: string): void {
    if (this.closed || this.failed !== undefined) return;
    this.failed = why;
    this.req?.destroy();
  }

  /** The stream ended without an error of its own: open it again from the last resourceVersion. */
  private ended(why: string): void {
    if (this.closed || this.failed !== undefined) return;
    if (this.reopens >= WATCH_REOPENS_MAX) {
      this.fail(`${why}; gave up after ${this.reopens} reopens`);
      return;
    }
    this.reopens++;
    this.open().catch((e: unknown) => this.fail(`reopening the watch: ${errorText(e)}`));
  }

  private open(): Promise<void> {
    const path = `${this.collection}?watch=1&resourceVersion=${this.lastRv}&timeoutSeconds=${WATCH_SERVER_TIMEOUT_S}`;
    return new Promise((res, rej) => {
      let over = false;
      const end = (why: string): void => {
        if (over) return;
        over = true;
        this.ended(why);
      };
      this.req = this.http.stream(path, (r) => {
        if (r.statusCode !== 200) {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('error', (e) => rej(e));
          r.on('end', () => {
            const why = `watch ${path}: ${String(r.statusCode)} ${clip(Buffer.concat(chunks).toString('utf8'))}`;
            this.fail(why);
            rej(new Error(why));
          });
          return;
        }
        res();
        const lines = new LineSplitter();
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => {
          const at = performance.now();
          for (const line of lines.feed(chunk)) {
            try {
              const ev = parseWatchLine(line);
              if (ev === undefined) continue;
              if (ev.type === 'ERROR') {
                this.fail(`watch ERROR event: ${ev.message}`);
                return;
              }
              if (ev.resourceVersion !== '') this.lastRv = ev.resourceVersion;
              this.onEvent(ev.type, ev.name, at);
            } catch (e) {
              this.fail(errorText(e));
              return;
            }
          }
        });
        r.on('end', () => end('watch stream ended'));
        r.on('error', (e) => end(`watch stream: ${errorText(e)}`));
      });
      this.req.on('error', (e) => {
        rej(e);
        end(`watch: ${errorText(e)}`);
      });
    });
  }
}

function clip(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > ERROR_TEXT_MAX ? `${one.slice(0, ERROR_TEXT_MAX)}...` : one;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A list's items and metadata.resourceVersion / continue. */
function listParts(v: unknown): { items: unknown[]; rv: string; cont: string } {
  if (!isRecord(v) || !Array.isArray(v['items']) || !isRecord(v['metadata'])) throw new Error('not a list');
  const meta = v['metadata'];
  return {
    items: v['items'],
    rv: typeof meta['resourceVersion'] === 'string' ? meta['resourceVersion'] : '',
    cont: typeof meta['continue'] === 'string' ? meta['continue'] : '',
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timer = new Promise<never>((_res, rej) => {
    t = setTimeout(() => rej(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

// ---- one side: a backend, an apiserver, the phases ----

const NS_PATH = `/api/v1/namespaces/${NAMESPACE}/configmaps`;
const METRIC_REQ = 'apiserver_request_duration_seconds';
const METRIC_STORAGE = 'etcd_request_duration_seconds';

interface SideResult {
  readonly kind: TargetKind;
  readonly figures: Figures;
  /** Phase -> what went wrong. */
  readonly errors: Readonly<Record<string, string>>;
  readonly versions: Readonly<Record<string, string>>;
}

/** What the phases share on one side. */
interface Side {
  readonly cfg: Config;
  readonly label: string;
  readonly http: ApiHttp;
  readonly control: Agent;
  readonly cluster: Cluster;
  readonly api: KubeApiserver;
  readonly fig: Record<string, number>;
  /** resourceVersion of the namespace's (empty) list before any create. */
  rv0: string;
  /** ConfigMaps known to exist (creates answered 201). */
  created: number;
}

function log(s: string): void {
  process.stderr.write(`bench-kube: ${s}\n`);
}

async function scrape(side: Side): Promise<string> {
  const r = await side.http.call(side.control, 'GET', '/metrics');
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
  return r.body.toString('utf8');
}

/** p99 (ms) and count of a histogram between two scrapes. */
function deltaP99(before: string, after: string, metric: string, match: Readonly<Record<string, string>>): { p99Ms: number; count: number } {
  const d = histogramDelta(parseHistogram(after, metric, match), parseHistogram(before, metric, match));
  return { p99Ms: histogramQuantile(P99, d) * MS_PER_S, count: histogramCount(d) };
}

function backendPids(side: Side): number[] {
  return side.cluster.members.flatMap((m) => (m.proc === undefined ? [] : [m.proc.pid]));
}

/** CPU seconds of the backend members, the apiserver and this process so far. */
function cpuNow(side: Side): { backend: number; apiserver: number; bench: number } {
  const backend = backendPids(side).reduce((s, pid) => s + (processCpuSeconds(pid) ?? Number.NaN), 0);
  return { backend, apiserver: processCpuSeconds(side.api.pid) ?? Number.NaN, bench: ownCpuSeconds() };
}

function configMap(i: number, valueBytes: number): { name: string; body: string } {
  const name = `${NAME_PREFIX}${String(i).padStart(6, '0')}`;
  const payload = randomBytes(Math.ceil((valueBytes * 3) / 4))
    .toString('base64')
    .slice(0, valueBytes);
  return { name, body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NAMESPACE }, data: { payload } }) };
}

/** create + create-watch. */
async function phaseCreate(side: Side): Promise<void> {
  const { cfg, fig } = side;
  const acks = new Map<string, number>();
  const early = new Map<string, number>();
  const lags: number[] = [];
  let added = 0;
  let earlyEvents = 0;
  const seen = new Set<string>();
  const watch = new Watch(side.http, NS_PATH, side.rv0, (type, name, at) => {
    // Each object once (a reopened watch must not repeat one; if it did, it would not count twice).
    if (type !== 'ADDED' || !name.startsWith(NAME_PREFIX) || seen.has(name)) return;
    seen.add(name);
    added++;
    const a = acks.get(name);
    if (a === undefined) early.set(name, at);
    else lags.push(Math.max(0, at - a));
  });
  try {
    await withTimeout(watch.ready, WATCH_READY_TIMEOUT_MS, 'create-watch: opening');
    const agents = Array.from({ length: cfg.clients }, () => side.http.agent(1));
    const m0 = await scrape(side);
    const cpu0 = cpuNow(side);
    const latencies: number[] = [];
    let next = 0;
    let errors = 0;
    let firstError: string | undefined;
    let timedOut = false;
    const t0 = performance.now();
    const deadline = t0 + cfg.phaseTimeoutMs;
    await Promise.all(
      agents.map(async (agent) => {
        while (next < cfg.objects) {
          if (performance.now() > deadline) {
            timedOut = true;
            return;
          }
          const { name, body } = configMap(next++, cfg.valueBytes);
          const s = performance.now();
          try {
            const r = await side.http.call(agent, 'POST', NS_PATH, body);
            const e = performance.now();
            if (r.status === 201) {
              latencies.push(e - s);
              acks.set(name, e);
              if (early.delete(name)) {
                lags.push(0);
                earlyEvents++;
              }
            } else {
              errors++;
              firstError ??= `POST ${r.status}: ${clip(r.body.toString('utf8'))}`;
            }
          } catch (e) {
            errors++;
            firstError ??= errorText(e);
          }
        }
      }),
    );
    const secs = (performance.now() - t0) / MS_PER_S;
    const cpu1 = cpuNow(side);
    const m1 = await scrape(side);
    side.created = latencies.length;
    fig['create.perSec'] = latencies.length / secs;
    fig['create.seconds'] = secs;
    fig['create.ok'] = latencies.length;
    fig['create.clientP50Ms'] = percentile(latencies, P50);
    fig['create.clientP99Ms'] = percentile(latencies, P99);
    const post = deltaP99(m0, m1, METRIC_REQ, { verb: 'POST', resource: 'configmaps' });
    fig['create.apiserverP99Ms'] = post.p99Ms;
    fig['create.apiserverCount'] = post.count;
    fig['create.storageP99Ms'] = deltaP99(m0, m1, METRIC_STORAGE, { operation: 'create', resource: 'configmaps' }).p99Ms;
    fig['create.errors'] = errors;
    fig['create.backendCores'] = (cpu1.backend - cpu0.backend) / secs;
    fig['create.apiserverCores'] = (cpu1.apiserver - cpu0.apiserver) / secs;
    fig['create.benchCores'] = (cpu1.bench - cpu0.bench) / secs;
    if (latencies.length > 0) fig['create.backendCpuMsPerCreate'] = ((cpu1.backend - cpu0.backend) * MS_PER_S) / latencies.length;
    log(
      `${side.label} create: ${latencies.length}/${cfg.objects} in ${secs.toFixed(1)} s = ${fig['create.perSec'].toFixed(0)}/s, ` +
        `client p50/p99 ${fig['create.clientP50Ms'].toFixed(1)}/${fig['create.clientP99Ms'].toFixed(1)} ms, apiserver p99 ${post.p99Ms.toFixed(1)} ms`,
    );
    // The watch: every created object's ADDED event.
    let watchError: string | undefined;
    try {
      await waitFor(() => added >= latencies.length || watch.failure() !== undefined, WATCH_DRAIN_MS, 'create-watch: all ADDED events');
    } catch (e) {
      watchError = errorText(e);
    }
    watchError ??= watch.failure();
    fig['watch.events'] = added;
    fig['watch.earlyEvents'] = earlyEvents;
    fig['watch.reopens'] = watch.reopens;
    fig['watch.lagP50Ms'] = percentile(lags, P50);
    fig['watch.lagP99Ms'] = percentile(lags, P99);
    log(`${side.label} create-watch: ${added} events (${watch.reopens} reopens), lag p50/p99 ${fig['watch.lagP50Ms'].toFixed(1)}/${fig['watch.lagP99Ms'].toFixed(1)} ms`);
    const problems = [
      ...(timedOut ? [`time limit ${cfg.phaseTimeoutMs / MS_PER_S} s reached after ${latencies.length + errors} creates`] : []),
      ...(errors > 0 ? [`${errors} creates failed, first: ${firstError ?? ''}`] : []),
    ];
    if (watchError !== undefined) side.fig['watch.failed'] = 1;
    if (problems.length > 0 || watchError !== undefined) {
      throw new Error([...problems, ...(watchError !== undefined ? [`create-watch: ${watchError} (${added}/${latencies.length} events)`] : [])].join('; '));
    }
  } finally {
    watch.close();
  }
}

/** list-full (page 0) or list-paged. */
async function phaseList(side: Side, paged: boolean): Promise<void> {
  const { cfg, fig } = side;
  const key = paged ? 'listPaged' : 'listFull';
  const agent = side.http.agent(1);
  const m0 = await scrape(side);
  let objects = 0;
  let ms = 0;
  let lastCount = 0;
  const deadline = performance.now() + cfg.phaseTimeoutMs;
  for (let rep = 0; rep < cfg.listReps; rep++) {
    if (performance.now() > deadline) throw new Error(`time limit ${cfg.phaseTimeoutMs / MS_PER_S} s reached after ${rep} lists`);
    let count = 0;
    let cont = '';
    let pages = 0;
    do {
      const q = paged ? `?limit=${cfg.page}${cont === '' ? '' : `&continue=${encodeURIComponent(cont)}`}` : '';
      const t = performance.now();
      const r = await side.http.call(agent, 'GET', `${NS_PATH}${q}`, undefined, LIST_TIMEOUT_MS);
      ms += performance.now() - t;
      if (r.status !== 200) throw new Error(`GET ${NS_PATH}${q}: ${r.status} ${clip(r.body.toString('utf8'))}`);
      const parts = listParts(JSON.parse(r.body.toString('utf8')));
      count += parts.items.length;
      cont = paged ? parts.cont : '';
      pages++;
    } while (cont !== '');
    objects += count;
    lastCount = count;
    fig[`${key}.pages`] = pages;
  }
  const m1 = await scrape(side);
  const list = deltaP99(m0, m1, METRIC_REQ, { verb: 'LIST', resource: 'configmaps' });
  fig[`${key}.objectsPerSec`] = objects / (ms / MS_PER_S);
  fig[`${key}.msPerList`] = ms / cfg.listReps;
  fig[`${key}.items`] = lastCount;
  fig[`${key}.apiserverP99Ms`] = list.p99Ms;
  fig[`${key}.storageCalls`] = deltaP99(m0, m1, METRIC_STORAGE, { operation: 'list', resource: 'configmaps' }).count;
  log(
    `${side.label} ${paged ? 'list-paged' : 'list-full'}: ${cfg.listReps} x ${lastCount} objects, ${(ms / cfg.listReps).toFixed(0)} ms each, ` +
      `apiserver LIST p99 ${list.p99Ms.toFixed(1)} ms`,
  );
  if (lastCount !== side.created) throw new Error(`listed ${lastCount} objects, ${side.created} were created`);
}

async function phaseReplay(side: Side): Promise<void> {
  const { cfg, fig } = side;
  const want = side.created;
  if (want === 0) throw new Error('nothing was created to replay');
  let added = 0;
  const t0 = performance.now();
  let last = t0;
  const seen = new Set<string>();
  const watch = new Watch(side.http, NS_PATH, side.rv0, (type, name, at) => {
    if (type !== 'ADDED' || !name.startsWith(NAME_PREFIX) || seen.has(name)) return;
    seen.add(name);
    added++;
    last = at;
  });
  try {
    await withTimeout(watch.ready, WATCH_READY_TIMEOUT_MS, 'watch-replay: opening');
    await waitFor(() => added >= want || watch.failure() !== undefined, cfg.phaseTimeoutMs, `watch-replay: ${want} ADDED events`);
    const f = watch.failure();
    if (f !== undefined) throw new Error(`${f} (${added}/${want} events)`);
    const secs = (last - t0) / MS_PER_S;
    fig['replay.seconds'] = secs;
    fig['replay.events'] = added;
    fig['replay.reopens'] = watch.reopens;
    fig['replay.eventsPerSec'] = added / secs;
    log(`${side.label} watch-replay: ${added} events (${watch.reopens} reopens) in ${secs.toFixed(2)} s`);
  } finally {
    watch.close();
  }
}

function vmHwmKb(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

async function backendVersion(url: string | undefined): Promise<string> {
  if (url === undefined) return 'unknown';
  try {
    const r = await fetch(`${url}/version`, { signal: AbortSignal.timeout(5_000) });
    const v: unknown = await r.json();
    return isRecord(v) && typeof v['etcdserver'] === 'string' ? v['etcdserver'] : 'unknown';
  } catch {
    return 'unknown';
  }
}

async function runSide(kind: TargetKind, cfg: Config): Promise<SideResult> {
  const label = kind;
  const fig: Record<string, number> = {};
  const errors: Record<string, string> = {};
  const versions: Record<string, string> = {};
  let cluster: Cluster | undefined;
  let api: KubeApiserver | undefined;
  let http: ApiHttp | undefined;
  const note = (phase: string, e: unknown): void => {
    const text = errorText(e);
    errors[phase] = text;
    log(`${label} ${phase} FAILED: ${text}`);
  };
  try {
    log(`${label}: starting ${cfg.members} backend member(s)`);
    cluster = await startBackend(kind, cfg.members);
    versions['backend'] = await backendVersion(cluster.members[0]?.clientUrl);
    const ta = performance.now();
    api = await startKubeApiserver({ etcdServers: cluster.members.map((m) => m.clientUrl), extraArgs: cfg.apiserverArgs });
    fig['startup.apiserverReadyS'] = (performance.now() - ta) / MS_PER_S;
    http = new ApiHttp(api);
    const control = http.agent(2);
    const v = await http.getJson(control, '/version');
    versions['kubeApiserver'] = isRecord(v) && typeof v['gitVersion'] === 'string' ? v['gitVersion'] : 'unknown';
    log(`${label}: backend ${versions['backend']}, kube-apiserver ${versions['kubeApiserver']} ready in ${fig['startup.apiserverReadyS'].toFixed(1)} s`);
    const ns = await http.call(control, 'POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } }));
    if (ns.status !== 201) throw new Error(`creating namespace ${NAMESPACE}: ${ns.status} ${clip(ns.body.toString('utf8'))}`);
    const rv0 = listParts(await http.getJson(control, `${NS_PATH}?limit=1`)).rv;
    if (rv0 === '') throw new Error('the initial list has no resourceVersion');
    const side: Side = { cfg, label, http, control, cluster, api, fig, rv0, created: 0 };
    const phases: ReadonlyArray<readonly [string, () => Promise<void>]> = [
      ['create', () => phaseCreate(side)],
      ['list-full', () => phaseList(side, false)],
      ['list-paged', () => phaseList(side, true)],
      ['watch-replay', () => phaseReplay(side)],
    ];
    for (const [name, run] of phases) {
      if (!api.alive()) {
        note(name, `kube-apiserver is not running:\n${api.logTail(20)}`);
        continue;
      }
      try {
        await withTimeout(run(), cfg.phaseTimeoutMs + WATCH_DRAIN_MS + LIST_TIMEOUT_MS, name);
      } catch (e) {
        note(name, e);
      }
    }
  } catch (e) {
    note('start', e);
  } finally {
    const kb = cluster?.members.reduce((s, m) => s + (m.proc?.peakRssKb() ?? 0), 0) ?? 0;
    if (kb > 0) fig['rss.backendMiB'] = kb / KIB_PER_MIB;
    const akb = api === undefined ? undefined : vmHwmKb(api.pid);
    if (akb !== undefined) fig['rss.apiserverMiB'] = akb / KIB_PER_MIB;
    http?.close();
    if (api !== undefined) {
      await api.stop().catch((e: unknown) => log(`${label}: stopping kube-apiserver: ${errorText(e)}`));
    }
    if (cfg.logDir !== undefined) saveLogs(cfg.logDir, label, api, cluster);
    await cluster?.close().catch((e: unknown) => log(`${label}: closing the backend: ${errorText(e)}`));
  }
  return { kind, figures: fig, errors, versions };
}

function saveLogs(dir: string, label: string, api: KubeApiserver | undefined, cluster: Cluster | undefined): void {
  try {
    mkdirSync(dir, { recursive: true });
    if (api !== undefined) copyFileSync(api.logFile, join(dir, `${label}-kube-apiserver.log`));
    for (const m of cluster?.members ?? []) {
      if (m.proc !== undefined) writeFileSync(join(dir, `${label}-${m.name}.log`), `${m.proc.stderrLines().join('\n')}\n`);
    }
  } catch (e) {
    log(`${label}: writing logs to ${dir}: ${errorText(e)}`);
  }
}

// ---- main ----

async function main(): Promise<void> {
  const cfg = readConfig();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    objects: cfg.objects,
    clients: cfg.clients,
    members: cfg.members,
    order: cfg.order,
    valueBytes: cfg.valueBytes,
    listReps: cfg.listReps,
    page: cfg.page,
    apiserverArgs: cfg.apiserverArgs,
    ratioConvention: 'ratio > 1 means Cairn did better: throughput cairn/etcd, latency/memory etcd/cairn',
  };
  log(JSON.stringify(meta));
  const t0 = performance.now();
  const results = new Map<TargetKind, SideResult>();
  for (const kind of cfg.order) results.set(kind, await runSide(kind, cfg));
  const none: SideResult = { kind: 'etcd', figures: {}, errors: { start: 'not run' }, versions: {} };
  const etcd = results.get('etcd') ?? none;
  const cairn = results.get('cairn') ?? { ...none, kind: 'cairn' };

  const backends = `${cfg.members === 1 ? '1 member' : `${cfg.members}-member clusters`}`;
  console.log(
    `\nkube-apiserver ${etcd.versions['kubeApiserver'] ?? cairn.versions['kubeApiserver'] ?? '?'} on etcd ${etcd.versions['backend'] ?? '?'} ` +
      `vs on Cairn (reports ${cairn.versions['backend'] ?? '?'}), ${backends}, run ${cfg.order.join(' then ')}`,
  );
  console.log(
    `Load: ${cfg.objects} ConfigMaps (${cfg.valueBytes}-byte value) by ${cfg.clients} clients; lists x${cfg.listReps} (paged: limit=${cfg.page}); ` +
      `apiserver p99s from its /metrics histograms (PromQL-style interpolation).`,
  );
  console.log('Ratio: > 1 means Cairn did better (throughput: cairn/etcd; latency, time, memory: etcd/cairn).\n');
  console.log(formatKubeTable(FIGURES, etcd.figures, cairn.figures));
  const headline = betterRatio('higher', etcd.figures['create.perSec'], cairn.figures['create.perSec']);
  const p99 = betterRatio('lower', etcd.figures['create.apiserverP99Ms'], cairn.figures['create.apiserverP99Ms']);
  console.log(
    `\nCreates/s cairn/etcd: ${headline === undefined ? '-' : `${headline.toFixed(2)}x`} (target >= 1.0x); ` +
      `apiserver POST p99 etcd/cairn: ${p99 === undefined ? '-' : `${p99.toFixed(2)}x`}`,
  );
  const errs = [etcd, cairn].flatMap((s) => Object.entries(s.errors).map(([phase, text]) => `${s.kind} ${phase}: ${text}`));
  if (errs.length > 0) console.log(`\nErrors:\n${errs.map((e) => `  - ${e.split('\n').join('\n    ')}`).join('\n')}`);

  const rows = FIGURES.map((f) => {
    const e = etcd.figures[f.key];
    const c = cairn.figures[f.key];
    return { ...f, etcd: e, cairn: c, ratio: betterRatio(f.better, e, c) };
  });
  const json = { meta: { ...meta, seconds: (performance.now() - t0) / MS_PER_S }, rows, sides: { etcd, cairn } };
  writeFileSync(cfg.out, `${JSON.stringify(json, (_k, v: unknown) => (v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? null : v), 2)}\n`);
  console.log(`\nwrote ${cfg.out}`);
}

// `node --test dist/test/` would run every .js file under dist/test as a test file; the bench
// must not run then.
if (process.env['NODE_TEST_CONTEXT'] !== undefined) {
  console.log('bench-kube: skipped under the test runner (run it with npm run bench:kube)');
} else {
  main().catch((e: unknown) => {
    console.error(`bench-kube: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
