// Member-to-member requests, typed (proto/cairn/peer.proto): what a follower forwards to the leader
// (lease KeepAlive and TimeToLive, MemberPromote), the corruption check's HashKV, and the member list
// a joining member fetches. Requests go as transport kind "peer" with a PeerRequest body and are
// answered with a PeerResponse; a refusal is a PeerError code, never a string to match. The member
// list keeps its anonymous kind "members" (the only kind a member without a cluster id may ask),
// with a PeerRequest body.
//
// Rolling upgrades: the previous release sends a kind per request with ad-hoc bodies and JSON
// answers, and refuses "peer" ('unknown request kind "peer"'). Those kinds are still answered
// (answerLegacy), and a peer that refuses "peer" is sent the old forms for LEGACY_RETRY_MS before
// "peer" is tried again. The old "members" answer is JSON (first byte '{'), a PeerResponse never
// starts with that byte. Remove the legacy half one release after this one.
import {
  decodePeerRequest,
  decodePeerResponse,
  encodePeerRequest,
  encodePeerResponse,
  PeerError_Code,
  type PeerRequest,
  type PeerRequestInit,
  type PeerResponse,
  type PeerResponseInit,
} from '../../proto/gen/cairnpb.js';
import { HASH_KV_VERSION, type KvStore } from '../mvcc/index.js';
import type { Member, MemberStore } from '../membership/index.js';
import { ClientError, ServerRefusal, type ClientErrorKind } from '../base/errors.js';
import { answerHashRequest, decodeHashReply, decodeHashRequest, encodeHashRequest, refusesVersionedRequest, type PeerHash } from './corrupt.js';
import type { Leases } from './leases.js';
import type { NodeConfig } from './config.js';
import { monotonicMs } from './clock.js';

/** The transport kinds: typed requests, and the anonymous member list. */
export const PEER_KIND = 'peer';
export const MEMBERS_KIND = 'members';

/** How long a peer that refused "peer" is sent the previous release's forms before "peer" is tried again. */
const LEGACY_RETRY_MS = 60_000;

/** The previous release's refusal of a kind it does not know (its transport carries the message). */
function refusesTypedKind(err: unknown): boolean {
  return (err instanceof Error ? err.message : String(err)).includes(`unknown request kind ${JSON.stringify(PEER_KIND)}`);
}

/** Refusals the leader relays to a follower's client as its own. */
const RELAYED_CLIENT_ERRORS: readonly ClientErrorKind[] = ['learnerNotReady', 'memberNotLearner', 'memberNotFound'];

export interface PeerHost {
  readonly cfg: NodeConfig;
  readonly clusterId: bigint;
  readonly members: MemberStore;
  readonly store: KvStore;
  readonly leases: Leases;
  leaderId(): bigint;
  isLeader(): boolean;
  /** A request to a peer over the transport, with the request timeout. */
  request(to: bigint, kind: string, body: Uint8Array): Promise<Uint8Array>;
  promoteMember(id: bigint): Promise<Member[]>;
}

/** A typed refusal, thrown by a handler and answered as a PeerError. */
class PeerRefusal extends Error {
  constructor(
    readonly code: PeerError_Code,
    message: string,
    readonly clientError = '',
  ) {
    super(message);
  }
}

export class PeerRequests {
  /** Peers that refused "peer": monotonic ms until which they get the previous release's forms. */
  private readonly legacyUntil = new Map<bigint, number>();

  constructor(private readonly host: PeerHost) {}

  // ---------- asking ----------

  /** KeepAlive forwarded to the leader: the TTL renewed with, 0 when unknown or expired. */
  async leaseRenew(id: bigint): Promise<number> {
    return this.toLeader(
      { leaseRenew: { ID: id } },
      (r) => Number(r.leaseRenew?.TTL ?? missing('leaseRenew')),
      async (lead) => Number(Buffer.from(await this.host.request(lead, 'leaseRenew', be64(id))).readBigInt64BE(0)),
    );
  }

  /** TimeToLive forwarded to the leader: undefined when unknown or expired. */
  async leaseTTL(id: bigint): Promise<{ remainingMs: number; ttlSeconds: number } | undefined> {
    return this.toLeader(
      { leaseTtl: { ID: id } },
      (r) => {
        const t = r.leaseTtl ?? missing('leaseTtl');
        return t.found ? { remainingMs: t.remainingMs, ttlSeconds: t.ttlSeconds } : undefined;
      },
      async (lead) => {
        const v = JSON.parse(Buffer.from(await this.host.request(lead, 'leaseTTL', be64(id))).toString('utf8')) as { remainingMs: number; ttlSeconds: number } | null;
        return v ?? undefined;
      },
    );
  }

  /** MemberPromote forwarded to the leader; the leader's client refusals come back as ClientErrors. */
  async promote(memberId: bigint): Promise<void> {
    const body = Buffer.alloc(8);
    body.writeBigUInt64BE(memberId);
    await this.toLeader(
      { promote: { memberID: memberId } },
      (r) => {
        if (r.promote === undefined) missing('promote');
      },
      async (lead) => {
        await this.host.request(lead, 'promote', body);
      },
    );
  }

