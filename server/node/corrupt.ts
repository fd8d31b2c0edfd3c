// Data corruption checks between members, as etcd's corrupt.go (3.4/3.5):
// - initial (--experimental-initial-corrupt-check): before serving, compare this member's HashKV at
//   its current revision with every reachable peer's at that revision; a different hash at the same
//   compact revision means this member's data diverged: refuse to start.
// - periodic (--experimental-corrupt-check-time, leader only): the leader hashes its store, asks the
//   followers for their hash at that revision, and raises the CORRUPT alarm on a member whose hash,
//   revision or compact revision cannot be right.
// The peer side answers the transport request 'hashkv' (body: revision, 8 bytes BE).

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
