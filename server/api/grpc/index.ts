// Public surface of server/api/grpc: a lean gRPC server on node:http2.
export { GrpcServer, http2ServerOptions, MAX_CONCURRENT_STREAMS_DEFAULT } from './server.js';
export { GrpcError, Status, type StatusCode } from './status.js';
export type {
  BidiHandler,
  CallContext,
  GrpcErrorLike,
  GrpcServerOptions,
  IncomingMessages,
  ServerStream,
  ServerStreamHandler,
  SlowUnaryCall,
  SlowUnaryOptions,
  UnaryHandler,
} from './handlers.js';
export { commonNameOf, sessionCommonName, setSessionTls } from './peer.js';