  /** One peer's HashKV at `revision` in our hash version (a previous-release peer answers in its own). */
  async hashKV(id: bigint, revision: number): Promise<PeerHash> {
    if (!this.legacy(id)) {
      try {
        const r = await this.ask(id, { hashKv: { revision, hashVersion: HASH_KV_VERSION } });
        if (r.error !== undefined) return { id, ok: false, error: r.error.message };
        const h = r.hashKv ?? missing('hashKv');
        return { id, ok: true, hash: h.hash, hashVersion: h.hashVersion, revision: h.revision, compactRevision: h.compactRevision };
      } catch (err) {
        if (!this.noteLegacy(id, err)) throw err;
      }
    }
    try {
      return decodeHashReply(id, await this.host.request(id, 'hashkv', encodeHashRequest(revision, HASH_KV_VERSION)));
    } catch (err) {
      if (!refusesVersionedRequest(err instanceof Error ? err.message : String(err))) throw err;
      return decodeHashReply(id, await this.host.request(id, 'hashkv', encodeHashRequest(revision)));
    }
  }

  private legacy(id: bigint): boolean {
    const until = this.legacyUntil.get(id);
    if (until === undefined) return false;
    if (monotonicMs() < until) return true;
    this.legacyUntil.delete(id);
    return false;
  }

  /** True (and remembered) when err is a previous-release peer's refusal of "peer". */
  private noteLegacy(id: bigint, err: unknown): boolean {
    if (!refusesTypedKind(err)) return false;
    this.legacyUntil.set(id, monotonicMs() + LEGACY_RETRY_MS);
    this.host.cfg.logger.info('peer refuses typed requests (a previous release): using its request forms', { 'remote-peer-id': id.toString(16), 'retry-typed-after-ms': LEGACY_RETRY_MS });
    return true;
  }

  private async ask(to: bigint, req: PeerRequestInit): Promise<PeerResponse> {
    return decodePeerResponse(await this.host.request(to, PEER_KIND, encodePeerRequest(req)));
  }

  /**
   * A request the leader answers: NOT_LEADER becomes leaderChanged, a relayed client refusal its
   * ClientError, a transport failure a timeout (the client may retry); no leader: noLeader at once.
   */
  private async toLeader<T>(req: PeerRequestInit, read: (r: PeerResponse) => T, legacy: (lead: bigint) => Promise<T>): Promise<T> {
    const lead = this.host.leaderId();
    if (lead === 0n) throw new ServerRefusal('noLeader');
    let r: PeerResponse | undefined;
    try {
      if (!this.legacy(lead)) {
        try {
          r = await this.ask(lead, req);
        } catch (err) {
          if (!this.noteLegacy(lead, err)) throw err;
        }
      }
      if (r === undefined) return await legacy(lead);
    } catch (err) {
      throw forwardFailure(err);
    }
    const e = r.error;
    if (e === undefined) return read(r);
    if (e.code === PeerError_Code.NOT_LEADER) throw new ServerRefusal('leaderChanged');
    const relayed = RELAYED_CLIENT_ERRORS.find((k) => k === e.clientError);
    if (e.code === PeerError_Code.CLIENT && relayed !== undefined) throw new ClientError(relayed);
    throw new ServerRefusal('timeout', undefined, { cause: new Error(`leader refused: ${e.message}`) });
  }

  // ---------- answering ----------

  /** The transport's request handler: typed requests, the member list, and the previous release's kinds. */
  async handle(kind: string, body: Uint8Array): Promise<Uint8Array> {
    if (kind === PEER_KIND || (kind === MEMBERS_KIND && body.length > 0)) {
      let req: PeerRequest;
      try {
        req = decodePeerRequest(body);
      } catch (err) {
        return encodePeerResponse({ error: { code: PeerError_Code.INTERNAL, message: `malformed peer request: ${err instanceof Error ? err.message : String(err)}` } });
      }
      try {
        return encodePeerResponse(await this.answer(req));
      } catch (err) {
        if (err instanceof PeerRefusal) return encodePeerResponse({ error: { code: err.code, message: err.message, clientError: err.clientError } });
        if (err instanceof ClientError && RELAYED_CLIENT_ERRORS.includes(err.kind)) {
          return encodePeerResponse({ error: { code: PeerError_Code.CLIENT, clientError: err.kind, message: err.message } });
        }
        throw err;
      }
    }
    return this.answerLegacy(kind, body);
  }

