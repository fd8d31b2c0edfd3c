// Data corruption checks between members, as etcd's corrupt.go (3.4/3.5):
// - initial (--experimental-initial-corrupt-check): before serving, compare this member's HashKV at
//   its current revision with every reachable peer's at that revision; a different hash at the same
//   compact revision means this member's data diverged: refuse to start.
// - periodic (--experimental-corrupt-check-time, leader only): the leader hashes its store, asks the
//   followers for their hash at that revision, and raises the CORRUPT alarm on a member whose hash,
//   revision or compact revision cannot be right.
// The compaction hash check (--feature-gates=CompactHashCheck) is compacthash.ts.
// Peers ask each other with a typed PeerHashKVRequest (peer.ts). Hash versions (mvcc
// HASH_KV_VERSION): two releases hash the same data differently, so the hash a member sends names its
// version, and hashes of different versions are never compared (skipped and logged once per peer,
// never corruption). The previous release's transport request 'hashkv' is still answered and asked:
// - request: revision (8 bytes BE), then the hash version wanted (1 byte). That release sends and
//   accepts only the 8 bytes: such a request is answered with hash version 1, without naming it, as
//   that release does; it refuses the 9-byte form ('... (want 8)'), and is then asked again in the
//   8-byte form.
// - reply: JSON {hash, revision, compactRevision, hashVersion}; hashVersion absent = version 1.
import { HASH_KV_VERSION, type KvStore } from '../mvcc/index.js';
import type { MemberStore } from '../membership/index.js';
import { StorageFault } from '../base/errors.js';
import type { NodeConfig } from './config.js';

/** The hash version of a reply that names none: the previous release's CRC-32 (mvcc hashKVv1). */
export const LEGACY_HASH_VERSION = 1;

/** A member's HashKV answer, or why it has none. */
export type PeerHash =
  | { readonly id: bigint; readonly ok: true; readonly hash: number; readonly hashVersion: number; readonly compactRevision: number; readonly revision: number }
  | { readonly id: bigint; readonly ok: false; readonly error: string };

export interface LocalHash {
  readonly hash: number;
  readonly hashVersion: number;
  readonly revision: number;
  readonly compactRevision: number;
}

/** A decoded 'hashkv' request; `version` undefined = the previous release's form (8 bytes). */
export interface HashRequest {
  readonly revision: number;
  readonly version: number | undefined;
}

export function encodeHashRequest(revision: number, version?: number): Uint8Array {
  const b = Buffer.alloc(version === undefined ? 8 : 9);
  b.writeBigInt64BE(BigInt(revision));
  if (version !== undefined) b.writeUInt8(version, 8);
  return b;
}

export function decodeHashRequest(body: Uint8Array): HashRequest {
  if (body.length !== 8 && body.length !== 9) throw new Error(`hashkv request of ${body.length} bytes (want 8 or 9)`);
  const b = Buffer.from(body.buffer, body.byteOffset, body.length);
  return { revision: Number(b.readBigInt64BE(0)), version: body.length === 9 ? b.readUInt8(8) : undefined };
}

/** The previous release's refusal of a 9-byte request (its transport carries the message). */
export function refusesVersionedRequest(error: string): boolean {
  return /hashkv request of 9 bytes \(want 8\)/.test(error);
}

/** The peer side: this member's hash in the version asked for (1 for the 8-byte form). */
export function answerHashRequest(store: KvStore, req: HashRequest): Uint8Array {
  const version = req.version ?? LEGACY_HASH_VERSION;
  if (version !== LEGACY_HASH_VERSION && version !== HASH_KV_VERSION) throw new Error(`hashkv version ${version} unknown (this member hashes versions ${LEGACY_HASH_VERSION} and ${HASH_KV_VERSION})`);
  const hk = version === HASH_KV_VERSION ? store.hashKV(req.revision) : store.hashKVv1(req.revision);
  const reply = { hash: hk.hash, compactRevision: hk.compactRevision, revision: store.currentRev };
  return encodeHashReply(req.version === undefined ? reply : { ...reply, hashVersion: version });
}

export function encodeHashReply(h: { hash: number; revision: number; compactRevision: number; hashVersion?: number }): Uint8Array {
  return Buffer.from(JSON.stringify(h));
}

export function decodeHashReply(id: bigint, body: Uint8Array): PeerHash {
  const v: unknown = JSON.parse(Buffer.from(body).toString('utf8'));
  if (typeof v !== 'object' || v === null) return { id, ok: false, error: 'malformed hashkv reply' };
  const { hash, revision, compactRevision, hashVersion } = v as Record<string, unknown>;
  if (typeof hash !== 'number' || typeof revision !== 'number' || typeof compactRevision !== 'number') return { id, ok: false, error: 'malformed hashkv reply' };
  if (hashVersion !== undefined && !(typeof hashVersion === 'number' && Number.isSafeInteger(hashVersion) && hashVersion >= 1)) return { id, ok: false, error: 'malformed hashkv reply' };
  return { id, ok: true, hash, hashVersion: hashVersion ?? LEGACY_HASH_VERSION, revision, compactRevision };
}

/** The peers whose hash is of another version than ours: not compared. */
export function versionSkips(local: LocalHash, peers: readonly PeerHash[]): (PeerHash & { ok: true })[] {
  return peers.filter((p): p is PeerHash & { ok: true } => p.ok && p.hashVersion !== local.hashVersion);
}

