// GrpcServer: routes gRPC calls arriving on node:http2 streams to handlers. It serves on a server it
// creates (cleartext h2c with prior knowledge, `listen`) or on any existing http2 server, cleartext
// or TLS (`attach`): session and stream handling do not depend on how the server was made.
import * as http2 from 'node:http2';
import { Call, CallKind, GRPC_CONTENT_TYPE, ignoreStreamError, newCallStats, respondTrailersOnly, type CallHost, type CallStats, type Route } from './call.js';
import type { BidiHandler, GrpcServerOptions, ServerStreamHandler, SlowUnaryOptions, UnaryHandler } from './handlers.js';
import {
  badContentType,
  badMethod,
  badTimeout,
  decompressorNotInstalled,
  malformedMethodName,
  unknownMethod,
  unknownService,
  type EarlyAbort,
  type GrpcError,
} from './status.js';
import { describeBadTimeout, parseGrpcTimeoutMs } from './timeout.js';

// ---------- limits ----------

/** etcd advertises MaxUint32; 2^31-1 stays within every client's signed 32-bit view of it. */
export const MAX_CONCURRENT_STREAMS_DEFAULT = 2 ** 31 - 1;
/** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE): etcd's largest request fits in one. */
export const STREAM_WINDOW_BYTES = 2 * 1024 * 1024;
/** Connection receive window, raised on each session with setLocalWindowSize. */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
/**
 * node's per-session memory bound (MiB), which counts queued outgoing data: past it node refuses
 * new streams with ENHANCE_YOUR_CALM. Large responses to slow readers must not trip it.
 */
export const SESSION_MEMORY_MIB = 1024;
/** How long close() waits for in-flight calls before it destroys the sessions. */
export const CLOSE_GRACE_MS_DEFAULT = 5000;

/** http2 server options that suit gRPC; use them when making a server to `attach` (e.g. TLS). */
export function http2ServerOptions(opts: { readonly maxConcurrentStreams?: number }): http2.ServerOptions {
  return {
    maxSessionMemory: SESSION_MEMORY_MIB,
    settings: {
      initialWindowSize: STREAM_WINDOW_BYTES,
      maxConcurrentStreams: opts.maxConcurrentStreams ?? MAX_CONCURRENT_STREAMS_DEFAULT,
    },
  };
}

type AnyHttp2Server = http2.Http2Server | http2.Http2SecureServer;

function checkLimit(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
    throw new RangeError(`grpc: ${name} must be a non-negative integer, got ${value}`);
  }
}

