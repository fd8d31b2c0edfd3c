// The HTTP/JSON gateway (etcd 3.4/3.5, grpc-gateway v1): `POST /v3/<service>/<method>` with the
// request as JSON, answered by calling the registered gRPC handler in process, so auth, learner and
// `hasleader` rules apply exactly as for gRPC. Streaming methods (watch, lease keepalive, snapshot)
// read concatenated JSON requests from the body and answer chunked, one `{"result":...}` and a
// newline per message.
//
// What a client sees, as the etcd 3.4.23 binary answers (checked with curl):
// - success: 200, `Content-Type: application/json`, `Grpc-Metadata-Content-Type: application/grpc`;
// - a handler error: HTTP status from the gRPC code (grpc-gateway v1's table: FailedPrecondition
//   412, OutOfRange 400, ...), body `{"error":msg,"message":msg,"code":N}`, and, since a gRPC error
//   is trailers-only, `Trailer: Grpc-Trailer-Content-Type` with that trailer after a chunked body;
// - a body that is not valid JSON for the request: 400, code 3 (InvalidArgument), Go's error text;
//   for a bidi stream (watch, keepalive) a bad first request is code 2 (Unknown), HTTP 500; a bad
//   later request only half-closes the stream (as the gateway's CloseSend);
// - a stream that fails: `{"error":{"grpc_code":N,"http_code":H,"message":...,"http_status":...}}`
//   (HTTP status from the code when nothing was sent yet), without a trailing newline.
// Metadata: the `Authorization` header goes to the handler as `authorization` and as `token` (raw:
// etcd strips no "Bearer " prefix and refuses it as an invalid token); `Grpc-Metadata-<Key>` headers
// as `<key>`. The TLS identity is the HTTP client's verified certificate CN. (etcd's gateway instead
// dials the server itself with the server's own certificate, so behind etcd's gateway the CN is the
// server certificate's; we take the caller's, which is what --client-cert-auth means.)
import type protobuf from 'protobufjs';
import { GrpcError, Status, type BidiHandler, type CallContext, type GrpcErrorLike, type GrpcServer, type IncomingMessages, type ServerStream } from '../grpc/index.js';
import { goJsonString, type GatewayCodec } from './codec.js';
import { tlsCommonName, type HttpRequest, type HttpResponse } from './exchange.js';
import { JsonValueSplitter, type SplitItem } from './json-scan.js';
import { GATEWAY_ROUTES, gatewayMethod } from './routes.js';

/** grpc-gateway v1's runtime.HTTPStatusFromCode. */
const HTTP_STATUS_BY_CODE: readonly number[] = [200, 408, 500, 400, 504, 404, 409, 403, 429, 412, 409, 400, 501, 500, 503, 500, 401];
/** Go's http.StatusText for those statuses. */
const HTTP_STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function httpStatusFromCode(code: number): number {
  return HTTP_STATUS_BY_CODE[code] ?? 500;
}

/** The JSON body of a request may be this many times the largest gRPC request (base64 is 4/3). */
export const JSON_BODY_FACTOR = 4;

// The handler kinds of api/grpc's Route (CallKind there).
const UNARY = 0;
const SERVER_STREAM = 1;

type Route = NonNullable<ReturnType<GrpcServer['route']>>;

export interface GatewayOptions {
  /** Where handlers are found: `route('/etcdserverpb.KV/Range')`. */
  readonly grpc: Pick<GrpcServer, 'route' | 'maxReceiveMessageBytes'>;
  readonly codec: GatewayCodec;
  /** Unexpected failures (a handler that threw a non-gRPC error is answered as Unknown and reported). */
  readonly onError?: (err: Error, where: string) => void;
}

