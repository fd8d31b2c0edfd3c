// Error classes split by blame (DESIGN.md style 7). Only api/errors.ts knows gRPC codes and
// etcd's exact strings; everything below raises these with a symbolic kind.

/** The client asked for something invalid or impossible; the request is refused, nothing changes. */
export type ClientErrorKind =
  | 'emptyKey'
  | 'keyNotFound'
  | 'valueProvided'
  | 'leaseProvided'
  | 'tooManyOps'
  | 'duplicateKey'
  | 'invalidSortOption'
  | 'requestTooLarge'
  | 'keyTooLarge'
  | 'compacted'
  | 'futureRev'
  | 'leaseNotFound'
  | 'leaseExists'
  | 'leaseTtlTooLarge'
  | 'memberNotFound'
  | 'memberIdExists'
  | 'peerUrlExists'
  | 'notEnoughStarted'
  | 'memberNotLearner'
  | 'learnerNotReady'
  | 'tooManyLearners'
  | 'invalidPeerUrls'
  | 'notLeader'
  | 'badLeaderTransferee'
  | 'learnerNotSupported'
  | 'noSpace'
  | 'corrupt'
  | 'userEmpty'
  | 'roleEmpty'
  | 'authFailed'
  | 'permissionNotGiven'
  | 'invalidAuthMgmt'
  | 'authOldRevision'
  | 'rootUserNotExist'
  | 'rootRoleNotExist'
  | 'userAlreadyExist'
  | 'userNotFound'
  | 'roleAlreadyExist'
  | 'roleNotFound'
  | 'roleNotGranted'
  | 'permissionNotGranted'
  | 'authNotEnabled'
  | 'permissionDenied'
  | 'invalidAuthToken'
  | 'noPasswordUser'
  | 'invalidDowngradeTargetFormat'
  | 'invalidDowngradeTarget'
  | 'noInflightDowngrade'
  | 'sessionExpired'
  | 'electionNotLeader'
  | 'electionNoLeader'
  | 'missingLeaderKey'
  | 'relayed'
  | 'badRequest';

export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly kind: ClientErrorKind,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? kind, options);
  }
}

/** The server cannot serve now (stopping, overloaded); the client may retry. */
export type RefusalKind = 'stopped' | 'tooManyRequests' | 'timeout' | 'timeoutLeaderFail' | 'noLeader' | 'leaderChanged' | 'timeoutLeaderTransfer' | 'removed' | 'unhealthy';

export class ServerRefusal extends Error {
  override readonly name = 'ServerRefusal';
  constructor(
    readonly kind: RefusalKind,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? kind, options);
  }
}

/** Local storage is damaged or failed (fsync error, corrupt record): fatal, the process stops. */
export class StorageFault extends Error {
  override readonly name = 'StorageFault';
}

/** An impossible state: a bug. */
export class AssertionFailure extends Error {
  override readonly name = 'AssertionFailure';
}

export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new AssertionFailure(`assertion failed: ${what}`);
}

/** Extra checks on durable properties, on in tests (CAIRN_VERIFY=1), off in production runs. */
export const VERIFY: boolean = process.env['CAIRN_VERIFY'] === '1';
