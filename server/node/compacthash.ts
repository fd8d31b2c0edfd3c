// The compaction hash check, as etcd 3.6's CompactHashCheck (--feature-gates=CompactHashCheck=true or
// --experimental-compact-hash-check-enabled, every --compact-hash-check-time, leader only):
// - every member, once the physical removal of a compaction at revision C is done, hashes its store at
//   C (HashKV(C) with compactRevision C: per key its newest revision at or below C, which every member
//   that applied the same log holds, however far its physical removal got) and keeps the last
//   COMPACTION_HASHES_KEPT such hashes in memory (etcd keeps them in memory too: none after a restart
//   until the next compaction);
// - the leader, newest first, skips hashes it has already checked on the whole cluster, asks every
//   other member for HashKV at that revision, and groups the answers by hash. Peers that did not
//   answer, that have compacted to another revision, or hash another version are skipped. One group:
//   checked when no peer was skipped, else the next older hash is tried. Several groups: the members
//   outside a quorum-sized group get the CORRUPT alarm; with no such group the alarm is raised for
//   member 0 (the whole cluster), as etcd does.
// Log messages are etcd's ("starting compact hash check", "finished compaction hash check",
// "Detected compaction hash mismatch", ...): tools and etcd's own tests look for them.
import { COMPACTION_HASHES_KEPT } from '../base/limits.js';
import { HASH_KV_VERSION } from '../mvcc/index.js';
import { askPeers, everyOnLeader, type CorruptionHost, type PeerHash } from './corrupt.js';

/** A member's hash of its store at a compaction revision. */
export interface CompactionHash {
  readonly hash: number;
  readonly hashVersion: number;
  /** The compaction's revision: the hash covers the store as of it. */
  readonly revision: number;
  readonly compactRevision: number;
}

export type HashVerdict =
  | { readonly kind: 'consistent'; readonly checked: number; readonly peers: number }
  /** `alarms`: the members to raise CORRUPT for (0n alone: no quorum agrees); `groups`: each hash outside the majority with its members. */
  | { readonly kind: 'mismatch'; readonly quorum: boolean; readonly alarms: readonly bigint[]; readonly groups: readonly { readonly hash: number; readonly ids: readonly bigint[] }[] };

export interface Skip {
  readonly id: bigint;
  readonly reason: string;
}

/** etcd's checkPeerHashes: the verdict on one of the leader's hashes from the peers' answers, and the peers skipped. */
export function judgeCompactionHash(leaderId: bigint, leader: CompactionHash, peers: readonly PeerHash[]): { verdict: HashVerdict; skipped: Skip[] } {
  const byHash = new Map<number, bigint[]>([[leader.hash, [leaderId]]]);
  const skipped: Skip[] = [];
  let checked = 0;
  for (const p of peers) {
    if (!p.ok) skipped.push({ id: p.id, reason: `no response (${p.error})` });
    else if (p.hashVersion !== leader.hashVersion) skipped.push({ id: p.id, reason: `the peer hashes with version ${p.hashVersion}, the leader with ${leader.hashVersion}` });
    else if (p.compactRevision !== leader.compactRevision) skipped.push({ id: p.id, reason: `the peer's CompactRevision ${p.compactRevision} doesn't match leader's CompactRevision ${leader.compactRevision}` });
    else {
      checked++;
      const ids = byHash.get(p.hash);
      if (ids === undefined) byHash.set(p.hash, [p.id]);
      else ids.push(p.id);
    }
  }
  if (byHash.size === 1) return { verdict: { kind: 'consistent', checked, peers: peers.length }, skipped };
  const quorum = Math.floor((peers.length + 1) / 2) + 1;
  const majority = [...byHash].find(([, ids]) => ids.length >= quorum);
  if (majority !== undefined) byHash.delete(majority[0]);
  const groups = [...byHash].map(([hash, ids]) => ({ hash, ids }));
  const alarms = majority === undefined ? [0n] : groups.flatMap((g) => g.ids);
  return { verdict: { kind: 'mismatch', quorum: majority !== undefined, alarms, groups }, skipped };
}

/** What the check needs: the periodic check's host without its linearizable read. */
export type CompactHashHost = Omit<CorruptionHost, 'linearizableRead'>;

