// The client-facing gRPC server: etcd's services on our node:http2 gRPC server (api/grpc/) with
// the static codecs. Services a later issue implements are not registered, so their methods answer
// UNIMPLEMENTED (`unknown service ...`), as grpc-go does for a service it does not serve.
// Every call passes gate.ts first (learner and `hasleader` checks, as etcd's interceptors): after
// decoding for unary calls, before anything for streams.
import { ClusterService, KVService, LeaseService, MaintenanceService, WatchService } from '../../proto/gen/etcdserverpb.js';
import type { MethodDescriptor } from '../../proto/wire.js';
import type { Logger } from '../base/log.js';
import { ClientError, ServerRefusal, StorageFault } from '../base/errors.js';
import { GRPC_OVERHEAD_BYTES } from '../base/limits.js';
import type { LeaderView } from '../node/index.js';
import { GrpcError, GrpcServer, type BidiHandler } from './grpc/index.js';
import { decodeError, toGrpcError } from './errors.js';
import { callRefusal, gateStream, NO_LEADER_STREAM_ELECTIONS, type StreamGate } from './gate.js';
import type { ClusterApi } from './cluster.js';
import type { KvApi } from './kv.js';
import { keepAliveStream, type LeaseApi } from './lease.js';
import type { MaintenanceApi } from './maintenance.js';

export interface Services {
  readonly kv: KvApi;
  readonly lease: LeaseApi;
  readonly watch: BidiHandler;
  readonly cluster: ClusterApi;
  readonly maintenance: MaintenanceApi;
}

export interface ServerOptions {
  readonly requestBytesMax: number;
  /** A storage fault seen while serving (e.g. a record failing its checksum) stops the process. */
  readonly onFatal: (err: Error) => void;
  /** Leadership facts for the `hasleader` metadata and the learner restrictions. */
  readonly leader: LeaderView;
  /** --election-timeout (ms): a `hasleader` stream is cancelled after 3 of these without a leader. */
  readonly electionTimeoutMs: number;
}

const SEND_BYTES_MAX = 2 ** 31 - 1;

/** Which unary requests a learner serves (etcd's isRPCSupportedForLearner); all others are refused. */
type LearnerRule<Req> = (req: Req) => boolean;
const LEARNER_REFUSED = (): boolean => false;

export function createGrpcServer(log: Logger, services: Services, opts: ServerOptions): GrpcServer {
  const { kv, lease, cluster, maintenance } = services;
  const server = new GrpcServer({
    maxReceiveMessageBytes: opts.requestBytesMax + GRPC_OVERHEAD_BYTES,
    maxSendMessageBytes: SEND_BYTES_MAX,
    onError: (err, where) => log.warn('grpc: error while serving', { where, error: err }),
  });
  /** What a failed call ends with; a storage fault also stops the process, an unexpected error is logged. */
  const failure = (method: string, err: unknown): GrpcError => {
    if (err instanceof StorageFault) opts.onFatal(err);
    if (!(err instanceof ClientError || err instanceof ServerRefusal)) log.error('request failed', { method, error: err });
    const e = toGrpcError(err);
    return new GrpcError(e.code, e.details);
  };
  const fail = (method: string, err: unknown): never => {
    throw failure(method, err);
  };
  const unary = <Req, Res, ReqInit, ResInit>(
    m: MethodDescriptor<Req, Res, ReqInit, ResInit>,
    fn: (req: Req) => Uint8Array | Promise<Uint8Array>,
    learnerServes: LearnerRule<Req> = LEARNER_REFUSED,
  ): void => {
    const onError = (err: unknown): never => fail(m.name, err);
    server.unary(m.path, (bytes, ctx) => {
      let req: Req;
      try {
        req = m.decodeRequest(bytes);
      } catch (err) {
        const e = decodeError(err);
        throw new GrpcError(e.code, e.details);
      }
      try {
        const refusal = callRefusal(opts.leader, ctx.metadata, learnerServes(req));
        if (refusal !== undefined) throw refusal;
        const out = fn(req);
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
  server.bidi(LeaseService.LeaseKeepAlive.path, gateStream(keepAliveStream(lease.keepAlive, (err) => failure(LeaseService.LeaseKeepAlive.name, err)), gate));
  server.bidi(WatchService.Watch.path, gateStream(services.watch, gate));
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
  server.serverStream(MaintenanceService.Snapshot.path, maintenance.snapshot);
  return server;
}
