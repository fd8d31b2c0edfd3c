// The Election service (etcd's v3election, on clientv3/concurrency's Election): a candidate is the
// key `<name>/<lease in hex>` holding its value, attached to its lease (a 60 s lease, never kept
// alive, when the request names none); the oldest key under `<name>/` by create revision is the
// leader. Campaign returns once every older candidate is gone; Proclaim and Resign act only while
// the key still has the create revision the campaign returned; Observe streams the leader's value
// as it changes, and each new leader. Every call runs as the caller (auth).
import { Event_EventType, type KeyValue } from '../../proto/gen/mvccpb.js';
import type { ResponseHeader } from '../../proto/gen/etcdserverpb.js';
import {
  encodeCampaignResponse,
  encodeLeaderResponse,
  encodeProclaimResponse,
  encodeResignResponse,
  type CampaignRequest,
  type LeaderKey,
  type LeaderRequest,
  type ProclaimRequest,
  type ResignRequest,
} from '../../proto/gen/v3electionpb.js';
import { ClientError, StorageFault } from '../base/errors.js';
import { prefixEnd } from '../base/bytes.js';
import type { Logger } from '../base/log.js';
import { header, type Identity } from '../node/index.js';
import type { ServerStream, ServerStreamHandler } from './grpc/index.js';
import { decodeLeaderRequest } from '../../proto/gen/v3electionpb.js';
import { decodeError } from './errors.js';
import { byCreate, compareCreate, headerOf, leaseHex, Session, type Ctx, type OneWatch, type RecipeDeps } from './concurrency.js';

export interface ElectionApi {
  readonly campaign: (r: CampaignRequest, ctx: Ctx) => Promise<Uint8Array>;
  readonly proclaim: (r: ProclaimRequest, ctx: Ctx) => Promise<Uint8Array>;
  readonly leader: (r: LeaderRequest, ctx: Ctx) => Promise<Uint8Array>;
  readonly resign: (r: ResignRequest, ctx: Ctx) => Promise<Uint8Array>;
  readonly observe: ServerStreamHandler;
}

export interface ElectionApiOptions {
  readonly identity: Identity;
  readonly log: Logger;
  /** A storage fault seen while observing stops the process (as for every other call). */
  readonly onFatal: (err: Error) => void;
}

const slash = (name: Buffer): Buffer => Buffer.concat([name, Buffer.from('/')]);

function leaderKeyOf(r: { leader?: LeaderKey | undefined }): LeaderKey {
  if (r.leader === undefined) throw new ClientError('missingLeaderKey');
  return r.leader;
}

/** Proclaim as concurrency.Election.Proclaim: the value replaces ours while our key is still the one campaigned. */
async function proclaim(s: Session, l: LeaderKey, value: Buffer): Promise<ResponseHeader> {
  const resp = await s.txn([compareCreate(l.key, l.rev)], [{ requestPut: { key: l.key, value, lease: l.lease } }]);
  if (!resp.succeeded) throw new ClientError('electionNotLeader');
  return headerOf(resp);
}

async function resign(s: Session, l: LeaderKey): Promise<ResponseHeader> {
  return headerOf(await s.txn([compareCreate(l.key, l.rev)], [{ requestDeleteRange: { key: l.key } }]));
}

