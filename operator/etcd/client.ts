// The etcd v3 admin API (Cluster, Maintenance) over @grpc/grpc-js with the generated codecs of
// proto/gen as serializers. Member ids are hex strings at this surface (as etcdctl prints them);
// every call has a deadline; gRPC failures become EtcdCallError with the code and etcd's message.
import * as grpc from '@grpc/grpc-js';
import { ClusterService, KVService, MaintenanceService } from '../../proto/gen/etcdserverpb.js';

export const CALL_TIMEOUT_MS = 5000;

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

  private call<ReqInit, Res>(m: Unary<ReqInit, Res>, req: ReqInit): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        (x: ReqInit) => m.encodeRequest(x),
        (b: Buffer) => m.decodeResponse(b),
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
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

  close(): void {
    this.client.close();
  }
}
