// Seeded generator of Watch and Lease operations for the watch/lease differential test
// (watch-lease-diff.test.ts). KV operations come from the KV generator (gen.ts) with the same
// seed; this adds lease grants/revokes, lease-attached puts and txns, TimeToLive, LeaseLeases,
// keep-alives and watch stream requests.
//
// Lease IDs in generated requests are strings: a decimal ID chosen by the client (the same on
// both servers) or "@S<n>", the n-th lease whose ID the server chose (LeaseGrant with ID 0): the
// runner replaces it with each server's own ID, and maps those IDs back to "@S<n>" in responses.
import { KEYS, KvOpGenerator, Prng, b, prefixEnd } from './gen.js';
import type { GenOptions, Op, Req } from './gen.js';

/** Prefix of a reference to a lease whose ID the server chose. */
export const SERVER_LEASE_PREFIX = '@S';
/** A lease in a generated request: a decimal ID, or SERVER_LEASE_PREFIX + creation index. */
export type LeaseRef = string;

/** Lease IDs the client picks: small, huge and negative (etcd accepts any non-zero int64). */
const CLIENT_LEASE_IDS: readonly string[] = ['1', '7', '42', '1000', '123456789', '-1', '-5', '9223372036854775807'];
/** IDs never granted. */
const NEVER_GRANTED: readonly string[] = ['424242', '-424242', '2'];
/** Long TTLs (nothing expires during a run) and the largest one allowed. */
const LONG_TTLS: readonly string[] = ['3600', '7200', '86400', '600'];
export const MAX_LEASE_TTL = '9000000000';
/** Below etcd's minimum (2 s with the default election timeout): raised to the minimum. */
const SHORT_TTLS: readonly string[] = ['1', '0', '-5', '2'];

/** Number of watch streams (besides the runner's own history watcher) and watchers per stream. */
export const WATCH_STREAMS = 3;
const MAX_ACTIVE_PER_STREAM = 6;

/** Watcher key shapes: exact keys (stored or absent), prefixes, ranges, from-key, everything. */
const WATCH_KEYS: readonly string[] = [...KEYS, 'c', 'aa', '\x00\x00'];
const WATCH_PREFIXES: readonly string[] = ['a', 'ab', 'b', '\xff', '\xff\xff', '\x00', 'c'];
const RANGE_POINTS: readonly string[] = ['\x00', 'a', 'a\x00', 'ab', 'abc', 'b', 'ba', 'c', '\xff', '\xff\xff', 'z'];
const VALUES: readonly string[] = ['', 'v', 'lv1', 'lv2', '\x00\xff', 'lease-value-0123456789'];

export type WlOp =
  /** A KV request of the KV generator (Range/Put/DeleteRange/Txn/Compact, or raw bytes). */
  | { kind: 'kv'; op: Op }
  /** LeaseGrant; `revokeAfter`: a short TTL, revoked right away (it would expire during the run). */
  | { kind: 'grant'; req: Req; serverChosen: boolean; revokeAfter: boolean }
  | { kind: 'revoke'; req: Req }
  /** KV Put or Txn whose requests carry lease IDs. */
  | { kind: 'leaseKv'; method: 'Put' | 'Txn'; req: Req }
  | { kind: 'timeToLive'; req: Req }
  | { kind: 'leases' }
  /** One LeaseKeepAlive request per ID on the keep-alive stream, each answered before the next. */
  | { kind: 'keepAlive'; ids: LeaseRef[] }
  /** A WatchCreateRequest on watch stream `stream`. */
  | { kind: 'watchCreate'; stream: number; req: Req }
  | { kind: 'watchCancel'; stream: number; watchId: string }
  | { kind: 'progress'; stream: number }
  /** Wait until every watcher delivered everything, and compare the recordings so far. */
  | { kind: 'checkpoint' };

export class WatchLeaseGenerator {
  readonly kv: KvOpGenerator;
  private readonly rng: Prng;
  /** Granted and not revoked, client-chosen IDs. */
  private readonly liveClient = new Set<string>();
  /** Granted and not revoked, server-chosen: creation indexes. */
  private readonly liveServer = new Set<number>();
  private serverCount = 0;
  /** Revoked leases (references stay valid: the runner keeps the ID mapping). */
  private readonly dead: LeaseRef[] = [];
  /** Per watch stream: watch IDs the reference created and that were not canceled by the client. */
  private streams: Set<string>[] = [];

