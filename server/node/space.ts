// The space guard: the backend quota (etcd's --quota-backend-bytes and its NOSPACE alarm) and Cairn's
// free-disk reserve on the data and WAL directories, checked before a write is proposed.
import { statfs } from 'node:fs/promises';
import { AlarmType } from '../../proto/gen/etcdserverpb.js';
import type { Backend } from '../storage/backend/index.js';
import type { AlarmStore } from '../apply/index.js';
import { ClientError } from '../base/errors.js';
import { DISK_CHECK_INTERVAL_MS, WAL_SEGMENT_BYTES } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import { diskReserveBytes, effectiveQuotaBytes } from './quota.js';
import { walDirOf } from './recovery.js';
import { monotonicMs } from './clock.js';

/** Disk bytes a write may take per byte of its quota cost: one copy in the WAL, one in LMDB. */
const DISK_BYTES_PER_COST = 2;
/** The quota check's file size is re-read at most this often, and after every apply batch near the quota. */
const DB_SIZE_REFRESH_MS = 100;
const DB_SIZE_EXACT_BYTES = 16 * 1024 * 1024;

export interface SpaceHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly alarms: AlarmStore;
  readonly backend: Backend;
  stopped(): boolean;
  /** Proposes the NOSPACE alarm for this member. */
  raiseNoSpace(): Promise<unknown>;
}

export class SpaceGuard {
  private readonly quotaBytes: number;
  private readonly diskReserve: number;
  /** What the quota counts: the pages holding data (Backend.sizeInUseBytes, not the file: see there), re-read after each apply batch. */
  private dbBytesNow: number;
  private dbBytesAtMs = 0;
  private diskTimer: NodeJS.Timeout | undefined = undefined;
  private diskLow = false;
  /** Free bytes on the fuller of the data and WAL disks at the last check (Infinity before the first). */
  private diskFreeBytes = Infinity;
  /** Bytes writes may have added to those disks since that check (an estimate, see diskBudget). */
  private diskBytesSince = 0;
  /** The free-space check in flight, shared by everyone waiting for it. */
  private diskCheck: Promise<void> | undefined = undefined;

  constructor(private readonly host: SpaceHost) {
    this.quotaBytes = effectiveQuotaBytes(host.cfg.quotaBackendBytes ?? 0);
    this.diskReserve = diskReserveBytes(host.cfg.walSegmentBytes ?? WAL_SEGMENT_BYTES);
    this.dbBytesNow = host.backend.sizeInUseBytes();
  }

  /** Checks free space now and every DISK_CHECK_INTERVAL_MS. */
  start(): void {
    this.diskTimer = setInterval(() => void this.checkDiskSpace(), DISK_CHECK_INTERVAL_MS);
    void this.checkDiskSpace();
    this.diskTimer.unref();
  }

  stop(): void {
    if (this.diskTimer !== undefined) clearInterval(this.diskTimer);
  }

  get dbBytes(): number {
    return this.dbBytesNow;
  }

  /** The database file was replaced: its size is read again. */
  resetDbBytes(): void {
    this.dbBytesNow = this.host.backend.sizeInUseBytes();
  }

  /**
   * A write of this quota cost may go ahead now (undefined); or it is refused (a rejected promise:
   * NOSPACE, over the quota); or it must wait for a fresh free-space check and then be tried again.
   */
  admit(cost: number): Promise<void> | undefined {
    if (this.dbBytesNow + cost > this.quotaBytes) return this.refuseNoSpace();
    return this.diskBudget(cost);
  }

  /**
   * Re-reads the database file's size for the quota check (a statx): at most every
   * DB_SIZE_REFRESH_MS, and after every apply batch once within DB_SIZE_EXACT_BYTES of the quota.
   */
  refreshDbBytes(): void {
    const now = monotonicMs();
    if (now - this.dbBytesAtMs < DB_SIZE_REFRESH_MS && this.quotaBytes - this.dbBytesNow > DB_SIZE_EXACT_BYTES) return;
    this.dbBytesAtMs = now;
    this.dbBytesNow = this.host.backend.sizeInUseBytes();
  }

  /** etcd's quotaAlarmer: raise NOSPACE cluster-wide (once), then refuse the write. */
  private async refuseNoSpace(): Promise<never> {
    if (!this.host.alarms.get(AlarmType.NOSPACE).some((a) => a.memberID === this.host.memberId)) {
      this.host.cfg.logger.warn('backend quota exceeded: raising the NOSPACE alarm', { 'quota-size-bytes': this.quotaBytes, 'db-size-bytes': this.dbBytesNow });
      await this.host.raiseNoSpace().catch(() => undefined);
    }
    throw new ClientError('noSpace');
  }

  /**
   * A disk about to fill would fail the WAL (fail-stop) or LMDB: when free space on the data or WAL
   * directory drops under the reserve, raise NOSPACE on this member so writes stop while deletes,
   * compaction and defragmentation still have room. (etcd has no such check; its quota is the guard.)
   */
  private checkDiskSpace(): Promise<void> {
    if (this.diskCheck !== undefined) return this.diskCheck;
    if (this.host.stopped() || this.diskLow) return Promise.resolve();
    const reserve = this.diskReserve;
    const dirs = [this.host.cfg.dataDir, walDirOf(this.host.cfg)];
    this.diskCheck = Promise.all(dirs.map((d) => statfs(d)))
      .then((stats) => {
        const free = Math.min(...stats.map((st) => st.bavail * st.bsize));
        this.diskFreeBytes = free;
        this.diskBytesSince = 0;
        if (free >= reserve || this.noSpaceOnMe()) return;
        this.diskLow = true;
        this.host.cfg.logger.error('disk space low: raising the NOSPACE alarm; writes are refused until space is freed and the alarm disarmed', { 'free-bytes': free, 'reserve-bytes': reserve, dirs });
        this.host.raiseNoSpace()
          .catch((err: unknown) => this.host.cfg.logger.warn('could not raise the NOSPACE alarm; will retry', { error: err }))
          .finally(() => (this.diskLow = false));
      })
      .catch((err: unknown) => this.host.cfg.logger.warn('cannot check free disk space', { error: err }))
      .finally(() => (this.diskCheck = undefined));
    return this.diskCheck;
  }

  private noSpaceOnMe(): boolean {
    return this.host.alarms.get(AlarmType.NOSPACE).some((a) => a.memberID === this.host.memberId);
  }

  /**
   * Between the periodic checks a fast write load can fill a disk by more than the reserve: each
   * write counts DISK_BYTES_PER_COST x its quota cost (it lands in the WAL and in LMDB) against the
   * free space last seen. A write that would take the estimate under the reserve waits for a fresh
   * check first (which raises NOSPACE if the disk really is low). Undefined: go ahead now.
   */
  private diskBudget(cost: number): Promise<void> | undefined {
    if (this.diskLow || this.noSpaceOnMe()) return undefined;
    if (this.diskFreeBytes - this.diskBytesSince < this.diskReserve) return this.checkDiskSpace();
    this.diskBytesSince += DISK_BYTES_PER_COST * cost;
    return undefined;
  }

}
