// The linearizability workload: concurrent clients doing linearizable reads, puts, compare-and-set
// txns and (rarely) deletes on a few keys, each client through its own connection to one member
// (a new random member after any failure), while a nemesis kills (kill -9 + restart), pauses
// (SIGSTOP/SIGCONT) and partitions members. Every op is recorded with a monotonic clock
// (performance.now()): call time, return time and output, or an unknown outcome for a write whose
// fate the client cannot know (timeout, lost connection, server error after sending). Writes that
// certainly never reached a server (no connection) and failed reads are not recorded.
import { EtcdClient, openWatch, statusName } from '../harness/client.js';
import type { CallResult, Msg } from '../harness/client.js';
import type { Net } from '../harness/netns.js';
import { Prng } from '../diff/gen.js';
import type { KvEvent, KvInput, KvOp, KvOutput } from './checker.js';
import type { NetCluster } from './members.js';

export interface WorkloadOptions {
  seed: number;
  seconds: number;
  clients: number;
  keys: number;
  /** Per-op deadline. */
  opTimeoutMs: number;
  /** Key prefix. */
  prefix: string;
  /** Whether the nemesis runs (false: a fault-free baseline). */
  nemesis: boolean;
  /** Serializable (local, possibly stale) reads instead of linearizable ones: to see the checker catch them. */
  serializableReads?: boolean;
}

export interface WorkloadStats {
  okReads: number;
  okWrites: number;
  casSucceeded: number;
  casFailed: number;
  unknownWrites: number;
  definiteFailures: number;
  failedReads: number;
  /** Errors by "CODE: details" (details shortened), for the report. */
  errors: Map<string, number>;
  /** ok ops per 10 s window of the run. */
  okPerWindow: number[];
}

export interface WorkloadResult {
  ops: KvOp[];
  stats: WorkloadStats;
  nemesisLog: string[];
  t0: number;
}

const now = (): number => performance.now();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : '';
}
function header(m: Msg): number {
  const h = m['header'];
  return typeof h === 'object' && h !== null ? Number(str((h as Msg)['revision'])) : NaN;
}

/** A failure after which the request certainly never reached a server. */
export function certainlyNotSent(r: { code: number; details: string }): boolean {
  return statusName(r.code) === 'UNAVAILABLE' && /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(r.details);
}

async function execute(c: EtcdClient, key: string, input: KvInput, timeoutMs: number, serializable = false): Promise<CallResult<KvOutput>> {
  const k = Buffer.from(key);
  const o = { timeoutMs };
  switch (input.f) {
    case 'get': {
      const r = await c.range({ key: k, serializable }, o);
      if (!r.ok) return r;
      const kvs = Array.isArray(r.value['kvs']) ? (r.value['kvs'] as Msg[]) : [];
      const kv = kvs[0];
      const headerRev = header(r.value);
      if (kv === undefined) return { ok: true, value: { f: 'get', value: null, headerRev } };
      const v = kv['value'];
      return { ok: true, value: { f: 'get', value: Buffer.isBuffer(v) ? v.toString() : '', modRev: Number(str(kv['mod_revision'])), headerRev } };
    }
    case 'put': {
      const r = await c.put({ key: k, value: Buffer.from(input.value) }, o);
      return r.ok ? { ok: true, value: { f: 'put', rev: header(r.value) } } : r;
    }
    case 'delete': {
      const r = await c.deleteRange({ key: k }, o);
      return r.ok ? { ok: true, value: { f: 'delete', deleted: Number(str(r.value['deleted'])), rev: header(r.value) } } : r;
    }
    case 'cas': {
      const compare =
        input.cmp === 'value'
          ? { key: k, target: 'VALUE', result: 'EQUAL', value: Buffer.from(input.expected) }
          : { key: k, target: 'MOD', result: 'EQUAL', mod_revision: String(input.expected) };
      const r = await c.txn({ compare: [compare], success: [{ request_put: { key: k, value: Buffer.from(input.value) } }], failure: [] }, o);
      return r.ok ? { ok: true, value: { f: 'cas', succeeded: r.value['succeeded'] === true, rev: header(r.value) } } : r;
    }
  }
}

function noteError(stats: WorkloadStats, r: { code: number; details: string }): void {
  const d = r.details.replace(/\d+(\.\d+)?/g, 'N').slice(0, 90);
  const k = `${statusName(r.code)}: ${d}`;
  stats.errors.set(k, (stats.errors.get(k) ?? 0) + 1);
}