  private async answer(req: PeerRequest): Promise<PeerResponseInit> {
    const h = this.host;
    if (req.members !== undefined) {
      return { members: { clusterID: h.clusterId, members: h.members.all().map((m) => ({ ID: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner })) } };
    }
    if (req.hashKv !== undefined) {
      const version = req.hashKv.hashVersion;
      if (version !== HASH_KV_VERSION) throw new PeerRefusal(PeerError_Code.UNSUPPORTED, `hashkv version ${version} unknown (this member hashes version ${HASH_KV_VERSION})`);
      const hk = h.store.hashKV(req.hashKv.revision);
      return { hashKv: { hash: hk.hash, hashVersion: version, revision: h.store.currentRev, compactRevision: hk.compactRevision } };
    }
    if (!h.isLeader()) throw new PeerRefusal(PeerError_Code.NOT_LEADER, 'not leader');
    if (req.leaseRenew !== undefined) return { leaseRenew: { TTL: h.leases.renewHere(req.leaseRenew.ID) } };
    if (req.leaseTtl !== undefined) {
      const l = h.leases.remainingHere(req.leaseTtl.ID);
      return { leaseTtl: l === undefined ? { found: false } : { found: true, remainingMs: l.remainingMs, ttlSeconds: l.ttlSeconds } };
    }
    if (req.promote !== undefined) return { promote: { members: (await h.promoteMember(req.promote.memberID)).length } };
    throw new PeerRefusal(PeerError_Code.UNSUPPORTED, 'empty or unknown peer request');
  }

  /** The previous release's kinds (8-byte ids, JSON answers, refusals as error strings). */
  private async answerLegacy(kind: string, body: Uint8Array): Promise<Uint8Array> {
    const h = this.host;
    switch (kind) {
      case MEMBERS_KIND:
        return encodeMembersReply(h.clusterId, h.members.all());
      case 'leaseRenew': {
        if (!h.isLeader()) throw new Error('not leader');
        return be64(BigInt(h.leases.renewHere(Buffer.from(body).readBigInt64BE(0))));
      }
      case 'leaseTTL': {
        if (!h.isLeader()) throw new Error('not leader');
        const l = h.leases.remainingHere(Buffer.from(body).readBigInt64BE(0));
        return Buffer.from(JSON.stringify(l ?? null));
      }
      case 'hashkv':
        return answerHashRequest(h.store, decodeHashRequest(body));
      case 'promote': {
        if (!h.isLeader()) throw new Error('not leader');
        try {
          const members = await h.promoteMember(Buffer.from(body).readBigUInt64BE(0));
          return Buffer.from(JSON.stringify(members.length));
        } catch (err) {
          // The follower relays the leader's refusal as its own: carry the kind across.
          if (err instanceof ClientError) throw new Error(`${LEGACY_CLIENT_ERROR}${err.kind}`);
          throw err;
        }
      }
      default:
        throw new Error(`unknown request kind ${JSON.stringify(kind)}`);
    }
  }
}

/** The previous release's marker of a relayed client refusal in an error string. */
const LEGACY_CLIENT_ERROR = 'cairn-client-error:';

/** A forwarded request's failure on the way (or a previous-release leader's refusal string) as the
 * follower reports it to its client. */
function forwardFailure(err: unknown): Error {
  if (err instanceof ServerRefusal || err instanceof ClientError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const kind = RELAYED_CLIENT_ERRORS.find((k) => msg.includes(`${LEGACY_CLIENT_ERROR}${k}`));
  if (kind !== undefined) return new ClientError(kind);
  return /not leader/.test(msg) ? new ServerRefusal('leaderChanged') : new ServerRefusal('timeout', undefined, { cause: err });
}

function missing(field: string): never {
  throw new Error(`peer response without ${field}`);
}

function be64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
}

/** The previous release's member list answer: JSON with hex ids. */
interface LegacyMembersReply {
  readonly clusterId: string;
  readonly members: readonly { id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }[];
}

function encodeMembersReply(clusterId: bigint, members: readonly Member[]): Uint8Array {
  const r: LegacyMembersReply = {
    clusterId: clusterId.toString(16),
    members: members.map((m) => ({ id: m.id.toString(16), name: m.name, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs], isLearner: m.isLearner })),
  };
  return Buffer.from(JSON.stringify(r));
}

function decodeMembersReply(b: Uint8Array): { clusterId: bigint; members: Member[] } {
  const r = JSON.parse(Buffer.from(b).toString('utf8')) as LegacyMembersReply;
  return {
    clusterId: BigInt(`0x${r.clusterId}`),
    members: r.members.map((m) => ({ id: BigInt(`0x${m.id}`), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner })),
  };
}

/** A joining member's fetch of the member list: typed, or the previous release's JSON. */
export function membersRequestBody(): Uint8Array {
  return encodePeerRequest({ members: {} });
}

export function decodeMembersAnswer(b: Uint8Array): { clusterId: bigint; members: Member[] } {
  if (b[0] === 0x7b) return decodeMembersReply(b); // '{': a previous-release member's JSON
  const r = decodePeerResponse(b);
  if (r.error !== undefined) throw new Error(`member list refused: ${r.error.message}`);
  const m = r.members ?? missing('members');
  return { clusterId: m.clusterID, members: m.members.map((x) => ({ id: x.ID, name: x.name, peerURLs: x.peerURLs, clientURLs: x.clientURLs, isLearner: x.isLearner })) };
}