  constructor(seed: number, opts: GenOptions) {
    this.kv = new KvOpGenerator(seed, opts);
    this.rng = new Prng((Math.imul(seed, 0x9e3779b1) ^ 0x5bd1e995) >>> 0);
    this.resetStreams();
  }

  /** All watch streams were closed (server restart). */
  resetStreams(): void {
    this.streams = Array.from({ length: WATCH_STREAMS }, () => new Set<string>());
  }

  /** Every lease reference ever granted (live or revoked), in a fixed order. */
  allLeases(): LeaseRef[] {
    const out = [...this.liveLeases(), ...this.dead];
    return [...new Set(out)];
  }

  liveLeases(): LeaseRef[] {
    const client = [...this.liveClient].sort();
    const server = [...this.liveServer].sort((x, y) => x - y).map((n) => `${SERVER_LEASE_PREFIX}${n}`);
    return [...client, ...server];
  }

  // ---- feedback from the reference ----

  /** A KV response (or a lease request that changed the store): revision and compaction. */
  observeKv(op: Op, response: Record<string, unknown> | undefined, headerRevision: number | undefined): void {
    this.kv.observe(op, response, headerRevision);
  }

  observeRevision(rev: number | undefined): void {
    if (rev !== undefined && rev > this.kv.seen.rev) this.kv.seen.rev = rev;
  }

  /** The reference granted (ok) or refused the grant. */
  observeGrant(op: Extract<WlOp, { kind: 'grant' }>, ok: boolean): LeaseRef | undefined {
    if (!ok) return undefined;
    if (op.serverChosen) {
      const n = this.serverCount++;
      this.liveServer.add(n);
      return `${SERVER_LEASE_PREFIX}${n}`;
    }
    const id = String(op.req['ID']);
    this.liveClient.add(id);
    return id;
  }

  observeRevoke(ref: LeaseRef, ok: boolean): void {
    if (!ok) return;
    if (ref.startsWith(SERVER_LEASE_PREFIX)) this.liveServer.delete(Number(ref.slice(SERVER_LEASE_PREFIX.length)));
    else this.liveClient.delete(ref);
    if (!this.dead.includes(ref)) this.dead.push(ref);
  }

  /** The reference's created reply: watchId undefined for a refused create. */
  observeWatchCreated(stream: number, watchId: string | undefined): void {
    if (watchId !== undefined) this.streams[stream]?.add(watchId);
  }

  /** The reference confirmed a client cancel. */
  observeWatchCanceled(stream: number, watchId: string): void {
    this.streams[stream]?.delete(watchId);
  }

  // ---- generation ----

  next(): WlOp {
    const kind = this.rng.weighted([
      [62, 'kv'],
      [6, 'grant'],
      [3, 'revoke'],
      [10, 'leasePut'],
      [4, 'leaseTxn'],
      [4, 'timeToLive'],
      [1, 'leases'],
      [3, 'keepAlive'],
      [4, 'watchCreate'],
      [1.5, 'watchCancel'],
      [1, 'progress'],
      [1, 'checkpoint'],
    ] as const);
    switch (kind) {
      case 'kv':
        return { kind: 'kv', op: this.kv.next() };
      case 'grant':
        return this.grant();
      case 'revoke':
        return { kind: 'revoke', req: { ID: this.leaseRef(0.75) } };
      case 'leasePut':
        return { kind: 'leaseKv', method: 'Put', req: this.leasePut() };
      case 'leaseTxn':
        return { kind: 'leaseKv', method: 'Txn', req: this.leaseTxn() };
      case 'timeToLive': {
        const req: Req = { ID: this.leaseRef(0.75) };
        if (this.rng.bool(0.6)) req['keys'] = true;
        return { kind: 'timeToLive', req };
      }
      case 'leases':
        return { kind: 'leases' };
      case 'keepAlive': {
        const ids: LeaseRef[] = [];
        const n = this.rng.int(1, 3);
        for (let i = 0; i < n; i++) ids.push(this.leaseRef(0.8));
        return { kind: 'keepAlive', ids };
      }
      case 'watchCreate':
        return this.watchCreate();
      case 'watchCancel':
        return this.watchCancel(this.rng.int(0, WATCH_STREAMS - 1));
      case 'progress':
        return { kind: 'progress', stream: this.rng.int(0, WATCH_STREAMS - 1) };
      case 'checkpoint':
        return { kind: 'checkpoint' };
    }
  }