/** Initial check: the peers whose data disagree with ours at the same compact revision. */
export function initialMismatches(local: LocalHash, peers: readonly PeerHash[]): bigint[] {
  return peers.filter((p) => p.ok && p.hashVersion === local.hashVersion && p.hash !== local.hash && p.compactRevision === local.compactRevision).map((p) => p.id);
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
    // A follower cannot be ahead of its leader, nor have compacted further, nor disagree at the same
    // compaction (hashes of the same version only: another version's hash differs for equal data).
    const differs = p.hashVersion === before.hashVersion && p.compactRevision === before.compactRevision && p.hash !== before.hash;
    if (p.revision > after.revision || p.compactRevision > after.compactRevision || differs) out.push(p.id);
  }
  return out;
}

/** Every other member's HashKV at `revision` (unreachable or refusing members answer with an error). */
export function askPeers(host: Pick<CorruptionHost, 'members' | 'memberId' | 'peerHash'>, revision: number): Promise<PeerHash[]> {
  const others = host.members.all().filter((m) => m.id !== host.memberId);
  return Promise.all(
    others.map((m) => host.peerHash(m.id, revision).catch((err: unknown): PeerHash => ({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }))),
  );
}

/** Runs `check` every `ms` while this member leads, one run at a time; a failed run is logged as `what` failed. */
export function everyOnLeader(host: Pick<CorruptionHost, 'cfg' | 'isLeader' | 'stopped'>, ms: number, what: string, check: () => Promise<void>): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running || !host.isLeader() || host.stopped()) return;
    running = true;
    check()
      .catch((err: unknown) => host.cfg.logger.warn(`${what} failed`, { error: err }))
      .finally(() => {
        running = false;
      });
  }, ms);
  timer.unref();
  return timer;
}

export interface CorruptionHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly store: KvStore;
  readonly members: MemberStore;
  isLeader(): boolean;
  stopped(): boolean;
  /** A peer's HashKV at a revision (peer.ts), in our hash version or, from a previous release, its own. */
  peerHash(id: bigint, revision: number): Promise<PeerHash>;
  linearizableRead(): Promise<void>;
  raiseCorrupt(member: bigint): Promise<unknown>;
}

/** The initial and the periodic check of one member. */
export class CorruptionChecks {
  private timer: NodeJS.Timeout | undefined = undefined;
  /** Peer and version pairs whose hash comparison was skipped and logged (once each). */
  private readonly skipsLogged = new Set<string>();

  constructor(private readonly host: CorruptionHost) {}

  /** The periodic check every --experimental-corrupt-check-time (leader only); off when 0. */
  start(): void {
    const every = this.host.cfg.corruptCheckMs ?? 0;
    if (every <= 0) return;
    const log = this.host.cfg.logger;
    log.info('enabled corruption checking', { interval: `${every}ms` });
    this.timer = everyOnLeader(this.host, every, 'corruption check', () => this.checkHashes());
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
    this.logSkips('initial', local, peers);
    const bad = initialMismatches(local, peers);
    if (bad.length > 0) {
      for (const id of bad) log.error('found data inconsistency with a peer', { peer: id.toString(16), 'local-hash': local.hash, revision: local.revision, 'compact-revision': local.compactRevision });
      throw new StorageFault(`${this.host.memberId.toString(16)} found data inconsistency with peers`);
    }
    log.info('initial corruption checking passed; no corruption', { revision: local.revision });
  }

  private localHash(revision: number): LocalHash {
    const h = this.host.store.hashKV(revision);
    return { hash: h.hash, hashVersion: HASH_KV_VERSION, compactRevision: h.compactRevision, revision: h.hashRevision };
  }

  /** Logs, once per peer and pair of versions, a comparison skipped because the hash versions differ. */
  private logSkips(check: 'initial' | 'periodic', local: LocalHash, peers: readonly PeerHash[]): void {
    for (const p of versionSkips(local, peers)) {
      const key = `${p.id}/${p.hashVersion}/${local.hashVersion}`;
      if (this.skipsLogged.has(key)) continue;
      this.skipsLogged.add(key);
      this.host.cfg.logger.warn('skipped the hash comparison with a peer hashing another version (a rolling upgrade?)', {
        check,
        'local-member-id': this.host.memberId.toString(16),
        'local-hash-version': local.hashVersion,
        'remote-peer-id': p.id.toString(16),
        'remote-hash-version': p.hashVersion,
        revision: local.revision,
      });
    }
  }

  private peerHashes(revision: number): Promise<PeerHash[]> {
    return askPeers(this.host, revision);
  }

  /** The leader's periodic check (etcd's checkHashKV); raises CORRUPT for the first member found wrong. */
  private async checkHashes(): Promise<void> {
    const before = this.localHash(0);
    const peers = await this.peerHashes(before.revision);
    await this.host.linearizableRead();
    const after = this.localHash(0);
    this.logSkips('periodic', before, peers);
    const bad = periodicMismatches(this.host.memberId, before, after, peers);
    const first = bad[0];
    if (first === undefined) return;
    this.host.cfg.logger.error('found data inconsistency: raising the CORRUPT alarm', { member: first.toString(16), 'leader-hash': before.hash, revision: before.revision, 'compact-revision': before.compactRevision, peers: peers.map((p) => (p.ok ? { id: p.id.toString(16), hash: p.hash, 'hash-version': p.hashVersion, revision: p.revision, 'compact-revision': p.compactRevision } : { id: p.id.toString(16), error: p.error })) });
    await this.host.raiseCorrupt(first);
  }

}
