// The one place that knows gRPC status codes and etcd's exact error strings
// (E api/v3rpc/rpctypes/error.go; shared/etcd-compat-spec.md section 2.9).
import { ClientError, ServerRefusal, type ClientErrorKind, type RefusalKind } from '../base/errors.js';
import { KEY_BYTES_MAX } from '../base/limits.js';
import { Status, type StatusCode } from './grpc/index.js';

export interface GrpcError {
  readonly code: StatusCode;
  readonly details: string;
}

const CLIENT: Record<ClientErrorKind, GrpcError> = {
  emptyKey: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' },
  keyNotFound: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: key not found' },
  valueProvided: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: value is provided' },
  leaseProvided: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: lease is provided' },
  tooManyOps: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: too many operations in txn request' },
  duplicateKey: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' },
  invalidSortOption: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: invalid sort option' },
  requestTooLarge: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: request is too large' },
  keyTooLarge: { code: Status.INVALID_ARGUMENT, details: `cairn: key is longer than ${KEY_BYTES_MAX} bytes` },
  compacted: { code: Status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' },
  futureRev: { code: Status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' },
  leaseNotFound: { code: Status.NOT_FOUND, details: 'etcdserver: requested lease not found' },
  leaseExists: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: lease already exists' },
  leaseTtlTooLarge: { code: Status.OUT_OF_RANGE, details: 'etcdserver: too large lease TTL' },
  badRequest: { code: Status.INVALID_ARGUMENT, details: '' },
};

const REFUSAL: Record<RefusalKind, GrpcError> = {
  stopped: { code: Status.UNAVAILABLE, details: 'etcdserver: server stopped' },
  tooManyRequests: { code: Status.RESOURCE_EXHAUSTED, details: 'etcdserver: too many requests' },
  timeout: { code: Status.UNAVAILABLE, details: 'etcdserver: request timed out' },
};

/** Maps any error to what the client sees. Unknown errors keep their text, as etcd's Unknown code does. */
export function toGrpcError(err: unknown): GrpcError {
  if (err instanceof ClientError) {
    const e = CLIENT[err.kind];
    return err.kind === 'badRequest' ? { code: e.code, details: err.message } : e;
  }
  if (err instanceof ServerRefusal) return REFUSAL[err.kind];
  return { code: Status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

/** grpc-go's answer to bytes that do not decode as the request message. */
export function decodeError(err: unknown): GrpcError {
  return { code: Status.INTERNAL, details: `grpc: error unmarshalling request: ${err instanceof Error ? err.message : String(err)}` };
}

/** grpc-go's answer to a streamed request message that does not decode. */
export function streamDecodeError(err: unknown): GrpcError {
  return { code: Status.INTERNAL, details: `grpc: failed to unmarshal the received message: ${err instanceof Error ? err.message : String(err)}` };
}
