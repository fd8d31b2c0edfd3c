// The one place that knows gRPC status codes and etcd's exact error strings
// (E api/v3rpc/rpctypes/error.go; shared/etcd-compat-spec.md section 2.9).
import { ClientError, ServerRefusal, type ClientErrorKind, type RefusalKind } from '../base/errors.js';
import { KEY_BYTES_MAX } from '../base/limits.js';
import { Status, type StatusCode } from './grpc/index.js';

export interface GrpcError {
  readonly code: StatusCode;
  readonly details: string;
}

export const CLIENT_ERRORS: Readonly<Record<ClientErrorKind, GrpcError>> = {
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
  memberNotFound: { code: Status.NOT_FOUND, details: 'etcdserver: member not found' },
  memberIdExists: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: member ID already exist' },
  peerUrlExists: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: Peer URLs already exists' },
  // etcd's togRPCError maps this one to the client-side rpctypes.ErrMemberNotEnoughStarted, which is no
  // gRPC status, so grpc-go sends it as Unknown (seen from etcd 3.4.23; clients match the text).
  notEnoughStarted: { code: Status.UNKNOWN, details: 'etcdserver: re-configuration failed due to not enough started members' },
  memberNotLearner: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: can only promote a learner member' },
  learnerNotReady: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: can only promote a learner member which is in sync with leader' },
  tooManyLearners: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: too many learner members in cluster' },
  invalidPeerUrls: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: given member URLs are invalid' },
  notLeader: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: not leader' },
  badLeaderTransferee: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: bad leader transferee' },
  // etcd 3.6's code (3.4/3.5 sent Unavailable): the 3.6 client retries exactly this status on another
  // endpoint when it has several (clientv3 isSafeRetry), so `etcdctl --endpoints=<all>` with a
  // learner among them reaches a voter, for mutations too.
  learnerNotSupported: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: rpc not supported for learner' },
  noSpace: { code: Status.RESOURCE_EXHAUSTED, details: 'etcdserver: mvcc: database space exceeded' },
  corrupt: { code: Status.DATA_LOSS, details: 'etcdserver: corrupt cluster' },
  userEmpty: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' },
  roleEmpty: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: role name is empty' },
  authFailed: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: authentication failed, invalid user ID or password' },
  permissionNotGiven: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: permission not given' },
  invalidAuthMgmt: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: invalid auth management' },
  authOldRevision: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: revision of auth store is old' },
  rootUserNotExist: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: root user does not exist' },
  rootRoleNotExist: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: root user does not have root role' },
  userAlreadyExist: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: user name already exists' },
  userNotFound: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: user name not found' },
  roleAlreadyExist: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: role name already exists' },
  roleNotFound: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: role name not found' },
  roleNotGranted: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: role is not granted to the user' },
  permissionNotGranted: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: permission is not granted to the role' },
  authNotEnabled: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: authentication is not enabled' },
  permissionDenied: { code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' },
  invalidAuthToken: { code: Status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' },
  // etcd 3.4's togRPCError does not map auth.ErrNoPasswordUser: it goes out as Unknown with the auth store's text.
  noPasswordUser: { code: Status.UNKNOWN, details: 'auth: authentication failed, password was given for no password user' },
  invalidDowngradeTargetFormat: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: wrong downgrade target version format' },
  invalidDowngradeTarget: { code: Status.INVALID_ARGUMENT, details: 'etcdserver: invalid downgrade target version' },
  noInflightDowngrade: { code: Status.FAILED_PRECONDITION, details: 'etcdserver: no inflight downgrade job' },
  // The lock and election services return clientv3/concurrency's plain errors: Unknown with their text.
  sessionExpired: { code: Status.UNKNOWN, details: 'mutex: session is expired' },
  electionNotLeader: { code: Status.UNKNOWN, details: 'election: not leader' },
  electionNoLeader: { code: Status.UNKNOWN, details: 'election: no leader' },
  missingLeaderKey: { code: Status.UNKNOWN, details: '"leader" field must be provided' },
  // An error of a KV or Lease call the lock and election services made: etcd's in-process client turns
  // the gRPC status into a plain error, so it goes out as Unknown with the same text (the message).
  relayed: { code: Status.UNKNOWN, details: '' },
  badRequest: { code: Status.INVALID_ARGUMENT, details: '' },
};

export const REFUSALS: Readonly<Record<RefusalKind, GrpcError>> = {
  stopped: { code: Status.UNAVAILABLE, details: 'etcdserver: server stopped' },
  tooManyRequests: { code: Status.RESOURCE_EXHAUSTED, details: 'etcdserver: too many requests' },
  timeout: { code: Status.UNAVAILABLE, details: 'etcdserver: request timed out' },
  // etcd's parseProposeCtxErr: the request started within two election timeouts before the current leader was elected.
  timeoutLeaderFail: { code: Status.UNAVAILABLE, details: 'etcdserver: request timed out, possibly due to previous leader failure' },
  noLeader: { code: Status.UNAVAILABLE, details: 'etcdserver: no leader' },
  leaderChanged: { code: Status.UNAVAILABLE, details: 'etcdserver: leader changed' },
  // Not in etcd's togRPCError map: it goes out as Unknown with etcdserver's text.
  timeoutLeaderTransfer: { code: Status.UNKNOWN, details: 'etcdserver: request timed out, leader transfer took too long' },
  removed: { code: Status.UNAVAILABLE, details: 'etcdserver: server stopped' },
  // The strict reconfiguration check: a voter's peer connection is down or younger than 5 s.
  unhealthy: { code: Status.UNAVAILABLE, details: 'etcdserver: unhealthy cluster' },
};

/** Maps any error to what the client sees. Unknown errors keep their text, as etcd's Unknown code does. */
export function toGrpcError(err: unknown): GrpcError {
  if (err instanceof ClientError) {
    const e = CLIENT_ERRORS[err.kind];
    return err.kind === 'badRequest' || err.kind === 'relayed' ? { code: e.code, details: err.message } : e;
  }
  if (err instanceof ServerRefusal) return REFUSALS[err.kind];
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
