// /health, /livez, /readyz, /version and /metrics as etcd 3.5.17 and 3.6.8 answer them
// (server/etcdserver/api/etcdhttp/{health,version,metrics}.go). etcd 3.4.23 differs: its /health body
// has no "reason" field, it has no /livez or /readyz, and /version names cluster "3.4.0".
// - /health: alarms (unless ?exclude=<ALARM>), then the leader (unless ?serializable=true), then a
//   keys-only limit-1 Range (serializable with ?serializable=true) as root;
//   200 `{"health":"true","reason":""}`, else 503 via Go's http.Error (text/plain, a newline).
// - /livez (serializable_read) and /readyz (data_corruption, serializable_read, linearizable_read,
//   non_learner), ?exclude=<check> (repeatable), ?verbose, and /livez/<check>, /readyz/<check>:
//   200 `ok\n` (verbose: `[+]<check> ok` lines first); 503 lists every check, `[-]<check> failed: <err>`.
//   etcd runs the checks in Go map order (random); we run them in the order above.
import { toGrpcError } from '../errors.js';
import { getOnly, goHttpError, notFound, requestQuery, sendBody, type HttpRequest, type HttpResponse } from './exchange.js';

export interface HealthAlarm {
  readonly memberId: bigint;
  readonly alarm: 'NOSPACE' | 'CORRUPT';
}

/** What the health endpoints ask the member (main.ts implements it from node and the read path). */
export interface HealthSource {
  hasLeader(): boolean;
  isLearner(): boolean;
  /** Active alarms of the cluster. */
  alarms(): readonly HealthAlarm[];
  /** A keys-only limit-1 Range served locally, bypassing auth (etcd: as root). */
  serializableRange(): Promise<void>;
  /** The same Range, linearizable (ReadIndex). */
  linearizableRange(): Promise<void>;
}

export interface Versions {
  readonly etcdserver: string;
  readonly etcdcluster: string;
}

/** A Prometheus exposition (the metrics registry owns the format). */
export type MetricsSource = () => Promise<{ readonly contentType: string; readonly body: string }>;

export interface HealthOptions {
  readonly source: HealthSource;
  readonly versions: () => Versions;
  /** undefined: /metrics answers 404 (no registry wired yet). */
  readonly metrics: MetricsSource | undefined;
  /** How long a health Range may take (etcd: ReqTimeout = 5 s + 2 × election timeout). */
  readonly requestTimeoutMs: number;
  /** Each /health outcome (etcd_server_health_success / _failures: the metrics' healthChecked). */
  readonly onHealthChecked?: (ok: boolean) => void;
}

const REQUEST_TIMED_OUT = 'etcdserver: request timed out';

/** The error text etcd's checks print for a failed Range (its gRPC text, e.g. "etcdserver: no leader"). */
function errorText(err: unknown): string {
  if (err instanceof TimeoutError) return REQUEST_TIMED_OUT;
  return toGrpcError(err).details;
}

class TimeoutError extends Error {}

