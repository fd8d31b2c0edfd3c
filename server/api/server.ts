// The client-facing gRPC server: etcd's services on our node:http2 gRPC server (api/grpc/) with
// the static codecs. Services a later issue implements are not registered, so their methods answer
// UNIMPLEMENTED (`unknown service ...`), as grpc-go does for a service it does not serve.
// Every call passes gate.ts first (learner and `hasleader` checks, as etcd's interceptors): after
// decoding for unary calls, before anything for streams.
import { AuthService, ClusterService, KVService, LeaseService, MaintenanceService, WatchService } from '../../proto/gen/etcdserverpb.js';
import type { MethodDescriptor } from '../../proto/wire.js';
import type { Logger } from '../base/log.js';
import { ClientError, ServerRefusal, StorageFault } from '../base/errors.js';
import { CLIENT_API_VERSIONS_MAX, GRPC_OVERHEAD_BYTES } from '../base/limits.js';
import type { LeaderView } from '../node/index.js';
import { GrpcError, GrpcServer, type BidiHandler, type CallContext, type ServerStreamHandler } from './grpc/index.js';
import type { AuthApi } from './auth.js';
import { then, type Authorizer } from './authz.js';
import { decodeError, toGrpcError } from './errors.js';
import { isClientProtocolError } from './listen.js';
import { callRefusal, gateStream, NO_LEADER_STREAM_ELECTIONS, type StreamGate } from './gate.js';
import type { ClusterApi } from './cluster.js';
import type { KvApi } from './kv.js';
import { keepAliveStream, type LeaseApi } from './lease.js';
import type { MaintenanceApi } from './maintenance.js';
import type { LockApi } from './lock.js';
import type { ElectionApi } from './election.js';
import { LockService } from '../../proto/gen/v3lockpb.js';
import { ElectionService } from '../../proto/gen/v3electionpb.js';
import { HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, type GrpcHealth } from './grpchealth.js';
import { requestStatsLogger, type RequestStatsOptions } from './request-stats.js';

export interface Services {
  readonly kv: KvApi;
  readonly lease: LeaseApi;
  readonly watch: BidiHandler;
  readonly cluster: ClusterApi;
  readonly maintenance: MaintenanceApi;
  /** The Auth service (unregistered, i.e. UNIMPLEMENTED, when absent). */
  readonly auth?: AuthApi;
  /** etcd's v3lock and v3election services (unregistered when absent). */
  readonly lock?: LockApi;
  readonly election?: ElectionApi;
  /** grpc.health.v1.Health, as etcd registers it (unregistered when absent). */
  readonly health?: GrpcHealth;
}

export interface ServerOptions {
  readonly requestBytesMax: number;
  /** A storage fault seen while serving (e.g. a record failing its checksum) stops the process. */
  readonly onFatal: (err: Error) => void;
  /** Leadership facts for the `hasleader` metadata and the learner restrictions. */
  readonly leader: LeaderView;
  /** --election-timeout (ms): a `hasleader` stream is cancelled after 3 of these without a leader. */
  readonly electionTimeoutMs: number;
  /** Auth: root-only methods (ADMIN_PATHS) are refused to other callers while auth is enabled. */
  readonly authz?: Authorizer;
  /** etcd's "request stats" log of slow unary calls (--warning-unary-request-duration); none when absent. */
  readonly requestStats?: RequestStatsOptions;
  /** Counts every call by type and client-api-version (etcd_server_client_requests_total). */
  readonly clientRequests?: ClientRequests;
}

type Metadata = CallContext['metadata'];

/**
 * etcd_server_client_requests_total: calls by type ('unary' or 'stream') and the client's
 * `client-api-version` metadata ('unknown' without one), as etcd's interceptors count them. At most
 * CLIENT_API_VERSIONS_MAX versions are told apart; calls naming a version past those count as 'other'.
 */
export class ClientRequests {
  readonly unary = new Map<string, number>();
  readonly stream = new Map<string, number>();

  count(counts: Map<string, number>, metadata: Metadata): void {
    const v = metadata['client-api-version'];
    let version = v === undefined ? 'unknown' : Array.isArray(v) ? (v[0] ?? 'unknown') : v;
    if (!this.unary.has(version) && !this.stream.has(version) && this.unary.size + this.stream.size >= CLIENT_API_VERSIONS_MAX) version = 'other';
    counts.set(version, (counts.get(version) ?? 0) + 1);
  }
}

/**
 * Methods only root may call while auth is enabled (etcd's authMaintenanceServer and
 * checkMembershipOperationPermission). Status as etcd 3.6 (etcd 3.4 let any caller have it: checked
 * against etcd 3.6.8 in test/etcd36/status-auth.test.ts). Not here: Alarm, MemberList, Compact.
 * The Auth service's own checks are in auth.ts.
 */
