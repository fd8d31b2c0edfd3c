// A modest write load on a cluster from two kinds of clients, both given every member's endpoint:
// the npm `etcd3` client (a few concurrent put loops) and etcdctl (one `etcdctl put` process after
// another). Every acknowledged write is remembered (key → value, acknowledgement time), every
// failure counted with its time, so tests can check that no acknowledged write is lost and that
// the clients made progress after a fault.
import { Etcd3 } from 'etcd3';
import { EtcdClient } from '../harness/client.js';
import type { Cluster } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { ctl } from './ctl.js';

export type Source = 'etcd3' | 'etcdctl';

export interface LoadEvent {
  readonly at: number;
  readonly source: Source;
  readonly ok: boolean;
  readonly what: string;
}

export interface LoadOptions {
  /** Key prefix, e.g. "load/". */
  prefix: string;
  /** Concurrent etcd3 put loops; default 3. */
  etcd3Workers?: number;
  /** Concurrent etcdctl put loops; default 1. */
  etcdctlWorkers?: number;
  /** Per-call deadline of the etcd3 client (ms); default 5000. */
  callTimeoutMs?: number;
}

export class WriteLoad {
  /** Acknowledged writes: key → value. */
  readonly acked = new Map<string, string>();
  readonly events: LoadEvent[] = [];
  private running = false;
  private readonly workers: Promise<void>[] = [];
  private readonly client: Etcd3;
  private seq = 0;

  constructor(
    private readonly endpoints: readonly string[],
    private readonly opts: LoadOptions,
  ) {
    const timeout = opts.callTimeoutMs ?? 5_000;
    this.client = new Etcd3({
      hosts: endpoints.map((e) => `http://${e}`),
      dialTimeout: 3_000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (let i = 0; i < (this.opts.etcd3Workers ?? 3); i++) this.workers.push(this.etcd3Loop(i));
    for (let i = 0; i < (this.opts.etcdctlWorkers ?? 1); i++) this.workers.push(this.etcdctlLoop(i));
  }

  /** Stops the loops and waits for their writes in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers.splice(0));
  }

  close(): void {
    this.client.close();
  }

  private next(source: Source, worker: number): [string, string] {
    this.seq += 1;
    const key = `${this.opts.prefix}${source}/${String(worker)}/${String(this.seq).padStart(7, '0')}`;
    return [key, `v${String(this.seq)}-${String(Date.now())}`];
  }

  private record(source: Source, ok: boolean, what: string): void {
    this.events.push({ at: Date.now(), source, ok, what });
  }

  private async etcd3Loop(worker: number): Promise<void> {
    while (this.running) {
      const [key, value] = this.next('etcd3', worker);
      try {
        await this.client.put(key).value(value).exec();
        this.acked.set(key, value);
        this.record('etcd3', true, key);
      } catch (e) {
        this.record('etcd3', false, `${key}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
        await new Promise((r) => setTimeout(r, 50)); // a failing client must not spin
      }
    }
  }

  private async etcdctlLoop(worker: number): Promise<void> {
    while (this.running) {
      const [key, value] = this.next('etcdctl', worker);
      const o = await ctl(this.endpoints, ['put', key, value], { commandTimeout: '5s' });
      if (o.exit === 0 && o.stdout === 'OK\n') {
        this.acked.set(key, value);
        this.record('etcdctl', true, key);
      } else {
        this.record('etcdctl', false, `${key}: exit ${String(o.exit)} ${o.stdout.trim()} ${o.stderr.split('\n').slice(-2).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Acknowledgements at or after `since` (of one source or all). */
  acksSince(since: number, source?: Source): number {
    return this.events.filter((e) => e.ok && e.at >= since && (source === undefined || e.source === source)).length;
  }

  errorsBetween(from: number, to: number): LoadEvent[] {
    return this.events.filter((e) => !e.ok && e.at >= from && e.at <= to);
  }

  /** Waits until every source has `n` acknowledgements at or after `since`. */
  async waitProgress(since: number, n: number, timeoutMs: number): Promise<void> {
    const sources: Source[] = [];
    if ((this.opts.etcd3Workers ?? 3) > 0) sources.push('etcd3');
    if ((this.opts.etcdctlWorkers ?? 1) > 0) sources.push('etcdctl');
    await pollUntil(
      `${String(n)} acknowledged writes from each of ${sources.join(', ')} since t=${String(since)}`,
      () => Promise.resolve(sources.every((s) => this.acksSince(since, s) >= n)),
      timeoutMs,
      50,
    ).catch((e: unknown) => {
      const counts = sources.map((s) => `${s}: ${String(this.acksSince(since, s))} acks`).join(', ');
      const errs = this.events.filter((ev) => !ev.ok && ev.at >= since).slice(-5).map((ev) => `${ev.source} ${ev.what}`);
      throw new Error(`${e instanceof Error ? e.message : String(e)} (${counts}; last errors: ${errs.join(' || ')})`);
    });
  }

  summary(): string {
    const by = (s: Source, ok: boolean): number => this.events.filter((e) => e.source === s && e.ok === ok).length;
    return `etcd3 ${String(by('etcd3', true))} ok / ${String(by('etcd3', false))} failed; etcdctl ${String(by('etcdctl', true))} ok / ${String(by('etcdctl', false))} failed`;
  }
}

/** Every key under prefix on one member, read locally (serializable). */
export async function readPrefix(endpoint: string, prefix: string): Promise<Map<string, string>> {
  const c = new EtcdClient(endpoint);
  try {
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
    const r = await c.range({ key: Buffer.from(prefix), range_end: end, serializable: true }, { timeoutMs: 20_000 });
    if (!r.ok) throw new Error(`range ${prefix} on ${endpoint}: ${String(r.code)} ${r.details}`);
    const kvs = Array.isArray(r.value['kvs']) ? (r.value['kvs'] as Array<Record<string, unknown>>) : [];
    const out = new Map<string, string>();
    for (const kv of kvs) {
      const k = kv['key'];
      const v = kv['value'];
      if (Buffer.isBuffer(k) && Buffer.isBuffer(v)) out.set(k.toString(), v.toString());
    }
    return out;
  } finally {
    c.close();
  }
}

/**
 * Problems (empty when none): acknowledged writes missing or with another value on any running
 * member, read locally after convergence.
 */
export async function lostWrites(cluster: Cluster, prefix: string, acked: ReadonlyMap<string, string>): Promise<string[]> {
  const problems: string[] = [];
  for (const m of cluster.running()) {
    const have = await readPrefix(m.endpoint, prefix);
    const missing: string[] = [];
    for (const [k, v] of acked) {
      const got = have.get(k);
      if (got !== v) missing.push(`${k}=${v} (got ${got === undefined ? 'nothing' : got})`);
    }
    if (missing.length > 0) problems.push(`${m.name}: ${String(missing.length)} of ${String(acked.size)} acknowledged writes missing or wrong, e.g. ${missing.slice(0, 5).join(', ')}`);
  }
  return problems;
}
