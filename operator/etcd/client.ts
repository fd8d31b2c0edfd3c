// The etcd v3 admin API (Cluster, Maintenance) over @grpc/grpc-js with the generated codecs of
// proto/gen as serializers. Member ids are hex strings at this surface (as etcdctl prints them);
// every call has a deadline; gRPC failures become EtcdCallError with the code and etcd's message.
import * as grpc from '@grpc/grpc-js';
import { AlarmRequest_AlarmAction, AlarmType, AuthService, ClusterService, KVService, MaintenanceService } from '../../proto/gen/etcdserverpb.js';
import { accessFor, isNotEnabled, isTokenRefusal, type EtcdAccess } from './access.js';

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
  /** TLS and credentials of this endpoint (default: what accessFor(endpoint) registered, else none). */
  readonly access: EtcdAccess | undefined;

  constructor(
    readonly endpoint: string,
    private readonly timeoutMs = CALL_TIMEOUT_MS,
    access?: EtcdAccess,
  ) {
    this.access = access ?? accessFor(endpoint);
    this.client = new grpc.Client(endpoint, this.access?.channelCredentials() ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
      ...(this.access?.channelOptions(endpoint) ?? {}),
    });
  }

  /**
   * One unary call. With credentials in the access, the call carries the cached token (etcd's
   * `token` metadata); a refusal that means the token is missing, expired or stale ('user name is
   * empty', 'invalid auth token', 'revision of auth store is old') authenticates anew and retries once.
   */
  private async call<ReqInit, Res>(m: Unary<ReqInit, Res>, req: ReqInit, timeoutMs = this.timeoutMs): Promise<Res> {
    const a = this.access;
    if (a?.auth === undefined) return this.once(m, req, timeoutMs, undefined);
    const token = await a.token(this);
    try {
      return await this.once(m, req, timeoutMs, token);
    } catch (e) {
      if (!(e instanceof EtcdCallError) || !isTokenRefusal(e.code, e.details)) throw e;
      a.forget(token);
      return this.once(m, req, timeoutMs, await a.token(this, true));
    }
  }

  private once<ReqInit, Res>(m: Unary<ReqInit, Res>, req: ReqInit, timeoutMs: number, token: string | undefined): Promise<Res> {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('token', token);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        (x: ReqInit) => m.encodeRequest(x),
        (b: Buffer) => m.decodeResponse(b),
        req,
        md,
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

  /**
   * A token for these credentials (etcd's Authenticate), or undefined when auth is not enabled on
   * the cluster. Never sends a token itself.
   */
  async authenticate(user: string, password: string): Promise<string | undefined> {
    try {
      const r = await this.once(AuthService.Authenticate, { name: user, password }, this.timeoutMs, undefined);
      return r.token;
    } catch (e) {
      if (e instanceof EtcdCallError && isNotEnabled(e.details)) return undefined;
      throw e;
    }
  }

  /** Whether auth is enabled (needs no credentials). */
  async authStatus(): Promise<{ enabled: boolean; authRevision: number }> {
    const r = await this.once(AuthService.AuthStatus, {}, this.timeoutMs, undefined);
    return { enabled: r.enabled, authRevision: Number(r.authRevision) };
  }

  /** Adds a user; false if it exists already. */
  async userAdd(name: string, password: string): Promise<boolean> {
    try {
      await this.call(AuthService.UserAdd, { name, password, options: { noPassword: false } });
      return true;
    } catch (e) {
      if (e instanceof EtcdCallError && /user name already exists/.test(e.details)) return false;
      throw e;
    }
  }

  /** The user's roles, or undefined if there is no such user. */
  async userRoles(name: string): Promise<string[] | undefined> {
    try {
      return (await this.call(AuthService.UserGet, { name })).roles;
    } catch (e) {
      if (e instanceof EtcdCallError && /user name not found/.test(e.details)) return undefined;
      throw e;
    }
  }

  async userChangePassword(name: string, password: string): Promise<void> {
    await this.call(AuthService.UserChangePassword, { name, password });
  }

  async userGrantRole(user: string, role: string): Promise<void> {
    await this.call(AuthService.UserGrantRole, { user, role });
  }

  /** Adds a role; false if it exists already. */
  async roleAdd(name: string): Promise<boolean> {
    try {
      await this.call(AuthService.RoleAdd, { name });
      return true;
    } catch (e) {
      if (e instanceof EtcdCallError && /role name already exists/.test(e.details)) return false;
      throw e;
    }
  }

  async authEnable(): Promise<void> {
    await this.call(AuthService.AuthEnable, {});
  }

  async authDisable(): Promise<void> {
    await this.call(AuthService.AuthDisable, {});
  }

  close(): void {
    this.client.close();
  }
}
