// The client-facing gRPC server: etcd's services on @grpc/grpc-js with our static codecs.
// Methods of services a later issue implements are not registered, so grpc answers UNIMPLEMENTED.
import * as grpc from '@grpc/grpc-js';
import { KVService } from '../../proto/gen/etcdserverpb.js';
import type { MethodDescriptor } from '../../proto/wire.js';
import type { Logger } from '../base/log.js';
import { StorageFault } from '../base/errors.js';
import { GRPC_OVERHEAD_BYTES } from '../base/limits.js';
import { decodeError, toGrpcError, type GrpcError } from './errors.js';
import type { KvApi } from './kv.js';

class Undecodable {
  constructor(readonly error: GrpcError) {}
}

type Unary<Req> = (req: Req) => object | Promise<object>;

function unaryDefinition<Req, Res, ReqInit, ResInit>(m: MethodDescriptor<Req, Res, ReqInit, ResInit>): grpc.MethodDefinition<Req | Undecodable, ResInit> {
  return {
    path: m.path,
    originalName: m.name,
    requestStream: false,
    responseStream: false,
    requestDeserialize: (b: Buffer): Req | Undecodable => {
      try {
        return m.decodeRequest(b);
      } catch (err) {
        return new Undecodable(decodeError(err));
      }
    },
    requestSerialize: () => {
      throw new Error('server does not serialize requests');
    },
    responseSerialize: (r: ResInit) => m.encodeResponse(r),
    responseDeserialize: () => {
      throw new Error('server does not deserialize responses');
    },
  };
}

function unaryHandler<Req>(log: Logger, onFatal: (err: Error) => void, method: string, fn: Unary<Req>): grpc.handleUnaryCall<Req | Undecodable, object> {
  return (call, callback) => {
    const req = call.request;
    if (req instanceof Undecodable) {
      callback({ code: req.error.code, details: req.error.details });
      return;
    }
    const fail = (err: unknown): void => {
      if (err instanceof StorageFault) onFatal(err);
      const e = toGrpcError(err);
      if (e.code === grpc.status.UNKNOWN) log.error('request failed', { method, error: err });
      callback({ code: e.code, details: e.details });
    };
    try {
      const out = fn(req);
      if (out instanceof Promise) out.then((res: object) => callback(null, res), fail);
      else callback(null, out);
    } catch (err) {
      fail(err);
    }
  };
}

export interface ServerOptions {
  readonly requestBytesMax: number;
  /** A storage fault seen while serving (e.g. a record failing its checksum) stops the process. */
  readonly onFatal: (err: Error) => void;
}

export function createGrpcServer(log: Logger, kv: KvApi, opts: ServerOptions): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.requestBytesMax + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': 2147483647,
    'grpc.keepalive_time_ms': 2 * 60 * 60 * 1000,
    'grpc.keepalive_timeout_ms': 20 * 1000,
  });
  const s = KVService;
  const definition = {
    Range: unaryDefinition(s.Range),
    Put: unaryDefinition(s.Put),
    DeleteRange: unaryDefinition(s.DeleteRange),
    Txn: unaryDefinition(s.Txn),
    Compact: unaryDefinition(s.Compact),
  };
  server.addService(definition as unknown as grpc.ServiceDefinition, {
    Range: unaryHandler(log, opts.onFatal, 'Range', kv.range),
    Put: unaryHandler(log, opts.onFatal, 'Put', kv.put),
    DeleteRange: unaryHandler(log, opts.onFatal, 'DeleteRange', kv.deleteRange),
    Txn: unaryHandler(log, opts.onFatal, 'Txn', kv.txn),
    Compact: unaryHandler(log, opts.onFatal, 'Compact', kv.compact),
  } as unknown as grpc.UntypedServiceImplementation);
  return server;
}

export function bind(server: grpc.Server, hostPort: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}