export class CompactHashCheck {
  /** Oldest first, at most COMPACTION_HASHES_KEPT. */
  private readonly hashes: CompactionHash[] = [];
  private latestRevisionChecked = 0;
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(private readonly host: CompactHashHost) {}

  private get enabled(): boolean {
    return (this.host.cfg.compactHashCheckMs ?? 0) > 0;
  }

  /** The physical removal of the compaction at `rev` is done: hash the store there (only while the check is on: it reads every key). */
  compactionFinished(rev: number): CompactionHash | undefined {
    if (!this.enabled || this.host.store.compactRev !== rev) return undefined;
    const h = this.host.store.hashKV(rev);
    const stored: CompactionHash = { hash: h.hash, hashVersion: HASH_KV_VERSION, revision: h.hashRevision, compactRevision: h.compactRevision };
    this.host.cfg.logger.info('storing new hash', { hash: stored.hash, revision: stored.revision, 'compact-revision': stored.compactRevision });
    this.hashes.push(stored);
    if (this.hashes.length > COMPACTION_HASHES_KEPT) this.hashes.splice(0, this.hashes.length - COMPACTION_HASHES_KEPT);
    return stored;
  }

  /** Every --compact-hash-check-time, on the leader. */
  start(): void {
    if (!this.enabled) return;
    const every = this.host.cfg.compactHashCheckMs ?? 0;
    this.host.cfg.logger.info('enabled compaction hash check', { interval: `${every}ms` });
    this.timer = everyOnLeader(this.host, every, 'compaction hash check', () => this.check());
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** One pass (etcd's CompactHashCheck). */
  async check(): Promise<void> {
    const log = this.host.cfg.logger;
    log.info('starting compact hash check', { 'local-member-id': this.host.memberId.toString(16) });
    const unchecked = this.hashes.filter((h) => h.revision > this.latestRevisionChecked).sort((a, b) => b.revision - a.revision);
    for (const [i, hash] of unchecked.entries()) {
      const peers = await askPeers(this.host, hash.revision);
      if (this.host.stopped()) return;
      if (peers.length === 0) continue;
      if (await this.apply(hash, peers)) {
        log.info('finished compaction hash check', { 'number-of-hashes-checked': i + 1 });
        return;
      }
    }
    log.info('finished compaction hash check', { 'number-of-hashes-checked': unchecked.length });
  }

  /** Logs and acts on one hash's verdict; true when no older hash needs checking. */
  private async apply(hash: CompactionHash, peers: readonly PeerHash[]): Promise<boolean> {
    const log = this.host.cfg.logger;
    const leaderId = this.host.memberId.toString(16);
    const { verdict, skipped } = judgeCompactionHash(this.host.memberId, hash, peers);
    for (const s of skipped) log.warn("Skipped peer's hash", { 'number-of-peers': peers.length, 'leader-id': leaderId, 'peer-id': s.id.toString(16), reason: s.reason });
    if (verdict.kind === 'consistent') {
      if (verdict.checked === verdict.peers) {
        log.info('successfully checked hash on whole cluster', { 'number-of-peers-checked': verdict.checked, revision: hash.revision, compactRevision: hash.compactRevision });
        this.latestRevisionChecked = Math.max(this.latestRevisionChecked, hash.revision);
        return true;
      }
      log.warn('skipped revision in compaction hash check; was not able to check all peers', { 'number-of-peers-checked': verdict.checked, 'number-of-peers': verdict.peers, revision: hash.revision, compactRevision: hash.compactRevision });
      return false;
    }
    const fields = { 'leader-id': leaderId, 'leader-revision': hash.revision, 'leader-compact-revision': hash.compactRevision, 'leader-hash': hash.hash };
    if (!verdict.quorum) log.error('Detected compaction hash mismatch but cannot identify the corrupted members, so intentionally set the memberID as 0', fields);
    for (const g of verdict.groups) log.error('Detected compaction hash mismatch', { ...fields, 'peer-hash': g.hash, 'peer-ids': g.ids.map((id) => id.toString(16)), 'quorum-exist': verdict.quorum });
    for (const id of verdict.alarms) await this.host.raiseCorrupt(id);
    return true;
  }
}
