// `cairn snapshot export --format bbolt`: a Cairn snapshot file (or a stopped member's data dir) turned
// into an etcd 3.6 database file (bbolt, plus the SHA-256 trailer `etcdctl snapshot save` writes), so
// `etcdutl snapshot status|restore` take it and an etcd cluster can be restored from Cairn's data.
//
// Buckets as etcd 3.6 writes them (server/storage/schema):
//   key      every stored revision: 8-byte BE main + '_' + 8-byte BE sub (+ 't' for a tombstone) ->
//            mvccpb.KeyValue (a tombstone holds only the key, as etcd's)
//   meta     scheduledCompactRev and finishedCompactRev (17-byte revisions; a compaction Cairn has not
//            finished physically is written as scheduled only, so etcd redoes it at start),
//            consistent_index / term = Cairn's applied index and term, confState (the voters),
//            storageVersion "3.6.0"
//   lease    lease id (int64 BE) -> leasepb.Lease {ID, TTL}
//   auth     authEnabled (when ever set), authRevision; authUsers / authRoles: the same authpb bytes
//   members  member id (hex) -> etcd's JSON; members_removed, alarm: empty; cluster: clusterVersion 3.6.0
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import { Backend } from '../storage/backend/index.js';
import { META, decodeLeaseRecord, decodeMemberRecord, decodeNum, decodeRevRecord, parseLeaseKey, parseMemberKey, parseRevKey } from '../storage/schema/index.js';
import { encodeKeyValue } from '../../proto/gen/mvccpb.js';
import { Writer } from '../../proto/wire.js';
import { writeBolt, type BoltBucketInput, type BoltRecord } from './bbolt/writer.js';
import { SnapshotError } from './errors.js';
import { checkLmdbHeader, copyData, inspectLayout } from './file.js';
import { Progress, type NowMs } from './progress.js';
import type { Logger } from '../base/log.js';

export const ETCD_STORAGE_VERSION = '3.6.0';

export interface ExportDeps {
  readonly logger: Logger;
  readonly nowMs: NowMs;
  readonly tmpDir: string;
}

export interface ExportResult {
  readonly revision: number;
  readonly compactRevision: number;
  readonly revisions: number;
  readonly bytes: number;
}

const q = (s: string): string => JSON.stringify(s);

