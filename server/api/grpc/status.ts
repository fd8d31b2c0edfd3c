// gRPC status codes, the error a handler throws, and the exact status texts grpc-go's server sends
// for transport-level failures (so clients and tests see what they would see from etcd).

/** The standard gRPC status codes (grpc/grpc doc/statuscodes.md). */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof Status)[keyof typeof Status];

const STATUS_CODE_MAX = 16;

/** A call's final status. Handlers throw (or reject with) it; anything else becomes UNKNOWN. */
export class GrpcError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(details);
    this.name = 'GrpcError';
  }
}

/** The code put on the wire: a code outside 0..16 is a handler bug and goes out as UNKNOWN. */
export function wireCode(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= STATUS_CODE_MAX ? code : Status.UNKNOWN;
}

// ---------- grpc-go's texts (google.golang.org/grpc server.go, stream.go, rpc_util.go, internal/transport) ----------

/** grpc-go `handleStream`: a :path without a '/' between service and method. */
export function malformedMethodName(path: string): GrpcError {
  return new GrpcError(Status.UNIMPLEMENTED, `malformed method name: ${goQuote(path)}`);
}

export function unknownService(service: string): GrpcError {
  return new GrpcError(Status.UNIMPLEMENTED, `unknown service ${service}`);
}

export function unknownMethod(method: string, service: string): GrpcError {
  return new GrpcError(Status.UNIMPLEMENTED, `unknown method ${method} for service ${service}`);
}

/** grpc-go `processUnaryRPC`/`processStreamingRPC`: a grpc-encoding with no registered decompressor. */
export function decompressorNotInstalled(encoding: string): GrpcError {
  return new GrpcError(Status.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding ${goQuote(encoding)}`);
}

/** grpc-go `recvMsg`: the length prefix exceeds the receive limit (checked before reading the body). */
export function receivedTooLarge(lengthBytes: number, maxBytes: number): GrpcError {
  return new GrpcError(Status.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${lengthBytes} vs. ${maxBytes})`);
}

/** grpc-go `SendMsg`/`sendResponse`: an outgoing message over the send limit. */
export function sendTooLarge(lengthBytes: number, maxBytes: number): GrpcError {
  return new GrpcError(Status.RESOURCE_EXHAUSTED, `grpc: trying to send message larger than max (${lengthBytes} vs. ${maxBytes})`);
}

/** grpc-go `checkRecvPayload`: compressed flag with no (or identity) grpc-encoding. */
export function compressedWithoutEncoding(): GrpcError {
  return new GrpcError(Status.INTERNAL, 'grpc: compressed flag set with identity or empty encoding');
}

/** grpc-go `checkRecvPayload`: a flag byte other than 0 or 1. */
export function unexpectedPayloadFormat(flag: number): GrpcError {
  return new GrpcError(Status.INTERNAL, `grpc: received unexpected payload format ${flag}`);
}

/** grpc-go `serverStream.RecvMsg`: the client half-closed in the middle of a message. */
export function unexpectedEof(): GrpcError {
  return new GrpcError(Status.INTERNAL, 'unexpected EOF');
}

/** grpc-go (1.66+) `serverStream.RecvMsg` for a unary or server-streaming method. */
export function noRequestMessage(): GrpcError {
  return new GrpcError(Status.INTERNAL, 'cardinality violation: received no request message from non-client-streaming RPC');
}

export function multipleRequestMessages(): GrpcError {
  return new GrpcError(Status.INTERNAL, 'cardinality violation: received multiple request messages for non-client-streaming RPC');
}

/** grpc-go `status.FromContextError(context.DeadlineExceeded)`. */
export function deadlineExceeded(): GrpcError {
  return new GrpcError(Status.DEADLINE_EXCEEDED, 'context deadline exceeded');
}

/** grpc-go `status.FromContextError(context.Canceled)`: the abort reason when the client goes away. */
export function cancelled(): GrpcError {
  return new GrpcError(Status.CANCELLED, 'context canceled');
}

/** What a transport-level refusal answers, before any gRPC processing (grpc-go `earlyAbortStream`). */
export interface EarlyAbort {
  readonly httpStatus: number;
  readonly error: GrpcError;
}

export function badMethod(method: string): EarlyAbort {
  return {
    httpStatus: 405,
    error: new GrpcError(Status.INTERNAL, `Received a HEADERS frame with :method ${goQuote(method)} which should be POST`),
  };
}

export function badContentType(contentType: string): EarlyAbort {
  return { httpStatus: 415, error: new GrpcError(Status.INVALID_ARGUMENT, `invalid gRPC request content-type ${goQuote(contentType)}`) };
}

export function badTimeout(reason: string): EarlyAbort {
  return { httpStatus: 400, error: new GrpcError(Status.INTERNAL, `malformed grpc-timeout: ${reason}`) };
}

// ---------- encodings ----------

const NEEDS_PERCENT = /[^\x20-\x24\x26-\x7e]/;
const HEX = '0123456789ABCDEF';

/**
 * grpc-message encoding (gRPC over HTTP/2 spec): UTF-8 bytes outside 0x20..0x7E, and '%', become
 * %XX. Most texts need no change and are returned as they are.
 */
export function encodeGrpcMessage(text: string): string {
  if (!NEEDS_PERCENT.test(text)) return text;
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += '%' + HEX.charAt(b >> 4) + HEX.charAt(b & 15);
  }
  return out;
}

/** Go's %q for the strings grpc-go quotes (header values and paths): "..." with \ and " escaped. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + HEX.charAt(c >> 4).toLowerCase() + HEX.charAt(c & 15).toLowerCase();
    else out += ch;
  }
  return out + '"';
}
