// The one place that knows gRPC status codes and etcd's exact error strings
// (E api/v3rpc/rpctypes/error.go; shared/etcd-compat-spec.md section 2.9).
import { status } from '@grpc/grpc-js';
import { ClientError, ServerRefusal, type ClientErrorKind, type RefusalKind } from '../base/errors.js';
import { KEY_BYTES_MAX } from '../base/limits.js';

export interface GrpcError {
  readonly code: status;
  readonly details: string;
}

const CLIENT: Record<ClientErrorKind, GrpcError> = {
  emptyKey: { code: status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' },
  keyNotFound: { code: status.INVALID_ARGUMENT, details: 'etcdserver: key not found' },
  valueProvided: { code: status.INVALID_ARGUMENT, details: 'etcdserver: value is provided' },
  leaseProvided: { code: status.INVALID_ARGUMENT, details: 'etcdserver: lease is provided' },
  tooManyOps: { code: status.INVALID_ARGUMENT, details: 'etcdserver: too many operations in txn request' },
  duplicateKey: { code: status.INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' },
  invalidSortOption: { code: status.INVALID_ARGUMENT, details: 'etcdserver: invalid sort option' },
  requestTooLarge: { code: status.INVALID_ARGUMENT, details: 'etcdserver: request is too large' },
  keyTooLarge: { code: status.INVALID_ARGUMENT, details: `cairn: key is longer than ${KEY_BYTES_MAX} bytes` },
  compacted: { code: status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' },
  futureRev: { code: status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' },
  leaseNotFound: { code: status.NOT_FOUND, details: 'etcdserver: requested lease not found' },
  badRequest: { code: status.INVALID_ARGUMENT, details: '' },
};

const REFUSAL: Record<RefusalKind, GrpcError> = {
  stopped: { code: status.UNAVAILABLE, details: 'etcdserver: server stopped' },
  tooManyRequests: { code: status.RESOURCE_EXHAUSTED, details: 'etcdserver: too many requests' },
  timeout: { code: status.UNAVAILABLE, details: 'etcdserver: request timed out' },
};

/** Maps any error to what the client sees. Unknown errors keep their text, as etcd's Unknown code does. */
export function toGrpcError(err: unknown): GrpcError {
  if (err instanceof ClientError) {
    const e = CLIENT[err.kind];
    return err.kind === 'badRequest' ? { code: e.code, details: err.message } : e;
  }
  if (err instanceof ServerRefusal) return REFUSAL[err.kind];
  return { code: status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

/** grpc-go's answer to bytes that do not decode as the request message. */
export function decodeError(err: unknown): GrpcError {
  return { code: status.INTERNAL, details: `grpc: error unmarshalling request: ${err instanceof Error ? err.message : String(err)}` };
}
