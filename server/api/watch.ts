// The Watch service: one bidirectional stream carries many watchers (etcd's v3rpc/watch.go). The
// stream object is the watchers' sink: it encodes responses and owns back-pressure. When the client
// stops reading (a send returns false) the stream is *blocked*: the watchable store sends its
// watchers nothing more (they fall back to catching up from history) and the stream stops reading
// requests, so a client that never reads costs one buffered response, not a queue.
//
// Replies, as etcd sends them: created (header = current revision) before any event of that
// watcher; create errors as {created, canceled, watch_id -1, cancel_reason}; cancel of a known id
// {canceled}, of an unknown id nothing; compaction {canceled, compact_revision, header revision 0}
// (the id stays taken until the client cancels it, and until then RequestProgress gets no reply, as in etcd);
// RequestProgress {watch_id -1, header = current revision} only when every watcher of the stream is
// synced (etcd 3.5+), nothing otherwise; periodic progress per progress_notify watcher that got no
// events since the previous tick.
import {
  WatchCreateRequest_FilterType,
  decodeWatchRequest,
  encodeWatchResponse,
  type WatchCreateRequest,
  type WatchRequest,
} from '../../proto/gen/etcdserverpb.js';
import { compareBytes, isFromKeyEnd, keyRange } from '../base/bytes.js';
import type { Logger } from '../base/log.js';
import { WATCH_COALESCE_BYTES, WATCH_STREAM_BUFFER_BYTES } from '../base/limits.js';
import { header, Watcher, type Identity, type WatchableStore, type WatchEvent, type WatchSink } from '../node/index.js';
import type { BidiHandler, CallContext, IncomingMessages, ServerStream } from './grpc/index.js';
import { GrpcError } from './grpc/index.js';
import { streamDecodeError, toGrpcError } from './errors.js';
import type { Authorizer } from './authz.js';
import type { AuthInfo } from '../auth/index.js';

export interface WatchApiOptions {
  readonly hub: WatchableStore;
  readonly identity: Identity;
  /** --max-request-bytes: a fragment-enabled response larger than this is split (etcd). */
  readonly requestBytesMax: number;
  readonly watchersPerStreamMax: number;
  readonly watchersMax: number;
  readonly progressIntervalMs: number;
  /** Calls fn every ms milliseconds until the returned function is called (the host owns timers). */
  readonly every: (ms: number, fn: () => void) => () => void;
  readonly log: Logger;
  /** Auth: a watch needs READ on its range while auth is enabled (auth helper). */
  readonly authz?: Authorizer;
}

/** grpc-go's code names, as an error's text spells them. */
const GO_CODE_NAMES = ['OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated'];

/** etcd's cancel_reason for a create the caller may not make: the gRPC error's text (e.g. 'rpc error: code = PermissionDenied desc = etcdserver: permission denied'). */
export function watchRefusalReason(err: unknown): string {
  const e = toGrpcError(err);
  return `rpc error: code = ${GO_CODE_NAMES[e.code] ?? `Code(${e.code})`} desc = ${e.details}`;
}

const AUTO_WATCH_ID = 0n;
const NO_WATCH_ID = -1n;
const ERR_EMPTY_RANGE = 'mvcc: watcher range is empty';
const ERR_DUPLICATE_ID = 'mvcc: duplicate watch ID provided on the WatchStream';
/** etcd 3.5+ refuses a negative start revision at create (3.4 let it through to odd catch-up behaviour). */
const ERR_NEGATIVE_START = 'etcdserver: mvcc: required revision has been compacted';

/** Encoded events (each as WatchResponse field 11), cached per shared event array. */
const encodedEvents = new WeakMap<readonly WatchEvent[], Buffer[]>();

/** One event as WatchResponse field 11 (responses are concatenations of encoded fields). */
function eventField(e: WatchEvent): Buffer {
  return encodeWatchResponse({ events: [{ type: e.type, kv: e.kv, prevKv: e.prevKv }] });
}

/** WatchResponse field 2 (watch_id), encoded (empty for 0, as proto3 omits it). */
function watchIdField(id: bigint): Buffer {
  return encodeWatchResponse({ watchId: id });
}