const ADMIN_PATHS: ReadonlySet<string> = new Set([
  MaintenanceService.Status.path,
  MaintenanceService.Defragment.path,
  MaintenanceService.Hash.path,
  MaintenanceService.HashKV.path,
  MaintenanceService.MoveLeader.path,
  MaintenanceService.Snapshot.path,
  MaintenanceService.Downgrade.path,
  ClusterService.MemberAdd.path,
  ClusterService.MemberRemove.path,
  ClusterService.MemberUpdate.path,
  ClusterService.MemberPromote.path,
]);

/**
 * Methods that need no permission but still refuse a bad token while auth is enabled: etcd sends
 * them through the log, and every proposal first reads the caller from the token (AuthInfoFromCtx).
 */
const TOKEN_CHECKED_PATHS: ReadonlySet<string> = new Set([LeaseService.LeaseGrant.path, MaintenanceService.Alarm.path]);

const SEND_BYTES_MAX = 2 ** 31 - 1;

/** Which unary requests a learner serves (etcd's isRPCSupportedForLearner); all others are refused. */
type LearnerRule<Req> = (req: Req) => boolean;
const LEARNER_REFUSED = (): boolean => false;

export function createGrpcServer(log: Logger, services: Services, opts: ServerOptions): GrpcServer {
  const { kv, lease, cluster, maintenance } = services;
  const server = new GrpcServer({
    maxReceiveMessageBytes: opts.requestBytesMax + GRPC_OVERHEAD_BYTES,
    maxSendMessageBytes: SEND_BYTES_MAX,
    onError: (err, where) => {
      if (isClientProtocolError(err)) log.debug('grpc: error while serving', { where, error: err });
      else log.warn('grpc: error while serving', { where, error: err });
    },
    ...(opts.requestStats === undefined ? {} : { slowUnary: requestStatsLogger(log, opts.requestStats) }),
  });
  const counted = opts.clientRequests;
  /** A stream handler that counts its calls (etcd's stream interceptor) before running. */
  const stream = <H extends (a: never, b: never, ctx: CallContext) => void>(handler: H): H => {
    if (counted === undefined) return handler;
    return ((a: never, b: never, ctx: CallContext) => {
      counted.count(counted.stream, ctx.metadata);
      handler(a, b, ctx);
    }) as H;
  };
  /** What a failed call ends with; a storage fault also stops the process, an unexpected error is logged. */
  const failure = (method: string, err: unknown): GrpcError => {
    if (err instanceof StorageFault) opts.onFatal(err);
    if (!(err instanceof ClientError || err instanceof ServerRefusal)) log.error('request failed', { method, error: err });
    const e = toGrpcError(err);
    return new GrpcError(e.code, e.details);
  };
  /** A server stream refused to a learner and, with hasleader metadata, without a leader (etcd's stream interceptor), counted. */
  const refusingStream = (handler: ServerStreamHandler): ServerStreamHandler =>
    stream<ServerStreamHandler>((bytes, out, ctx) => {
      const refusal = callRefusal(opts.leader, ctx.metadata, false);
      if (refusal !== undefined) return out.end(toGrpcError(refusal));
      handler(bytes, out, ctx);
    });
  const fail = (method: string, err: unknown): never => {
    throw failure(method, err);
  };
  const unary = <Req, Res, ReqInit, ResInit>(
    m: MethodDescriptor<Req, Res, ReqInit, ResInit>,
    plain: (req: Req, ctx: CallContext) => Uint8Array | Promise<Uint8Array>,
    learnerServes: LearnerRule<Req> = LEARNER_REFUSED,
  ): void => {
    const onError = (err: unknown): never => fail(m.name, err);
    const authz = opts.authz;
    const check = authz === undefined ? undefined : ADMIN_PATHS.has(m.path) ? authz.admin.bind(authz) : TOKEN_CHECKED_PATHS.has(m.path) ? authz.who.bind(authz) : undefined;
    const fn =
      authz === undefined || check === undefined
        ? plain
        : (req: Req, ctx: CallContext): Uint8Array | Promise<Uint8Array> => (authz.enabled ? then(check(ctx), () => plain(req, ctx)) : plain(req, ctx));
    server.unary(m.path, (bytes, ctx) => {
      let req: Req;
      try {
        req = m.decodeRequest(bytes);
      } catch (err) {
        const e = decodeError(err);
        throw new GrpcError(e.code, e.details);
      }
      try {
        counted?.count(counted.unary, ctx.metadata);
        const refusal = callRefusal(opts.leader, ctx.metadata, learnerServes(req));
        if (refusal !== undefined) throw refusal;
        const out = fn(req, ctx);
        return out instanceof Promise ? out.catch(onError) : out;
      } catch (err) {
        return onError(err);
      }
    });
  };
  const gate: StreamGate = { view: opts.leader, leaderlessMs: NO_LEADER_STREAM_ELECTIONS * opts.electionTimeoutMs };
  unary(KVService.Range, kv.range, (r) => r.serializable);
  unary(KVService.Put, kv.put);
  unary(KVService.DeleteRange, kv.deleteRange);
  unary(KVService.Txn, kv.txn);
  unary(KVService.Compact, kv.compact);
  unary(LeaseService.LeaseGrant, lease.grant);
  unary(LeaseService.LeaseRevoke, lease.revoke);
  unary(LeaseService.LeaseTimeToLive, lease.timeToLive);
  unary(LeaseService.LeaseLeases, lease.leases);
  server.bidi(LeaseService.LeaseKeepAlive.path, stream(gateStream(keepAliveStream(lease.keepAlive, (err) => failure(LeaseService.LeaseKeepAlive.name, err)), gate)));
  server.bidi(WatchService.Watch.path, stream(gateStream(services.watch, gate)));
  unary(ClusterService.MemberAdd, cluster.memberAdd);
  unary(ClusterService.MemberRemove, cluster.memberRemove);
  unary(ClusterService.MemberUpdate, cluster.memberUpdate);
  unary(ClusterService.MemberList, cluster.memberList);
  unary(ClusterService.MemberPromote, cluster.memberPromote);
  unary(MaintenanceService.Status, maintenance.status, () => true);
  unary(MaintenanceService.MoveLeader, maintenance.moveLeader);
  unary(MaintenanceService.HashKV, maintenance.hashKV);
  unary(MaintenanceService.Hash, maintenance.hash);
  unary(MaintenanceService.Alarm, maintenance.alarm);
  unary(MaintenanceService.Defragment, maintenance.defragment);
  unary(MaintenanceService.Downgrade, maintenance.downgrade);
  server.serverStream(MaintenanceService.Snapshot.path, stream(adminStream(maintenance.snapshot, opts.authz, (err) => failure(MaintenanceService.Snapshot.name, err))));
  const auth = services.auth;
  if (auth !== undefined) {
    unary(AuthService.AuthEnable, auth.authEnable);
    unary(AuthService.AuthDisable, auth.authDisable);
    unary(AuthService.AuthStatus, auth.authStatus);
    unary(AuthService.Authenticate, auth.authenticate);
    unary(AuthService.UserAdd, auth.userAdd);
    unary(AuthService.UserGet, auth.userGet);
    unary(AuthService.UserList, auth.userList);
    unary(AuthService.UserDelete, auth.userDelete);
    unary(AuthService.UserChangePassword, auth.userChangePassword);
    unary(AuthService.UserGrantRole, auth.userGrantRole);
    unary(AuthService.UserRevokeRole, auth.userRevokeRole);
    unary(AuthService.RoleAdd, auth.roleAdd);
    unary(AuthService.RoleGet, auth.roleGet);
    unary(AuthService.RoleList, auth.roleList);
    unary(AuthService.RoleDelete, auth.roleDelete);
    unary(AuthService.RoleGrantPermission, auth.roleGrantPermission);
    unary(AuthService.RoleRevokePermission, auth.roleRevokePermission);
  }
  const { lock, election } = services;
  if (lock !== undefined) {
    unary(LockService.Lock, lock.lock);
    unary(LockService.Unlock, lock.unlock);
  }
  if (election !== undefined) {
    unary(ElectionService.Campaign, election.campaign);
    unary(ElectionService.Proclaim, election.proclaim);
    unary(ElectionService.Leader, election.leader);
    unary(ElectionService.Resign, election.resign);
    server.serverStream(ElectionService.Observe.path, refusingStream(election.observe));
  }
  const { health } = services;
  if (health !== undefined) {
    // etcd's interceptors refuse both to a learner (neither is a Status or a serializable Range).
    server.unary(HEALTH_CHECK_PATH, (bytes, ctx) => {
      counted?.count(counted.unary, ctx.metadata);
      const refusal = callRefusal(opts.leader, ctx.metadata, false);
      if (refusal !== undefined) throw failure('Check', refusal);
      return health.check(bytes, ctx);
    });
    server.serverStream(HEALTH_WATCH_PATH, refusingStream(health.watch));
  }
  return server;
}

/** A root-only server stream (Snapshot): the check runs before the handler sees the call. */
function adminStream(handler: ServerStreamHandler, authz: Authorizer | undefined, failure: (err: unknown) => GrpcError): ServerStreamHandler {
  if (authz === undefined) return handler;
  return (bytes, out, ctx) => {
    if (!authz.enabled) return handler(bytes, out, ctx);
    try {
      const ok = authz.admin(ctx);
      if (!(ok instanceof Promise)) return handler(bytes, out, ctx);
      ok.then(
        () => handler(bytes, out, ctx),
        (err: unknown) => out.end(failure(err)),
      );
    } catch (err) {
      out.end(failure(err));
    }
  };
}