function etcdRev(main: number, sub: number, tombstone: boolean): Buffer {
  const b = Buffer.alloc(tombstone ? 18 : 17);
  b.writeBigUInt64BE(BigInt(main), 0);
  b[8] = 0x5f;
  b.writeBigUInt64BE(BigInt(sub), 9);
  if (tombstone) b[17] = 0x74;
  return b;
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

function encodeLease(id: bigint, ttl: number): Buffer {
  const w = new Writer();
  if (id !== 0n) {
    w.uint32(8);
    w.bigint64(id);
  }
  if (ttl !== 0) {
    w.uint32(16);
    w.int64(ttl);
  }
  return w.finish();
}

const rec = (key: string | Buffer, value: string | Buffer): BoltRecord => ({ key: typeof key === 'string' ? Buffer.from(key) : key, value: typeof value === 'string' ? Buffer.from(value) : value });

/** The set of revisions Cairn still needs (all stored ones) as etcd's key bucket. */
function keyBucket(backend: Backend): BoltRecord[] {
  const out: BoltRecord[] = [];
  for (const { key, value } of backend.table('rev').entries(Buffer.alloc(0), undefined)) {
    const rev = parseRevKey(Buffer.from(key));
    const r = decodeRevRecord(Buffer.from(value), `${rev.main}_${rev.sub}`);
    const body = r.tombstone ? encodeKeyValue({ key: r.kv.key }) : encodeKeyValue(r.kv);
    out.push(rec(etcdRev(rev.main, rev.sub, r.tombstone), body));
  }
  return out;
}

function membersBucket(backend: Backend): { records: BoltRecord[]; voters: bigint[] } {
  const records: BoltRecord[] = [];
  const voters: bigint[] = [];
  for (const { key, value } of backend.table('members').entries(Buffer.alloc(0), undefined)) {
    const id = parseMemberKey(Buffer.from(key));
    const m = decodeMemberRecord(Buffer.from(value), id);
    if (m.removed) continue;
    if (!m.isLearner) voters.push(id);
    const parts = [`"id":${id.toString()}`, `"peerURLs":${JSON.stringify(m.peerURLs)}`];
    if (m.name !== '') parts.push(`"name":${JSON.stringify(m.name)}`);
    if (m.clientURLs.length > 0) parts.push(`"clientURLs":${JSON.stringify(m.clientURLs)}`);
    if (m.isLearner) parts.push('"isLearner":true');
    records.push(rec(id.toString(16), `{${parts.join(',')}}`));
  }
  voters.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { records, voters };
}

/** etcd's buckets for the Cairn database open in `backend`. */
export function etcdBuckets(backend: Backend): { buckets: BoltBucketInput[]; revision: number; compactRevision: number; revisions: number } {
  const meta = backend.table('meta');
  const revision = decodeNum(meta.get(META.currentRev), 1);
  const compact = decodeNum(meta.get(META.compactRev), -1);
  const pending = decodeNum(meta.get(META.compactPhysicalRev), -1);
  const keys = keyBucket(backend);
  const members = membersBucket(backend);
  const metaRecs: BoltRecord[] = [
    rec('consistent_index', u64(decodeNum(meta.get(META.appliedIndex), 0))),
    rec('term', u64(decodeNum(meta.get(META.appliedTerm), 0))),
    rec('confState', `{"voters":[${members.voters.map((v) => v.toString()).join(',')}],"auto_leave":false}`),
    rec('storageVersion', ETCD_STORAGE_VERSION),
  ];
  if (compact > 0) {
    metaRecs.push(rec('scheduledCompactRev', etcdRev(compact, 0, false)));
    if (pending !== compact) metaRecs.push(rec('finishedCompactRev', etcdRev(compact, 0, false)));
  }
  const leases: BoltRecord[] = [];
  for (const { key, value } of backend.table('lease').entries(Buffer.alloc(0), undefined)) {
    const id = parseLeaseKey(Buffer.from(key));
    leases.push(rec(Buffer.from(key), encodeLease(id, decodeLeaseRecord(Buffer.from(value), id))));
  }
  const auth: BoltRecord[] = [rec('authRevision', u64(decodeNum(meta.get(META.authRevision), 1)))];
  const enabled = meta.get(META.authEnabled);
  if (enabled !== undefined) auth.push(rec('authEnabled', Buffer.from([decodeNum(enabled, 0) === 1 ? 1 : 0])));
  const copy = (name: 'authUsers' | 'authRoles'): BoltRecord[] => [...backend.table(name).entries(Buffer.alloc(0), undefined)].map(({ key, value }) => rec(Buffer.from(key), Buffer.from(value)));
  return {
    buckets: [
      { name: 'alarm', records: [] },
      { name: 'auth', records: auth },
      { name: 'authRoles', records: copy('authRoles') },
      { name: 'authUsers', records: copy('authUsers') },
      { name: 'cluster', records: [rec('clusterVersion', ETCD_STORAGE_VERSION)] },
      { name: 'key', records: keys },
      { name: 'lease', records: leases },
      { name: 'members', records: members.records },
      { name: 'members_removed', records: [] },
      { name: 'meta', records: metaRecs },
    ],
    revision,
    compactRevision: compact,
    revisions: keys.length,
  };
}

/**
 * Writes `out` (which must not exist): the bbolt database of the Cairn snapshot file or data dir
 * `from`, then its SHA-256 (as `etcdctl snapshot save` does). Written to `<out>.part`, fsynced, renamed.
 */
export async function exportBolt(from: string, out: string, deps: ExportDeps): Promise<ExportResult> {
  let st;
  try {
    st = statSync(from);
  } catch (err) {
    throw new SnapshotError(`cannot read ${q(from)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const source = st.isDirectory() ? join(from, 'member', 'db.mdb') : from;
  const layout = inspectLayout(source, st.isDirectory() ? 'skip' : 'ifPresent');
  checkLmdbHeader(layout);
  try {
    statSync(out);
    throw new SnapshotError(`output file ${q(out)} exists`);
  } catch (err) {
    if (err instanceof SnapshotError) throw err;
  }
  const dir = mkdtempSync(join(deps.tmpDir, 'cairn-snapshot-export-'));
  try {
    const db = join(dir, 'db.mdb');
    const progress = new Progress(deps.logger, deps.nowMs, 'reading snapshot', source, layout.dataBytes);
    copyData(layout, db, progress);
    progress.finish();
    const backend = Backend.open(db, BACKEND_MAP_BYTES);
    let e: ReturnType<typeof etcdBuckets>;
    try {
      e = etcdBuckets(backend);
    } finally {
      await backend.close();
    }
    const data = writeBolt(e.buckets);
    const sum = createHash('sha256').update(data).digest();
    const part = `${out}.part`;
    const fd = openSync(part, 'wx', 0o600);
    try {
      for (const b of [data, sum]) for (let w = 0; w < b.length; ) w += writeSync(fd, b, w, b.length - w);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(part, out);
    deps.logger.info('exported snapshot as bbolt', { from, out, revision: e.revision, 'compact-revision': e.compactRevision, revisions: e.revisions, bytes: data.length + sum.length });
    return { revision: e.revision, compactRevision: e.compactRevision, revisions: e.revisions, bytes: data.length + sum.length };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
