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
import { checkLmdbHeader, copyData, inspectLayout } from './file.js';
import { Progress, type NowMs } from './progress.js';

export interface SnapshotStatus {
  readonly hash: number;
  readonly revision: number;
  readonly totalKey: number;
  readonly totalSize: number;
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
