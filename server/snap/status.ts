// `cairn snapshot status`: etcd's four fields for a snapshot file. hash = CRC-32 (IEEE) over every
// table's name and records (tables in name order, records in key order, a dupsort table's values one
// record each), as etcdutl hashes bbolt's buckets (it uses CRC-32C; see README); revision = the
// store's current revision; totalKey = records in all tables; totalSize = bytes of LMDB data.
import { crc32 } from 'node:zlib';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import type { Logger } from '../base/log.js';
import { Backend, type DupTableName, type TableName } from '../storage/backend/index.js';
import { META, decodeNum } from '../storage/schema/index.js';
import { closeSync, openSync, readSync } from 'node:fs';
import { decodeKeyValue } from '../../proto/gen/mvccpb.js';
import { crc32c } from '../base/crc32c.js';
import { BoltDb, BoltError, looksLikeBolt, parseRev } from './bbolt/index.js';
import { SnapshotError } from './errors.js';
import { checkLmdbHeader, copyData, inspectLayout, verifyHash, type SnapshotLayout } from './file.js';
import { Progress, type NowMs } from './progress.js';

export interface SnapshotStatus {
  readonly hash: number;
  readonly revision: number;
  readonly totalKey: number;
  readonly totalSize: number;
  /** etcd's storage version (meta/storageVersion) of a bbolt snapshot; undefined for a Cairn LMDB file. */
  readonly version?: string;
}

export { crc32c };

/**
 * etcdutl 3.6's snapshot status of a bbolt database, computed as it does: hash = CRC-32C over every
 * top-level bucket's name and its keys and values in order; revision = the main revision of the key
 * bucket's last key; totalKey = keys alive after replaying the key bucket (puts minus tombstones);
 * totalSize = pages * page size; version = meta/storageVersion when it is a semver.
 */
export function boltStatus(db: BoltDb): SnapshotStatus {
  let h = 0;
  let revision = 0;
  const live = new Set<string>();
  for (const b of db.root.iterate()) {
    if (!b.isBucket) throw new BoltError(`${db.name}: top-level key ${JSON.stringify(b.key.toString('latin1'))} is not a bucket`);
    h = crc32c(b.key, h);
    const isKey = b.key.equals(Buffer.from('key'));
    const bucket = db.openBucket(b.value, b.key.toString('latin1'), 1);
    for (const e of bucket.iterate()) {
      h = crc32c(e.value, crc32c(e.key, h));
      if (!isKey) continue;
      const rev = parseRev(e.key, db.name);
      revision = rev.main;
      let k: string;
      try {
        k = decodeKeyValue(e.value).key.toString('latin1');
      } catch (err) {
        throw new BoltError(`${db.name}: revision ${rev.main}_${rev.sub}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      if (rev.tombstone) live.delete(k);
      else live.add(k);
    }
  }
  const sv = db.bucket('meta')?.get(Buffer.from('storageVersion'))?.value.toString('utf8');
  const version = sv !== undefined && /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(sv) ? sv : '';
  return { hash: h >>> 0, revision, totalKey: live.size, totalSize: db.sizeBytes, version };
}

/** The status of a bbolt snapshot file (its trailer, if any, checked first), read page by page. */
function boltFileStatus(layout: SnapshotLayout, progress: Progress): SnapshotStatus {
  verifyHash(layout, progress);
  const fd = openSync(layout.path, 'r');
  try {
    return boltStatus(BoltDb.openFile(fd, layout.dataBytes, `snapshot file ${JSON.stringify(layout.path)}`));
  } catch (err) {
    if (err instanceof BoltError) throw new SnapshotError(err.message, { cause: err });
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** Does the file start with a bbolt meta page? */
export function isBoltFile(path: string): boolean {
  const head = Buffer.alloc(64);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return looksLikeBolt(head);
}

/** Every table of the backend and its kind (a Record, so a table added to the backend must be listed here). */
const PLAIN: Record<TableName, true> = { meta: true, rev: true, lease: true, members: true, alarm: true, authUsers: true, authRoles: true };
const DUP: Record<DupTableName, true> = { index: true, leaseKeys: true };

const EMPTY = Buffer.alloc(0);

/** Hash and record count of an open backend (read-only walk). */
export function backendDigest(backend: Backend): { hash: number; totalKey: number; revision: number } {
  const names = [...Object.keys(PLAIN), ...Object.keys(DUP)].sort();
  let h = 0;
  let total = 0;
  for (const name of names) {
    h = crc32(Buffer.from(name), h);
    if (name in PLAIN) {
      for (const { key, value } of backend.table(name as TableName).entries(EMPTY, undefined)) {
        h = crc32(value, crc32(key, h));
        total++;
      }
      continue;
    }
    const dup = backend.dupTable(name as DupTableName);
    for (const key of dup.keys(EMPTY, undefined)) {
      for (const value of dup.values(key, false)) {
        h = crc32(value, crc32(key, h));
        total++;
      }
    }
  }
  return { hash: h >>> 0, totalKey: total, revision: decodeNum(backend.table('meta').get(META.currentRev), 1) };
}

export interface StatusDeps {
  readonly logger: Logger;
  readonly nowMs: NowMs;
  /** Where the working copy goes (LMDB is opened on a copy, never on the snapshot file itself). */
  readonly tmpDir: string;
}

/** Reads a snapshot file's status; a file with a trailer must match its SHA-256 (checked while copying). */
export async function snapshotStatus(path: string, deps: StatusDeps): Promise<SnapshotStatus> {
  const layout = inspectLayout(path, 'ifPresent');
  if (isBoltFile(path)) {
    const p = new Progress(deps.logger, deps.nowMs, 'verifying snapshot', path, layout.dataBytes);
    return boltFileStatus(layout, p);
  }
  checkLmdbHeader(layout);
  const dir = mkdtempSync(join(deps.tmpDir, 'cairn-snapshot-status-'));
  try {
    const db = join(dir, 'db.mdb');
    const progress = new Progress(deps.logger, deps.nowMs, 'reading snapshot', path, layout.dataBytes);
    copyData(layout, db, progress);
    const backend = Backend.open(db, BACKEND_MAP_BYTES);
    try {
      const d = backendDigest(backend);
      return { hash: d.hash, revision: d.revision, totalKey: d.totalKey, totalSize: layout.dataBytes };
    } finally {
      await backend.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
