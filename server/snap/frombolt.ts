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
import { META, SCHEMA_VERSION, alarmKey, authNameKey, decodeIndexEntry, encodeIndexEntry, encodeLeaseRecord, encodeNum, encodeRevRecord, leaseKey, revKey } from '../storage/schema/index.js';
import { BoltDb, BoltError, looksLikeBolt, readEtcd, readEtcdStream, type EtcdData, type EtcdStream } from './bbolt/index.js';
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

/** Opens the bbolt database in the first `bytes` of the open file `fd` (read page by page) and decodes its small buckets. */
export function openEtcdSnapshot(fd: number, bytes: number, path: string): EtcdStream {
  try {
    return readEtcdStream(BoltDb.openFile(fd, bytes, `etcd snapshot file ${JSON.stringify(path)}`));
  } catch (err) {
    if (err instanceof BoltError) throw new SnapshotError(err.message, { cause: err });
    throw err;
  }
}

/** Parses a bbolt database held in `data`; a damaged one is a SnapshotError naming what is wrong. */
export function parseEtcdSnapshot(data: Buffer, path: string): EtcdData {
  try {
    return readEtcd(BoltDb.open(data, `etcd snapshot file ${JSON.stringify(path)}`));
  } catch (err) {
    if (err instanceof BoltError) throw new SnapshotError(err.message, { cause: err });
    throw err;
  }
}

/** Revisions written per LMDB transaction. */
const BATCH_REVISIONS = 20_000;

/**
 * Writes an etcd database (read page by page: its key bucket is never whole in memory) into a new
 * LMDB database at `to` (which must not exist). A damaged key bucket is found while writing: the
 * caller removes `to`.
 */
export async function writeEtcdData(s: EtcdStream, to: string): Promise<ImportSummary> {
  if (existsSync(to)) throw new SnapshotError(`${to} exists`);
  const backend = Backend.open(to, BACKEND_MAP_BYTES);
  try {
    const summary = fill(backend, s);
    await backend.flush();
    return summary;
  } finally {
    await backend.close();
  }
}

function fill(backend: Backend, s: EtcdStream): ImportSummary {
  const d = s.data;
  const meta = backend.table('meta');
  const revs = backend.table('rev');
  const index = backend.dupTable('index');
  backend.write(() => meta.put(META.schemaVersion, encodeNum(SCHEMA_VERSION)));
  let count = 0;
  const it = s.revisions();
  let r = it.next();
  while (r.done !== true) {
    backend.write(() => {
      for (let n = 0; n < BATCH_REVISIONS && r.done !== true; n++, r = it.next()) {
        const rev = r.value;
        const key = rev.kv.key;
        if (rev.tombstone) {
          revs.put(revKey(rev.main, rev.sub), encodeRevRecord({ key, modRevision: rev.main }, true));
          index.add(key, encodeIndexEntry({ main: rev.main, sub: rev.sub, tombstone: true, create: 0, version: 0, lease: 0n }));
        } else {
          revs.put(revKey(rev.main, rev.sub), encodeRevRecord(rev.kv, false));
          index.add(key, encodeIndexEntry({ main: rev.main, sub: rev.sub, tombstone: false, create: rev.kv.createRevision, version: rev.kv.version, lease: rev.kv.lease }));
        }
        count++;
      }
    });
  }
  const top = r.value;
  return backend.write(() => {
    const compact = Math.max(d.scheduledCompactRev, d.finishedCompactRev);
    const current = Math.max(top, compact, 1);
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
    // a key is attached to the lease of its newest revision (the index's first value), when alive
    if (leaseIds.size > 0) {
      for (const key of index.keys(Buffer.alloc(0), undefined)) {
        const newest = index.first(key);
        if (newest === undefined) continue;
        const e = decodeIndexEntry(newest, key);
        if (!e.tombstone && e.lease !== 0n && leaseIds.has(e.lease)) leaseKeys.add(leaseKey(e.lease), key);
      }
    }
    if (d.authEnabled) meta.put(META.authEnabled, encodeNum(1));
    if (d.authRevision > 0) meta.put(META.authRevision, encodeNum(d.authRevision));
    const alarms = backend.table('alarm');
    for (const a of d.alarms) alarms.put(alarmKey(a.memberId, a.alarm), Buffer.alloc(0));
    const users = backend.table('authUsers');
    for (const u of d.users) users.put(authNameKey(u.name), u.raw);
    const roles = backend.table('authRoles');
    for (const x of d.roles) roles.put(authNameKey(x.name), x.raw);
    return { revision: current, compactRevision: compact > 0 ? compact : -1, revisions: count, leases: d.leases.length, users: d.users.length, roles: d.roles.length };
  });
}
