// Differential conformance test of the Watch and Lease services: the seeded op generator of the
// KV differential test (gen.ts), extended with lease grants/revokes, lease-attached puts and
// txns, TimeToLive, LeaseLeases, keep-alives and watch stream requests (wlgen.ts), runs against a
// fresh reference etcd and a fresh target, while watchers (exact key, prefix, range, everything,
// from old/current/future/compacted revisions, prev_kv, NOPUT/NODELETE filters) record their
// streams. Per watcher, the sequence of created/canceled replies and events must be identical
// (events flattened: catch-up responses may batch differently in time); unary responses must be
// identical except for TTL figures (compared with a tolerance) and server-chosen lease IDs
// (mapped by order of creation). Halfway through, both servers restart (SIGTERM) and the leases
// must survive with refreshed TTLs; at the end a lease with the minimum TTL and three keys expires
// on both (the keys go in one revision, compared like every other).
//
// Synchronisation: a history watcher per server (all keys from revision 1, prev_kv, alone on its
// stream) records every revision's events. "Drain" waits until it delivered the server's current
// revision, then until every other watcher delivered what the history says it must (range,
// start revision, filters, cancel revision), and checks that it delivered exactly that. The
// servers drain before every compaction, watch cancel, progress request and restart, so that no
// watcher is catching up when one happens (timing would decide the outcome otherwise); before a
// compaction they also wait until etcd's gauge of unsynced watchers is 0 (a watcher from an old
// revision with nothing to deliver shows no other sign of being synced).
//
// etcd 3.4.23 differences from 3.5+ that the random part avoids (the 3.5+ behaviour is asserted
// against the target only, in the second test):
//   - start_revision < 0: 3.4.23 creates the watcher (no history, events from now on); 3.5+
//     refuses it: {created, canceled, watch_id -1, cancel_reason "etcdserver: mvcc: required
//     revision has been compacted"}.
//   - progress_request: 3.4.23 answers every request at once on the control queue (even on a
//     stream without watchers, and before events still queued); 3.5+ answers only if every watcher
//     of the stream is synced (a watcher canceled by compaction but not by the client counts as
//     not synced) and, since etcd PR 20229 (also in later 3.4.x/3.5.x), the store revision has
//     reached every requested start_revision (0 never holds it back); the reply goes through the
//     event queue, and a stream without watchers gets nothing. The random part sends progress
//     requests only when both agree: after a drain, on a stream with at least one watcher, none of
//     them compacted or with a start_revision above the current revision; the target may be asked
//     up to PROGRESS_TRIES times (a 3.5+ server may still be moving a watcher to its synced group).
//   - Watch IDs chosen by the client may be -1 in etcd (then events carry watch_id -1, like
//     progress replies): never generated.
// A watcher created from exactly the compacted revision C: etcd 3.4.23 removes the tombstones at
// C when the backend compaction runs (asynchronously; watch catch-up reads the backend), so
// whether such a watcher gets the DELETE events of revision C depends on timing there; newer etcd
// keeps them (etcd #18274). Those events are left out of the comparison (counted in the stats).
//
// Environment:
//   CAIRN_DIFF_TARGET=etcd|cairn  target server (default cairn; etcd validates the test itself)
//   CAIRN_DIFF_SEED=N             one more seed besides the fixed ones
//   CAIRN_DIFF_WL_OPS=N           operations per seed (default 1000)
//   CAIRN_DIFF_MAX_MISMATCHES=N   keep going until N mismatches per seed (default 1)
//   CAIRN_DIFF_VERBOSE=1          print per-seed statistics (op mix, watchers, events compared)
//   CAIRN_DIFF_TRACE=1            print every operation and every watcher's summary
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient, decodeResponse, openKeepAlive, openWatch } from '../harness/client.js';
import type { BidiStream, CallResult, Msg } from '../harness/client.js';
import { startEtcd, startTarget, targetKind } from '../harness/procs.js';
import type { ServerOpts, ServerProc } from '../harness/procs.js';
import { b } from './gen.js';
import type { Op, Req } from './gen.js';
import { canon, canonResult, envInt, escapeBytes, firstDiff, requestJson, short } from './normalize.js';
import type { CanonResult } from './normalize.js';
import { SERVER_LEASE_PREFIX, WATCH_STREAMS, WatchLeaseGenerator } from './wlgen.js';
import type { LeaseRef, WlOp } from './wlgen.js';

const FIXED_SEEDS: readonly number[] = [101, 102, 103, 104];
const MAX_TXN_OPS = 128;

function seeds(): number[] {
  const out = [...FIXED_SEEDS];
  const extra = process.env['CAIRN_DIFF_SEED'];
  if (extra !== undefined && extra !== '') out.push(envInt('CAIRN_DIFF_SEED', 0));
  return out;
}

const OPS_PER_SEED = envInt('CAIRN_DIFF_WL_OPS', 1000);
const MAX_MISMATCHES = envInt('CAIRN_DIFF_MAX_MISMATCHES', 1);
const TARGET = targetKind();
/** CAIRN_DIFF_TRACE=1: print every operation. */
const TRACE = process.env['CAIRN_DIFF_TRACE'] === '1';
/** TTL seconds may differ this much between the servers (requests reach them at different times). */
const TTL_TOLERANCE = 2;
const DRAIN_DEADLINE_MS = 15_000;
const REPLY_DEADLINE_MS = 10_000;
/** A client-chosen lease ID the generator never uses: granted with the minimum TTL at the end, to expire. */
const EXPIRY_LEASE = '777';
const EXPIRY_DEADLINE_MS = 15_000;
const PROGRESS_TRIES = 5;
const PROGRESS_TRY_MS = 1_000;

// ---- small helpers ----

async function pollUntilAsync(cond: () => Promise<boolean>, deadlineMs: number): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((res) => setTimeout(res, 50));
  }
}

function pollUntil(cond: () => boolean, deadlineMs: number): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  return new Promise((resolve) => {
    const tick = (): void => {
      if (cond()) resolve(true);
      else if (Date.now() > end) resolve(false);
      else setTimeout(tick, 5);
    };
    tick();
  });
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Buffer.isBuffer(v) ? (v as Record<string, unknown>) : {};
}

function headerRev(m: Msg): number {
  const r = obj(m['header'])['revision'];
  return typeof r === 'string' ? Number(r) : -1;
}

function str(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v) ?? '';
}

