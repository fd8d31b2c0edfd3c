// Recovery and bootstrap: opens the backend and the WAL of a data dir, finishes what a crash cut short
// (a snapshot install, temporary copies), bootstraps a new member, and hands back plain state: the
// raft log and hard state to start from, and the member's identity. Nothing here runs after start.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Wal, type WalEntry } from '../wal/index.js';
import { Backend } from '../storage/backend/index.js';
import { META, SCHEMA_VERSION, decodeNum, encodeNum } from '../storage/schema/index.js';
import { MemoryStorage, type ConfState, type Entry, type HardState } from '../raft/index.js';
import { MemberStore, type Member } from '../membership/index.js';
import { StorageFault } from '../base/errors.js';
import { failpoint } from '../base/failpoints.js';
import { BACKEND_MAP_BYTES, WAL_SEGMENT_BYTES } from '../base/limits.js';
import type { Logger } from '../base/log.js';
import { establishIdentity, type Identity } from './bootstrap.js';
import { timeWalWrite } from './stats.js';
import type { NodeConfig } from './config.js';

/**
 * This member was removed from the cluster: found at start on its old data dir (Node.open throws
 * it) or while running (NodeConfig.onRemoved gets it). The data dir can never serve again.
 */
export class RemovedMemberError extends Error {
  override readonly name = 'RemovedMemberError';
}

const RESTART_TERM_UNKNOWN = 0;

/** What a member starts from. */
export interface Recovered {
  readonly backend: Backend;
  readonly wal: Wal;
  /** The raft log above the applied index, with the snapshot (applied index, term, members) below it. */
  readonly storage: MemoryStorage;
  readonly hardState: HardState;
  readonly identity: Identity;
  readonly applied: number;
  /** Entries in the WAL above the applied index (handed to raft again). */
  readonly walEntries: number;
  readonly members: MemberStore;
}

/** Opens and repairs the data dir of cfg (see the file comment); throws RemovedMemberError or StorageFault. */
export async function recover(cfg: NodeConfig): Promise<Recovered> {
    const log = cfg.logger;
    const backend = Backend.open(backendPathOf(cfg.dataDir), BACKEND_MAP_BYTES);
    checkSchema(backend);
    await defragAtStart(backend, cfg.bootstrapDefragThresholdBytes ?? 0, log);
    if (decodeNum(backend.table('meta').get(META.removed), 0) === 1) {
      await backend.close();
      throw new RemovedMemberError(`node: the member in ${cfg.dataDir} has been permanently removed from the cluster; its data cannot rejoin (start with a new data dir and member add)`);
    }
    const identity = await establishIdentity(backend, cfg.cluster, log, cfg.peerTls);
    const beforeWrite = failpoint('wal.write');
    if (beforeWrite !== undefined) log.warn('failpoint armed', { failpoint: 'wal.write', spec: process.env['CAIRN_FAILPOINTS'] });
    const walDir = walDirOf(cfg);
    const opened = await Wal.open({ dir: walDir, logger: log.child('wal'), segmentBytes: cfg.walSegmentBytes ?? WAL_SEGMENT_BYTES, beforeWrite, observeWrite: timeWalWrite });
    const { wal } = opened;
    mkdirSync(snapDirOf(cfg), { recursive: true });
    removeLeftovers(cfg, log);
    await finishSnapshotInstall(cfg, backend, opened.snapshot, log);
    if (identity.bootstrap !== undefined) {
      if (wal.lastIndex() !== 0) throw new StorageFault(`node: WAL in ${walDir} has entries but the backend has no member id; refusing to bootstrap over it`);
      await wal.append(identity.bootstrap.entries.map(toWal), toWalHardState(identity.bootstrap.hardState));
      opened.entries.push(...identity.bootstrap.entries.map(toWal));
    }
    const meta = backend.table('meta');
    const applied = decodeNum(meta.get(META.appliedIndex), 0);
    const appliedTerm = decodeNum(meta.get(META.appliedTerm), RESTART_TERM_UNKNOWN);
    const log0 = opened.entries.filter((e) => e.index > applied).map(fromWal);
    const first = log0[0];
    if (first !== undefined && first.index !== applied + 1) {
      throw new StorageFault(`node: WAL in ${walDir} resumes at entry ${first.index} but the backend has applied only up to ${applied}`);
    }
    if (wal.lastIndex() < applied) {
      // Only an empty WAL (a data dir made from a snapshot) may start behind the backend; a WAL that
      // lost entries the backend applied may also have lost votes: refuse rather than guess.
      if (wal.lastIndex() !== 0 || opened.hardState !== undefined) {
        throw new StorageFault(`node: the WAL in ${walDir} ends at entry ${wal.lastIndex()} but the backend has applied up to ${applied}: entries that were durable are missing from the WAL (disk damage?); refusing to start`);
      }
      await wal.appendSnapshot({ index: applied, term: appliedTerm });
    }
    const members = new MemberStore(backend);
    const hs0 = identity.bootstrap?.hardState ?? (opened.hardState !== undefined ? { term: opened.hardState.term, vote: opened.hardState.vote, commit: opened.hardState.commit } : { term: 0, vote: 0n, commit: 0 });
    const hardState: HardState = { ...hs0, commit: Math.min(Math.max(hs0.commit, applied), applied + log0.length) };
    const storage = new MemoryStorage({ index: applied, term: appliedTerm, confState: confStateOf(members.all()) }, hardState, log0);
  return { backend, wal, storage, hardState, identity, applied, walEntries: log0.length, members };
}