/** A well-formed method path: `/service/method`, both parts non-empty. */
function splitPath(path: string): { service: string; method: string } | undefined {
  if (path.charCodeAt(0) !== 47 /* '/' */) return undefined;
  const slash = path.lastIndexOf('/');
  if (slash <= 1 || slash === path.length - 1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

/** grpc-go's content-type rule: `application/grpc`, or it followed by '+' or ';' and a subtype. */
function isGrpcContentType(ct: string | undefined): boolean {
  if (ct === undefined || !ct.startsWith(GRPC_CONTENT_TYPE)) return false;
  if (ct.length === GRPC_CONTENT_TYPE.length) return true;
  const next = ct.charCodeAt(GRPC_CONTENT_TYPE.length);
  return next === 43 /* '+' */ || next === 59 /* ';' */;
}

export class GrpcServer implements CallHost {
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  readonly slowUnary: SlowUnaryOptions | undefined;
  private readonly maxConcurrentStreams: number | undefined;
  private readonly onError: ((err: Error, where: string) => void) | undefined;
  private readonly routes = new Map<string, Route>();
  private readonly services = new Set<string>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly attached = new Set<AnyHttp2Server>();
  private readonly owned: http2.Http2Server[] = [];
  private closing: Promise<void> | undefined = undefined;

  constructor(opts: GrpcServerOptions) {
    checkLimit('maxReceiveMessageBytes', opts.maxReceiveMessageBytes);
    checkLimit('maxSendMessageBytes', opts.maxSendMessageBytes);
    checkLimit('maxConcurrentStreams', opts.maxConcurrentStreams);
    this.maxReceiveMessageBytes = opts.maxReceiveMessageBytes;
    this.maxSendMessageBytes = opts.maxSendMessageBytes;
    this.maxConcurrentStreams = opts.maxConcurrentStreams;
    this.onError = opts.onError;
    this.slowUnary = opts.slowUnary;
  }

  // ---------- registration ----------

  unary(path: string, handler: UnaryHandler): void {
    this.register(path, { kind: CallKind.UNARY, handler, stats: newCallStats() });
  }

  serverStream(path: string, handler: ServerStreamHandler): void {
    this.register(path, { kind: CallKind.SERVER_STREAM, handler, stats: newCallStats() });
  }

  bidi(path: string, handler: BidiHandler): void {
    this.register(path, { kind: CallKind.BIDI, handler, stats: newCallStats() });
  }

  /** The handler registered for a method path (for in-process callers such as the HTTP gateway). */
  route(path: string): Route | undefined {
    return this.routes.get(path);
  }

  /** Every registered method with its call counters (for metrics; the counters are live). */
  methodStats(): { readonly path: string; readonly kind: 'unary' | 'server_stream' | 'bidi_stream'; readonly stats: Readonly<CallStats> }[] {
    return [...this.routes].map(([path, r]) => ({ path, kind: r.kind === CallKind.UNARY ? 'unary' : r.kind === CallKind.SERVER_STREAM ? 'server_stream' : 'bidi_stream', stats: r.stats }));
  }

  /** Measures every registered method's handling time (etcd's --metrics=extensive); `observer` gives each method its sink. */
  measureHandlingTime(observer: (path: string, kind: 'unary' | 'server_stream' | 'bidi_stream') => (seconds: number) => void): void {
    for (const m of this.methodStats()) {
      const route = this.routes.get(m.path);
      if (route !== undefined) route.stats.observeSeconds = observer(m.path, m.kind);
    }
  }

  private register(path: string, route: Route): void {
    const parts = splitPath(path);
    if (parts === undefined) throw new RangeError(`grpc: method path must be /service/method, got ${JSON.stringify(path)}`);
    if (this.routes.has(path)) throw new RangeError(`grpc: ${path} is registered twice`);
    this.routes.set(path, route);
    this.services.add(parts.service);
  }

  // ---------- serving ----------

  /** Creates a cleartext (h2c, prior knowledge) server on host:port; resolves to the bound port. */
  async listen(host: string, port: number): Promise<number> {
    if (this.closing !== undefined) throw new Error('grpc: server is closed');
    const server = http2.createServer(http2ServerOptions(this.maxConcurrentStreams === undefined ? {} : { maxConcurrentStreams: this.maxConcurrentStreams }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err: Error) => this.report(err, 'server'));
    this.owned.push(server);
    this.attach(server);
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : port;
  }

  /** Serves gRPC on the 'stream' events of an existing http2 server (cleartext or TLS). */
  attach(server: AnyHttp2Server): void {
    if (this.attached.has(server)) return;
    this.attached.add(server);
    server.on('session', this.onSession);
    server.on('stream', this.onStream);
  }

  /**
   * Graceful stop: no new calls (GOAWAY), in-flight calls get up to `graceMs` to finish, then the
   * remaining sessions are destroyed (their calls see ctx.signal abort). Servers made by `listen`
   * are closed; attached servers keep listening (their owner closes them) and from now on refuse
   * new streams with RST_STREAM(REFUSED_STREAM) and close new sessions.
   */
  close(graceMs: number = CLOSE_GRACE_MS_DEFAULT): Promise<void> {
    this.closing ??= this.shutdown(graceMs);
    return this.closing;
  }

  private async shutdown(graceMs: number): Promise<void> {
    const listenersClosed = this.owned.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const session of this.sessions) this.closeSession(session);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all([...this.sessions].map(sessionClosed)), graceOver]);
    clearTimeout(timer);
    for (const session of this.sessions) session.destroy();
    await Promise.all(listenersClosed);
  }

  private closeSession(session: http2.ServerHttp2Session): void {
    try {
      if (!session.closed && !session.destroyed) session.close();
    } catch (err) {
      this.report(err, 'session close');
    }
  }

  private readonly onSession = (session: http2.ServerHttp2Session): void => {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: Error) => {
      if (!isDisconnect(err)) this.report(err, 'session');
    });
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    } catch (err) {
      this.report(err, 'setLocalWindowSize');
    }
    if (this.closing !== undefined) this.closeSession(session);
  };

  private readonly onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void => {
    stream.on('error', ignoreStreamError);
    try {
      this.dispatch(stream, headers, (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0);
    } catch (err) {
      this.report(err, 'stream');
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  };

  /** Validate at the gate: method, content type, path, encoding, timeout; then start the call. */
  private dispatch(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, clientDone: boolean): void {
    if (this.closing !== undefined) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const method = headers[':method'] ?? '';
    if (method !== 'POST') return this.abortEarly(stream, clientDone, badMethod(method));
    const contentType = headers['content-type'];
    if (!isGrpcContentType(contentType)) return this.abortEarly(stream, clientDone, badContentType(contentType ?? ''));
    const path = headers[':path'] ?? '';
    const route = this.routes.get(path);
    if (route === undefined) return this.abortEarly(stream, clientDone, { httpStatus: 200, error: this.unknownPath(path) });
    const encoding = oneValue(headers['grpc-encoding']);
    if (encoding !== undefined && encoding !== 'identity') return this.abortEarly(stream, clientDone, { httpStatus: 200, error: decompressorNotInstalled(encoding) });
    const timeout = oneValue(headers['grpc-timeout']);
    let timeoutMs: number | undefined;
    if (timeout !== undefined) {
      timeoutMs = parseGrpcTimeoutMs(timeout);
      if (timeoutMs === undefined) return this.abortEarly(stream, clientDone, badTimeout(describeBadTimeout(timeout)));
    }
    new Call(this, stream, headers, path, route, timeoutMs);
  }

  private unknownPath(path: string): GrpcError {
    const parts = splitPath(path);
    if (parts === undefined) return malformedMethodName(path);
    return this.services.has(parts.service) ? unknownMethod(parts.method, parts.service) : unknownService(parts.service);
  }

  /** A trailers-only answer, then RST_STREAM(NO_ERROR) if the client is still sending (as grpc-go). */
  private abortEarly(stream: http2.ServerHttp2Stream, clientDone: boolean, abort: EarlyAbort): void {
    if (stream.destroyed || stream.closed) return;
    respondTrailersOnly(stream, abort.httpStatus, abort.error);
    if (!clientDone) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }

  report(err: unknown, where: string): void {
    const onError = this.onError;
    if (onError === undefined) return;
    try {
      onError(err instanceof Error ? err : new Error(String(err)), where);
    } catch {
      // The error reporter failing must not take the server down.
    }
  }
}

const DISCONNECT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT']);

/** A peer that went away: routine, not worth reporting. */
function isDisconnect(err: Error): boolean {
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' && DISCONNECT_CODES.has(code);
}

/** A header that appears more than once is read as node joins most duplicates: with ", ". */
function oneValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function sessionClosed(session: http2.ServerHttp2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise((resolve) => session.once('close', () => resolve()));
}
