// One gRPC call on one HTTP/2 stream: request framing, handler invocation, the response, the
// final status and cancellation. One object per call serves as the handler's context, its response
// stream and (bidi) its request stream; stream listeners are shared functions that find it through
// a symbol on the stream, so a call allocates no closures of its own on the synchronous path.
import { sessionCommonName, sessionRemoteAddress } from './peer.js';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { constants as h2 } from 'node:http2';
import { frameMessage, frameMessages, MessageDecoder, type MessageSink } from './framing.js';
import type {
  BidiHandler,
  CallContext,
  GrpcErrorLike,
  IncomingMessages,
  ServerStream,
  ServerStreamHandler,
  SlowUnaryOptions,
  UnaryHandler,
} from './handlers.js';
import {
  cancelled,
  deadlineExceeded,
  encodeGrpcMessage,
  GrpcError,
  multipleRequestMessages,
  noRequestMessage,
  sendTooLarge,
  Status,
  unexpectedEof,
  wireCode,
} from './status.js';

export const CallKind = { UNARY: 0, SERVER_STREAM: 1, BIDI: 2 } as const;

/**
 * One method's call counters (go-grpc-prometheus's server metrics), kept by its calls: a few
 * increments per call, read when metrics are scraped.
 */
export interface CallStats {
  started: number;
  /** Request messages decoded. */
  received: number;
  /** Response messages written. */
  sent: number;
  /** Bytes of the request messages decoded and of the response messages written (without the 5-byte prefixes). */
  receivedBytes: number;
  sentBytes: number;
  /** Calls finished, by status code (index 0-16). */
  readonly handled: number[];
  /**
   * Handling time of each finished call in seconds (go-grpc-prometheus's handling histogram, etcd's
   * --metrics=extensive); undefined = not measured (calls then read no clock).
   */
  observeSeconds: ((seconds: number) => void) | undefined;
}

/** gRPC status codes 0 (OK) to 16 (UNAUTHENTICATED). */
const STATUS_CODE_COUNT = 17;

export function newCallStats(): CallStats {
  return { started: 0, received: 0, sent: 0, receivedBytes: 0, sentBytes: 0, handled: new Array<number>(STATUS_CODE_COUNT).fill(0), observeSeconds: undefined };
}

function countHandled(stats: CallStats, code: number, startedNs: bigint): void {
  const c = wireCode(code);
  stats.handled[c] = (stats.handled[c] ?? 0) + 1;
  if (stats.observeSeconds !== undefined) stats.observeSeconds(Number(process.hrtime.bigint() - startedNs) / 1e9);
}

export type Route =
  | { readonly kind: typeof CallKind.UNARY; readonly handler: UnaryHandler; readonly stats: CallStats }
  | { readonly kind: typeof CallKind.SERVER_STREAM; readonly handler: ServerStreamHandler; readonly stats: CallStats }
  | { readonly kind: typeof CallKind.BIDI; readonly handler: BidiHandler; readonly stats: CallStats };

/** What a call needs from its server. */
export interface CallHost {
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  /** Unary calls slower than its threshold are reported (GrpcServerOptions.slowUnary). */
  readonly slowUnary: SlowUnaryOptions | undefined;
  report(err: unknown, where: string): void;
}

export const GRPC_CONTENT_TYPE = 'application/grpc';
const ACCEPT_ENCODING = 'identity';

/** setTimeout's largest delay; a longer deadline is kept but needs no timer. */
const TIMER_DELAY_MS_MAX = 2 ** 31 - 1;
/** Request messages a bidi call holds while its handler has not registered onMessage yet. */
const PENDING_MESSAGES_MAX = 64;

