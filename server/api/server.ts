// The client-facing gRPC server: etcd's services on our node:http2 gRPC server (api/grpc/) with
// the static codecs. Services a later issue implements are not registered, so their methods answer
// UNIMPLEMENTED (`unknown service ...`), as grpc-go does for a service it does not serve.
import { KVService, LeaseService, WatchService, decodeLeaseKeepAliveRequest, type LeaseKeepAliveRequest } from '../../proto/gen/etcdserverpb.js';
import type { MethodDescriptor } from '../../proto/wire.js';
import type { Logger } from '../base/log.js';
import { StorageFault } from '../base/errors.js';
import { GRPC_OVERHEAD_BYTES } from '../base/limits.js';
import { GrpcError, GrpcServer, Status, type BidiHandler } from './grpc/index.js';
import { decodeError, streamDecodeError, toGrpcError } from './errors.js';
import type { KvApi } from './kv.js';
import type { LeaseApi } from './lease.js';

export interface Services {
  readonly kv: KvApi;
  readonly lease: LeaseApi;
  readonly watch: BidiHandler;
}

export interface ServerOptions {
  readonly requestBytesMax: number;
  /** A storage fault seen while serving (e.g. a record failing its checksum) stops the process. */
  readonly onFatal: (err: Error) => void;
}

const SEND_BYTES_MAX = 2 ** 31 - 1;

export function createGrpcServer(log: Logger, services: Services, opts: ServerOptions): GrpcServer {
  const { kv, lease } = services;
  const server = new GrpcServer({
    maxReceiveMessageBytes: opts.requestBytesMax + GRPC_OVERHEAD_BYTES,
    maxSendMessageBytes: SEND_BYTES_MAX,
    onError: (err, where) => log.warn('grpc: error while serving', { where, error: err }),
  });
  const fail = (method: string, err: unknown): never => {
    if (err instanceof StorageFault) opts.onFatal(err);
    const e = toGrpcError(err);
    if (e.code === Status.UNKNOWN) log.error('request failed', { method, error: err });
    throw new GrpcError(e.code, e.details);
  };
  const unary = <Req, Res, ReqInit, ResInit>(m: MethodDescriptor<Req, Res, ReqInit, ResInit>, fn: (req: Req) => Uint8Array | Promise<Uint8Array>): void => {
    const onError = (err: unknown): never => fail(m.name, err);
    server.unary(m.path, (bytes) => {
      let req: Req;
      try {
        req = m.decodeRequest(bytes);
      } catch (err) {
        const e = decodeError(err);
        throw new GrpcError(e.code, e.details);
      }
      try {
        const out = fn(req);
        return out instanceof Promise ? out.catch(onError) : out;
      } catch (err) {
        return onError(err);
      }
    });
  };
  unary(KVService.Range, kv.range);
  unary(KVService.Put, kv.put);
  unary(KVService.DeleteRange, kv.deleteRange);
  unary(KVService.Txn, kv.txn);
  unary(KVService.Compact, kv.compact);
  unary(LeaseService.LeaseGrant, lease.grant);
  unary(LeaseService.LeaseRevoke, lease.revoke);
  unary(LeaseService.LeaseTimeToLive, lease.timeToLive);
  unary(LeaseService.LeaseLeases, lease.leases);
  server.bidi(LeaseService.LeaseKeepAlive.path, keepAliveHandler(lease.keepAlive));
  server.bidi(WatchService.Watch.path, services.watch);
  return server;
}

/** LeaseKeepAlive: one reply per request, in order; reading pauses while the client does not read. */
function keepAliveHandler(keepAlive: (r: LeaseKeepAliveRequest) => Uint8Array): BidiHandler {
  return (incoming, out) => {
    incoming.onMessage((bytes) => {
      let req: LeaseKeepAliveRequest;
      try {
        req = decodeLeaseKeepAliveRequest(bytes);
      } catch (err) {
        const e = streamDecodeError(err);
        out.end(new GrpcError(e.code, e.details));
        return;
      }
      if (out.send(keepAlive(req)) || out.closed) return;
      incoming.pause();
      out.onDrain(() => incoming.resume());
    });
    // etcd ends the keepalive stream (OK) when the client half-closes.
    incoming.onEnd(() => out.end());
  };
}