  /** A live lease with probability pLive (when there is one), else a revoked, never granted or zero ID. */
  private leaseRef(pLive: number): LeaseRef {
    const live = this.liveLeases();
    if (live.length > 0 && this.rng.bool(pLive)) return this.rng.pick(live);
    return this.rng.weighted<() => LeaseRef>([
      [this.dead.length > 0 ? 5 : 0, () => this.rng.pick(this.dead)],
      [3, () => this.rng.pick(NEVER_GRANTED)],
      [1, () => '0'],
    ])();
  }

  private grant(): WlOp {
    const serverChosen = this.rng.bool(0.5);
    const ttlKind = this.rng.weighted([
      [80, 'long'],
      [4, 'max'],
      [5, 'tooLarge'],
      [11, 'short'],
    ] as const);
    const TTL =
      ttlKind === 'long'
        ? this.rng.pick(LONG_TTLS)
        : ttlKind === 'max'
          ? MAX_LEASE_TTL
          : ttlKind === 'tooLarge'
            ? this.rng.pick(['9000000001', '9223372036854775807'])
            : this.rng.pick(SHORT_TTLS);
    // Client-chosen IDs come from a small pool: some are granted already (lease already exists).
    const ID = serverChosen ? '0' : this.rng.pick(CLIENT_LEASE_IDS);
    return { kind: 'grant', req: { ID, TTL }, serverChosen, revokeAfter: ttlKind === 'short' };
  }

  /** A Put with a lease: attach, move to another lease, detach (0), ignore_lease, unknown lease. */
  private leasePut(): Req {
    const req: Req = { key: b(this.rng.pick(KEYS)) };
    const shape = this.rng.weighted([
      [70, 'lease'],
      [8, 'unknown'],
      [8, 'detach'],
      [14, 'ignoreLease'],
    ] as const);
    switch (shape) {
      case 'lease':
        req['lease'] = this.leaseRef(1);
        break;
      case 'unknown':
        req['lease'] = this.leaseRef(0);
        break;
      case 'detach':
        req['lease'] = '0';
        break;
      case 'ignoreLease':
        req['ignore_lease'] = true;
        break;
    }
    req['value'] = b(this.rng.pick(VALUES));
    if (this.rng.bool(0.3)) req['prev_kv'] = true;
    return req;
  }

  /** A txn comparing leases and putting keys with leases (distinct keys per branch, mostly). */
  private leaseTxn(): Req {
    const compare: Req[] = [];
    const nCompare = this.rng.int(0, 2);
    for (let i = 0; i < nCompare; i++) {
      // Server-chosen IDs differ between the servers (random positive int63 in both): only
      // EQUAL/NOT_EQUAL, or an order against 0, give the same outcome on both.
      const against0 = this.rng.bool(0.2);
      compare.push({
        key: b(this.rng.pick(KEYS)),
        target: 'LEASE',
        result: against0 ? this.rng.pick(['GREATER', 'LESS', 'EQUAL']) : this.rng.pick(['EQUAL', 'EQUAL', 'NOT_EQUAL']),
        lease: against0 ? '0' : this.leaseRef(0.9),
      });
    }
    const branch = (n: number): Req[] => {
      const keys = [...KEYS];
      const ops: Req[] = [];
      for (let i = 0; i < n && keys.length > 0; i++) {
        const idx = this.rng.int(0, keys.length - 1);
        const key = keys.splice(idx, 1)[0] ?? 'a';
        const kind = this.rng.weighted([
          [70, 'put'],
          [15, 'delete'],
          [15, 'range'],
        ] as const);
        if (kind === 'put') {
          const put: Req = { key: b(key), value: b(this.rng.pick(VALUES)) };
          if (this.rng.bool(0.85)) put['lease'] = this.rng.bool(0.92) ? this.leaseRef(0.95) : '0';
          if (this.rng.bool(0.3)) put['prev_kv'] = true;
          ops.push({ request_put: put });
        } else if (kind === 'delete') {
          ops.push({ request_delete_range: { key: b(key), prev_kv: this.rng.bool(0.5) } });
        } else {
          ops.push({ request_range: { key: b(key) } });
        }
      }
      return ops;
    };
    return { compare, success: branch(this.rng.int(1, 4)), failure: branch(this.rng.int(0, 2)) };
  }

