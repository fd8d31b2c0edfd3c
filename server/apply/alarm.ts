// Alarms (etcd's v3alarm store and applyAlarm): replicated through the log so that every member
// refuses the same writes. NOSPACE caps the store (puts, txns with puts and lease grants fail;
// reads, deletes and compaction still work); CORRUPT refuses every change. Stored in the `alarm`
// table so they survive restarts; a member keeps its own copy in memory for the hot-path checks.
import { AlarmRequest_AlarmAction, AlarmType, type AlarmMemberInit, type AlarmRequest, type AlarmResponseInit } from '../../proto/gen/etcdserverpb.js';
import type { Backend, Table } from '../storage/backend/index.js';
import { alarmKey, parseAlarmKey } from '../storage/schema/index.js';

export interface ActiveAlarm {
  readonly memberID: bigint;
  readonly alarm: number;
}

export class AlarmStore {
  private active: ActiveAlarm[] = [];
  private readonly table: Table;

  constructor(backend: Backend) {
    this.table = backend.table('alarm');
    this.reload();
  }

  /** Re-reads the table (after a snapshot install or an aborted batch). */
  reload(): void {
    const out: ActiveAlarm[] = [];
    for (const { key } of this.table.entries(Buffer.alloc(0), undefined)) {
      const k = parseAlarmKey(key);
      out.push({ memberID: k.memberId, alarm: k.alarm });
    }
    this.active = out;
  }

  /** Alarms of one type, or all of them for NONE (etcd's alarmStore.Get). */
  get(alarm: number): ActiveAlarm[] {
    return alarm === AlarmType.NONE ? [...this.active] : this.active.filter((a) => a.alarm === alarm);
  }

  has(alarm: number): boolean {
    return this.active.some((a) => a.alarm === alarm);
  }

  /** Raises an alarm; an alarm already raised is answered as it stands (etcd's Activate). */
  activate(memberID: bigint, alarm: number): ActiveAlarm {
    const existing = this.active.find((a) => a.memberID === memberID && a.alarm === alarm);
    if (existing !== undefined) return existing;
    const a = { memberID, alarm };
    this.table.put(alarmKey(memberID, alarm), Buffer.alloc(0));
    this.active.push(a);
    return a;
  }

  deactivate(memberID: bigint, alarm: number): ActiveAlarm | undefined {
    const at = this.active.findIndex((a) => a.memberID === memberID && a.alarm === alarm);
    if (at < 0) return undefined;
    const [a] = this.active.splice(at, 1);
    this.table.del(alarmKey(memberID, alarm));
    return a;
  }
}

function wire(a: ActiveAlarm): AlarmMemberInit {
  return { memberID: a.memberID, alarm: a.alarm };
}

/** Applies an AlarmRequest (GET goes through the log too, as in etcd, so it is linearizable). */
export function applyAlarm(store: AlarmStore, r: AlarmRequest): AlarmResponseInit {
  switch (r.action) {
    case AlarmRequest_AlarmAction.GET:
      return { alarms: store.get(r.alarm).map(wire) };
    case AlarmRequest_AlarmAction.ACTIVATE: {
      // etcd ignores an ACTIVATE of NONE (an empty response).
      if (r.alarm === AlarmType.NONE) return { alarms: [] };
      return { alarms: [wire(store.activate(r.memberID, r.alarm))] };
    }
    case AlarmRequest_AlarmAction.DEACTIVATE: {
      const a = store.deactivate(r.memberID, r.alarm);
      return { alarms: a === undefined ? [] : [wire(a)] };
    }
    default:
      return { alarms: [] };
  }
}
