// The Maintenance service's side in the member (surface.ts MaintenancePath): Status, the alarms
// (raised through the log, listed as this member applied them), Hash and HashKV, Defragment and client
// snapshot copies (run one at a time by backendops.ts), MoveLeader (leadership.ts). api/ reaches it as
// `Node.maintenance`.
import { AlarmRequest_AlarmAction, AlarmType } from '../../proto/gen/etcdserverpb.js';
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import type { Backend } from '../storage/backend/index.js';
import type { ActiveAlarm, AlarmStore, ApplyOutcome } from '../apply/index.js';
import type { BackendOps } from './backendops.js';
import type { Driver } from './driver.js';
import type { Leadership } from './leadership.js';
import type { HashKvResult, MaintenancePath, MemberStatus } from './surface.js';

export interface MaintenanceHost {
  readonly memberId: bigint;
  readonly backend: Backend;
  readonly alarms: AlarmStore;
  readonly ops: BackendOps;
  readonly leadership: Leadership;
  driver(): Driver;
  appliedIndex(): number;
  isLearner(): boolean;
  propose(req: InternalRequestInit): Promise<ApplyOutcome>;
}

export class Maintenance implements MaintenancePath {
  constructor(private readonly host: MaintenanceHost) {}

  status(): MemberStatus {
    const st = this.host.driver().raft.status();
    return {
      leader: st.softState.lead,
      raftIndex: st.hardState.commit,
      raftTerm: st.hardState.term,
      raftAppliedIndex: this.host.appliedIndex(),
      isLearner: this.host.isLearner(),
      dbSizeBytes: this.host.backend.sizeBytes(),
      dbSizeInUseBytes: this.host.ops.inUseBytes(),
      alarms: this.host.alarms.get(AlarmType.NONE),
    };
  }

  /** The active alarms as this member has applied them. */
  activeAlarms(): ActiveAlarm[] {
    return this.host.alarms.get(AlarmType.NONE);
  }

  /** Raises an alarm (NOSPACE, CORRUPT) for a member, this one by default, through the log. */
  raiseAlarm(alarm: number, memberID = this.host.memberId): Promise<ApplyOutcome> {
    return this.host.propose({ alarm: { action: AlarmRequest_AlarmAction.ACTIVATE, memberID, alarm } });
  }

  moveLeader(target: bigint): Promise<void> {
    return this.host.leadership.moveLeader(target);
  }

  /** A consistent copy of the database for Maintenance.Snapshot; the caller streams it, then release(). */
  snapshotCopy(): Promise<{ path: string; bytes: number; release: () => void }> {
    return this.host.ops.snapshotCopy();
  }

  /** Online defragmentation (reads and applies wait while it runs), as etcd's. */
  defragment(): Promise<{ beforeBytes: number; afterBytes: number; tookMs: number }> {
    return this.host.ops.defragment();
  }

  /** Maintenance.Hash: CRC-32 over every replicated table (not member-local meta), and the current revision. */
  hash(): { hash: number; revision: number } | Promise<{ hash: number; revision: number }> {
    return this.host.ops.hash();
  }

  hashKV(revision: number): HashKvResult | Promise<HashKvResult> {
    return this.host.ops.hashKV(revision);
  }
}
