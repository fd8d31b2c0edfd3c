// The watchable store (etcd's mvcc/watchable_store.go): watchers over key ranges, fed with every
// committed revision. A watcher is *synced* when it has been sent every event up to the store's
// current revision and gets new revisions as they commit ("live"); otherwise it is *unsynced* and
// catches up from history in LMDB, in bounded steps between other work, until it is synced again.
//
// Invariants:
// - Per watcher, events go out in revision order, each revision at most once and never split over
//   two responses; none below its start revision. `nextRev` = the first revision not yet sent.
// - A watcher whose sink is blocked (its client is not reading) is sent nothing: it turns unsynced
//   at the first revision it would have been sent, and catches up once the sink drains. So memory
//   per slow client stays bounded by one response, whatever the write load.
// - A watcher that needs history below the compacted revision is canceled with compact_revision.
import { Event_EventType, type KeyValue } from '../../proto/gen/mvccpb.js';
import { inRange, type KeyRange } from '../base/bytes.js';
import type { KvStore, MvccEvent, RevisionEvents } from './store.js';

/** An event as sent to a watcher: prev_kv filled in when the watcher asked for it. */
export interface WatchEvent extends MvccEvent {
  readonly prevKv?: KeyValue | undefined;
}

/** Where a watcher's output goes (one per client stream, implemented by api/). */
export interface WatchSink {
  /** True while the client is not reading: nothing is sent until it drains (then call `resume`). */
  readonly blocked: boolean;
  /**
   * One response with these events, given as chunks (each a whole revision's events for this
   * watcher, in order; a chunk array may be shared with other watchers); `headerRev` for its header.
   */
  sendEvents(w: Watcher, chunks: readonly (readonly WatchEvent[])[], headerRev: number): void;
  /** The watcher needed history below `compactRev`: it is already removed; tell the client. */
  sendCompacted(w: Watcher, compactRev: number): void;
}

export interface WatchFilters {
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
}

export class Watcher {
  /** The first revision not yet sent. */
  nextRev: number;
  synced = false;
  /** Names the range (equal ranges, equal names): watchers of one range are matched together. */
  readonly rangeName: string;

  /**
   * `startRev` is the revision the client asked for (0 = from now on); `nextRev` the first revision
   * it is sent (the current revision + 1 for 0).
   */
  constructor(
    readonly id: bigint,
    readonly range: KeyRange,
    readonly startRev: number,
    nextRev: number,
    readonly filters: WatchFilters,
    readonly sink: WatchSink,
  ) {
    this.nextRev = nextRev;
    this.rangeName = rangeName(range);
  }
}

/** A range's name: its bounds, unambiguously (the start's length first). */
function rangeName(r: KeyRange): string {
  const start = keyString(r.start);
  if (r.single) return `k${start}`;
  return `${start.length}:${start}${r.end === undefined ? '+' : `-${keyString(r.end)}`}`;
}

/** What one watcher is sent in one delivery: its events, a chunk per revision, from firstRev on. */
interface Batch {
  firstRev: number;
  readonly chunks: (readonly WatchEvent[])[];
}

/** A revision with events in a range: those events (their indexes) for the range's watchers. */
interface GroupHit {
  readonly rev: number;
  readonly shared: SharedEvents;
  readonly idx: readonly number[];
}

/** Names a filter combination (equal filters, equal names). */
function filtersName(f: WatchFilters): string {
  return `${f.prevKv ? 'p' : ''}${f.noPut ? 'P' : ''}${f.noDelete ? 'D' : ''}`;
}

/** The synced watchers of one range (many clients watch the same prefix: one match per event serves them all). */
interface RangeGroup {
  readonly range: KeyRange;
  readonly watchers: Set<Watcher>;
}

/** Bounds of one catch-up step (etcd: maxWatchersPerSync 512, watchBatchMaxRevs 1000). */
export interface CatchUpLimits {
  readonly watchersPerStep: number;
  readonly revisionsPerStep: number;
  readonly bytesPerStep: number;
}

function isCreate(e: MvccEvent): boolean {
  return e.type === Event_EventType.PUT && e.kv.createRevision === e.kv.modRevision;
}

function wanted(f: WatchFilters, e: MvccEvent): boolean {
  return e.type === Event_EventType.PUT ? !f.noPut : !f.noDelete;
}

/** Latin-1 string of a key, for the single-key watcher map. */
function keyString(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString('latin1');
}