/** WatchResponse field 1 (header) for a revision; the last one is kept, as consecutive responses share it. */
class HeaderFields {
  private rev = -1;
  private bytes: Buffer = Buffer.alloc(0);

  constructor(private readonly identity: Identity) {}

  get(rev: number): Buffer {
    if (rev !== this.rev) {
      this.bytes = encodeWatchResponse({ header: header(this.identity, rev) });
      this.rev = rev;
    }
    return this.bytes;
  }
}

/** A response body: the encoded events of a sequence of chunks, field by field and joined. */
interface Body {
  readonly chunks: readonly (readonly WatchEvent[])[];
  readonly fields: readonly Buffer[];
  readonly bytes: Buffer;
}

/** The last body built for a sequence starting with this chunk (watchers of one range get the same sequence). */
const bodies = new WeakMap<readonly WatchEvent[], Body>();

function sameChunks(a: readonly (readonly WatchEvent[])[], b: readonly (readonly WatchEvent[])[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The body for these chunks, encoded and joined once for every watcher sent the same chunks. */
function bodyOf(chunks: readonly (readonly WatchEvent[])[]): Body {
  const first = chunks[0] ?? [];
  const known = bodies.get(first);
  if (known !== undefined && sameChunks(known.chunks, chunks)) return known;
  const fields = chunks.length === 1 ? encodeAll(first) : chunks.flatMap(encodeAll);
  const body: Body = { chunks, fields, bytes: fields.length === 1 ? (fields[0] as Buffer) : Buffer.concat(fields) };
  bodies.set(first, body);
  return body;
}

function encodeAll(evs: readonly WatchEvent[]): Buffer[] {
  let out = encodedEvents.get(evs);
  if (out === undefined) {
    out = evs.map(eventField);
    encodedEvents.set(evs, out);
  }
  return out;
}

interface Entry {
  readonly w: Watcher;
  /** Canceled by compaction: the id stays taken until the client cancels it, as in etcd. */
  compacted: boolean;
  readonly progress: boolean;
  readonly fragment: boolean;
  /** Events went out since the last progress tick (etcd's progress[id] == false). */
  sentSinceTick: boolean;
  /** WatchResponse field 2 (its watch_id), encoded once. */
  readonly idField: Buffer;
}

class WatchStream implements WatchSink {
  blocked = false;
  private readonly entries = new Map<bigint, Entry>();
  private nextId = 0n;
  private stopTicker: (() => void) | undefined = undefined;
  private closed = false;
  private readonly headers: HeaderFields;
  /** Responses produced in this turn, written together at its end (or once they pass WATCH_COALESCE_BYTES). */
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  /** Requests wait here, in order, while a create's permission check is under way (auth). */
  private authChain: Promise<void> | undefined = undefined;

  constructor(
    private readonly opts: WatchApiOptions,
    private readonly incoming: IncomingMessages,
    private readonly out: ServerStream,
    private readonly ctx: CallContext,
  ) {
    this.headers = new HeaderFields(opts.identity);
    ctx.signal.addEventListener('abort', () => this.close());
    incoming.onMessage((m) => this.onRequest(m));
    incoming.onEnd(() => undefined);
  }

  // ---------- requests ----------

  private onRequest(bytes: Buffer): void {
    let req: WatchRequest;
    try {
      req = decodeWatchRequest(bytes);
    } catch (err) {
      const e = streamDecodeError(err);
      this.close();
      this.out.end(new GrpcError(e.code, e.details));
      return;
    }
    const authz = this.opts.authz;
    if (this.authChain !== undefined || (authz !== undefined && authz.enabled && req.createRequest !== undefined)) {
      this.queueBehindAuth(req);
      return;
    }
    this.handle(req);
  }

  private handle(req: WatchRequest): void {
    if (req.createRequest !== undefined) this.create(req.createRequest);
    else if (req.cancelRequest !== undefined) this.cancel(req.cancelRequest.watchId);
    else if (req.progressRequest !== undefined) this.requestProgress();
  }

  // ---------- auth (etcd's isWatchPermitted: READ on the watched range; any failure is 'permission denied') ----------

  /** Undefined when the caller may watch c's range, else etcd's cancel_reason. */
  private refusal(c: WatchCreateRequest): string | undefined | Promise<string | undefined> {
    const authz = this.opts.authz;
    if (authz === undefined || !authz.enabled) return undefined;
    const check = (ai: AuthInfo): string | undefined => {
      try {
        authz.store.checkRange(ai, c.key, c.rangeEnd);
        return undefined;
      } catch (err) {
        return watchRefusalReason(err);
      }
    };
    let who;
    try {
      who = authz.who(this.ctx);
    } catch (err) {
      return watchRefusalReason(err);
    }
    return who instanceof Promise ? who.then(check, watchRefusalReason) : check(who);
  }

  private queueBehindAuth(req: WatchRequest): void {
    const run = (): void | Promise<void> => {
      if (this.closed) return;
      const c = req.createRequest;
      if (c === undefined) return this.handle(req);
      const refused = this.refusal(c);
      const finish = (reason: string | undefined): void => {
        if (this.closed) return;
        if (reason === undefined) this.create(c);
        else this.send(encodeWatchResponse({ header: header(this.opts.identity, this.opts.hub.rev), watchId: NO_WATCH_ID, created: true, canceled: true, cancelReason: reason }));
      };
      return refused instanceof Promise ? refused.then(finish) : finish(refused);
    };
    const next = (this.authChain ?? Promise.resolve()).then(run).catch((err: unknown) => this.opts.log.warn('watch: request failed', { error: err }));
    this.authChain = next;
    void next.then(() => {
      if (this.authChain === next) this.authChain = undefined;
    });
  }

  private create(c: WatchCreateRequest): void {
    const hub = this.opts.hub;
    const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
    const range = keyRange(key, c.rangeEnd);
    if (c.startRevision < 0) return this.refuse(ERR_NEGATIVE_START);
    if (c.rangeEnd.length > 0 && !isFromKeyEnd(c.rangeEnd) && compareBytes(key, c.rangeEnd) >= 0) return this.refuse(ERR_EMPTY_RANGE);
    if (this.entries.size >= this.opts.watchersPerStreamMax) return this.refuse(`cairn: too many watchers on this stream (--max-watchers-per-stream ${this.opts.watchersPerStreamMax})`);
    if (hub.watchers >= this.opts.watchersMax) return this.refuse(`cairn: too many watchers on this server (--max-watchers ${this.opts.watchersMax})`);
    let id = c.watchId;
    if (id === AUTO_WATCH_ID) {
      while (this.entries.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.entries.has(id)) return this.refuse(ERR_DUPLICATE_ID);
    const rev = hub.rev;
    const filters = {
      noPut: c.filters.includes(WatchCreateRequest_FilterType.NOPUT),
      noDelete: c.filters.includes(WatchCreateRequest_FilterType.NODELETE),
      prevKv: c.prevKv,
    };
    const w = new Watcher(id, { ...range, start: Buffer.from(range.start), end: range.end === undefined ? undefined : Buffer.from(range.end) }, c.startRevision, c.startRevision === 0 ? rev + 1 : c.startRevision, filters, this);
    this.entries.set(id, { w, compacted: false, progress: c.progressNotify, fragment: c.fragment, sentSinceTick: false, idField: watchIdField(id) });
    this.send(encodeWatchResponse({ header: header(this.opts.identity, rev), watchId: id, created: true }));
    hub.add(w);
    if (c.progressNotify && this.stopTicker === undefined) this.stopTicker = this.opts.every(this.opts.progressIntervalMs, () => this.progressTick());
  }

  private refuse(reason: string): void {
    this.send(encodeWatchResponse({ header: header(this.opts.identity, this.opts.hub.rev), watchId: NO_WATCH_ID, created: true, canceled: true, cancelReason: reason }));
  }

  private cancel(id: bigint): void {
    const e = this.entries.get(id);
    if (e === undefined) return;
    this.entries.delete(id);
    this.opts.hub.remove(e.w);
    this.send(encodeWatchResponse({ header: header(this.opts.identity, this.opts.hub.rev), watchId: id, canceled: true }));
  }

  private requestProgress(): void {
    if (this.entries.size === 0) return;
    const hub = this.opts.hub;
    // A watcher canceled by compaction is never synced again: as in etcd, the stream gets no
    // progress reply until the client cancels it.
    for (const e of this.entries.values()) if (e.compacted || !hub.isCaughtUp(e.w)) return;
    this.send(encodeWatchResponse({ header: header(this.opts.identity, hub.rev), watchId: NO_WATCH_ID }));
  }

  private progressTick(): void {
    if (this.blocked || this.closed) return;
    const hub = this.opts.hub;
    for (const e of this.entries.values()) {
      if (!e.progress || e.compacted) continue;
      if (!e.sentSinceTick && hub.isCaughtUp(e.w)) this.send(encodeWatchResponse({ header: header(this.opts.identity, hub.rev), watchId: e.w.id }));
      e.sentSinceTick = false;
    }
  }

  // ---------- WatchSink ----------

  sendEvents(w: Watcher, chunks: readonly (readonly WatchEvent[])[], headerRev: number): void {
    const e = this.entries.get(w.id);
    if (e === undefined || e.w !== w) return;
    e.sentSinceTick = true;
    const body = bodyOf(chunks);
    const fields = body.fields;
    const max = this.opts.requestBytesMax;
    const hf = this.headers.get(headerRev);
    const idf = e.idField;
    const total = hf.length + idf.length + body.bytes.length;
    if (!e.fragment || total < max || fields.length < 2) {
      this.send(Buffer.concat([hf, idf, body.bytes], total));
      return;
    }
    // etcd's sendFragments: fill each response until it reaches max-request-bytes (at least one event).
    const prefix = Buffer.concat([hf, idf]);
    const fragPrefix = encodeWatchResponse({ header: header(this.opts.identity, headerRev), watchId: w.id, fragment: true });
    let i = 0;
    while (i < fields.length) {
      const part: Buffer[] = [];
      let size = fragPrefix.length;
      while (i < fields.length) {
        const f = fields[i] as Buffer;
        if (part.length >= 1 && size + f.length >= max) break;
        part.push(f);
        size += f.length;
        i++;
      }
      this.send(Buffer.concat([i === fields.length ? prefix : fragPrefix, ...part]));
    }
  }

  sendCompacted(w: Watcher, compactRev: number): void {
    const e = this.entries.get(w.id);
    if (e === undefined || e.w !== w) return;
    e.compacted = true;
    this.send(encodeWatchResponse({ header: header(this.opts.identity, 0), watchId: w.id, canceled: true, compactRevision: compactRev }));
  }

  // ---------- output and lifetime ----------

  private send(bytes: Uint8Array): void {
    if (this.closed || this.out.closed) return;
    this.queued.push(bytes);
    this.queuedBytes += bytes.length;
    if (this.queuedBytes >= WATCH_COALESCE_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const msgs = this.queued;
    if (msgs.length === 0) return;
    this.queued = [];
    this.queuedBytes = 0;
    if (this.closed || this.out.closed) return;
    const below = msgs.length === 1 ? this.out.send(msgs[0] as Uint8Array) : this.out.sendMany(msgs);
    // A write past node's small high-water mark is normal under load; the stream counts as blocked
    // (its watchers fall back to catching up from history) only once WATCH_STREAM_BUFFER_BYTES wait.
    if (below || this.out.closed || this.blocked || this.out.bufferedBytes < WATCH_STREAM_BUFFER_BYTES) return;
    this.blocked = true;
    this.incoming.pause();
    this.out.onDrain(() => {
      this.blocked = false;
      this.incoming.resume();
      this.opts.hub.resume();
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTicker?.();
    for (const e of this.entries.values()) this.opts.hub.remove(e.w);
    this.entries.clear();
  }
}

export function watchHandler(opts: WatchApiOptions): BidiHandler {
  return (incoming, out, ctx) => {
    new WatchStream(opts, incoming, out, ctx);
  };
}