async function withTimeout(p: () => Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(REQUEST_TIMED_OUT)), ms);
  });
  try {
    await Promise.race([p(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type Check = () => Promise<string | undefined>;

interface Registry {
  readonly root: string;
  readonly checks: readonly (readonly [string, Check])[];
}

export class HealthEndpoints {
  private readonly livez: Registry;
  private readonly readyz: Registry;

  constructor(private readonly opts: HealthOptions) {
    const read = (serializable: boolean): Check => async () => {
      try {
        await withTimeout(serializable ? () => opts.source.serializableRange() : () => opts.source.linearizableRange(), opts.requestTimeoutMs);
        return undefined;
      } catch (err) {
        return errorText(err);
      }
    };
    const corruption: Check = () => Promise.resolve(opts.source.alarms().some((a) => a.alarm === 'CORRUPT') ? 'alarm activated: CORRUPT' : undefined);
    const learner: Check = () => Promise.resolve(opts.source.isLearner() ? 'not supported for learner' : undefined);
    this.livez = { root: '/livez', checks: [['serializable_read', read(true)]] };
    this.readyz = {
      root: '/readyz',
      checks: [
        ['data_corruption', corruption],
        ['serializable_read', read(true)],
        ['linearizable_read', read(false)],
        ['non_learner', learner],
      ],
    };
  }

  /** Serves path if it is one of ours; false when it is not (the caller answers 404). */
  serve(path: string, req: HttpRequest, res: HttpResponse, withVersion: boolean): boolean {
    if (path === '/health') this.health(req, res).catch((err: unknown) => this.internal(res, err));
    else if (withVersion && path === '/version') this.version(req, res);
    else if (path === '/metrics') this.metrics(res).catch((err: unknown) => this.internal(res, err));
    else {
      const reg = path.startsWith('/livez') ? this.livez : path.startsWith('/readyz') ? this.readyz : undefined;
      if (reg === undefined) return false;
      const checks = this.checksFor(reg, path, req);
      if (checks === undefined) return false;
      this.runChecks(checks, req, res).catch((err: unknown) => this.internal(res, err));
    }
    return true;
  }

  private checksFor(reg: Registry, path: string, req: HttpRequest): (readonly [string, Check])[] | undefined {
    if (path === reg.root) {
      const excluded = new Set(requestQuery(req).getAll('exclude').filter((e) => e !== ''));
      return reg.checks.filter(([name]) => !excluded.has(name));
    }
    const sub = reg.checks.find(([name]) => path === `${reg.root}/${name}`);
    return sub === undefined ? undefined : [sub];
  }

  private async runChecks(checks: readonly (readonly [string, Check])[], req: HttpRequest, res: HttpResponse): Promise<void> {
    if (req.method !== 'GET') return getOnly(res);
    let reason = '';
    let failed = false;
    for (const [name, check] of checks) {
      const err = await check();
      if (err === undefined) reason += `[+]${name} ok\n`;
      else {
        failed = true;
        reason += `[-]${name} failed: ${err}\n`;
      }
    }
    if (failed) return goHttpError(res, 503, reason);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const verbose = requestQuery(req).has('verbose');
    sendBody(res, 200, 'text/plain; charset=utf-8', `${verbose ? reason : ''}ok\n`);
  }

  private async health(req: HttpRequest, res: HttpResponse): Promise<void> {
    if (req.method !== 'GET') return getOnly(res);
    const q = requestQuery(req);
    const reason = await this.healthReason(new Set(q.getAll('exclude')), q.get('serializable') === 'true');
    this.opts.onHealthChecked?.(reason === undefined);
    const body = JSON.stringify({ health: reason === undefined ? 'true' : 'false', reason: reason ?? '' });
    if (reason !== undefined) return goHttpError(res, 503, body);
    sendBody(res, 200, 'text/plain; charset=utf-8', body);
  }

  /** etcd's checkAlarms, checkLeader, checkAPI in that order; undefined when healthy. */
  private async healthReason(excluded: ReadonlySet<string>, serializable: boolean): Promise<string | undefined> {
    const alarm = this.opts.source.alarms().find((a) => !excluded.has(a.alarm));
    if (alarm !== undefined) return `ALARM ${alarm.alarm}`;
    if (!serializable && !this.opts.source.hasLeader()) return 'RAFT NO LEADER';
    try {
      await withTimeout(serializable ? () => this.opts.source.serializableRange() : () => this.opts.source.linearizableRange(), this.opts.requestTimeoutMs);
      return undefined;
    } catch (err) {
      return `RANGE ERROR:${errorText(err)}`;
    }
  }

  private version(req: HttpRequest, res: HttpResponse): void {
    if (req.method !== 'GET') return getOnly(res);
    const v = this.opts.versions();
    sendBody(res, 200, 'application/json', JSON.stringify({ etcdserver: v.etcdserver, etcdcluster: v.etcdcluster }));
  }

  private async metrics(res: HttpResponse): Promise<void> {
    const source = this.opts.metrics;
    if (source === undefined) return notFound(res);
    const m = await source();
    sendBody(res, 200, m.contentType, m.body);
  }

  private internal(res: HttpResponse, err: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    goHttpError(res, 500, err instanceof Error ? err.message : String(err));
  }
}