export async function runWorkload(cluster: NetCluster, net: Net, opts: WorkloadOptions): Promise<WorkloadResult> {
  const n = cluster.members.length;
  const keys = Array.from({ length: opts.keys }, (_, i) => `${opts.prefix}k${i}`);
  const ops: KvOp[] = [];
  const stats: WorkloadStats = {
    okReads: 0,
    okWrites: 0,
    casSucceeded: 0,
    casFailed: 0,
    unknownWrites: 0,
    definiteFailures: 0,
    failedReads: 0,
    errors: new Map(),
    okPerWindow: [],
  };
  const nemesisLog: string[] = [];
  const t0 = now();
  const end = t0 + opts.seconds * 1000;
  let stopped = false;
  const rel = (): string => `${((now() - t0) / 1000).toFixed(2)}s`;

  const client = async (id: number): Promise<void> => {
    const rng = new Prng(opts.seed * 31 + id + 1);
    let member = rng.int(0, n - 1);
    let conn = new EtcdClient(cluster.member(member).endpoint);
    let seq = 0;
    const seen = new Map<string, { value: string; modRev: number }>();
    try {
      while (now() < end) {
        const key = rng.pick(keys);
        const p = rng.next();
        seq += 1;
        const value = `c${id}-${seq}`;
        let input: KvInput;
        const last = seen.get(key);
        if (p < 0.4) input = { f: 'get' };
        else if (p < 0.65) input = { f: 'put', value };
        else if (p < 0.8) input = { f: 'cas', cmp: 'modRev', expected: last === undefined || rng.bool(0.15) ? 0 : last.modRev, value };
        else if (p < 0.96) input = { f: 'cas', cmp: 'value', expected: last?.value ?? 'never-written', value };
        else input = { f: 'delete' };
        const call = now();
        const r = await execute(conn, key, input, opts.opTimeoutMs, opts.serializableReads === true);
        const ret = now();
        if (r.ok) {
          ops.push({ client: id, key, call, ret, input, output: r.value });
          const w = Math.floor((ret - t0) / 10_000);
          stats.okPerWindow[w] = (stats.okPerWindow[w] ?? 0) + 1;
          const out = r.value;
          if (out.f === 'get') {
            stats.okReads += 1;
            if (out.value === null) seen.delete(key);
            else seen.set(key, { value: out.value, modRev: out.modRev ?? 0 });
          } else {
            stats.okWrites += 1;
            if (out.f === 'cas') {
              if (out.succeeded) stats.casSucceeded += 1;
              else stats.casFailed += 1;
            }
            if ((input.f === 'put' || (input.f === 'cas' && out.f === 'cas' && out.succeeded)) && out.rev !== undefined) seen.set(key, { value, modRev: out.rev });
            if (input.f === 'delete') seen.delete(key);
          }
          continue;
        }
        noteError(stats, r);
        if (input.f === 'get') stats.failedReads += 1;
        else if (certainlyNotSent(r)) stats.definiteFailures += 1;
        else {
          stats.unknownWrites += 1;
          ops.push({ client: id, key, call, ret: Infinity, input, output: undefined });
        }
        // Another member, through a new connection; a short pause so a dead member is not hammered.
        conn.close();
        member = n > 1 ? (member + rng.int(1, n - 1)) % n : member;
        conn = new EtcdClient(cluster.member(member).endpoint);
        await sleep(rng.int(10, 100));
      }
    } finally {
      conn.close();
    }
  };

  const nemesis = async (): Promise<void> => {
    const rng = new Prng(opts.seed ^ 0x5bd1e995);
    const leaderOrRandom = async (): Promise<number> => {
      if (rng.bool(0.5)) {
        const sts = await Promise.all(cluster.members.map((m) => cluster.status(m.index, 500)));
        for (const s of sts) {
          if (s === undefined || s.leader === '0') continue;
          const li = sts.find((x) => x?.id === s.leader)?.index;
          if (li !== undefined) return li;
        }
      }
      return rng.int(0, n - 1);
    };
    const log = (s: string): void => {
      nemesisLog.push(`${rel()} ${s}`);
    };
    await sleep(2_000);
    while (!stopped && now() < end - 3_000) {
      const action = rng.pick(['kill', 'pause', 'isolate', 'split', 'kill', 'isolate'] as const);
      const target = await leaderOrRandom();
      const name = cluster.member(target).name;
      const hold = rng.int(500, 4_000);
      switch (action) {
        case 'kill': {
          log(`kill -9 ${name}`);
          await cluster.kill9(target);
          await sleep(hold);
          log(`restart ${name}`);
          await cluster.start(target);
          break;
        }
        case 'pause': {
          if (cluster.member(target).proc === undefined) break;
          log(`SIGSTOP ${name}`);
          cluster.pause(target);
          await sleep(hold);
          log(`SIGCONT ${name}`);
          cluster.resume(target);
          break;
        }
        case 'isolate': {
          log(`isolate ${name}`);
          await net.isolate(target);
          await sleep(hold);
          log('heal');
          await net.heal();
          break;
        }
        case 'split': {
          const minority = [target];
          while (minority.length < Math.floor((n - 1) / 2)) {
            const x = rng.int(0, n - 1);
            if (!minority.includes(x)) minority.push(x);
          }
          const majority = Array.from({ length: n }, (_, i) => i).filter((i) => !minority.includes(i));
          // Sometimes the cut leaves no majority anywhere (e.g. 2|2|1 on 5, 1|1|1 on 3): nothing may commit.
          const groups = rng.bool(0.3) && majority.length > 1 ? [minority, majority.slice(0, 1), majority.slice(1)] : [minority, majority];
          log(`partition ${groups.map((g) => g.map((i) => cluster.member(i).name).join(',')).join(' | ')}`);
          await net.partition(groups);
          await sleep(hold);
          log('heal');
          await net.heal();
          break;
        }
      }
      await sleep(rng.int(300, 2_000));
    }
  };

  const nem = opts.nemesis ? nemesis() : Promise.resolve();
  try {
    await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i)));
  } finally {
    stopped = true;
    await nem.catch((e: unknown) => {
      nemesisLog.push(`${rel()} nemesis error: ${e instanceof Error ? e.message : String(e)}`);
    });
  }
  return { ops, stats, nemesisLog, t0 };
}