export class WatchableStore {
  /** Synced watchers of one key, by key. */
  private readonly byKey = new Map<string, Set<Watcher>>();
  /** Synced watchers of a range, by range (rangeName). */
  private readonly ranged = new Map<string, RangeGroup>();
  private readonly unsynced = new Set<Watcher>();
  private syncScheduled = false;
  private count = 0;
  /** Events handed to watchers' sinks, one per watcher that got it (etcd's events_total). */
  private sentEvents = 0;
  /** Committed revisions not yet delivered (delivery runs after the writers' replies went out). */
  private pending: RevisionEvents[] = [];
  private flushScheduled = false;
  /**
   * The newest revision delivered to synced watchers: every watcher state, created reply and
   * progress reply refers to this, never to a revision whose events are still pending.
   */
  private delivered: number;

  constructor(
    private readonly store: KvStore,
    private readonly limits: CatchUpLimits,
    /** Runs fn after pending I/O (setImmediate); injected by node/. */
    private readonly schedule: (fn: () => void) => void,
  ) {
    this.delivered = store.currentRev;
  }

  get rev(): number {
    return this.delivered;
  }

  get watchers(): number {
    return this.count;
  }

  /** Watchers catching up from history (etcd's slow watchers). */
  get unsyncedWatchers(): number {
    return this.unsynced.size;
  }

  /** Events sent to watchers so far, counted once per watcher. */
  get eventsSent(): number {
    return this.sentEvents;
  }

  /** Events of the committed revisions not delivered yet (a turn of the event loop at most). */
  get pendingEvents(): number {
    return this.pending.reduce((n, r) => n + r.events.length, 0);
  }

  /** Hands a watcher its events, counting them. */
  private send(w: Watcher, chunks: readonly (readonly WatchEvent[])[], headerRev: number): void {
    for (const c of chunks) this.sentEvents += c.length;
    w.sink.sendEvents(w, chunks, headerRev);
  }

  /** Adds a watcher whose created reply went out already; it gets events from w.nextRev on. */
  add(w: Watcher): void {
    this.count++;
    if (w.nextRev > this.delivered) this.toSynced(w);
    else this.toUnsynced(w, w.nextRev);
  }

  remove(w: Watcher): void {
    if (w.synced) this.dropSynced(w);
    else if (!this.unsynced.delete(w)) return;
    this.count--;
  }

  /** Synced, and (etcd 3.6) the store has reached its start revision: a progress reply is truthful. */
  isCaughtUp(w: Watcher): boolean {
    return w.synced && this.delivered >= w.startRev;
  }

  /**
   * The store was replaced wholesale (a snapshot installed from the leader): every synced watcher has
   * seen up to `rev` and now catches up from the new store's history (or is told it was compacted),
   * as etcd's watchable store does on restore.
   */
  restore(): void {
    this.pending = [];
    const next = this.delivered + 1;
    for (const w of [...[...this.ranged.values()].flatMap((g) => [...g.watchers]), ...[...this.byKey.values()].flatMap((s) => [...s])]) {
      this.dropSynced(w);
      this.toUnsynced(w, next);
    }
    this.delivered = this.store.currentRev;
  }

  /** A sink drained: its unsynced watchers can catch up. */
  resume(): void {
    if (this.unsynced.size > 0) this.scheduleSync();
  }

  /**
   * Revisions just committed (in order, after their LMDB transaction). They are delivered to synced
   * watchers in a later turn, so the writers' own replies go out first and the client can pipeline.
   */
  notify(changes: readonly RevisionEvents[]): void {
    const last = changes[changes.length - 1];
    if (last === undefined) return;
    if (this.count === this.unsynced.size && this.pending.length === 0) {
      this.delivered = last.rev;
      return;
    }
    this.pending.push(...changes);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.schedule(() => this.flush());
  }

  /**
   * Delivers pending revisions; a watcher gets the events of up to revisionsPerStep revisions (about
   * bytesPerStep) in one response, as etcd batches for a watcher that fell behind.
   */
  private flush(): void {
    this.flushScheduled = false;
    const todo = this.pending;
    this.pending = [];
    let from = 0;
    while (from < todo.length) {
      let to = from;
      let bytes = 0;
      while (to < todo.length && to - from < this.limits.revisionsPerStep && (to === from || bytes < this.limits.bytesPerStep)) {
        for (const e of (todo[to] as RevisionEvents).events) bytes += e.kv.key.length + e.kv.value.length;
        to++;
      }
      this.deliver(todo.slice(from, to));
      from = to;
    }
  }