// Pre-built header objects and options (node copies headers before use, so sharing is safe).
const RESPONSE_HEADERS = { ':status': 200, 'content-type': GRPC_CONTENT_TYPE, 'grpc-accept-encoding': ACCEPT_ENCODING };
const TRAILERS_OK = { 'grpc-status': '0' };
const TRAILERS_ONLY_OK = { ...RESPONSE_HEADERS, 'grpc-status': '0' };
const RESPOND_STREAMING = { waitForTrailers: true, sendDate: false };
const RESPOND_END = { endStream: true, sendDate: false };

/** Headers a handler does not see in its metadata (grpc-go's reserved set, plus accept-encoding). */
const TRANSPORT_HEADERS = new Set(['content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding']);

const kCall = Symbol('grpc.call');
type CallStream = ServerHttp2Stream & { [kCall]?: Call };

function statusTrailers(status: GrpcErrorLike): Record<string, string> {
  const code = wireCode(status.code);
  if (code === Status.OK) return TRAILERS_OK;
  return { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(status.details) };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Sends a trailers-only response (one HEADERS frame with END_STREAM) with an HTTP status. */
export function respondTrailersOnly(stream: ServerHttp2Stream, httpStatus: number, status: GrpcErrorLike): void {
  const code = wireCode(status.code);
  const headers =
    code === Status.OK && httpStatus === 200
      ? TRAILERS_ONLY_OK
      : {
          ':status': httpStatus,
          'content-type': GRPC_CONTENT_TYPE,
          'grpc-accept-encoding': ACCEPT_ENCODING,
          'grpc-status': String(code),
          'grpc-message': encodeGrpcMessage(status.details),
        };
  stream.respond(headers, RESPOND_END);
}

// ---------- shared stream listeners (`this` is the stream) ----------

function onStreamData(this: CallStream, chunk: Buffer): void {
  this[kCall]?.onData(chunk);
}
function onStreamEnd(this: CallStream): void {
  this[kCall]?.onHalfClose();
}
function onStreamClose(this: CallStream): void {
  this[kCall]?.onClose();
}
function onStreamWantTrailers(this: CallStream): void {
  this[kCall]?.onWantTrailers();
}
function onStreamDrain(this: CallStream): void {
  this[kCall]?.onDrained();
}
/** Stream errors (a peer's RST_STREAM with an error code, a write after reset) end in 'close'. */
export function ignoreStreamError(): void {}
function onDeadline(call: Call): void {
  call.onDeadline();
}
function resetAfterTrailers(call: Call): void {
  call.resetIfClientOpen();
}

export class Call implements CallContext, ServerStream, IncomingMessages, MessageSink {
  readonly deadline: number | undefined;
  private readonly decoder: MessageDecoder;
  private request: Buffer | undefined = undefined;
  private requestCount = 0;
  private halfClosed = false;
  private headersSent = false;
  /** The final status is committed (sent or queued): nothing else goes out. */
  private finished = false;
  /** When the call started (read only while handling times are measured). */
  private startedNs = 0n;
  /** A unary call's request while its handler runs, kept for the slow-call report (slowUnary only). */
  private unaryRequest: Buffer | undefined = undefined;
  /** When the unary handler was called (performance.now(); slowUnary only). */
  private unaryStartedMs = 0;
  private streamClosed = false;
  private trailers: Record<string, string> = TRAILERS_OK;
  private timer: NodeJS.Timeout | undefined = undefined;
  private controller: AbortController | undefined = undefined;
  private abortReason: GrpcError | undefined = undefined;
  private meta: Record<string, string | string[]> | undefined = undefined;
  private messageCb: ((message: Buffer) => void) | undefined = undefined;
  private endCb: (() => void) | undefined = undefined;
  private endDelivered = false;
  private pending: Buffer[] | undefined = undefined;
  /** The handler paused delivery (pause()): messages wait in `pending`, the stream is paused. */
  private held = false;
  private drainCb: (() => void) | undefined = undefined;
  private drainListening = false;

  constructor(
    private readonly host: CallHost,
    private readonly stream: CallStream,
    private readonly headers: IncomingHttpHeaders,
    readonly path: string,
    private readonly route: Route,
    timeoutMs: number | undefined,
  ) {
    this.decoder = new MessageDecoder(host.maxReceiveMessageBytes);
    route.stats.started++;
    if (route.stats.observeSeconds !== undefined) this.startedNs = process.hrtime.bigint();
    stream[kCall] = this;
    stream.on('data', onStreamData);
    stream.on('end', onStreamEnd);
    stream.on('close', onStreamClose);
    stream.on('wantTrailers', onStreamWantTrailers);
    if (timeoutMs === undefined) {
      this.deadline = undefined;
    } else {
      this.deadline = Date.now() + timeoutMs;
      if (timeoutMs < TIMER_DELAY_MS_MAX) this.timer = setTimeout(onDeadline, Math.ceil(timeoutMs), this);
    }
    if (route.kind === CallKind.BIDI) this.invokeBidi(route.handler);
  }

  // ---------- CallContext ----------

  get metadata(): Readonly<Record<string, string | string[]>> {
    if (this.meta === undefined) this.meta = toMetadata(this.headers);
    return this.meta;
  }

  /** The verified client certificate's CN (TLS sessions only); read lazily, once. */
  get tlsCommonName(): string | undefined {
    return sessionCommonName(this.stream.session);
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  // ---------- ServerStream ----------

  get closed(): boolean {
    return this.finished || this.streamClosed;
  }

  get bufferedBytes(): number {
    return this.stream.writableLength;
  }

  send(message: Uint8Array): boolean {
    if (this.finished || this.streamClosed || this.stream.destroyed) return false;
    if (message.length > this.host.maxSendMessageBytes) {
      this.finish(sendTooLarge(message.length, this.host.maxSendMessageBytes));
      return false;
    }
    if (!this.startResponse()) return false;
    this.route.stats.sent++;
    this.route.stats.sentBytes += message.length;
    return this.stream.write(frameMessage(message));
  }

  sendMany(messages: readonly Uint8Array[]): boolean {
    if (this.finished || this.streamClosed || this.stream.destroyed) return false;
    for (const m of messages) {
      if (m.length > this.host.maxSendMessageBytes) {
        this.finish(sendTooLarge(m.length, this.host.maxSendMessageBytes));
        return false;
      }
    }
    if (!this.startResponse()) return false;
    this.route.stats.sent += messages.length;
    for (const m of messages) this.route.stats.sentBytes += m.length;
    return this.stream.write(frameMessages(messages));
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
    if (!this.drainListening) {
      this.drainListening = true;
      this.stream.on('drain', onStreamDrain);
    }
  }

  end(status?: GrpcErrorLike): void {
    this.finish(status ?? TRAILERS_OK_STATUS);
  }

  // ---------- IncomingMessages (bidi) ----------

  onMessage(cb: (message: Buffer) => void): void {
    this.messageCb = cb;
    this.flushPending();
  }

  pause(): void {
    this.held = true;
    if (!this.stream.isPaused()) this.stream.pause();
  }

  resume(): void {
    if (!this.held) return;
    this.held = false;
    this.flushPending();
  }

  /** Delivers held messages in order until none is left or the handler pauses again. */
  private flushPending(): void {
    const cb = this.messageCb;
    if (cb === undefined || this.held) return;
    const pending = this.pending;
    while (pending !== undefined && pending.length > 0) {
      if (this.finished || this.held) return;
      if (!this.deliver(cb, pending.shift() as Buffer)) return;
    }
    this.pending = undefined;
    if (this.stream.isPaused()) this.stream.resume();
    this.maybeDeliverEnd();
  }

  onEnd(cb: () => void): void {
    this.endCb = cb;
    this.maybeDeliverEnd();
  }

  // ---------- MessageSink (the decoder's output) ----------

  /** Called by the decoder for each complete request message. */
  onDecoded(message: Buffer): void {
    if (this.finished) return;
    this.route.stats.received++;
    this.route.stats.receivedBytes += message.length;
    if (this.route.kind !== CallKind.BIDI) {
      if (this.requestCount++ === 0) this.request = message;
      else this.finish(multipleRequestMessages());
      return;
    }
    const cb = this.messageCb;
    if (cb !== undefined && !this.held) {
      this.deliver(cb, message);
      return;
    }
    const pending = (this.pending ??= []);
    pending.push(message);
    if (pending.length >= PENDING_MESSAGES_MAX && !this.stream.isPaused()) this.stream.pause();
  }

  // ---------- stream events ----------

  onData(chunk: Buffer): void {
    if (this.finished) return;
    if (!this.decoder.push(chunk, this)) {
      const failure = this.decoder.failure;
      if (failure !== undefined) this.finish(failure);
    }
  }

  onHalfClose(): void {
    this.halfClosed = true;
    if (this.finished) return;
    if (this.decoder.midMessage) {
      this.finish(unexpectedEof());
      return;
    }
    const route = this.route;
    if (route.kind === CallKind.BIDI) {
      this.maybeDeliverEnd();
      return;
    }
    const request = this.request;
    if (request === undefined) {
      this.finish(noRequestMessage());
      return;
    }
    this.request = undefined;
    if (route.kind === CallKind.UNARY) this.invokeUnary(route.handler, request);
    else this.invokeServerStream(route.handler, request);
  }

  onClose(): void {
    this.streamClosed = true;
    this.clearTimer();
    this.drainCb = undefined;
    if (!this.finished) {
      this.finished = true;
      countHandled(this.route.stats, Status.CANCELLED, this.startedNs);
      this.unaryEnded(undefined, Status.CANCELLED);
      this.abort(cancelled());
    }
  }

  onWantTrailers(): void {
    try {
      this.stream.sendTrailers(this.trailers);
    } catch (err) {
      this.host.report(err, `sendTrailers ${this.path}`);
      return;
    }
    // node submits trailers from a setImmediate; a reset submitted before them would drop them.
    if (!this.halfClosed) setImmediate(resetAfterTrailers, this);
  }

  onDrained(): void {
    const cb = this.drainCb;
    if (cb === undefined) return;
    this.drainCb = undefined;
    try {
      cb();
    } catch (err) {
      this.handlerFailed(err);
    }
  }

  onDeadline(): void {
    this.timer = undefined;
    if (this.finished) return;
    this.abort(deadlineExceeded());
    this.finish(deadlineExceeded());
  }

  // ---------- internals ----------

  private invokeUnary(handler: UnaryHandler, request: Buffer): void {
    if (this.host.slowUnary !== undefined) {
      this.unaryRequest = request;
      this.unaryStartedMs = performance.now();
    }
    let out: Uint8Array | Promise<Uint8Array>;
    try {
      out = handler(request, this);
    } catch (err) {
      this.handlerFailed(err);
      return;
    }
    if (out instanceof Uint8Array) {
      this.respondUnary(out);
      return;
    }
    Promise.resolve(out).then(
      (res) => this.respondUnary(res),
      (err: unknown) => this.handlerFailed(err),
    );
  }

  private invokeServerStream(handler: ServerStreamHandler, request: Buffer): void {
    try {
      handler(request, this, this);
    } catch (err) {
      this.handlerFailed(err);
    }
  }

  private invokeBidi(handler: BidiHandler): void {
    try {
      handler(this, this, this);
    } catch (err) {
      this.handlerFailed(err);
    }
  }

  private respondUnary(response: unknown): void {
    if (this.finished) return;
    if (!(response instanceof Uint8Array)) {
      this.handlerFailed(new TypeError(`handler for ${this.path} returned ${typeof response}, not bytes`));
      return;
    }
    if (response.length > this.host.maxSendMessageBytes) {
      this.finish(sendTooLarge(response.length, this.host.maxSendMessageBytes));
      return;
    }
    if (!this.startResponse()) return;
    this.finished = true;
    this.route.stats.sent++;
    this.route.stats.sentBytes += response.length;
    countHandled(this.route.stats, Status.OK, this.startedNs);
    this.clearTimer();
    this.trailers = TRAILERS_OK;
    this.stream.end(frameMessage(response));
    this.unaryEnded(response, Status.OK);
  }

  /** A unary call ended: reported when it took longer than the slowUnary threshold (one clock read otherwise). */
  private unaryEnded(response: Uint8Array | undefined, code: number): void {
    const request = this.unaryRequest;
    const slow = this.host.slowUnary;
    if (request === undefined || slow === undefined) return;
    this.unaryRequest = undefined;
    const tookMs = performance.now() - this.unaryStartedMs;
    if (!(tookMs > slow.thresholdMs)) return;
    try {
      const startedAtMs = performance.timeOrigin + this.unaryStartedMs;
      slow.report({ path: this.path, request, response, code: wireCode(code), startedAtMs, tookMs, remote: sessionRemoteAddress(this.stream.session) });
    } catch (err) {
      this.host.report(err, `slow call report ${this.path}`);
    }
  }

  /** Sends the response headers once. False when the stream can no longer take them. */
  private startResponse(): boolean {
    if (this.headersSent) return true;
    if (this.stream.destroyed || this.stream.closed) {
      this.onClose();
      return false;
    }
    this.headersSent = true;
    try {
      this.stream.respond(RESPONSE_HEADERS, RESPOND_STREAMING);
    } catch (err) {
      this.host.report(err, `respond ${this.path}`);
      this.onClose();
      return false;
    }
    return true;
  }

  /** Commits the final status: trailers-only before any message, trailers after them. */
  private finish(status: GrpcErrorLike): void {
    if (this.finished) return;
    this.finished = true;
    countHandled(this.route.stats, status.code, this.startedNs);
    this.unaryEnded(undefined, status.code);
    this.clearTimer();
    this.drainCb = undefined;
    const stream = this.stream;
    if (this.streamClosed || stream.destroyed || stream.closed) return;
    try {
      if (this.headersSent) {
        this.trailers = statusTrailers(status);
        stream.end();
      } else {
        this.headersSent = true;
        respondTrailersOnly(stream, 200, status);
        this.resetIfClientOpen();
      }
    } catch (err) {
      this.host.report(err, `finish ${this.path}`);
    }
  }

  /** After the status, a client still sending is told to stop (RST_STREAM NO_ERROR, as grpc-go). */
  resetIfClientOpen(): void {
    if (!this.halfClosed && !this.stream.destroyed) this.stream.close(h2.NGHTTP2_NO_ERROR);
  }

  private handlerFailed(err: unknown): void {
    if (err instanceof GrpcError) {
      this.finish(err);
      return;
    }
    if (!this.finished) this.host.report(err, `handler ${this.path}`);
    this.finish(new GrpcError(Status.UNKNOWN, errorText(err)));
  }

  private deliver(cb: (message: Buffer) => void, message: Buffer): boolean {
    try {
      cb(message);
      return true;
    } catch (err) {
      this.handlerFailed(err);
      return false;
    }
  }

  private maybeDeliverEnd(): void {
    const cb = this.endCb;
    if (!this.halfClosed || this.endDelivered || cb === undefined || this.finished) return;
    if (this.pending !== undefined && this.pending.length > 0) return;
    this.endDelivered = true;
    try {
      cb();
    } catch (err) {
      this.handlerFailed(err);
    }
  }

  private abort(reason: GrpcError): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

const TRAILERS_OK_STATUS: GrpcErrorLike = { code: Status.OK, details: '' };

function toMetadata(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* ':' */ || TRANSPORT_HEADERS.has(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