/** Final linearizable reads of every key through every member (recorded like any op). */
export async function finalReads(cluster: NetCluster, keys: readonly string[], clientBase: number, timeoutMs: number): Promise<{ ops: KvOp[]; failures: string[] }> {
  const ops: KvOp[] = [];
  const failures: string[] = [];
  for (const m of cluster.members) {
    for (const key of keys) {
      const call = now();
      const r = await execute(cluster.client(m.index), key, { f: 'get' }, timeoutMs);
      const ret = now();
      if (r.ok) ops.push({ client: clientBase + m.index, key, call, ret, input: { f: 'get' }, output: r.value });
      else failures.push(`${m.name} ${key}: ${statusName(r.code)} ${r.details}`);
    }
  }
  return { ops, failures };
}

/** JSON of a history (Infinity as null) and the store's events, for offline re-checking. */
export function historyJson(ops: readonly KvOp[], events: readonly KvEvent[] = []): string {
  return JSON.stringify({ ops: ops.map((o) => ({ ...o, ret: Number.isFinite(o.ret) ? o.ret : null })), events });
}

export function parseHistoryJson(text: string): { ops: KvOp[]; events: KvEvent[] } {
  const parsed = JSON.parse(text) as { ops: (Omit<KvOp, 'ret'> & { ret: number | null })[]; events?: KvEvent[] } | (Omit<KvOp, 'ret'> & { ret: number | null })[];
  const raw = Array.isArray(parsed) ? parsed : parsed.ops;
  const events = Array.isArray(parsed) ? [] : (parsed.events ?? []);
  return { ops: raw.map((o) => ({ ...o, ret: o.ret === null ? Infinity : o.ret })), events };
}

/**
 * The store's whole history under prefix, read through member i by a Watch from revision 1 (no
 * compaction happens during the test): a sentinel key is put under the prefix first, and events are
 * collected until the sentinel's. The sentinel's own event is left out.
 */
export async function readHistory(cluster: NetCluster, i: number, prefix: string, timeoutMs = 30_000): Promise<KvEvent[]> {
  const c = cluster.client(i);
  const sentinel = `${prefix}~end`;
  const p = await c.put({ key: Buffer.from(sentinel), value: Buffer.from('end') }, { timeoutMs });
  if (!p.ok) throw new Error(`readHistory: sentinel put: ${statusName(p.code)} ${p.details}`);
  const pb = Buffer.from(prefix);
  const end = Buffer.from(pb);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  const w = openWatch(c, { timeoutMs });
  const events: KvEvent[] = [];
  try {
    w.send({ create_request: { key: pb, range_end: end, start_revision: '1' } });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await w.next(Math.max(1, deadline - Date.now()));
      if (m['canceled'] === true) throw new Error(`readHistory: watch canceled: ${str(m['cancel_reason'])}`);
      for (const ev of Array.isArray(m['events']) ? (m['events'] as Msg[]) : []) {
        const kv = (ev['kv'] ?? {}) as Msg;
        const key = Buffer.isBuffer(kv['key']) ? kv['key'].toString() : '';
        if (key === sentinel) return events;
        const isPut = str(ev['type']) === 'PUT' || ev['type'] === 0;
        const v = kv['value'];
        events.push({ key, type: isPut ? 'put' : 'delete', value: isPut && Buffer.isBuffer(v) ? v.toString() : null, rev: Number(str(kv['mod_revision'])) });
      }
    }
  } finally {
    w.cancel();
  }
}
