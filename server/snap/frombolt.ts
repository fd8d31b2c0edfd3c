// An etcd (bbolt) snapshot turned into a Cairn database: etcd's revisions, compaction marks, leases and
// auth written into a fresh LMDB file in Cairn's schema (storage/schema), which restore.ts then
// rewrites for the new member list exactly as it does a Cairn snapshot.
//
// - every revision of etcd's key bucket becomes a rev record and an index entry (create revision,
//   version and lease from the stored KeyValue; tombstones as Cairn writes them);
// - current revision = the newest stored revision, or the scheduled compaction if later (etcd's
//   kvstore restore); compacted revision = the scheduled compaction; a scheduled compaction that had
//   not finished is left for Cairn's physical compaction (etcd redoes it at start);
// - leases with their granted TTL, and the keys whose newest revision is live and attached to one;
// - auth: enabled flag, revision, users and roles (the same authpb messages, copied byte for byte);
// - alarms (etcd's restore keeps its alarm bucket too).
import { existsSync } from 'node:fs';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import { Backend } from '../storage/backend/index.js';
import { META, SCHEMA_VERSION, alarmKey, authNameKey, encodeIndexEntry, encodeLeaseRecord, encodeNum, encodeRevRecord, leaseKey, revKey } from '../storage/schema/index.js';
import { BoltDb, BoltError, looksLikeBolt, readEtcd, type EtcdData } from './bbolt/index.js';
import { SnapshotError } from './errors.js';

export interface ImportSummary {
  readonly revision: number;
  readonly compactRevision: number;
  readonly revisions: number;
  readonly leases: number;
  readonly users: number;
  readonly roles: number;
}

export { looksLikeBolt };

/** Parses a bbolt database held in `data`; a damaged one is a SnapshotError naming what is wrong. */
export function parseEtcdSnapshot(data: Buffer, path: string): EtcdData {
  try {
    return readEtcd(BoltDb.open(data, `etcd snapshot file ${JSON.stringify(path)}`));
  } catch (err) {
    if (err instanceof BoltError) throw new SnapshotError(err.message, { cause: err });
    throw err;
  }
}

/** Writes `d` into a new LMDB database at `to` (which must not exist). */
export async function writeEtcdData(d: EtcdData, to: string): Promise<ImportSummary> {
  if (existsSync(to)) throw new SnapshotError(`${to} exists`);
  const backend = Backend.open(to, BACKEND_MAP_BYTES);
  try {
    const summary = backend.write(() => fill(backend, d));
    await backend.flush();
    return summary;
  } finally {
    await backend.close();
  }
}

function fill(backend: Backend, d: EtcdData): ImportSummary {
  const meta = backend.table('meta');
  const revs = backend.table('rev');
  const index = backend.dupTable('index');
  meta.put(META.schemaVersion, encodeNum(SCHEMA_VERSION));
  const newest = new Map<string, { lease: bigint; tombstone: boolean; key: Buffer }>();
  let top = 1;
  for (const r of d.revisions) {
    const key = r.kv.key;
    if (r.tombstone) {
      revs.put(revKey(r.main, r.sub), encodeRevRecord({ key, modRevision: r.main }, true));
      index.add(key, encodeIndexEntry({ main: r.main, sub: r.sub, tombstone: true, create: 0, version: 0, lease: 0n }));
    } else {
      revs.put(revKey(r.main, r.sub), encodeRevRecord(r.kv, false));
      index.add(key, encodeIndexEntry({ main: r.main, sub: r.sub, tombstone: false, create: r.kv.createRevision, version: r.kv.version, lease: r.kv.lease }));
    }
    newest.set(key.toString('latin1'), { lease: r.tombstone ? 0n : r.kv.lease, tombstone: r.tombstone, key });
    top = Math.max(top, r.main);
  }
  const compact = Math.max(d.scheduledCompactRev, d.finishedCompactRev);
  const current = Math.max(top, d.topRevision, compact);
  meta.put(META.currentRev, encodeNum(current));
  if (compact > 0) {
    meta.put(META.compactRev, encodeNum(compact));
    if (d.scheduledCompactRev > d.finishedCompactRev) {
      meta.put(META.compactPhysicalRev, encodeNum(compact));
      meta.put(META.compactPhysicalFrom, Buffer.alloc(1));
    }
  }
  const leaseTable = backend.table('lease');
  const leaseKeys = backend.dupTable('leaseKeys');
  const leaseIds = new Set<bigint>();
  for (const l of d.leases) {
    leaseTable.put(leaseKey(l.id), encodeLeaseRecord(l.ttl));
    leaseIds.add(l.id);
  }
  for (const n of newest.values()) if (!n.tombstone && n.lease !== 0n && leaseIds.has(n.lease)) leaseKeys.add(leaseKey(n.lease), n.key);
  if (d.authEnabled) meta.put(META.authEnabled, encodeNum(1));
  if (d.authRevision > 0) meta.put(META.authRevision, encodeNum(d.authRevision));
  const alarms = backend.table('alarm');
  for (const a of d.alarms) alarms.put(alarmKey(a.memberId, a.alarm), Buffer.alloc(0));
  const users = backend.table('authUsers');
  for (const u of d.users) users.put(authNameKey(u.name), u.raw);
  const roles = backend.table('authRoles');
  for (const r of d.roles) roles.put(authNameKey(r.name), r.raw);
  return { revision: current, compactRevision: compact > 0 ? compact : -1, revisions: d.revisions.length, leases: d.leases.length, users: d.users.length, roles: d.roles.length };
}
