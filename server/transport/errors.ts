// Errors of the transport, split by blame (DESIGN.md style 7).

/** The peer sent bytes that break the protocol (bad magic, unknown frame, oversized length, undecodable message). */
export class PeerProtocolError extends Error {
  override readonly name = 'PeerProtocolError';
}

/** Why a receiver refused a connection (the hello's error frame carries the code). */
export type RefusalCode = 'clusterMismatch' | 'memberMismatch' | 'removed' | 'version' | 'badHello' | 'badCertificate';

export const refusalCodes: Readonly<Record<RefusalCode, number>> = {
  clusterMismatch: 1,
  memberMismatch: 2,
  removed: 3,
  version: 4,
  badHello: 5,
  /** Our certificate passed the CA but not the receiver's --peer-cert-allowed-cn/-hostname (a release without this code reads it as badHello). */
  badCertificate: 6,
};

export function refusalCodeOf(n: number): RefusalCode {
  for (const [code, value] of Object.entries(refusalCodes)) if (value === n) return code as RefusalCode;
  return 'badHello';
}

/** The peer refused our hello: nothing we sent on that connection was delivered. */
export class PeerRefusedError extends Error {
  override readonly name = 'PeerRefusedError';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

export type UnavailableKind = 'unreachable' | 'closed' | 'timeout' | 'tooManyRequests' | 'tooLarge' | 'unknownPeer' | 'stopped';

/** The request could not be carried (peer down, connection lost, timeout, a local limit). It may or may not have run. */
export class PeerUnavailableError extends Error {
  override readonly name = 'PeerUnavailableError';
  constructor(
    readonly kind: UnavailableKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The peer's handler rejected the request; `message` is the handler's error message. */
export class PeerRequestError extends Error {
  override readonly name = 'PeerRequestError';
}
