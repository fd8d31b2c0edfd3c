// Cairn's data as etcd 3.6's buckets in a bbolt database: what Maintenance.Snapshot streams (image.ts,
// in a worker thread) and `cairn snapshot export --format bbolt` writes (for an older Cairn snapshot
// in LMDB form, or a stopped member's data dir), so `etcdutl snapshot status|restore` take Cairn's
// snapshots and an etcd cluster can be restored from them.
//
// Buckets as etcd 3.6 writes them (server/storage/schema):
//   key      every stored revision: 8-byte BE main + '_' + 8-byte BE sub (+ 't' for a tombstone) ->
//            mvccpb.KeyValue (the stored bytes; a tombstone holds only the key, as etcd's)
//   meta     scheduledCompactRev and finishedCompactRev (17-byte revisions; a compaction Cairn has not
//            finished physically is written as scheduled only, so etcd redoes it at start),
//            consistent_index / term = Cairn's applied index and term, confState (voters, learners),
//            storageVersion "3.6.0"
//   lease    lease id (int64 BE) -> leasepb.Lease {ID, TTL}
//   auth     authEnabled (when ever set), authRevision; authUsers / authRoles: the same authpb bytes
//   members  member id (hex) -> etcd's JSON; members_removed: removed ids -> "removed"
//   alarm    etcdserverpb.AlarmMember -> empty; cluster: clusterVersion 3.6.0
// The key bucket is read from LMDB as it is written (never whole in memory); the other buckets are
// small. The sources yield the same records on every pass (the writer makes two: stream.ts), given
// an unchanging database (a copy).
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import { Backend } from '../storage/backend/index.js';
import { META, decodeLeaseRecord, decodeMemberRecord, decodeNum, parseAlarmKey, parseLeaseKey, parseMemberKey, parseRevKey, TOMBSTONE } from '../storage/schema/index.js';
import { decodeKeyValue, encodeKeyValue } from '../../proto/gen/mvccpb.js';
import { encodeAlarmMember } from '../../proto/gen/etcdserverpb.js';
import { Writer } from '../../proto/wire.js';
import { boltPages, planBolt, type BoltPlan, type BoltRecord, type BoltSource } from './bbolt/index.js';
import { SnapshotError } from './errors.js';
import { checkLmdbHeader, copyData, inspectLayout } from './file.js';
import { Progress, type NowMs } from './progress.js';
import type { Logger } from '../base/log.js';

/** etcd 3.6's storage version, written in meta (etcdutl snapshot status prints it as the version). */
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
const EMPTY = Buffer.alloc(0);

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
const byKey = (a: BoltRecord, b: BoltRecord): number => Buffer.compare(a.key, b.key);

/** Every stored revision as etcd's key bucket, read from LMDB as it goes (the rev table's order is etcd's). */
function* keyRecords(backend: Backend): Generator<BoltRecord> {
  for (const { key, value } of backend.table('rev').entries(EMPTY, undefined)) {
    const rev = parseRevKey(key);
    const where = `${rev.main}_${rev.sub}`;
    if (value.length < 5) throw new SnapshotError(`the database is damaged: revision ${where} holds ${value.length} bytes`);
    const body = value.subarray(5);
    if (crc32(body) !== value.readUInt32BE(1)) throw new SnapshotError(`the database is damaged: revision ${where} fails its CRC check`);
    const tombstone = ((value[0] as number) & TOMBSTONE) !== 0;
    yield { key: etcdRev(rev.main, rev.sub, tombstone), value: tombstone ? encodeKeyValue({ key: decodeKeyValue(body).key }) : body };
  }
}

function memberBuckets(backend: Backend): { members: BoltRecord[]; removed: BoltRecord[]; confState: string } {
  const members: BoltRecord[] = [];
  const removed: BoltRecord[] = [];
  const voters: bigint[] = [];
  const learners: bigint[] = [];
  for (const { key, value } of backend.table('members').entries(EMPTY, undefined)) {
    const id = parseMemberKey(key);
    const m = decodeMemberRecord(value, id);
    if (m.removed) {
      removed.push(rec(id.toString(16), 'removed'));
      continue;
    }
    (m.isLearner ? learners : voters).push(id);
    const parts = [`"id":${id.toString()}`, `"peerURLs":${JSON.stringify(m.peerURLs)}`];
    if (m.name !== '') parts.push(`"name":${JSON.stringify(m.name)}`);
    if (m.clientURLs.length > 0) parts.push(`"clientURLs":${JSON.stringify(m.clientURLs)}`);
    if (m.isLearner) parts.push('"isLearner":true');
    members.push(rec(id.toString(16), `{${parts.join(',')}}`));
  }
  const ids = (xs: bigint[]): string => xs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((v) => v.toString()).join(',');
  // raftpb.ConfState as etcd stores it (encoding/json of the struct: empty lists omitted)
  const confState = `{${[`"voters":[${ids(voters)}]`, ...(learners.length > 0 ? [`"learners":[${ids(learners)}]`] : []), '"auto_leave":false'].join(',')}}`;
  return { members: members.sort(byKey), removed: removed.sort(byKey), confState };
}