/** Deep copy with every string under a `lease` or `ID` key passed through f (Buffers kept). */
function mapLeaseFields(v: unknown, f: (id: string) => string): unknown {
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return v.map((x) => mapLeaseFields(x, f));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      out[k] = (k === 'lease' || k === 'ID') && typeof x === 'string' ? f(x) : mapLeaseFields(x, f);
    }
    return out;
  }
  return v;
}

function describeWatch(req: Req): string {
  return requestJson(req);
}

/** etcd_debugging_mvcc_slow_watcher_total from the server's /metrics, if it exports it. */
async function unsyncedWatchers(s: Side): Promise<number | undefined> {
  try {
    const res = await fetch(`${s.proc.clientUrl}/metrics`, { signal: AbortSignal.timeout(REPLY_DEADLINE_MS) });
    if (!res.ok) return undefined;
    const m = /^etcd_debugging_mvcc_slow_watcher_total (\S+)$/m.exec(await res.text());
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

// ---- watch stream recording ----

interface EvId {
  rev: number;
  key: string;
  type: string;
}

function evIdStr(e: EvId | undefined): string {
  return e === undefined ? 'none' : `${e.type} "${escapeBytes(b(e.key))}" @${e.rev}`;
}

/** One watcher's recording: created reply, events (flattened), later control replies. */
interface WatcherLog {
  readonly stream: string;
  readonly seq: number;
  readonly req: Req;
  readonly id: string;
  readonly failed: boolean;
  readonly createdRev: number;
  /** First revision whose events it gets. */
  readonly startEff: number;
  /** Created synced (start 0 or in the future): one response per revision, header = that revision. */
  readonly live: boolean;
  /** Compacted revision (as the reference reported it) when the create was sent. */
  readonly compactFloor: number;
  state: 'active' | 'compacted' | 'canceled';
  /** Got a compaction cancel (no model: it gets nothing after it). */
  compacted: boolean;
  cancelRev: number;
  /** Canonical JSON of each created reply, event and control reply, in order. */
  readonly items: string[];
  readonly events: EvId[];
  lastRev: number;
  compared: number;
  /** DELETE events at the compacted revision left out (see the header comment). */
  droppedTombstones: number;
  modelUpTo: number;
  readonly expected: EvId[];
}

interface PendingCreate {
  req: Req;
  compactFloor: number;
  resolve: (log: WatcherLog) => void;
}

class WatchRec {
  readonly logs: WatcherLog[] = [];
  readonly active = new Map<string, WatcherLog>();
  readonly progress: string[] = [];
  readonly orphans: string[] = [];
  comparedProgress = 0;
  comparedOrphans = 0;
  private readonly pending: PendingCreate[] = [];

  constructor(
    readonly side: Side,
    readonly name: string,
    readonly bidi: BidiStream,
    readonly isHistory: boolean,
  ) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    for (;;) {
      let m: Msg;
      try {
        m = await this.bidi.next(60_000);
      } catch {
        if (this.bidi.ended !== undefined) return;
        continue;
      }
      this.dispatch(m);
    }
  }

  /** Sends a create; resolves with the watcher's log when the created reply arrives. */
  create(req: Req, compactFloor: number): Promise<WatcherLog | undefined> {
    const p = new Promise<WatcherLog>((resolve) => this.pending.push({ req, compactFloor, resolve }));
    this.bidi.send({ create_request: req });
    return Promise.race([p, new Promise<undefined>((res) => setTimeout(() => res(undefined), REPLY_DEADLINE_MS).unref())]);
  }

  private canonItem(m: unknown): string {
    return JSON.stringify(canon(mapLeaseFields(m, (id) => this.side.leaseMap.get(id) ?? id)));
  }

  private problem(text: string): void {
    this.side.problems.push(`${this.side.label} stream ${this.name}: ${text}`);
  }

  private dispatch(m: Msg): void {
    const id = str(m['watch_id']);
    const events = Array.isArray(m['events']) ? (m['events'] as Msg[]) : [];
    const rev = headerRev(m);
    if (m['header'] === null || m['header'] === undefined) this.problem(`response without header: ${short(canon(m))}`);
    if (m['created'] === true) {
      const p = this.pending.shift();
      if (p === undefined) {
        this.orphans.push(this.canonItem(m));
        return;
      }
      const start = Number(p.req['start_revision'] ?? 0);
      const failed = m['canceled'] === true;
      const log: WatcherLog = {
        stream: this.name,
        seq: this.logs.length,
        req: p.req,
        id,
        failed,
        createdRev: rev,
        startEff: start === 0 ? rev + 1 : start,
        live: start === 0 || start > rev,
        compactFloor: p.compactFloor,
        state: failed ? 'canceled' : 'active',
        compacted: false,
        cancelRev: failed ? rev : 0,
        items: [this.canonItem(m)],
        events: [],
        lastRev: 0,
        compared: 0,
        droppedTombstones: 0,
        modelUpTo: (start === 0 ? rev + 1 : start) - 1,
        expected: [],
      };
      this.logs.push(log);
      if (!failed) this.active.set(id, log);
      if (events.length > 0) this.problem(`created reply with events: ${short(canon(m))}`);
      p.resolve(log);
      return;
    }
    if (id === '-1' && events.length === 0 && m['canceled'] !== true) {
      this.progress.push(this.canonItem(m));
      return;
    }
    const log = this.active.get(id);
    if (log === undefined) {
      this.orphans.push(this.canonItem(m));
      return;
    }
    const plain =
      events.length > 0 &&
      m['canceled'] !== true &&
      m['created'] !== true &&
      str(m['compact_revision']) === '0' &&
      m['cancel_reason'] === '' &&
      m['fragment'] !== true;
    if (!plain) {
      log.items.push(this.canonItem(m));
      if (m['canceled'] === true) {
        if (str(m['compact_revision']) !== '0') {
          // The ID stays in use until the client cancels it (etcd keeps compacted watchers).
          log.state = 'compacted';
          log.compacted = true;
        } else {
          log.state = 'canceled';
          log.cancelRev = rev;
          this.active.delete(id);
        }
      }
      return;
    }
    const revs = events.map((e) => Number(obj(obj(e)['kv'])['mod_revision']));
    const first = revs[0] ?? 0;
    const last = revs[revs.length - 1] ?? 0;
    const where = `watcher ${id} (${describeWatch(log.req)}) response revision ${rev} events @${revs.join(',')}`;
    for (let i = 1; i < revs.length; i++) {
      if ((revs[i] ?? 0) < (revs[i - 1] ?? 0)) this.problem(`${where}: revisions decrease within a response`);
    }
    if (first <= log.lastRev) this.problem(`${where}: revision ${first} not after the previous response's last event (${log.lastRev}): a revision split or repeated`);
    if (last > rev) this.problem(`${where}: header revision below the last event's revision`);
    if (log.live && (first !== last || last !== rev)) this.problem(`${where}: a watcher created synced must get one response per revision, header = that revision`);
    log.lastRev = last;
    for (const e of events) {
      const kv = obj(obj(e)['kv']);
      const key = Buffer.isBuffer(kv['key']) ? kv['key'].toString('latin1') : '';
      const ev: EvId = { rev: Number(kv['mod_revision']), key, type: str(obj(e)['type']) };
      if (log.startEff === log.compactFloor && ev.rev === log.compactFloor && ev.type === 'DELETE') {
        log.droppedTombstones++;
        continue;
      }
      log.events.push(ev);
      log.items.push(this.canonItem(e));
      if (this.isHistory) {
        let list = this.side.history.get(ev.rev);
        if (list === undefined) {
          list = [];
          this.side.history.set(ev.rev, list);
        }
        list.push(ev);
        if (ev.rev > this.side.historyUpTo) this.side.historyUpTo = ev.rev;
      }
    }
  }

  cancelWatch(id: string): void {
    this.bidi.send({ cancel_request: { watch_id: id } });
  }

  requestProgress(): void {
    this.bidi.send({ progress_request: {} });
  }
}

// ---- the model: which events a watcher must get, from the history watcher's recording ----

function inRange(log: WatcherLog, key: string): boolean {
  const k0 = Buffer.isBuffer(log.req['key']) ? log.req['key'].toString('latin1') : '';
  const k = k0 === '' ? '\x00' : k0;
  const end = Buffer.isBuffer(log.req['range_end']) ? log.req['range_end'].toString('latin1') : '';
  if (end === '') return key === k;
  if (end === '\x00') return key >= k;
  return key >= k && key < end;
}

function filtered(log: WatcherLog, type: string): boolean {
  const fs = Array.isArray(log.req['filters']) ? (log.req['filters'] as unknown[]) : [];
  return (type === 'PUT' && fs.includes('NOPUT')) || (type === 'DELETE' && fs.includes('NODELETE'));
}

function extendModel(side: Side, log: WatcherLog, upTo: number): void {
  for (let r = log.modelUpTo + 1; r <= upTo; r++) {
    for (const ev of side.history.get(r) ?? []) {
      if (!inRange(log, ev.key) || filtered(log, ev.type)) continue;
      if (log.startEff === log.compactFloor && r === log.compactFloor && ev.type === 'DELETE') continue;
      log.expected.push(ev);
    }
  }
  if (upTo > log.modelUpTo) log.modelUpTo = upTo;
}

// ---- one server of the pair ----

class Side {
  proc: ServerProc;
  client: EtcdClient;
  keepAlive: BidiStream;
  history = new Map<number, EvId[]>();
  historyUpTo = 0;
  historyRec: WatchRec;
  streams: (WatchRec | undefined)[] = [];
  /** Current revision: the highest header revision seen. */
  rev = 1;
  /** Server-chosen lease IDs: actual ID → "@S<n>", and back. */
  readonly leaseMap = new Map<string, string>();
  readonly leaseIds = new Map<string, string>();
  readonly problems: string[] = [];
  problemsReported = 0;

  private constructor(
    readonly label: string,
    readonly start: (opts: ServerOpts) => Promise<ServerProc>,
    proc: ServerProc,
  ) {
    this.proc = proc;
    this.client = new EtcdClient(proc.endpoint);
    this.keepAlive = openKeepAlive(this.client);
    this.historyRec = new WatchRec(this, 'history', openWatch(this.client), true);
  }

  static async create(label: string, start: (opts: ServerOpts) => Promise<ServerProc>): Promise<Side> {
    const s = new Side(label, start, await start({}));
    await s.startHistory(1);
    return s;
  }

  /** The history watcher: all keys from revision `from`, prev_kv, alone on its stream. */
  private async startHistory(from: number): Promise<void> {
    // Revision 1 (the empty store) has no events.
    this.historyUpTo = Math.max(this.historyUpTo, from - 1, 1);
    const log = await this.historyRec.create({ key: b('\x00'), range_end: b('\x00'), start_revision: String(from), prev_kv: true }, 0);
    if (log === undefined || log.failed) throw new Error(`${this.label}: the history watcher was not created`);
  }

  stream(i: number): WatchRec {
    let s = this.streams[i];
    if (s === undefined) {
      s = new WatchRec(this, `s${i}`, openWatch(this.client), false);
      this.streams[i] = s;
    }
    return s;
  }

  recs(): WatchRec[] {
    const out = [this.historyRec];
    for (let i = 0; i < WATCH_STREAMS; i++) {
      const s = this.streams[i];
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  /** Request with "@S<n>" references replaced by this server's IDs. */
  materialize<T>(req: T): T {
    return mapLeaseFields(req, (x) => (x.startsWith(SERVER_LEASE_PREFIX) ? (this.leaseIds.get(x) ?? '999999999999') : x)) as T;
  }

  canonResult(r: CallResult<Msg>): CanonResult {
    const c = canonResult(r.ok ? { ok: true, value: mapLeaseFields(r.value, (id) => this.leaseMap.get(id) ?? id) as Msg } : r);
    return c;
  }

  noteRev(r: CallResult<Msg>): number | undefined {
    if (!r.ok) return undefined;
    const rev = headerRev(r.value);
    if (rev > this.rev) this.rev = rev;
    return rev >= 0 ? rev : undefined;
  }

  private closeStreams(): void {
    for (const r of this.recs()) r.bidi.cancel();
    this.keepAlive.cancel();
  }

  /** SIGTERM, start on the same data dir; new keep-alive stream and history watcher (from rev+1). */
  async restart(): Promise<void> {
    this.closeStreams();
    this.client.close();
    await this.proc.stop();
    this.proc = await this.start({ dataDir: this.proc.dataDir, name: this.proc.name });
    this.client = new EtcdClient(this.proc.endpoint);
    this.keepAlive = openKeepAlive(this.client);
    this.streams = [];
    this.historyRec = new WatchRec(this, 'history', openWatch(this.client), true);
    await this.startHistory(this.rev + 1);
  }

  async close(): Promise<void> {
    this.closeStreams();
    this.client.close();
    await this.proc.stop();
  }
}

// ---- the run of one seed ----

type Sides = readonly [Side, Side];

class Run {
  readonly mismatches: string[] = [];
  readonly notes: string[] = [];
  opIndex = 0;
  opDesc = '';
  /**
   * TTL difference allowed between the servers. After a restart each server restarts the lease
   * clocks when it is ready (etcd: when it becomes leader, plus one election timeout, 1 s), so
   * the difference between the two ready times is added, and one second for etcd's extension.
   */
  ttlTolerance = TTL_TOLERANCE;

  constructor(
    readonly seed: number,
    readonly gen: WatchLeaseGenerator,
    readonly sides: Sides,
  ) {}

  readonly stats = { watchers: 0, refused: 0, compactedCancels: 0, clientCancels: 0, events: 0, prevKvs: 0, progress: 0, droppedTombstones: 0 };

  /** Adds the reference's recordings to the stats (before they are dropped at a restart). */
  tally(recs: WatchRec[]): void {
    for (const r of recs) {
      this.stats.progress += r.progress.length;
      for (const l of r.logs) {
        if (l.failed) this.stats.refused++;
        else this.stats.watchers++;
        if (l.compacted) this.stats.compactedCancels++;
        if (TRACE) console.log(`watcher ${r.name}#${l.seq} id ${l.id} start ${str(l.req['start_revision'] ?? 0)} floor ${l.compactFloor} state ${l.state} compacted ${String(l.compacted)} events ${l.events.length} items ${l.items.length}`);
        if (l.state === 'canceled' && !l.failed) this.stats.clientCancels++;
        this.stats.events += l.events.length;
        this.stats.prevKvs += l.items.filter((x) => x.includes('"prev_kv":{')).length;
        this.stats.droppedTombstones += l.droppedTombstones;
      }
    }
  }

  get ref(): Side {
    return this.sides[0];
  }
  get tgt(): Side {
    return this.sides[1];
  }
  done(): boolean {
    return this.mismatches.length >= MAX_MISMATCHES;
  }

  mismatch(text: string): void {
    this.mismatches.push(`seed ${this.seed} op #${this.opIndex} (${this.opDesc}): ${text}`);
  }

  report(what: string, req: string, c1: unknown, c2: unknown): void {
    const where = firstDiff(c1, c2) ?? '?';
    this.mismatch([`${what} differs at ${where}`, `  request:   ${req}`, `  reference: ${short(c1)}`, `  ${TARGET.padEnd(9)}: ${short(c2)}`].join('\n'));
  }

  /** gRPC UNAVAILABLE from the reference means it crashed or hung: a generator bug. */
  assertReferenceAlive(r: CanonResult, what: string): void {
    if (!r.ok && (r.code === 'UNAVAILABLE' || r.code === 'DEADLINE_EXCEEDED')) {
      const tail = this.ref.proc.stderrLines().slice(-15).join('\n');
      assert.fail(`seed ${this.seed}: reference etcd failed on ${what}: ${r.code} ${r.details}\nreference stderr tail:\n${tail}`);
    }
  }

  /** One unary request to both servers; responses compared (TTLs with a tolerance, lease lists as sets). */
  async unary(service: string, method: string, req: Req, raw?: Buffer): Promise<[CallResult<Msg>, CallResult<Msg>]> {
    const call = async (s: Side): Promise<CallResult<Msg>> => {
      if (raw !== undefined) {
        const r = await s.client.unaryRaw(service, method, raw);
        return r.ok ? { ok: true, value: decodeResponse(service, method, r.value) } : r;
      }
      return s.client.unary(service, method, s.materialize(req));
    };
    const [r1, r2] = await Promise.all([call(this.ref), call(this.tgt)]);
    this.ref.noteRev(r1);
    this.tgt.noteRev(r2);
    return [r1, r2];
  }

  compareUnary(method: string, req: Req, r1: CallResult<Msg>, r2: CallResult<Msg>, raw?: Buffer): void {
    const desc = `${method} ${requestJson(req)}${raw === undefined ? '' : ` raw bytes "${escapeBytes(raw)}"`}`;
    const c1 = this.ref.canonResult(r1);
    const c2 = this.tgt.canonResult(r2);
    this.assertReferenceAlive(c1, desc);
    const [n1, n2] = this.normalizeLease(method, c1, c2);
    if (firstDiff(n1, n2) !== undefined) this.report(method, desc, c1, c2);
  }

  /** TimeToLive: keys sorted, TTLs within the tolerance made equal; LeaseLeases: IDs sorted. */
  private normalizeLease(method: string, c1: CanonResult, c2: CanonResult): [unknown, unknown] {
    if (!c1.ok || !c2.ok) return [c1, c2];
    const v1 = { ...obj(c1.value) };
    const v2 = { ...obj(c2.value) };
    if (method === 'LeaseTimeToLive') {
      for (const v of [v1, v2]) if (Array.isArray(v['keys'])) v['keys'] = [...(v['keys'] as string[])].sort();
      const t1 = Number(v1['TTL']);
      const t2 = Number(v2['TTL']);
      if (t1 >= 0 && t2 >= 0 && Math.abs(t1 - t2) <= this.ttlTolerance) {
        v1['TTL'] = '~';
        v2['TTL'] = '~';
      }
    }
    if (method === 'LeaseLeases') {
      for (const v of [v1, v2]) {
        if (Array.isArray(v['leases'])) v['leases'] = [...(v['leases'] as unknown[])].map((x) => JSON.stringify(x)).sort();
      }
    }
    return [{ ok: true, value: v1 }, { ok: true, value: v2 }];
  }

  // ---- watch recordings ----

  /** Compares the new part of every recording; `final` (after a drain): lengths must agree too. */
  compareRecordings(final: boolean): void {
    const names = ['history', ...Array.from({ length: WATCH_STREAMS }, (_, i) => `s${i}`)];
    for (const name of names) {
      const r1 = this.ref.recs().find((r) => r.name === name);
      const r2 = this.tgt.recs().find((r) => r.name === name);
      if (r1 === undefined || r2 === undefined) continue;
      this.compareRec(r1, r2, final);
      if (this.done()) return;
    }
    for (const s of this.sides) {
      while (s.problemsReported < s.problems.length) {
        this.mismatch(s.problems[s.problemsReported++] ?? '');
        if (this.done()) return;
      }
    }
  }

  private compareRec(r1: WatchRec, r2: WatchRec, final: boolean): void {
    const n = Math.min(r1.logs.length, r2.logs.length);
    for (let i = 0; i < n; i++) {
      const l1 = r1.logs[i];
      const l2 = r2.logs[i];
      if (l1 === undefined || l2 === undefined) break;
      const m = Math.min(l1.items.length, l2.items.length);
      for (let j = l1.compared; j < m; j++) {
        const a = l1.items[j] ?? '';
        const c = l2.items[j] ?? '';
        if (a !== c) {
          this.watchMismatch(r1, l1, j, JSON.parse(a), JSON.parse(c));
          return;
        }
      }
      l1.compared = m;
      l2.compared = m;
      if (final && l1.items.length !== l2.items.length) {
        const a = l1.items[m];
        const c = l2.items[m];
        this.watchMismatch(r1, l1, m, a === undefined ? '(nothing more)' : JSON.parse(a), c === undefined ? '(nothing more)' : JSON.parse(c));
        return;
      }
    }
    if (final && r1.logs.length !== r2.logs.length) {
      this.mismatch(`watch stream ${r1.name}: ${r1.logs.length} created replies from the reference, ${r2.logs.length} from ${TARGET}`);
      return;
    }
    if (final) {
      for (const [what, a, c, k] of [
        ['progress replies', r1.progress, r2.progress, 'comparedProgress'],
        ['replies for no known watcher', r1.orphans, r2.orphans, 'comparedOrphans'],
      ] as const) {
        const from = r1[k];
        if (a.length !== c.length || a.slice(from).some((x, i) => x !== c[from + i])) {
          this.mismatch(
            `watch stream ${r1.name}: ${what} differ\n  reference: [${a.slice(from).join(', ')}]\n  ${TARGET.padEnd(9)}: [${c.slice(from).join(', ')}]`,
          );
          return;
        }
        r1[k] = a.length;
        r2[k] = c.length;
      }
    }
  }

  private watchMismatch(rec: WatchRec, log: WatcherLog, item: number, a: unknown, c: unknown): void {
    const where = firstDiff(a, c) ?? '?';
    this.mismatch(
      [
        `watch stream ${rec.name} watcher #${log.seq} (watch_id ${log.id}, create ${describeWatch(log.req)}): item ${item} ` +
          `(0 = created reply, then events and control replies in order) differs at ${where}`,
        `  reference: ${short(a)}`,
        `  ${TARGET.padEnd(9)}: ${short(c)}`,
      ].join('\n'),
    );
  }

  /** Waits until every watcher of both servers delivered everything up to the current revision. */
  async drain(): Promise<void> {
    const results = await Promise.all(this.sides.map((s) => this.drainSide(s)));
    for (const problems of results) for (const p of problems) this.mismatch(p);
    if (!this.done()) this.compareRecordings(true);
  }

  private async drainSide(s: Side): Promise<string[]> {
    const target = s.rev;
    if (!(await pollUntil(() => s.historyUpTo >= target, DRAIN_DEADLINE_MS))) {
      return [`${s.label}: the history watcher (all keys, from revision 1) delivered revisions up to ${s.historyUpTo} only, current revision ${target}, after ${DRAIN_DEADLINE_MS} ms`];
    }
    const logs: WatcherLog[] = [];
    const recOf = new Map<WatcherLog, WatchRec>();
    for (const rec of s.recs()) {
      if (rec.isHistory) continue;
      for (const log of rec.logs) {
        if (log.failed || log.compacted) continue;
        extendModel(s, log, log.state === 'canceled' ? log.cancelRev : target);
        logs.push(log);
        recOf.set(log, rec);
      }
    }
    // A watcher from below the compacted revision gets its compaction cancel (a bit later).
    const behind = (l: WatcherLog): boolean =>
      !l.compacted && (l.startEff < l.compactFloor || l.events.length < l.expected.length);
    if (!(await pollUntil(() => !logs.some(behind), DRAIN_DEADLINE_MS))) {
      const short1 = logs.filter(behind);
      return short1.slice(0, 3).map(
        (l) =>
          `${s.label}: watch stream ${l.stream} watcher #${l.seq} (watch_id ${l.id}, create ${describeWatch(l.req)}) delivered ` +
          `${l.events.length} of the ${l.expected.length} events up to revision ${target} after ${DRAIN_DEADLINE_MS} ms; ` +
          `last delivered ${evIdStr(l.events[l.events.length - 1])}, next expected ${evIdStr(l.expected[l.events.length])}` +
          `${l.startEff < l.compactFloor ? ` or rather a compaction cancel (compacted revision ${l.compactFloor})` : ''}; ` +
          `items ${l.items.length}, stream replies for no known watcher: ${short(recOf.get(l)?.orphans.slice(-3))}`,
      );
    }
    const problems: string[] = [];
    for (const l of logs) {
      if (l.compacted) continue;
      const i = l.events.findIndex((e, k) => {
        const x = l.expected[k];
        return x === undefined || x.rev !== e.rev || x.key !== e.key || x.type !== e.type;
      });
      if (i >= 0) {
        problems.push(
          `${s.label}: watch stream ${l.stream} watcher #${l.seq} (watch_id ${l.id}, create ${describeWatch(l.req)}) event ${i} is ` +
            `${evIdStr(l.events[i])}, the history says ${evIdStr(l.expected[i])} (${l.events.length} delivered, ${l.expected.length} expected)`,
        );
      }
    }
    return problems;
  }

  /**
   * Waits until no watcher is catching up, on the servers that export etcd's gauge of unsynced
   * watchers (etcd_debugging_mvcc_slow_watcher_total on /metrics). A drain cannot tell: a watcher
   * from an old revision with no matching event delivers nothing, synced or not, and etcd moves
   * unsynced watchers to the synced group every 100 ms; a compaction past its start revision
   * before that cancels it.
   */
  private async waitSynced(): Promise<void> {
    for (const s of this.sides) {
      const end = Date.now() + DRAIN_DEADLINE_MS;
      for (;;) {
        const n = await unsyncedWatchers(s);
        if (n === undefined || n === 0) break;
        if (Date.now() > end) {
          this.mismatch(`${s.label}: still ${n} unsynced watcher(s) (etcd_debugging_mvcc_slow_watcher_total) after ${DRAIN_DEADLINE_MS} ms`);
          return;
        }
        await new Promise((res) => setTimeout(res, 10));
      }
    }
  }

  // ---- operations ----

  async exec(op: WlOp): Promise<void> {
    switch (op.kind) {
      case 'kv':
        return this.kv(op.op);
      case 'grant':
        return this.grant(op);
      case 'revoke':
        return this.revoke(String(op.req['ID']));
      case 'leaseKv': {
        const [r1, r2] = await this.unary('KV', op.method, op.req);
        this.compareUnary(op.method, op.req, r1, r2);
        this.gen.observeKv({ kind: op.method === 'Put' ? 'put' : 'txn', method: op.method, req: op.req }, r1.ok ? r1.value : undefined, this.ref.noteRev(r1));
        return;
      }
      case 'timeToLive': {
        const [r1, r2] = await this.unary('Lease', 'LeaseTimeToLive', op.req);
        this.compareUnary('LeaseTimeToLive', op.req, r1, r2);
        return;
      }
      case 'leases': {
        const [r1, r2] = await this.unary('Lease', 'LeaseLeases', {});
        this.compareUnary('LeaseLeases', {}, r1, r2);
        return;
      }
      case 'keepAlive':
        return this.keepAlive(op.ids);
      case 'watchCreate':
        return this.watchCreate(op.stream, op.req);
      case 'watchCancel':
        return this.watchCancel(op.stream, op.watchId);
      case 'progress':
        return this.progress(op.stream);
      case 'checkpoint':
        return this.drain();
    }
  }

  private async kv(op: Op): Promise<void> {
    // Compaction decides which watchers get canceled and which prev_kv are still readable: no
    // watcher may be catching up when it happens.
    if (op.kind === 'compact') {
      await this.drain();
      if (this.done()) return;
      await this.waitSynced();
    }
    if (this.done()) return;
    const [r1, r2] = await this.unary('KV', op.method, op.req, op.raw);
    this.compareUnary(op.method, op.req, r1, r2, op.raw);
    this.gen.observeKv(op, r1.ok ? r1.value : undefined, this.ref.noteRev(r1));
  }

  private async grant(op: Extract<WlOp, { kind: 'grant' }>): Promise<void> {
    const [r1, r2] = await this.unary('Lease', 'LeaseGrant', op.req);
    const ref = this.gen.observeGrant(op, r1.ok);
    if (op.serverChosen && ref !== undefined) {
      // Map each server's ID to the same reference, by order of creation on the reference.
      for (const [s, r] of [
        [this.ref, r1],
        [this.tgt, r2],
      ] as const) {
        if (!r.ok) continue;
        const id = str(r.value['ID']);
        s.leaseMap.set(id, ref);
        s.leaseIds.set(ref, id);
      }
    }
    this.compareUnary('LeaseGrant', op.req, r1, r2);
    if (op.revokeAfter && ref !== undefined) await this.revoke(ref);
  }

  private async revoke(ref: LeaseRef): Promise<void> {
    const req = { ID: ref };
    const [r1, r2] = await this.unary('Lease', 'LeaseRevoke', req);
    this.compareUnary('LeaseRevoke', req, r1, r2);
    this.gen.observeRevoke(ref, r1.ok);
    this.gen.observeRevision(this.ref.noteRev(r1));
  }

  private async keepAlive(ids: LeaseRef[]): Promise<void> {
    for (const ref of ids) {
      const req = { ID: ref };
      const replies = await Promise.all(
        this.sides.map(async (s): Promise<CanonResult> => {
          s.keepAlive.send(s.materialize(req));
          try {
            const m = await s.keepAlive.next(REPLY_DEADLINE_MS);
            const rev = headerRev(m);
            if (rev > s.rev) s.rev = rev;
            return s.canonResult({ ok: true, value: m });
          } catch (e) {
            return { ok: false, code: 'NO_REPLY', details: e instanceof Error ? e.message : String(e) };
          }
        }),
      );
      const [c1, c2] = replies;
      if (c1 === undefined || c2 === undefined) return;
      if (!c1.ok) assert.fail(`seed ${this.seed}: reference etcd keep-alive for ${ref}: ${c1.details}`);
      if (firstDiff(c1, c2) !== undefined) this.report('LeaseKeepAlive', `LeaseKeepAlive ${requestJson(req)}`, c1, c2);
      if (this.done()) return;
    }
  }

  private async watchCreate(stream: number, req: Req): Promise<void> {
    const floor = this.gen.kv.seen.compacted;
    const [l1, l2] = await Promise.all(this.sides.map((s) => s.stream(stream).create(req, floor)));
    if (l1 === undefined) assert.fail(`seed ${this.seed}: reference etcd sent no created reply for ${describeWatch(req)} within ${REPLY_DEADLINE_MS} ms`);
    if (l2 === undefined) {
      this.mismatch(`watch stream s${stream}: no created reply for ${describeWatch(req)} within ${REPLY_DEADLINE_MS} ms (reference: ${l1.items[0] ?? ''})`);
      return;
    }
    if (l1.createdRev > this.ref.rev) this.ref.rev = l1.createdRev;
    this.gen.observeWatchCreated(stream, l1.failed ? undefined : l1.id);
  }

  private async watchCancel(stream: number, watchId: string): Promise<void> {
    await this.drain();
    if (this.done()) return;
    const logs = this.sides.map((s) => s.stream(stream).active.get(watchId));
    const [l1, l2] = logs;
    for (const s of this.sides) s.stream(stream).cancelWatch(watchId);
    if (l1 === undefined) return; // unknown: no reply (a reply would show up as an unknown watcher's)
    if (l2 === undefined) {
      this.mismatch(`watch stream s${stream}: cancel of watch_id ${watchId}: the reference has this watcher, ${TARGET} does not`);
      return;
    }
    const [ok1, ok2] = await Promise.all([l1, l2].map((l) => pollUntil(() => l.state === 'canceled', REPLY_DEADLINE_MS)));
    if (ok1 !== true) assert.fail(`seed ${this.seed}: reference etcd did not confirm the cancel of watch_id ${watchId}`);
    if (ok2 !== true) this.mismatch(`watch stream s${stream}: no canceled reply for the cancel of watch_id ${watchId} (${describeWatch(l2.req)}) within ${REPLY_DEADLINE_MS} ms`);
    this.gen.observeWatchCanceled(stream, watchId);
  }

  private async progress(stream: number): Promise<void> {
    await this.drain();
    if (this.done()) return;
    const rec = this.ref.streams[stream];
    if (rec === undefined || rec.active.size === 0) return;
    for (const l of rec.active.values()) {
      if (l.state !== 'active' || Number(l.req['start_revision'] ?? 0) > this.ref.rev) return;
    }
    const [r1, r2] = [this.ref.stream(stream), this.tgt.stream(stream)];
    const [before1, before2] = [r1.progress.length, r2.progress.length];
    r1.requestProgress();
    if (!(await pollUntil(() => r1.progress.length > before1, REPLY_DEADLINE_MS))) {
      assert.fail(`seed ${this.seed}: reference etcd sent no progress reply on stream s${stream}`);
    }
    // 3.5+ semantics: nothing while a watcher is not (yet) in the synced group; the client asks again.
    let tries = 0;
    for (; tries < PROGRESS_TRIES; tries++) {
      r2.requestProgress();
      if (await pollUntil(() => r2.progress.length > before2, PROGRESS_TRY_MS)) break;
    }
    if (tries === PROGRESS_TRIES) {
      this.mismatch(
        `watch stream s${stream}: no progress reply to ${PROGRESS_TRIES} requests ${PROGRESS_TRY_MS} ms apart (every watcher had delivered all its events; ` +
          `watchers ${[...rec.active.values()].map((l) => `#${l.seq} ${describeWatch(l.req)}`).join(', ')}; reference: ${r1.progress.at(-1) ?? ''})`,
      );
      return;
    }
    this.compareRecordings(true);
  }

  /**
   * Lease expiry: a lease with the minimum TTL and three keys, left to expire on both servers.
   * The keys must go in one revision (DELETE events, keys in order), which the next drain
   * compares like every other revision.
   */
  async expiry(): Promise<void> {
    const grant = { ID: EXPIRY_LEASE, TTL: '1' };
    const [g1, g2] = await this.unary('Lease', 'LeaseGrant', grant);
    this.compareUnary('LeaseGrant', grant, g1, g2);
    if (!g1.ok) assert.fail(`seed ${this.seed}: reference etcd refused ${JSON.stringify(grant)}: ${g1.details}`);
    for (const key of ['b\x00', 'a', 'ab']) {
      const req = { key: b(key), value: b('expiring'), lease: EXPIRY_LEASE };
      const [r1, r2] = await this.unary('KV', 'Put', req);
      this.compareUnary('Put', req, r1, r2);
    }
    const gone = await Promise.all(
      this.sides.map((s) =>
        pollUntilAsync(async () => {
          const r = await s.client.unary('Lease', 'LeaseTimeToLive', { ID: EXPIRY_LEASE });
          return r.ok && str(r.value['TTL']) === '-1';
        }, EXPIRY_DEADLINE_MS),
      ),
    );
    if (gone[0] !== true) assert.fail(`seed ${this.seed}: reference etcd did not expire lease ${EXPIRY_LEASE} within ${EXPIRY_DEADLINE_MS} ms`);
    if (gone[1] !== true) {
      this.mismatch(`lease ${EXPIRY_LEASE} (TTL 1 → 2 s) did not expire within ${EXPIRY_DEADLINE_MS} ms`);
      return;
    }
    // Both revisions now include the expiry's deletes (Range answers with the current revision).
    const req = { key: b('\x00'), range_end: b('\x00'), count_only: true };
    const [r1, r2] = await this.unary('KV', 'Range', req);
    this.compareUnary('Range', req, r1, r2);
    this.gen.observeRevision(this.ref.noteRev(r1));
  }

  /** TimeToLive (with keys) of every lease ever granted, and LeaseLeases; `fresh`: TTLs must be near the granted TTL. */
  async checkLeases(fresh: boolean): Promise<void> {
    for (const ref of this.gen.allLeases()) {
      const req = { ID: ref, keys: true };
      const [r1, r2] = await this.unary('Lease', 'LeaseTimeToLive', req);
      this.compareUnary('LeaseTimeToLive', req, r1, r2);
      if (fresh) {
        for (const [s, r] of [
          [this.ref, r1],
          [this.tgt, r2],
        ] as const) {
          if (!r.ok || str(r.value['TTL']) === '-1') continue;
          const ttl = Number(r.value['TTL']);
          const granted = Number(r.value['grantedTTL']);
          if (ttl < granted - TTL_TOLERANCE) {
            this.mismatch(`${s.label}: right after the restart lease ${ref} has TTL ${ttl}, granted ${granted}: expiry not refreshed`);
          }
        }
      }
      if (this.done()) return;
    }
    const [r1, r2] = await this.unary('Lease', 'LeaseLeases', {});
    this.compareUnary('LeaseLeases', {}, r1, r2);
  }
}

async function runSeed(seed: number): Promise<void> {
  const [ref, tgt] = await Promise.all([Side.create('reference etcd', startEtcd), Side.create(TARGET, (o) => startTarget(TARGET, o))]);
  const gen = new WatchLeaseGenerator(seed, { maxTxnOps: MAX_TXN_OPS });
  const run = new Run(seed, gen, [ref, tgt]);
  const restartAt = Math.floor(OPS_PER_SEED / 2);
  const counts = new Map<string, number>();
  try {
    for (let i = 0; i < OPS_PER_SEED && !run.done(); i++) {
      run.opIndex = i;
      if (i === restartAt) {
        run.opDesc = 'restart';
        await run.drain();
        if (run.done()) break;
        run.tally(ref.recs());
        // Both restarts settle before anything else (a failed one must not leave the other running).
        const readyAt = await Promise.allSettled(
          [ref, tgt].map(async (s) => {
            await s.restart();
            return Date.now();
          }),
        );
        const times = readyAt.map((r) => {
          if (r.status === 'rejected') throw r.reason;
          return r.value;
        });
        run.ttlTolerance = TTL_TOLERANCE + 1 + Math.ceil(Math.abs((times[0] ?? 0) - (times[1] ?? 0)) / 1000);
        gen.resetStreams();
        await run.checkLeases(true);
        if (run.done()) break;
      }
      const op = gen.next();
      run.opDesc = op.kind === 'kv' ? `${op.op.kind}${i > restartAt ? ' after restart' : ''}` : `${op.kind}${i > restartAt ? ' after restart' : ''}`;
      counts.set(op.kind, (counts.get(op.kind) ?? 0) + 1);
      if (TRACE) console.log(`#${i} rev ${ref.rev} compacted ${gen.kv.seen.compacted}: ${short(canon(op))}`);
      await run.exec(op);
      if (!run.done()) run.compareRecordings(false);
    }
    run.opIndex = OPS_PER_SEED;
    run.opDesc = 'lease expiry';
    if (!run.done()) await run.expiry();
    run.opDesc = 'final';
    if (!run.done()) await run.drain();
    if (!run.done()) await run.checkLeases(false);
  } finally {
    await Promise.all([ref.close(), tgt.close()]);
  }
  if (run.mismatches.length > 0) {
    const tail = tgt.proc.stderrLines().slice(-10).join('\n');
    assert.fail(
      `${run.mismatches.length} mismatch(es) between reference etcd and ${TARGET} ` +
        `(replay: CAIRN_DIFF_SEED=${seed} CAIRN_DIFF_WL_OPS=${OPS_PER_SEED}):\n${run.mismatches.join('\n\n')}\n${TARGET} stderr tail:\n${tail}`,
    );
  }
  // The run must have exercised what it claims to.
  run.tally(ref.recs());
  const st = run.stats;
  if (process.env['CAIRN_DIFF_VERBOSE'] === '1') console.log(`seed ${seed}: revision ${ref.rev}, ops ${JSON.stringify(Object.fromEntries(counts))}, ${JSON.stringify(st)}`);
  if (OPS_PER_SEED >= 1000) {
    assert.ok(st.watchers >= 10 && st.events > 100, `seed ${seed}: too little watching: ${JSON.stringify(st)}`);
    assert.ok((counts.get('grant') ?? 0) > 5 && (counts.get('leaseKv') ?? 0) > 20, `seed ${seed}: op mix ${JSON.stringify(Object.fromEntries(counts))}`);
  }
}

for (const seed of seeds()) {
  test(`Watch/Lease diff vs etcd: seed ${seed}, ${OPS_PER_SEED} ops (target ${TARGET})`, { timeout: 300_000 }, () => runSeed(seed));
}

// Behaviours of current etcd (3.5+, and the 3.4.x/3.5.x backports of etcd PR 20229) that etcd
// 3.4.23 lacks (see the header comment), checked against the target only. RequestProgress
// (watchable_store.progressIfSync): a reply only if every watcher of the stream is in the synced
// group and the store revision has reached its requested start_revision; start_revision 0 does
// not hold it back (PR 20229 passes the requested value, not current+1, to the store); a watcher
// canceled by compaction stays on the stream (not synced) until the client cancels it.
test('Watch (etcd 3.5+): negative start_revision refused; RequestProgress only when every watcher is synced and at its start revision', { skip: TARGET === 'etcd' ? 'etcd 3.4.23 behaves as described in the header comment' : false }, async () => {
  const srv = await startTarget(TARGET);
  const c = new EtcdClient(srv.endpoint);
  const w = openWatch(c);
  const reply = async (): Promise<Record<string, unknown>> => {
    const m = await w.next(REPLY_DEADLINE_MS);
    const events = Array.isArray(m['events']) ? (m['events'] as Msg[]).map((e) => `${str(e['type'])} ${str(obj(e['kv'])['mod_revision'])}`) : [];
    return { watch_id: m['watch_id'], created: m['created'], canceled: m['canceled'], compact_revision: m['compact_revision'], cancel_reason: m['cancel_reason'], events, revision: headerRev(m) };
  };
  const created = (id: string, revision: number): Record<string, unknown> => ({ watch_id: id, created: true, canceled: false, compact_revision: '0', cancel_reason: '', events: [], revision });
  const progress = (revision: number): Record<string, unknown> => ({ watch_id: '-1', created: false, canceled: false, compact_revision: '0', cancel_reason: '', events: [], revision });
  try {
    for (const k of ['k0', 'k1', 'k2']) assert.equal((await c.put({ key: b(k), value: b('v') })).ok, true); // revisions 2..4
    // v3rpc recvLoop: start_revision < 0 → ErrCompacted as cancel_reason, watch_id -1, header = current revision.
    w.send({ create_request: { key: b('k0'), start_revision: '-1' } });
    assert.deepEqual(await reply(), { watch_id: '-1', created: true, canceled: true, compact_revision: '0', cancel_reason: 'etcdserver: mvcc: required revision has been compacted', events: [], revision: 4 }, 'start_revision -1');
    // A stream without watchers: no reply (the next reply is the next create's).
    w.send({ progress_request: {} });
    w.send({ create_request: { key: b('x') } });
    assert.deepEqual(await reply(), created('0', 4), 'progress on a stream without watchers: nothing');
    // A watcher from now (start_revision 0), nothing written since: synced, one reply at the current revision.
    w.send({ progress_request: {} });
    assert.deepEqual(await reply(), progress(4), 'progress with a watcher from now on a quiet store');
    // A watcher from the next revision (explicit start_revision 5): nothing until the store reaches it.
    w.send({ create_request: { key: b('y'), start_revision: '5' } });
    assert.deepEqual(await reply(), created('1', 4), 'create from the next revision');
    w.send({ progress_request: {} });
    w.send({ create_request: { key: b('z') } });
    assert.deepEqual(await reply(), created('2', 4), 'progress with a watcher whose start revision is ahead: nothing');
    assert.equal((await c.put({ key: b('y'), value: b('v') })).ok, true); // revision 5
    assert.deepEqual(await reply(), { watch_id: '1', created: false, canceled: false, compact_revision: '0', cancel_reason: '', events: ['PUT 5'], revision: 5 }, 'event at the start revision');
    w.send({ progress_request: {} });
    assert.deepEqual(await reply(), progress(5), 'progress once the store reached the start revision');
    // A watcher canceled by compaction stays on the stream until the client cancels it, not synced: nothing.
    assert.equal((await c.compact({ revision: 3 })).ok, true);
    w.send({ create_request: { key: b('k1'), start_revision: '2', watch_id: '50' } });
    assert.deepEqual(await reply(), created('50', 5), 'create from below the compacted revision');
    assert.deepEqual(await reply(), { watch_id: '50', created: false, canceled: true, compact_revision: '3', cancel_reason: '', events: [], revision: 0 }, 'compaction cancel');
    w.send({ progress_request: {} });
    w.send({ create_request: { key: b('k2') } });
    assert.deepEqual(await reply(), created('3', 5), 'progress on a stream with a compacted watcher: nothing');
    w.send({ cancel_request: { watch_id: '50' } });
    assert.deepEqual(await reply(), { watch_id: '50', created: false, canceled: true, compact_revision: '0', cancel_reason: '', events: [], revision: 5 }, 'client cancel of the compacted watcher');
    w.send({ progress_request: {} });
    assert.deepEqual(await reply(), progress(5), 'progress once the compacted watcher is canceled');
  } finally {
    w.cancel();
    c.close();
    await srv.stop();
  }
});