  /**
   * One response per watcher for these revisions. A range's watchers are matched together (once per
   * event for all of them, 1,000 watchers of one prefix cost one comparison, not 1,000), and those
   * starting at the same revision with the same filters get one shared chunk list, so api/ encodes
   * and joins their events once.
   */
  private deliver(revs: readonly RevisionEvents[]): void {
    const keyed = new Map<Watcher, Batch>();
    const grouped = new Map<RangeGroup, GroupHit[]>();
    for (const c of revs) this.collect(c, keyed, grouped);
    const last = (revs[revs.length - 1] as RevisionEvents).rev;
    this.delivered = last;
    for (const [w, o] of keyed) this.sendTo(w, o.firstRev, o.chunks, last);
    for (const [g, hits] of grouped) {
      const lists = new Map<string, Batch>();
      for (const w of [...g.watchers]) {
        let from = 0;
        while (from < hits.length && (hits[from] as GroupHit).rev < w.nextRev) from++;
        const name = `${filtersName(w.filters)}@${from}`;
        let o = lists.get(name);
        if (o === undefined) {
          o = { firstRev: 0, chunks: [] };
          for (let i = from; i < hits.length; i++) {
            const h = hits[i] as GroupHit;
            const evs = h.shared.select(w.filters, h.idx);
            if (evs.length === 0) continue;
            if (o.chunks.length === 0) o.firstRev = h.rev;
            o.chunks.push(evs);
          }
          lists.set(name, o);
        }
        if (o.chunks.length > 0) this.sendTo(w, o.firstRev, o.chunks, last);
      }
    }
  }

  private sendTo(w: Watcher, firstRev: number, chunks: readonly (readonly WatchEvent[])[], last: number): void {
    if (!w.synced) return;
    if (w.sink.blocked) {
      this.dropSynced(w);
      this.toUnsynced(w, firstRev);
      return;
    }
    this.send(w, chunks, last);
    w.nextRev = last + 1;
  }

  /** This revision's events for the synced watchers: per single-key watcher, and per range (with its matching events). */
  private collect(c: RevisionEvents, keyed: Map<Watcher, Batch>, grouped: Map<RangeGroup, GroupHit[]>): void {
    const hits = new Map<Watcher, number[]>();
    const groupHits = new Map<RangeGroup, number[]>();
    c.events.forEach((e, i) => {
      const ws = this.byKey.get(keyString(e.kv.key));
      if (ws !== undefined) for (const w of ws) addHit(hits, w, i);
      for (const g of this.ranged.values()) if (inRange(g.range, e.kv.key)) addHit(groupHits, g, i);
    });
    if (hits.size === 0 && groupHits.size === 0) return;
    const shared = new SharedEvents(this.store, c);
    for (const [w, idx] of hits) {
      if (w.nextRev > c.rev) continue;
      const evs = shared.select(w.filters, idx);
      if (evs.length === 0) continue;
      const o = keyed.get(w);
      if (o === undefined) keyed.set(w, { firstRev: c.rev, chunks: [evs] });
      else o.chunks.push(evs);
    }
    for (const [g, idx] of groupHits) {
      let list = grouped.get(g);
      if (list === undefined) grouped.set(g, (list = []));
      list.push({ rev: c.rev, shared, idx });
    }
  }

  private toSynced(w: Watcher): void {
    w.synced = true;
    if (w.range.single) {
      const k = keyString(w.range.start);
      let set = this.byKey.get(k);
      if (set === undefined) this.byKey.set(k, (set = new Set()));
      set.add(w);
      return;
    }
    let g = this.ranged.get(w.rangeName);
    if (g === undefined) this.ranged.set(w.rangeName, (g = { range: w.range, watchers: new Set() }));
    g.watchers.add(w);
  }

  private dropSynced(w: Watcher): void {
    w.synced = false;
    if (!w.range.single) {
      const g = this.ranged.get(w.rangeName);
      g?.watchers.delete(w);
      if (g?.watchers.size === 0) this.ranged.delete(w.rangeName);
      return;
    }
    const k = keyString(w.range.start);
    const set = this.byKey.get(k);
    set?.delete(w);
    if (set?.size === 0) this.byKey.delete(k);
  }

  private toUnsynced(w: Watcher, nextRev: number): void {
    w.nextRev = nextRev;
    this.unsynced.add(w);
    this.scheduleSync();
  }

  private scheduleSync(): void {
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    this.schedule(() => this.syncStep());
  }

