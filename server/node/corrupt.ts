// Data corruption checks between members, as etcd's corrupt.go (3.4/3.5):
// - initial (--experimental-initial-corrupt-check): before serving, compare this member's HashKV at
//   its current revision with every reachable peer's at that revision; a different hash at the same
//   compact revision means this member's data diverged: refuse to start.
// - periodic (--experimental-corrupt-check-time, leader only): the leader hashes its store, asks the
//   followers for their hash at that revision, and raises the CORRUPT alarm on a member whose hash,
//   revision or compact revision cannot be right.
// The peer side answers the transport request 'hashkv' (body: revision, 8 bytes BE).
import type { KvStore } from '../mvcc/index.js';
import type { MemberStore } from '../membership/index.js';
import { StorageFault } from '../base/errors.js';
import type { NodeConfig } from './config.js';

/** A member's HashKV answer, or why it has none. */
export type PeerHash =
  | { readonly id: bigint; readonly ok: true; readonly hash: number; readonly compactRevision: number; readonly revision: number }
  | { readonly id: bigint; readonly ok: false; readonly error: string };

export interface LocalHash {
  readonly hash: number;
  readonly revision: number;
  readonly compactRevision: number;
}

export function encodeHashRequest(revision: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(revision));
  return b;
}

export function decodeHashRequest(body: Uint8Array): number {
  if (body.length !== 8) throw new Error(`hashkv request of ${body.length} bytes (want 8)`);
  return Number(Buffer.from(body.buffer, body.byteOffset, body.length).readBigInt64BE(0));
}

export function encodeHashReply(h: LocalHash): Uint8Array {
  return Buffer.from(JSON.stringify(h));
}

export function decodeHashReply(id: bigint, body: Uint8Array): PeerHash {
  const v: unknown = JSON.parse(Buffer.from(body).toString('utf8'));
  if (typeof v !== 'object' || v === null) return { id, ok: false, error: 'malformed hashkv reply' };
  const { hash, revision, compactRevision } = v as Record<string, unknown>;
  if (typeof hash !== 'number' || typeof revision !== 'number' || typeof compactRevision !== 'number') return { id, ok: false, error: 'malformed hashkv reply' };
  return { id, ok: true, hash, revision, compactRevision };
}

/** Initial check: the peers whose data disagree with ours at the same compact revision. */
export function initialMismatches(local: LocalHash, peers: readonly PeerHash[]): bigint[] {
  return peers.filter((p) => p.ok && p.hash !== local.hash && p.compactRevision === local.compactRevision).map((p) => p.id);
}

/**
 * Periodic check on the leader. `before` was hashed when the peers were asked, `after` once the
 * leader caught up again (a linearizable read). Returns the members to raise CORRUPT for (etcd raises
 * one alarm per check: the first found).
 */
export function periodicMismatches(self: bigint, before: LocalHash, after: LocalHash, peers: readonly PeerHash[]): bigint[] {
  const out: bigint[] = [];
  if (after.hash !== before.hash && after.revision === before.revision && after.compactRevision === before.compactRevision) out.push(self);
  for (const p of peers) {
    if (!p.ok) continue;
    // A follower cannot be ahead of its leader, nor have compacted further, nor disagree at the same compaction.
    if (p.revision > after.revision || p.compactRevision > after.compactRevision || (p.compactRevision === before.compactRevision && p.hash !== before.hash)) out.push(p.id);
  }
  return out;
}

export interface CorruptionHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly store: KvStore;
  readonly members: MemberStore;
  isLeader(): boolean;
  stopped(): boolean;
  /** A request to a peer over the transport, with the request timeout. */
  request(to: bigint, kind: string, body: Uint8Array): Promise<Uint8Array>;
  linearizableRead(): Promise<void>;
  raiseCorrupt(member: bigint): Promise<unknown>;
}

/** The initial and the periodic check of one member. */
export class CorruptionChecks {
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(private readonly host: CorruptionHost) {}

  /** The periodic check every --experimental-corrupt-check-time (leader only); off when 0. */
  start(): void {
    const every = this.host.cfg.corruptCheckMs ?? 0;
    if (every <= 0) return;
    const log = this.host.cfg.logger;
    log.info('enabled corruption checking', { interval: `${every}ms` });
    this.timer = setInterval(() => {
      if (!this.host.isLeader() || this.host.stopped()) return;
      this.checkHashes().catch((err: unknown) => log.warn('corruption check failed', { error: err }));
    }, every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** --experimental-initial-corrupt-check (see the file comment); rejects on a mismatch. */
  async initial(): Promise<void> {
    const log = this.host.cfg.logger;
    const local = this.localHash(0);
    log.info('starting initial corruption check', { revision: local.revision, 'compact-revision': local.compactRevision, hash: local.hash });
    const peers = await this.peerHashes(local.revision);
    for (const p of peers) if (!p.ok) log.warn('cannot check the hash of a peer', { peer: p.id.toString(16), error: p.error });
    const bad = initialMismatches(local, peers);
    if (bad.length > 0) {
      for (const id of bad) log.error('found data inconsistency with a peer', { peer: id.toString(16), 'local-hash': local.hash, revision: local.revision, 'compact-revision': local.compactRevision });
      throw new StorageFault(`${this.host.memberId.toString(16)} found data inconsistency with peers`);
    }
    log.info('initial corruption checking passed; no corruption', { revision: local.revision });
  }

  private localHash(revision: number): LocalHash {
    const h = this.host.store.hashKV(revision);
    return { hash: h.hash, compactRevision: h.compactRevision, revision: h.hashRevision };
  }

  /** Every other member's HashKV at `revision` (unreachable or refusing members answer with an error). */
  private peerHashes(revision: number): Promise<PeerHash[]> {
    const others = this.host.members.all().filter((m) => m.id !== this.host.memberId);
    return Promise.all(
      others.map((m) =>
        this.host.request(m.id, 'hashkv', encodeHashRequest(revision)).then(
          (body) => decodeHashReply(m.id, body),
          (err: unknown): PeerHash => ({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
        ),
      ),
    );
  }

  /** The leader's periodic check (etcd's checkHashKV); raises CORRUPT for the first member found wrong. */
  private async checkHashes(): Promise<void> {
    const before = this.localHash(0);
    const peers = await this.peerHashes(before.revision);
    await this.host.linearizableRead();
    const after = this.localHash(0);
    const bad = periodicMismatches(this.host.memberId, before, after, peers);
    const first = bad[0];
    if (first === undefined) return;
    this.host.cfg.logger.error('found data inconsistency: raising the CORRUPT alarm', { member: first.toString(16), 'leader-hash': before.hash, revision: before.revision, 'compact-revision': before.compactRevision, peers: peers.map((p) => (p.ok ? { id: p.id.toString(16), hash: p.hash, revision: p.revision, 'compact-revision': p.compactRevision } : { id: p.id.toString(16), error: p.error })) });
    await this.host.raiseCorrupt(first);
  }

}