/** Client snapshot copies and defragmentation copies a crash left behind (nothing else uses them). */
function removeLeftovers(cfg: NodeConfig, log: Logger): void {
  const sweep = (dir: string, pattern: RegExp): void => {
    for (const f of readdirSync(dir)) {
      if (!pattern.test(f)) continue;
      rmSync(join(dir, f), { force: true });
      log.info('removed a temporary copy left by an interrupted operation', { path: join(dir, f) });
    }
  };
  sweep(snapDirOf(cfg), /^client-[0-9a-z]+\.mdb(-lock)?$/);
  sweep(dirname(backendPathOf(cfg.dataDir)), /^defrag-[0-9a-z]+\.mdb(-lock)?$/);
}

export function confStateOf(members: readonly Member[]): ConfState {
  return { voters: members.filter((m) => !m.isLearner).map((m) => m.id), learners: members.filter((m) => m.isLearner).map((m) => m.id) };
}

export function toWal(e: Entry): WalEntry {
  return { index: e.index, term: e.term, type: e.type, data: e.data };
}

export function fromWal(e: WalEntry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: e.data };
}

export function toWalHardState(hs: HardState): { term: number; vote: bigint; commit: number } {
  return { term: hs.term, vote: hs.vote, commit: hs.commit };
}

export function backendPathOf(dataDir: string): string {
  return join(dataDir, 'member', 'db.mdb');
}

export function walDirOf(cfg: NodeConfig): string {
  return cfg.walDir !== '' ? cfg.walDir : join(cfg.dataDir, 'member', 'wal');
}

export function snapDirOf(cfg: NodeConfig): string {
  return join(cfg.dataDir, 'member', 'snap');
}

export function snapFileName(index: number): string {
  return `${index.toString(16).padStart(16, '0')}.mdb`;
}

/** A WAL snapshot marker above LMDB's applied index means the install was cut short: finish it. */
async function finishSnapshotInstall(cfg: NodeConfig, backend: Backend, marker: { index: number; term: number } | undefined, log: Logger): Promise<void> {
  const dir = snapDirOf(cfg);
  const applied = decodeNum(backend.table('meta').get(META.appliedIndex), 0);
  if (marker !== undefined && marker.index > applied) {
    const file = join(dir, snapFileName(marker.index));
    if (!existsSync(file)) throw new StorageFault(`node: WAL records snapshot ${marker.index} but ${file} is missing (applied index ${applied})`);
    log.warn('finishing an interrupted snapshot install', { index: marker.index, file });
    await backend.replaceWith(file);
  }
  for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
}

/** Refuses a backend written in another layout; stamps a new one with ours. */
function checkSchema(backend: Backend): void {
  const meta = backend.table('meta');
  const stamped = meta.get(META.schemaVersion);
  const hasData = meta.get(META.currentRev) !== undefined || meta.get(META.clusterId) !== undefined;
  const version = stamped !== undefined ? decodeNum(stamped, 0) : hasData ? 1 : undefined;
  if (version === SCHEMA_VERSION) return;
  if (version !== undefined) {
    throw new StorageFault(`node: backend ${backend.path} has storage schema version ${version}; this Cairn reads version ${SCHEMA_VERSION} (no migration exists: restore into a new data dir)`);
  }
  backend.write(() => meta.put(META.schemaVersion, encodeNum(SCHEMA_VERSION)));
}


/**
 * --bootstrap-defrag-threshold-megabytes (etcd's maybeDefragBackend): before anything else reads the
 * database, a compacting copy replaces it when that frees at least `threshold` bytes (the file's size
 * less its pages in use); otherwise "Skipping defragmentation" is logged, with etcd's fields.
 */
async function defragAtStart(backend: Backend, threshold: number, log: Logger): Promise<void> {
  if (threshold <= 0) return;
  const size = backend.sizeBytes();
  const inUse = backend.sizeInUseBytes();
  const fields = { 'current-db-size-bytes': size, 'current-db-size-in-use-bytes': inUse, 'bootstrap-defrag-threshold-bytes': threshold };
  if (size - inUse < threshold) {
    log.info('Skipping defragmentation', fields);
    return;
  }
  log.info('defragmenting the storage backend at start', fields);
  const started = Date.now();
  await backend.withCompactCopy((tmp) => backend.replaceWith(tmp));
  log.info('finished defragmenting the storage backend', { 'current-db-size-bytes': backend.sizeBytes(), 'previous-db-size-bytes': size, 'took-ms': Date.now() - started });
}