  /** One catch-up step: up to watchersPerStep unsynced watchers, one bounded read of history. */
  private syncStep(): void {
    this.syncScheduled = false;
    const batch: Watcher[] = [];
    for (const w of this.unsynced) {
      if (w.sink.blocked) continue;
      batch.push(w);
      if (batch.length >= this.limits.watchersPerStep) break;
    }
    if (batch.length === 0) return;
    const cur = this.delivered;
    const compactRev = this.store.compactRev;
    const live: Watcher[] = [];
    for (const w of batch) {
      if (w.nextRev < compactRev) {
        this.unsynced.delete(w);
        this.count--;
        w.sink.sendCompacted(w, compactRev);
      } else live.push(w);
    }
    if (live.length > 0) this.catchUp(live, cur);
    if ([...this.unsynced].some((w) => !w.sink.blocked)) this.scheduleSync();
  }

  private catchUp(ws: readonly Watcher[], cur: number): void {
    const minRev = Math.max(1, Math.min(...ws.map((w) => w.nextRev)));
    const toRev = Math.min(cur, minRev + this.limits.revisionsPerStep - 1);
    const { revs, endRev } = minRev <= toRev ? this.store.history(minRev, toRev, this.limits.bytesPerStep) : { revs: [], endRev: cur };
    const shared = revs.map((r) => new SharedEvents(this.store, r));
    for (const w of ws) {
      const chunks: (readonly WatchEvent[])[] = [];
      for (const sh of shared) {
        if (sh.rev < w.nextRev) continue;
        const idx = sh.matching(w);
        if (idx.length === 0) continue;
        const evs = sh.select(w.filters, idx);
        if (evs.length > 0) chunks.push(evs);
      }
      if (chunks.length > 0) this.send(w, chunks, cur);
      w.nextRev = Math.max(w.nextRev, endRev + 1);
      if (w.nextRev > cur) {
        this.unsynced.delete(w);
        this.toSynced(w);
      }
    }
  }
}

function addHit<T>(hits: Map<T, number[]>, w: T, i: number): void {
  const idx = hits.get(w);
  if (idx === undefined) hits.set(w, [i]);
  else if (idx[idx.length - 1] !== i) idx.push(i);
}

/**
 * The events of one revision as watchers get them, built once and shared: a watcher that gets all
 * of them gets the same array as every other such watcher (so api/ can encode it once).
 */
class SharedEvents {
  private withPrev: WatchEvent[] | undefined = undefined;
  private all: number[] | undefined = undefined;
  /** matching() by range name. */
  private readonly matched = new Map<string, readonly number[]>();
  /** select() results that are a part of the events, by idx array and filters. */
  private readonly selected = new Map<readonly number[], Map<string, WatchEvent[]>>();

  constructor(
    private readonly store: KvStore,
    private readonly c: RevisionEvents,
  ) {}

  get rev(): number {
    return this.c.rev;
  }

  /** Indexes of the events whose key is in w's range (the same array for equal ranges, and for every range that takes all). */
  matching(w: Watcher): readonly number[] {
    const known = this.matched.get(w.rangeName);
    if (known !== undefined) return known;
    let idx: number[] = [];
    this.c.events.forEach((e, i) => {
      if (inRange(w.range, e.kv.key)) idx.push(i);
    });
    if (idx.length === this.c.events.length) idx = this.all ??= idx;
    this.matched.set(w.rangeName, idx);
    return idx;
  }

  /** The events at `idx` as watchers with filters `f` get them; the same array for the same idx array and filters. */
  select(f: WatchFilters, idx: readonly number[]): readonly WatchEvent[] {
    const all = f.prevKv ? this.allWithPrev() : this.c.events;
    const keep = f.noPut || f.noDelete ? idx.filter((i) => wanted(f, this.c.events[i] as MvccEvent)) : idx;
    if (keep.length === all.length) return all;
    const name = filtersName(f);
    let byFilters = this.selected.get(idx);
    if (byFilters === undefined) this.selected.set(idx, (byFilters = new Map<string, WatchEvent[]>()));
    let evs = byFilters.get(name);
    if (evs === undefined) byFilters.set(name, (evs = keep.map((i) => all[i] as WatchEvent)));
    return evs;
  }

  private allWithPrev(): WatchEvent[] {
    this.withPrev ??= this.c.events.map((e) => (isCreate(e) ? e : { ...e, prevKv: this.store.kvAt(e.kv.key, this.c.rev - 1) }));
    return this.withPrev;
  }
}
