// Granted leases in LMDB (id -> granted TTL), written in the apply transaction like the keys.
import type { Backend, Table } from '../storage/backend/index.js';
import { decodeLeaseRecord, encodeLeaseRecord, leaseKey, parseLeaseKey } from '../storage/schema/index.js';

export class LeaseStore {
  private readonly table: Table;

  constructor(backend: Backend) {
    this.table = backend.table('lease');
  }

  has(id: bigint): boolean {
    return this.table.get(leaseKey(id)) !== undefined;
  }

  grant(id: bigint, ttlSeconds: number): void {
    this.table.put(leaseKey(id), encodeLeaseRecord(ttlSeconds));
  }

  remove(id: bigint): void {
    this.table.del(leaseKey(id));
  }

  /** Every granted lease (for the lessor at start). */
  all(): { id: bigint; ttlSeconds: number }[] {
    const out: { id: bigint; ttlSeconds: number }[] = [];
    for (const { key, value } of this.table.entries(Buffer.alloc(0), undefined)) {
      const id = parseLeaseKey(key);
      out.push({ id, ttlSeconds: decodeLeaseRecord(value, id) });
    }
    return out;
  }
}