export function electionApi(deps: RecipeDeps, opts: ElectionApiOptions): ElectionApi {
  return {
    campaign: async (r, ctx) => {
      const s = new Session(deps, ctx);
      const lease = await s.lease(r.lease);
      const prefix = slash(r.name);
      const key = Buffer.concat([prefix, Buffer.from(leaseHex(lease))]);
      const resp = await s.txn([compareCreate(key, 0)], [{ requestPut: { key, value: r.value, lease } }], [{ requestRange: { key } }]);
      const mine: LeaderKey = { name: r.name, key, rev: headerOf(resp).revision, lease };
      const existing = resp.succeeded ? undefined : resp.responses[0]?.responseRange?.kvs[0];
      if (existing !== undefined) {
        mine.rev = existing.createRevision;
        if (!existing.value.equals(r.value)) {
          await proclaim(s, mine, r.value).catch(async (err: unknown) => {
            await resign(s, mine).catch(() => undefined);
            throw err;
          });
        }
      }
      await s.waitDeletes(prefix, mine.rev - 1).catch((err: unknown) => {
        // Given up (the caller went away): resign on the client's own context.
        if (ctx.signal.aborted)
          void resign(s.detached(), mine).catch(() => undefined);
        throw err;
      });
      return encodeCampaignResponse({ header: headerOf(resp), leader: mine });
    },
    proclaim: async (r, ctx) => {
      const l = leaderKeyOf(r);
      return encodeProclaimResponse({ header: await proclaim(new Session(deps, ctx), l, r.value) });
    },
    leader: async (r, ctx) => {
      const resp = await new Session(deps, ctx).range(byCreate(slash(r.name), 'first'));
      const kv = resp.kvs[0];
      if (kv === undefined) throw new ClientError('electionNoLeader');
      return encodeLeaderResponse({ header: headerOf(resp), kv });
    },
    resign: async (r, ctx) => {
      const l = leaderKeyOf(r);
      return encodeResignResponse({ header: await resign(new Session(deps, ctx), l) });
    },
    observe: (bytes, out, ctx) => {
      let req: LeaderRequest;
      try {
        req = decodeLeaderRequest(bytes);
      } catch (err) {
        out.end(decodeError(err));
        return;
      }
      new Observer(new Session(deps, ctx), slash(req.name), out, opts).run();
    },
  };
}

/**
 * Observe (concurrency.Election.observe): the current leader, then each new value it proclaims;
 * when its key is deleted, the next leader (waiting for a first candidate when there is none). The
 * stream ends OK when a read or a watch fails (etcd's observe goroutine just closes its channel).
 */
class Observer {
  private watch: OneWatch | undefined;

  constructor(
    private readonly s: Session,
    private readonly prefix: Buffer,
    private readonly out: ServerStream,
    private readonly opts: ElectionApiOptions,
  ) {
    s.ctx.signal.addEventListener('abort', () => this.stopWatch());
  }

  run(): void {
    this.next().catch((err: unknown) => this.fail(err));
  }

  private async next(): Promise<void> {
    const resp = await this.s.range(byCreate(this.prefix, 'first'));
    const kv = resp.kvs[0];
    if (kv !== undefined) return this.follow(headerOf(resp), kv);
    // No leader yet: the first put under the prefix (its own revision in the header).
    const first = await this.s.watchUntil(this.prefix, prefixEnd(this.prefix), headerOf(resp).revision, (events) => events.find((e) => e.type === Event_EventType.PUT)?.kv);
    return this.follow(header(this.opts.identity, first.modRevision), first);
  }

  /** Sends the leader, then its later values until its key is deleted; then looks for the next leader. */
  private follow(hdr: ResponseHeader | ReturnType<typeof header>, kv: KeyValue): void {
    if (!this.send(encodeLeaderResponse({ header: hdr, kv }))) return;
    const rev = (hdr.revision ?? 0) + 1;
    this.watch = this.s.follow(
      kv.key,
      Buffer.alloc(0),
      rev,
      (events, headerRev) => {
        for (const e of events) {
          if (e.type === Event_EventType.DELETE) {
            this.stopWatch();
            this.run();
            return;
          }
          if (!this.send(encodeLeaderResponse({ header: header(this.opts.identity, headerRev), kv: e.kv }))) return;
        }
      },
      () => this.end(),
    );
  }

  /** Sends one message; false once the stream is closed. A full stream pauses the watcher until it drains. */
  private send(msg: Uint8Array): boolean {
    if (this.out.closed) {
      this.stopWatch();
      return false;
    }
    if (!this.out.send(msg) && !this.out.closed) {
      const w = this.watch;
      w?.pause();
      this.out.onDrain(() => w?.resume());
    }
    return !this.out.closed;
  }

  private stopWatch(): void {
    this.watch?.stop();
    this.watch = undefined;
  }

  private end(): void {
    this.stopWatch();
    this.out.end();
  }

  private fail(err: unknown): void {
    if (err instanceof StorageFault) this.opts.onFatal(err);
    if (!(err instanceof ClientError) && !this.s.ctx.signal.aborted) this.opts.log.warn('election observe ended', { error: err });
    this.end();
  }
}
