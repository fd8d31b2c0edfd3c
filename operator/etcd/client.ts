// The etcd v3 admin API (Cluster, Maintenance) over @grpc/grpc-js with the generated codecs of
// proto/gen as serializers. Member ids are hex strings at this surface (as etcdctl prints them);
// every call has a deadline; gRPC failures become EtcdCallError with the code and etcd's message.
import * as grpc from '@grpc/grpc-js';
import { AlarmRequest_AlarmAction, AlarmType, ClusterService, KVService, MaintenanceService } from '../../proto/gen/etcdserverpb.js';

export const CALL_TIMEOUT_MS = 5000;
/**
 * Deadline of one Defragment call: the member rewrites its whole database file (seconds per GiB on
 * a local disk) and pauses its applies meanwhile. The operator's loop waits at most this long for one
 * member; a call past it fails (the Event says so) and the round moves on.
 */
export const DEFRAG_TIMEOUT_MS = 120_000;

/** An alarm as etcdctl names it. */
export type AlarmName = 'NOSPACE' | 'CORRUPT';

export interface RaisedAlarm {
  /** Hex id of the member that raised it. */
  memberId: string;
  alarm: AlarmName;
}

/** The part of a generated method descriptor a unary client call needs. */
interface Unary<ReqInit, Res> {
  readonly name: string;
  readonly path: string;
  readonly encodeRequest: (m: ReqInit) => Buffer;
  readonly decodeResponse: (b: Uint8Array) => Res;
}

export class EtcdCallError extends Error {
  override readonly name = 'EtcdCallError';
  constructor(
    readonly method: string,
    readonly endpoint: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${method} on ${endpoint}: ${details} (gRPC code ${String(code)})`);
  }
}

export interface ListedMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberStatusReply {
  memberId: string;
  leader: string;
  raftIndex: number;
  raftAppliedIndex: number;
  dbSize: number;
  dbSizeInUse: number;
  revision: number;
  isLearner: boolean;
  errors: string[];
  version: string;
}

export const hex = (id: bigint): string => id.toString(16);
export const fromHex = (id: string): bigint => BigInt(`0x${id}`);

/** One connection to one endpoint ("host:port"). */
export class EtcdAdmin {
  private readonly client: grpc.Client;

  constructor(
    readonly endpoint: string,
    private readonly timeoutMs = CALL_TIMEOUT_MS,
  ) {
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  private call<ReqInit, Res>(m: Unary<ReqInit, Res>, req: ReqInit, timeoutMs = this.timeoutMs): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        (x: ReqInit) => m.encodeRequest(x),
        (b: Buffer) => m.decodeResponse(b),
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err !== null) reject(new EtcdCallError(m.name, this.endpoint, err.code, err.details));
          else if (res === undefined) reject(new EtcdCallError(m.name, this.endpoint, grpc.status.INTERNAL, 'empty response'));
          else resolve(res);
        },
      );
    });
  }

  /** linearizable=false answers from the member's own view (works without quorum). */
  async memberList(linearizable = true): Promise<{ clusterId: string; members: ListedMember[] }> {
    const r = await this.call(ClusterService.MemberList, { linearizable });
    return {
      clusterId: hex(r.header?.clusterId ?? 0n),
      members: r.members.map((m) => ({ id: hex(m.ID), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner })),
    };
  }

  async memberAddLearner(peerURL: string): Promise<string> {
    const r = await this.call(ClusterService.MemberAdd, { peerURLs: [peerURL], isLearner: true });
    return hex(r.member?.ID ?? 0n);
  }

  async memberPromote(id: string): Promise<void> {
    await this.call(ClusterService.MemberPromote, { ID: fromHex(id) });
  }

  async memberRemove(id: string): Promise<void> {
    await this.call(ClusterService.MemberRemove, { ID: fromHex(id) });
  }

  /** Must be sent to the current leader. */
  async moveLeader(targetId: string): Promise<void> {
    await this.call(MaintenanceService.MoveLeader, { targetID: fromHex(targetId) });
  }

  async status(): Promise<MemberStatusReply> {
    const r = await this.call(MaintenanceService.Status, {});
    return {
      memberId: hex(r.header?.memberId ?? 0n),
      leader: hex(r.leader),
      raftIndex: r.raftIndex,
      raftAppliedIndex: r.raftAppliedIndex,
      dbSize: r.dbSize,
      dbSizeInUse: r.dbSizeInUse,
      revision: r.header?.revision ?? 0,
      isLearner: r.isLearner,
      errors: r.errors,
      version: r.version,
    };
  }

  async put(key: string, value: string): Promise<number> {
    const r = await this.call(KVService.Put, { key: Buffer.from(key), value: Buffer.from(value) });
    return r.header?.revision ?? 0;
  }

  async get(key: string): Promise<string | undefined> {
    const r = await this.call(KVService.Range, { key: Buffer.from(key) });
    return r.kvs[0]?.value.toString('utf8');
  }

  /** Compacts the key history up to `revision` (physical: answers once the compaction is done). */
  async compact(revision: number, physical = true): Promise<void> {
    await this.call(KVService.Compact, { revision, physical });
  }

  /** Defragments this member's database (a long call: DEFRAG_TIMEOUT_MS unless given). */
  async defragment(timeoutMs = DEFRAG_TIMEOUT_MS): Promise<void> {
    await this.call(MaintenanceService.Defragment, {}, timeoutMs);
  }

  /** The cluster's raised alarms. */
  async alarmList(): Promise<RaisedAlarm[]> {
    const r = await this.call(MaintenanceService.Alarm, { action: AlarmRequest_AlarmAction.GET, memberID: 0n, alarm: AlarmType.NONE });
    return r.alarms.flatMap((a): RaisedAlarm[] => {
      const alarm = a.alarm === AlarmType.NOSPACE ? 'NOSPACE' : a.alarm === AlarmType.CORRUPT ? 'CORRUPT' : undefined;
      return alarm === undefined ? [] : [{ memberId: hex(a.memberID), alarm }];
    });
  }

  /** Disarms one member's alarm (etcdctl alarm disarm does this for each raised one). */
  async alarmDisarm(a: RaisedAlarm): Promise<void> {
    const alarm = a.alarm === 'NOSPACE' ? AlarmType.NOSPACE : AlarmType.CORRUPT;
    await this.call(MaintenanceService.Alarm, { action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: fromHex(a.memberId), alarm });
  }

  close(): void {
    this.client.close();
  }
}
