// `cairn snapshot restore`: turns a snapshot file into the data dir (and WAL dir) of one member of a
// NEW cluster, as etcdutl's v3_snapshot.go Restore does for etcd:
// - ids from the restore flags exactly as a new cluster started with the same flags computes them
//   (so members restored with the same --initial-cluster/--initial-cluster-token find each other);
// - the database keeps keys, history, leases, auth and alarms; its member table is replaced by the
//   new member list (etcd's TrimMembershipFromBackend + AddMember);
// - the member starts as a RESTART: META holds the cluster and member id, applied index n = number of
//   members at term 1, and the WAL holds a snapshot marker {n, 1} with hard state {term 1, commit n}
//   (etcd writes the bootstrap conf changes and a snapshot at index n, term 1);
// - --bump-revision N --mark-compacted (etcdutl 3.5: both or neither): the current revision becomes
//   latest + N and is compacted (etcd schedules a compaction there; ours is the same logical
//   compaction, finished physically in the background after start).
//
// Nothing is written until the file and the flags are checked; on any failure everything this call
// created is removed. The database file appears under its final name last (after its fsync and the
// WAL's), so an interrupted restore is never mistaken for a restored member.
import { existsSync, fsyncSync, mkdirSync, openSync, closeSync, readdirSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import type { Logger } from '../base/log.js';
import { Backend } from '../storage/backend/index.js';
import { META, SCHEMA_VERSION, decodeNum, encodeId, encodeMemberRecord, encodeNum, memberKey } from '../storage/schema/index.js';
import { KvStore } from '../mvcc/index.js';
import { computeClusterId, computeMemberId, parseInitialCluster, sortMembers, type Member } from '../membership/index.js';
import { Wal, type WalLogger } from '../wal/index.js';
import { SnapshotError } from './errors.js';
import { checkLmdbHeader, copyData, inspectLayout, verifyHash, type SnapshotLayout } from './file.js';
import { looksLikeBolt, openEtcdSnapshot, writeEtcdData } from './frombolt.js';
import { BoltError } from './bbolt/index.js';
import { Progress, type NowMs } from './progress.js';

export interface RestoreOptions {
  readonly snapshotPath: string;
  readonly name: string;
  readonly initialCluster: string;
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: readonly string[];
  /** '' = "<name>.cairn" (etcd: "<name>.etcd"). */
  readonly dataDir: string;
  /** '' = "<data-dir>/member/wal". */
  readonly walDir: string;
  readonly skipHashCheck: boolean;
  /** Added to the latest revision (0 = none); requires markCompacted, as etcdutl 3.5. */
  readonly bumpRevision: number;
  readonly markCompacted: boolean;
}

export interface RestoreResult {
  readonly dataDir: string;
  readonly walDir: string;
  readonly clusterId: bigint;
  readonly memberId: bigint;
  readonly members: readonly Member[];
  /** The raft index (and applied index) the member starts at: the number of members. */
  readonly index: number;
  readonly revision: number;
  readonly compactRevision: number;
}

export interface RestoreDeps {
  readonly logger: Logger;
  readonly nowMs: NowMs;
}


/** The term of the restored log (etcd writes its bootstrap entries and snapshot at term 1). */
const RESTORE_TERM = 1;

const q = (s: string): string => JSON.stringify(s);

export function dataDirOf(o: Pick<RestoreOptions, 'dataDir' | 'name'>): string {
  return o.dataDir !== '' ? o.dataDir : `${o.name}.cairn`;
}

export function walDirOf(o: Pick<RestoreOptions, 'walDir' | 'dataDir' | 'name'>): string {
  return o.walDir !== '' ? o.walDir : join(dataDirOf(o), 'member', 'wal');
}

/** The database file of a data dir (server/node/node.ts backendPathOf). */
export function backendPathIn(dataDir: string): string {
  return join(dataDir, 'member', 'db.mdb');
}

function sameUrls(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((u, i) => u === y[i]);
}

/** The new member list and this member's place in it (etcd's VerifyBootstrap + NewClusterFromURLsMap). */
export function planMembers(o: Pick<RestoreOptions, 'name' | 'initialCluster' | 'initialClusterToken' | 'initialAdvertisePeerUrls'>): { members: Member[]; self: Member; clusterId: bigint } {
  let byName: Map<string, string[]>;
  try {
    byName = parseInitialCluster(o.initialCluster);
  } catch (err) {
    throw new SnapshotError(err instanceof Error ? err.message : String(err));
  }
  const seen = new Set<string>();
  for (const u of [...byName.values()].flat()) {
    if (seen.has(u)) throw new SnapshotError(`initial cluster ${o.initialCluster} has duplicate url ${u}`);
    seen.add(u);
  }
  const mine = byName.get(o.name);
  if (mine === undefined) throw new SnapshotError(`couldn't find local name ${q(o.name)} in the initial cluster configuration`);
  if (!sameUrls(mine, o.initialAdvertisePeerUrls)) {
    throw new SnapshotError(`--initial-cluster has ${o.name}=${mine.join(',')} but missing from --initial-advertise-peer-urls=${o.initialAdvertisePeerUrls.join(',')}`);
  }
  const members = sortMembers([...byName].map(([name, urls]) => ({ id: computeMemberId(urls, o.initialClusterToken), name, peerURLs: urls, clientURLs: [], isLearner: false })));
  const self = members.find((m) => m.name === o.name);
  if (self === undefined) throw new SnapshotError(`couldn't find local name ${q(o.name)} in the initial cluster configuration`);
  return { members, self, clusterId: computeClusterId(members.map((m) => m.id)) };
}

/** Refuses a restore over existing data (messages name the paths as the operator gave them). */
function checkTargets(dataDir: string, walDir: string, walDirGiven: boolean): void {
  if (existsSync(dataDir)) {
    let empty = false;
    try {
      empty = statSync(dataDir).isDirectory() && readdirSync(dataDir).length === 0;
    } catch {
      empty = false;
    }
    if (!empty) throw new SnapshotError(`data-dir ${q(dataDir)} not empty or could not be read`);
  }
  if (walDirGiven && existsSync(walDir)) throw new SnapshotError(`wal-dir ${q(walDir)} exists`);
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates dir (and missing parents); returns the topmost directory it created, if any. */
function makeDir(dir: string): string | undefined {
  const created = mkdirSync(dir, { recursive: true });
  if (created !== undefined) fsyncPath(dirname(created));
  return created;
}

/** Rewrites the copied database for the new member (one LMDB transaction). */
function rewriteBackend(backend: Backend, o: RestoreOptions, plan: ReturnType<typeof planMembers>): { revision: number; compactRevision: number } {
  const meta = backend.table('meta');
  const version = meta.get(META.schemaVersion);
  if (version === undefined || decodeNum(version, 0) !== SCHEMA_VERSION) {
    const v = version === undefined ? 'none' : String(decodeNum(version, 0));
    throw new SnapshotError(`snapshot file ${q(o.snapshotPath)} has storage schema version ${v}; this cairn restores version ${SCHEMA_VERSION} only`);
  }
  const store = new KvStore(backend);
  const index = plan.members.length;
  backend.write(() => {
    const table = backend.table('members');
    const old = [...table.entries(Buffer.alloc(0), undefined)].map(({ key }) => Buffer.from(key));
    for (const key of old) table.del(key);
    for (const m of plan.members) table.put(memberKey(m.id), encodeMemberRecord({ ...m, removed: false }));
    meta.put(META.clusterId, encodeId(plan.clusterId));
    meta.put(META.memberId, encodeId(plan.self.id));
    meta.put(META.appliedIndex, encodeNum(index));
    meta.put(META.appliedTerm, encodeNum(RESTORE_TERM));
    meta.del(META.removed);
    meta.del(META.installedSnapshot);
    if (o.bumpRevision > 0) {
      const bumped = store.currentRev + o.bumpRevision;
      if (!Number.isSafeInteger(bumped)) throw new SnapshotError(`--bump-revision ${o.bumpRevision} takes the revision (${store.currentRev}) past 2^53`);
      meta.put(META.currentRev, encodeNum(bumped));
      store.reload();
      if (o.markCompacted) store.compact(bumped);
    }
  });
  store.reload();
  return { revision: store.currentRev, compactRevision: store.compactRev };
}

function quietWalLogger(log: Logger): WalLogger {
  return { info: (m, f) => log.debug(m, f), warn: (m, f) => log.warn(m, f), error: (m, f) => log.error(m, f) };
}

/** Is the snapshot file bbolt (etcd's format, and Cairn's since Maintenance.Snapshot serves it)? */
function isBolt(layout: SnapshotLayout): boolean {
  const head = Buffer.alloc(64);
  const fd = openSync(layout.path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return looksLikeBolt(head);
}

/**
 * A bbolt snapshot into a new Cairn database at `workDb`: the data is copied next to it first (hashed
 * again on the way: the file may have changed since verifyHash), then read page by page from the
 * copy, so neither file is ever whole in memory.
 */
async function restoreBolt(layout: SnapshotLayout, workDb: string, o: RestoreOptions, deps: RestoreDeps): Promise<void> {
  const copy = `${workDb}.bolt`;
  const p = new Progress(deps.logger, deps.nowMs, 'copying snapshot', o.snapshotPath, layout.dataBytes);
  copyData(layout, copy, p);
  p.finish();
  try {
    const fd = openSync(copy, 'r');
    try {
      const s = openEtcdSnapshot(fd, layout.dataBytes, o.snapshotPath);
      deps.logger.info('restoring an etcd (bbolt) snapshot', { path: o.snapshotPath, leases: s.data.leases.length, users: s.data.users.length, roles: s.data.roles.length, alarms: s.data.alarms.length, 'storage-version': s.data.storageVersion ?? '3.4/3.5' });
      try {
        await writeEtcdData(s, workDb);
      } catch (err) {
        if (err instanceof BoltError) throw new SnapshotError(err.message, { cause: err });
        throw err;
      }
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(copy, { force: true });
  }
}

export async function restoreSnapshot(o: RestoreOptions, deps: RestoreDeps): Promise<RestoreResult> {
  const log = deps.logger;
  if (o.markCompacted && o.bumpRevision === 0) throw new SnapshotError('--mark-compacted required if --revision-bump > 0');
  if (o.bumpRevision > 0 && !o.markCompacted) throw new SnapshotError('--mark-compacted required if --revision-bump > 0');
  if (!Number.isSafeInteger(o.bumpRevision) || o.bumpRevision < 0) throw new SnapshotError(`invalid --bump-revision ${o.bumpRevision}`);
  const plan = planMembers(o);
  checkTargets(dataDirOf(o), walDirOf(o), o.walDir !== '');
  const dataDir = resolve(dataDirOf(o));
  const walDir = resolve(walDirOf(o));
  const layout = inspectLayout(o.snapshotPath, o.skipHashCheck ? 'skip' : 'require');
  log.info('restoring snapshot', { path: o.snapshotPath, 'data-dir': dataDir, 'wal-dir': walDir, bytes: layout.dataBytes, 'hash-check': layout.trailer !== undefined });
  const startMs = deps.nowMs();
  if (layout.trailer !== undefined) {
    const p = new Progress(log, deps.nowMs, 'verifying snapshot', o.snapshotPath, layout.dataBytes);
    verifyHash(layout, p);
    p.finish();
  }
  const bolt = isBolt(layout);
  if (!bolt) checkLmdbHeader(layout);

  const created: string[] = [];
  const memberDir = join(dataDir, 'member');
  const finalDb = backendPathIn(dataDir);
  const workDb = `${finalDb}.restoring`;
  try {
    const madeData = makeDir(memberDir);
    if (madeData !== undefined) created.push(madeData);
    if (bolt) {
      await restoreBolt(layout, workDb, o, deps);
    } else {
      const copy = new Progress(log, deps.nowMs, 'copying snapshot', o.snapshotPath, layout.dataBytes);
      copyData(layout, workDb, copy);
      copy.finish();
    }
    const backend = Backend.open(workDb, BACKEND_MAP_BYTES);
    let revs: { revision: number; compactRevision: number };
    try {
      revs = rewriteBackend(backend, o, plan);
      await backend.flush();
    } finally {
      await backend.close();
    }
    rmSync(`${workDb}-lock`, { force: true });
    const madeWal = makeDir(walDir);
    if (madeWal !== undefined) created.push(madeWal);
    const { wal } = await Wal.open({ dir: walDir, logger: quietWalLogger(log) });
    try {
      await wal.appendSnapshot({ index: plan.members.length, term: RESTORE_TERM }, { term: RESTORE_TERM, vote: 0n, commit: plan.members.length });
    } finally {
      await wal.close();
    }
    renameSync(workDb, finalDb);
    fsyncPath(memberDir);
    fsyncPath(dataDir);
    const result: RestoreResult = {
      dataDir,
      walDir,
      clusterId: plan.clusterId,
      memberId: plan.self.id,
      members: plan.members,
      index: plan.members.length,
      revision: revs.revision,
      compactRevision: revs.compactRevision,
    };
    log.info('restored snapshot', {
      path: o.snapshotPath,
      'data-dir': dataDir,
      'wal-dir': walDir,
      'cluster-id': plan.clusterId.toString(16),
      'member-id': plan.self.id.toString(16),
      members: plan.members.map((m) => `${m.name}=${m.id.toString(16)}`),
      revision: revs.revision,
      'compact-revision': revs.compactRevision,
      'took-ms': Math.round(deps.nowMs() - startMs),
    });
    return result;
  } catch (err) {
    for (const p of created.reverse()) rmSync(p, { recursive: true, force: true });
    throw err;
  }
}