function asStatus(err: unknown): GrpcErrorLike {
  if (err instanceof GrpcError) return err;
  if (typeof err === 'object' && err !== null && 'code' in err && 'details' in err) {
    const { code, details } = err;
    if (typeof code === 'number' && typeof details === 'string') return { code, details };
  }
  return { code: Status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

/** grpc-gateway v1's errorBody, fields in its order. */
function errorBody(status: GrpcErrorLike): string {
  const msg = goJsonString(status.details);
  return `{"error":${msg},"message":${msg},"code":${status.code}}`;
}

/** An error answered before any call: a body with its length, no trailer (request decoding, routing). */
function replyEarlyError(res: HttpResponse, status: GrpcErrorLike): void {
  const body = errorBody(status);
  res.statusCode = httpStatusFromCode(status.code);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** A handler's error: as a trailers-only gRPC answer passes through grpc-gateway. */
function replyCallError(res: HttpResponse, status: GrpcErrorLike): void {
  res.statusCode = httpStatusFromCode(status.code);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Trailer', 'Grpc-Trailer-Content-Type');
  res.write(errorBody(status));
  res.addTrailers({ 'Grpc-Trailer-Content-Type': 'application/grpc' });
  res.end();
}

function replyJson(res: HttpResponse, json: string): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Grpc-Metadata-Content-Type', 'application/grpc');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}

const METADATA_PREFIX = 'grpc-metadata-';

function metadataOf(req: HttpRequest): Record<string, string | string[]> {
  const md: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (name.startsWith(METADATA_PREFIX) && name.length > METADATA_PREFIX.length) md[name.slice(METADATA_PREFIX.length)] = value;
  }
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    md['authorization'] = auth;
    md['token'] = auth;
  }
  return md;
}

/** One gateway call's context; its signal aborts when the HTTP client goes away before the end. */
function callContext(path: string, req: HttpRequest, res: HttpResponse): { ctx: CallContext; done: () => void } {
  const controller = new AbortController();
  let finished = false;
  res.once('close', () => {
    if (!finished) controller.abort(new GrpcError(Status.CANCELLED, 'context canceled'));
  });
  const ctx: CallContext = {
    path,
    metadata: metadataOf(req),
    deadline: undefined,
    signal: controller.signal,
    tlsCommonName: tlsCommonName(req),
  };
  return { ctx, done: () => (finished = true) };
}

/** Reads a request body: values as they complete, then the end (bounded in total bytes). */
class BodyReader {
  private readonly splitter: JsonValueSplitter;
  private readonly queue: SplitItem[] = [];
  private ended = false;
  private waiter: (() => void) | undefined = undefined;
  private onItem: ((item: SplitItem) => void) | undefined = undefined;
  private onEnd: (() => void) | undefined = undefined;

  constructor(
    private readonly req: HttpRequest,
    valueBytesMax: number,
  ) {
    this.splitter = new JsonValueSplitter(valueBytesMax);
    req.on('data', (chunk) => this.add(this.splitter.push(chunk)));
    req.on('end', () => {
      this.add(this.splitter.end());
      this.ended = true;
      this.wake();
      if (this.onItem === undefined) return;
      this.onEnd?.();
    });
    req.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private add(items: SplitItem[]): void {
    for (const item of items) {
      if (this.onItem !== undefined) this.onItem(item);
      else this.queue.push(item);
    }
    if (items.length > 0) this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** The first value (or error), or undefined when the body ended without one (Go's io.EOF). */
  async first(): Promise<SplitItem | undefined> {
    while (this.queue.length === 0 && !this.ended) await new Promise<void>((r) => (this.waiter = r));
    return this.queue.shift();
  }

  /** From now on every item goes to `onItem` (queued ones first); `onEnd` after the last. */
  follow(onItem: (item: SplitItem) => void, onEnd: () => void): void {
    this.onItem = onItem;
    this.onEnd = onEnd;
    for (const item of this.queue.splice(0)) onItem(item);
    if (this.ended) onEnd();
  }

  pause(): void {
    this.req.pause();
  }

  resume(): void {
    this.req.resume();
  }
}

/** The response side of a streaming call, written as grpc-gateway v1's ForwardResponseStream. */
class HttpServerStream implements ServerStream {
  private headersSent = false;
  private ended = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly codec: GatewayCodec,
    private readonly type: protobuf.Type,
    private readonly onFinish: () => void,
  ) {
    res.once('close', () => {
      if (!this.ended) {
        this.ended = true;
        this.onFinish();
      }
    });
  }

  get closed(): boolean {
    return this.ended || this.res.destroyed;
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  private startBody(status: number): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.res.statusCode = status;
    this.res.setHeader('Content-Type', 'application/json');
    if (status === 200) this.res.setHeader('Grpc-Metadata-Content-Type', 'application/grpc');
  }

  send(message: Uint8Array): boolean {
    return this.sendMany([message]);
  }

  sendMany(messages: readonly Uint8Array[]): boolean {
    if (this.closed) return false;
    let text = '';
    try {
      for (const m of messages) text += `{"result":${this.codec.responseJson(this.type, m)}}\n`;
    } catch (err) {
      this.end({ code: Status.UNKNOWN, details: err instanceof Error ? err.message : String(err) });
      return false;
    }
    this.startBody(200);
    return this.res.write(text);
  }

  onDrain(cb: () => void): void {
    if (this.closed) return;
    this.res.once('drain', () => {
      if (!this.closed) cb();
    });
  }

  end(status?: GrpcErrorLike): void {
    if (this.closed) return;
    this.ended = true;
    if (status !== undefined && status.code !== Status.OK) {
      const http = httpStatusFromCode(status.code);
      this.startBody(http);
      const err = `{"grpc_code":${status.code},"http_code":${http},"message":${goJsonString(status.details)},"http_status":${goJsonString(HTTP_STATUS_TEXT[http] ?? '')}}`;
      this.res.write(`{"error":${err}}`);
    } else {
      this.startBody(200);
    }
    this.res.end();
    this.onFinish();
  }
}

/** The request side of a bidi call: JSON values from the body, encoded to protobuf. */
class HttpIncoming implements IncomingMessages {
  private messageCb: ((m: Buffer) => void) | undefined = undefined;
  private endCb: (() => void) | undefined = undefined;
  private readonly pending: Buffer[] = [];
  private halfClosed = false;
  private endDelivered = false;
  private paused = false;

  constructor(private readonly body: BodyReader) {}

  /** Queues a request (delivered once a callback is registered and not paused). */
  push(message: Buffer): void {
    if (this.halfClosed) return;
    this.pending.push(message);
    this.flush();
  }

  /** The client stops sending (body end, or a request that does not decode: CloseSend). */
  close(): void {
    this.halfClosed = true;
    this.flush();
  }

  get isClosed(): boolean {
    return this.halfClosed;
  }

  onMessage(cb: (message: Buffer) => void): void {
    this.messageCb = cb;
    this.flush();
  }

  onEnd(cb: () => void): void {
    this.endCb = cb;
    this.flush();
  }

  pause(): void {
    this.paused = true;
    this.body.pause();
  }

  resume(): void {
    this.paused = false;
    this.flush();
    if (!this.paused) this.body.resume();
  }

  private flush(): void {
    while (!this.paused && this.messageCb !== undefined && this.pending.length > 0) {
      const m = this.pending.shift();
      if (m !== undefined) this.messageCb(m);
    }
    if (this.halfClosed && this.pending.length === 0 && !this.endDelivered && this.endCb !== undefined) {
      this.endDelivered = true;
      this.endCb();
    }
  }
}

export class Gateway {
  private readonly grpc: GatewayOptions['grpc'];
  private readonly codec: GatewayCodec;
  private readonly onError: GatewayOptions['onError'];

  constructor(opts: GatewayOptions) {
    this.grpc = opts.grpc;
    this.codec = opts.codec;
    this.onError = opts.onError;
  }

  /** The gRPC method a URL path maps to (undefined: the gateway's own 404). */
  methodFor(urlPath: string): string | undefined {
    return gatewayMethod(urlPath);
  }

  /** Serves one POST to a gateway path. */
  serve(grpcPath: string, req: HttpRequest, res: HttpResponse): void {
    const types = this.codec.methodTypes(grpcPath);
    if (types === undefined) return replyEarlyError(res, { code: Status.UNIMPLEMENTED, details: `unknown method for ${grpcPath}` });
    const route = this.grpc.route(grpcPath);
    const body = new BodyReader(req, this.grpc.maxReceiveMessageBytes * JSON_BODY_FACTOR);
    if (route === undefined) {
      req.resume();
      return replyCallError(res, this.unimplemented(grpcPath));
    }
    this.run(grpcPath, route, types.request, types.response, body, req, res).catch((err: unknown) => {
      this.report(err, `gateway ${grpcPath}`);
      if (!res.headersSent) replyEarlyError(res, asStatus(err));
      else res.end();
    });
  }

  private async run(path: string, route: Route, reqType: protobuf.Type, resType: protobuf.Type, body: BodyReader, req: HttpRequest, res: HttpResponse): Promise<void> {
    const first = await body.first();
    if (route.kind === UNARY || route.kind === SERVER_STREAM) {
      // Unary and server-stream requests: the first JSON value only (Go's Decoder.Decode); trailing bytes are ignored.
      body.follow(() => undefined, () => undefined);
      req.resume();
      const bytes = this.decodeFirst(reqType, first, Status.INVALID_ARGUMENT, res);
      if (bytes === undefined) return;
      const max = this.grpc.maxReceiveMessageBytes;
      if (bytes.length > max) return replyCallError(res, { code: Status.RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${bytes.length} vs. ${max})` });
      if (route.kind === UNARY) return this.unary(path, route.handler, resType, bytes, req, res);
      const { ctx, done } = callContext(path, req, res);
      route.handler(Buffer.from(bytes), new HttpServerStream(res, this.codec, resType, done), ctx);
      return;
    }
    // Bidi: a first request that does not decode fails the call (code Unknown, as the gateway's
    // send error); later ones half-close the stream.
    const firstBytes = first === undefined ? undefined : this.decodeFirst(reqType, first, Status.UNKNOWN, res);
    if (first !== undefined && firstBytes === undefined) return;
    this.bidi(path, route.handler, reqType, resType, firstBytes, body, req, res);
  }

  private decodeFirst(type: protobuf.Type, item: SplitItem | undefined, code: number, res: HttpResponse): Uint8Array | undefined {
    try {
      if (item === undefined) return new Uint8Array(0);
      if ('error' in item) throw item.error;
      return this.codec.encodeRequest(type, item.value);
    } catch (err) {
      replyEarlyError(res, { code, details: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }

  private async unary(path: string, handler: (b: Buffer, ctx: CallContext) => Uint8Array | Promise<Uint8Array>, resType: protobuf.Type, bytes: Uint8Array, req: HttpRequest, res: HttpResponse): Promise<void> {
    const { ctx, done } = callContext(path, req, res);
    let out: Uint8Array;
    try {
      out = await handler(Buffer.from(bytes), ctx);
    } catch (err) {
      done();
      if (!(err instanceof GrpcError)) this.report(err, `handler ${path}`);
      if (!res.destroyed) replyCallError(res, asStatus(err));
      return;
    }
    done();
    if (!res.destroyed) replyJson(res, this.codec.responseJson(resType, out));
  }

  private bidi(path: string, handler: BidiHandler, reqType: protobuf.Type, resType: protobuf.Type, first: Uint8Array | undefined, body: BodyReader, req: HttpRequest, res: HttpResponse): void {
    const incoming = new HttpIncoming(body);
    if (first !== undefined) incoming.push(Buffer.from(first));
    body.follow(
      (item) => {
        if (incoming.isClosed) return;
        try {
          if ('error' in item) throw item.error;
          incoming.push(Buffer.from(this.codec.encodeRequest(reqType, item.value)));
        } catch {
          incoming.close(); // grpc-gateway: "Failed to decode request", then CloseSend
        }
      },
      () => incoming.close(),
    );
    const { ctx, done } = callContext(path, req, res);
    handler(incoming, new HttpServerStream(res, this.codec, resType, done), ctx);
  }

  /** What grpc-go answers for a method nobody registered (a later issue's service, or one we lack). */
  private unimplemented(grpcPath: string): GrpcErrorLike {
    const slash = grpcPath.lastIndexOf('/');
    const service = grpcPath.slice(1, slash);
    const servicePrefix = grpcPath.slice(0, slash + 1);
    const served = [...GATEWAY_ROUTES.values()].some((p) => p.startsWith(servicePrefix) && this.grpc.route(p) !== undefined);
    const details = served ? `unknown method ${grpcPath.slice(slash + 1)} for service ${service}` : `unknown service ${service}`;
    return { code: Status.UNIMPLEMENTED, details };
  }

  private report(err: unknown, where: string): void {
    try {
      this.onError?.(err instanceof Error ? err : new Error(String(err)), where);
    } catch {
      // reporting must not fail a request
    }
  }
}
