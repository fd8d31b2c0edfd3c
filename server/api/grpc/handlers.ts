// What a method handler sees: the call's context, the response stream, and the handler shapes.
// Messages are opaque bytes here; encoding and decoding belong to the caller (proto/).

/** One call's context. */
export interface CallContext {
  /** The method path, e.g. `/etcdserverpb.KV/Range`. */
  readonly path: string;
  /**
   * Request headers without pseudo-headers and without the transport's own (content-type, te,
   * grpc-timeout, grpc-encoding, grpc-accept-encoding). Names are lower case (HTTP/2). `-bin`
   * values are left base64-encoded.
   */
  readonly metadata: Readonly<Record<string, string | string[]>>;
  /** Milliseconds since the epoch when the client's grpc-timeout runs out; undefined without one. */
  readonly deadline: number | undefined;
  /**
   * Aborted when the client cancels (RST_STREAM), the deadline passes, or the connection closes,
   * while the call is still open; its reason is a GrpcError (CANCELLED or DEADLINE_EXCEEDED). Not
   * aborted after the call finished normally.
   */
  readonly signal: AbortSignal;
  /**
   * The Common Name of the client's verified TLS certificate (etcd takes it as the user name when
   * --client-cert-auth is on); undefined on cleartext connections or without a client certificate.
   */
  readonly tlsCommonName: string | undefined;
}

/** The response side of a streaming call. */
export interface ServerStream {
  /**
   * Sends one encoded message. Returns false when the caller should wait for `onDrain` before
   * sending more (back-pressure), and also once the call is closed (check `closed`). A message over
   * the send limit ends the call with RESOURCE_EXHAUSTED.
   */
  send(message: Uint8Array): boolean;
  /**
   * Sends several messages in one write, so they share DATA frames (as grpc-go's writer coalesces a
   * stream's queued messages); a client then handles far fewer frames. Same return as `send`.
   */
  sendMany(messages: readonly Uint8Array[]): boolean;
  /** `cb` runs once, the next time buffered output drains. It does not run if the call closes first. */
  onDrain(cb: () => void): void;
  /** Ends the call with `status` (OK when omitted or when its code is 0). Later calls are no-ops. */
  end(status?: GrpcErrorLike): void;
  /** True once the call has a final status or its stream is gone: nothing more will be sent. */
  readonly closed: boolean;
  /** Bytes written and not yet sent to the client (HTTP/2 flow control or a full socket hold them). */
  readonly bufferedBytes: number;
}

/** A status to end a call with (a GrpcError satisfies it). */
export interface GrpcErrorLike {
  readonly code: number;
  readonly details: string;
}

/** The request side of a bidirectional call. */
export interface IncomingMessages {
  /** Registers the message callback. Messages that arrived before it was registered are delivered first. */
  onMessage(cb: (message: Buffer) => void): void;
  /** Registers the half-close callback (after the last message). It does not end the call. */
  onEnd(cb: () => void): void;
  /**
   * Stops delivering messages (those already received wait, in order) and stops reading the stream,
   * so HTTP/2 flow control holds the client back; for a handler that cannot write its replies.
   */
  pause(): void;
  /** Delivers what waited, then reads again. */
  resume(): void;
}

/** Returns the encoded response; throws or rejects with a GrpcError for a status (any other error: UNKNOWN). */
export type UnaryHandler = (request: Buffer, ctx: CallContext) => Uint8Array | Promise<Uint8Array>;
/** Called once the single request has arrived and the client half-closed. Must end `out`. */
export type ServerStreamHandler = (request: Buffer, out: ServerStream, ctx: CallContext) => void;
/** Called when the call opens. Must end `out`; the client's half-close does not end it. */
export type BidiHandler = (incoming: IncomingMessages, out: ServerStream, ctx: CallContext) => void;

/** A unary call that took longer than GrpcServerOptions.slowUnary's threshold, as it ended. */
export interface SlowUnaryCall {
  readonly path: string;
  /** The request message (a view into a network buffer: read it during the report, do not keep it). */
  readonly request: Buffer;
  /** The response message; undefined when the call ended with an error status. */
  readonly response: Uint8Array | undefined;
  /** The final status code (0 = OK). */
  readonly code: number;
  /** When the handler was called: milliseconds since the epoch, with sub-millisecond precision. */
  readonly startedAtMs: number;
  /** From the handler's call to the call's end (response, error, cancellation or deadline). */
  readonly tookMs: number;
  /** The client's address as Go prints a net.Addr: `host:port`, `[v6]:port`, `@` for a unix socket. */
  readonly remote: string;
}

export interface SlowUnaryOptions {
  /** Calls taking longer than this are reported (a negative value reports every call). */
  readonly thresholdMs: number;
  /** Called once per slow call, after it ended; must not throw (an error is passed to onError). */
  readonly report: (call: SlowUnaryCall) => void;
}

export interface GrpcServerOptions {
  /** Largest request message accepted (etcd: --max-request-bytes + 512 KiB). */
  readonly maxReceiveMessageBytes: number;
  /** Largest response message sent (etcd: MaxInt32). */
  readonly maxSendMessageBytes: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised on servers this class creates (default 2^31-1). */
  readonly maxConcurrentStreams?: number;
  /**
   * Reported, never thrown: handler errors other than GrpcError (`where` = `handler <path>`), node
   * session errors (e.g. a peer that does not speak HTTP/2), failed writes of headers or trailers.
   */
  readonly onError?: (err: Error, where: string) => void;
  /**
   * Unary calls slower than a threshold (etcd's --warning-unary-request-duration): each call reads
   * the clock when its handler starts and when it ends, and allocates nothing more unless it is slow.
   */
  readonly slowUnary?: SlowUnaryOptions;
}