export interface EtcdSources {
  readonly sources: readonly BoltSource[];
  /** Cairn's current and compacted (-1: never) revisions. */
  readonly revision: number;
  readonly compactRevision: number;
}

/** etcd's buckets for the Cairn database open in `backend` (which must not change while they are read). */
export function etcdSources(backend: Backend): EtcdSources {
  const meta = backend.table('meta');
  const revision = decodeNum(meta.get(META.currentRev), 1);
  const compact = decodeNum(meta.get(META.compactRev), -1);
  const pending = decodeNum(meta.get(META.compactPhysicalRev), -1);
  const members = memberBuckets(backend);
  const metaRecs: BoltRecord[] = [
    rec('consistent_index', u64(decodeNum(meta.get(META.appliedIndex), 0))),
    rec('term', u64(decodeNum(meta.get(META.appliedTerm), 0))),
    rec('confState', members.confState),
    rec('storageVersion', ETCD_STORAGE_VERSION),
  ];
  if (compact > 0) {
    metaRecs.push(rec('scheduledCompactRev', etcdRev(compact, 0, false)));
    if (pending !== compact) metaRecs.push(rec('finishedCompactRev', etcdRev(compact, 0, false)));
  }
  const leases: BoltRecord[] = [];
  for (const { key, value } of backend.table('lease').entries(EMPTY, undefined)) {
    const id = parseLeaseKey(key);
    leases.push(rec(Buffer.from(key), encodeLease(id, decodeLeaseRecord(value, id))));
  }
  const alarms: BoltRecord[] = [];
  for (const { key } of backend.table('alarm').entries(EMPTY, undefined)) {
    const a = parseAlarmKey(key);
    alarms.push(rec(encodeAlarmMember({ memberID: a.memberId, alarm: a.alarm }), EMPTY));
  }
  const auth: BoltRecord[] = [rec('authRevision', u64(decodeNum(meta.get(META.authRevision), 1)))];
  const enabled = meta.get(META.authEnabled);
  if (enabled !== undefined) auth.push(rec('authEnabled', Buffer.from([decodeNum(enabled, 0) === 1 ? 1 : 0])));
  const copy = (name: 'authUsers' | 'authRoles'): BoltRecord[] => [...backend.table(name).entries(EMPTY, undefined)].map(({ key, value }) => rec(Buffer.from(key), Buffer.from(value)));
  const fixed = (name: string, records: BoltRecord[]): BoltSource => {
    const sorted = [...records].sort(byKey);
    return { name, records: () => sorted };
  };
  return {
    sources: [
      fixed('alarm', alarms),
      fixed('auth', auth),
      fixed('authRoles', copy('authRoles')),
      fixed('authUsers', copy('authUsers')),
      fixed('cluster', [rec('clusterVersion', ETCD_STORAGE_VERSION)]),
      { name: 'key', records: () => keyRecords(backend) },
      fixed('lease', leases),
      fixed('members', members.members),
      fixed('members_removed', members.removed),
      fixed('meta', metaRecs),
    ],
    revision,
    compactRevision: compact,
  };
}

/** Records in the key bucket of a plan (the stored revisions). */
export function keyRecordsOf(plan: BoltPlan): number {
  return plan.buckets.find((b) => b.name === 'key')?.records ?? 0;
}

/**
 * Writes `out` (which must not exist): the bbolt database of the Cairn snapshot file or data dir
 * `from`, then its SHA-256 (as `etcdctl snapshot save` does), page by page. Written to `<out>.part`,
 * fsynced, renamed.
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
    try {
      const e = etcdSources(backend);
      const plan: BoltPlan = planBolt(e.sources);
      const part = `${out}.part`;
      const fd = openSync(part, 'wx', 0o600);
      const sha = createHash('sha256');
      const writing = new Progress(deps.logger, deps.nowMs, 'writing bbolt', out, plan.bytes);
      try {
        const write = (b: Buffer): void => {
          for (let w = 0; w < b.length; ) w += writeSync(fd, b, w, b.length - w);
        };
        let batch: Buffer[] = [];
        let batchBytes = 0;
        const flush = (): void => {
          const b = Buffer.concat(batch);
          sha.update(b);
          write(b);
          writing.advance(b.length);
          batch = [];
          batchBytes = 0;
        };
        for (const page of boltPages(e.sources, plan)) {
          batch.push(page);
          batchBytes += page.length;
          if (batchBytes >= 4 << 20) flush();
        }
        flush();
        write(sha.digest());
        fsyncSync(fd);
      } catch (err) {
        closeSync(fd);
        rmSync(part, { force: true });
        throw err;
      }
      closeSync(fd);
      writing.finish();
      renameSync(part, out);
      const revisions = keyRecordsOf(plan);
      const bytes = plan.bytes + 32;
      deps.logger.info('exported snapshot as bbolt', { from, out, revision: e.revision, 'compact-revision': e.compactRevision, revisions, bytes });
      return { revision: e.revision, compactRevision: e.compactRevision, revisions, bytes };
    } finally {
      await backend.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