  private watchCreate(): WlOp {
    const stream = this.rng.int(0, WATCH_STREAMS - 1);
    const active = this.streams[stream];
    if (active !== undefined && active.size >= MAX_ACTIVE_PER_STREAM) return this.watchCancel(stream);
    const req: Req = { ...this.watchRange() };
    const start = this.startRevision();
    if (start !== 0) req['start_revision'] = String(start);
    if (this.rng.bool(0.4)) req['prev_kv'] = true;
    const filters = this.rng.weighted<(string | number)[]>([
      [62, []],
      [12, ['NOPUT']],
      [14, ['NODELETE']],
      [4, ['NOPUT', 'NODELETE']],
      [4, ['NODELETE', 'NODELETE']],
      [4, [5, 'NOPUT']],
    ]);
    if (filters.length > 0) req['filters'] = filters;
    const id = this.rng.weighted<() => string>([
      [75, () => '0'],
      [15, () => this.rng.pick(['5', '6', '100', '101', '9223372036854775807'])],
      [10, () => (active !== undefined && active.size > 0 ? this.rng.pick([...active].sort()) : '3')],
    ])();
    if (id !== '0' || this.rng.bool(0.2)) req['watch_id'] = id;
    if (this.rng.bool(0.2)) req['progress_notify'] = true;
    if (this.rng.bool(0.15)) req['fragment'] = true;
    return { kind: 'watchCreate', stream, req };
  }

  private watchRange(): { key: Buffer; range_end?: Buffer } {
    const shape = this.rng.weighted([
      [30, 'exact'],
      [20, 'prefix'],
      [12, 'range'],
      [8, 'fromKey'],
      [8, 'all'],
      [3, 'emptyKey'],
      [4, 'empty'],
    ] as const);
    switch (shape) {
      case 'exact':
        return { key: b(this.rng.pick(WATCH_KEYS)) };
      case 'prefix': {
        const p = this.rng.pick(WATCH_PREFIXES);
        return { key: b(p), range_end: b(prefixEnd(p)) };
      }
      case 'range': {
        const k1 = this.rng.pick(RANGE_POINTS);
        const k2 = this.rng.pick(RANGE_POINTS);
        if (k1 === k2) return { key: b(k1), range_end: b(`${k2}\x00`) };
        return k1 < k2 ? { key: b(k1), range_end: b(k2) } : { key: b(k2), range_end: b(k1) };
      }
      case 'fromKey':
        return { key: b(this.rng.pick(RANGE_POINTS)), range_end: b('\x00') };
      case 'all':
        return { key: b('\x00'), range_end: b('\x00') };
      case 'emptyKey':
        // Empty key = "\x00": a single key, or from "\x00" with range_end "\x00".
        return this.rng.bool() ? { key: b('') } : { key: b(''), range_end: b('\x00') };
      case 'empty': {
        // key >= range_end: refused (mvcc: watcher range is empty).
        const k1 = this.rng.pick(RANGE_POINTS.filter((k) => k !== '\x00'));
        const k2 = this.rng.pick(RANGE_POINTS.filter((k) => k <= k1 && k !== '\x00'));
        return { key: b(k1), range_end: b(k2) };
      }
    }
  }

  /**
   * 0 (from now), history (after the compacted revision), exactly the compacted revision, below
   * it (canceled with compact_revision), the current revision, the future. Never negative: etcd
   * 3.4 accepts a negative start_revision, 3.5+ refuses it (checked against the target only).
   */
  private startRevision(): number {
    const { rev, compacted } = this.kv.seen;
    const lowest = Math.max(compacted + 1, 1);
    return this.rng.weighted<() => number>([
      [45, () => 0],
      [25, () => this.rng.int(lowest, Math.max(lowest, rev))],
      [compacted > 0 ? 6 : 0, () => compacted],
      [compacted > 1 ? 8 : 0, () => this.rng.int(1, compacted - 1)],
      [5, () => rev],
      [8, () => rev + this.rng.int(1, 3)],
    ])();
  }

  private watchCancel(stream: number): WlOp {
    const active = this.streams[stream];
    if (active !== undefined && active.size > 0 && this.rng.bool(0.85)) {
      return { kind: 'watchCancel', stream, watchId: this.rng.pick([...active].sort()) };
    }
    return { kind: 'watchCancel', stream, watchId: this.rng.pick(['999', '4', '-1', '77']) };
  }
}
