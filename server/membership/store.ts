// The members table in LMDB: written only by the apply loop (in the same transaction as the applied
// index), read by everyone. Removed members keep a record flagged removed so their id is never reused
// and their messages are refused.
import type { Backend, Table } from '../storage/backend/index.js';
import { decodeMemberRecord, encodeMemberRecord, memberKey, parseMemberKey } from '../storage/schema/index.js';
import type { Member } from './members.js';
import { sortMembers } from './members.js';

export class MemberStore {
  private readonly table: Table;
  private cache: Member[] | undefined = undefined;
  private removedIds: Set<bigint> | undefined = undefined;

  constructor(backend: Backend) {
    this.table = backend.table('members');
  }

  /** Current members sorted by id (cached; invalidated by writes and reload()). */
  all(): Member[] {
    if (this.cache === undefined) this.load();
    return this.cache ?? [];
  }

  get(id: bigint): Member | undefined {
    return this.all().find((m) => m.id === id);
  }

  isRemoved(id: bigint): boolean {
    if (this.removedIds === undefined) this.load();
    return this.removedIds?.has(id) ?? false;
  }

  /** Replaces the member set (inside the caller's write transaction). */
  write(next: readonly Member[], removedNow: readonly bigint[]): void {
    const keep = new Set(next.map((m) => m.id));
    for (const m of this.all()) if (!keep.has(m.id)) this.table.del(memberKey(m.id));
    for (const m of next) this.table.put(memberKey(m.id), encodeMemberRecord({ ...m, removed: false }));
    for (const id of removedNow) this.table.put(memberKey(id), encodeMemberRecord({ name: '', peerURLs: [], clientURLs: [], isLearner: false, removed: true }));
    this.cache = undefined;
    this.removedIds = undefined;
  }

  /** Forget cached state (after the database was replaced by a snapshot, or a write was aborted). */
  reload(): void {
    this.cache = undefined;
    this.removedIds = undefined;
  }

  private load(): void {
    const ms: Member[] = [];
    const removed = new Set<bigint>();
    for (const { key, value } of this.table.entries(Buffer.alloc(0), undefined)) {
      const id = parseMemberKey(key);
      const r = decodeMemberRecord(value, id);
      if (r.removed) removed.add(id);
      else ms.push({ id, name: r.name, peerURLs: r.peerURLs, clientURLs: r.clientURLs, isLearner: r.isLearner });
    }
    this.cache = sortMembers(ms);
    this.removedIds = removed;
  }
}
