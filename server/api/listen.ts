// The client-port listeners: one port serves gRPC (HTTP/2) and HTTP/1.1 (the gateway, /health,
// /version, /metrics), as etcd does with cmux. Cleartext: the first bytes of each connection are
// read once — the HTTP/2 client preface means HTTP/2 (prior knowledge, as gRPC clients speak it),
// anything else HTTP/1.1 — and the socket is handed, with those bytes put back, to an HTTP/2 or an
// HTTP/1.1 server. TLS: ALPN `h2` or `http/1.1` decides (a client offering no ALPN is sniffed as in
// cleartext). On HTTP/2, a request whose content-type is not application/grpc goes to the HTTP
// handler (etcd routes by content-type on TLS the same way), every other stream to the GrpcServer.
// HTTP/2 connections (cleartext or TLS) are then held until their first header block (h2authority.ts):
// a client whose `:authority` has a '/' (etcdctl 3.4's `endpoint status|hashkv|health`, which
// nghttp2 would reset) is served through a JS stream that rewrites it; every other client gets the
// raw socket. Per connection the work is the sniff and that probe; per request one content-type
// test: the gRPC hot path is the GrpcServer's own. --listen-metrics-urls get a plain HTTP(S) server with the metrics handler.
// An http:// and an https:// client URL on the same host:port share one listener (etcd's cmux serves
// both on one port): a connection whose first byte starts a TLS record (0x16, a handshake) goes to the
// TLS side, any other to the cleartext sniff.
// A unix:// (unixs://: TLS) client URL is served the same way on a socket file (etcd's unix listener:
// a stale socket at the path is replaced; the file goes when the listener closes).
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ServerTls } from '../base/tls.js';
import { removeStaleSocket } from '../base/unixsocket.js';
import { http2ServerOptions, setSessionTls, type GrpcServer } from './grpc/index.js';
import { probeAuthority, type Handover } from './h2authority.js';
import type { HttpListener } from './http/index.js';

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A connection that has not shown its protocol within this time is closed. */
export const SNIFF_TIMEOUT_MS = 30_000;
/** Go's net/http has no header timeout by default; we bound slow headers (slowloris) nonetheless. */
export const HTTP_HEADERS_TIMEOUT_MS = 60_000;

export type Protocol = 'h2' | 'http1';

/** The first byte of a TLS connection: a handshake record (RFC 8446 §5.1, content type 22). */
const TLS_HANDSHAKE = 0x16;

/**
 * Decides a connection's protocol from its first bytes, fed in any chunking: 'h2' once all 24
 * bytes of the preface arrived, 'http1' at the first byte that differs, undefined while undecided.
 */
export class ProtocolSniffer {
  private matched = 0;
  private decided: Protocol | undefined = undefined;

  push(chunk: Uint8Array): Protocol | undefined {
    for (let i = 0; this.decided === undefined && i < chunk.length; i++) {
      if (chunk[i] !== HTTP2_PREFACE[this.matched]) this.decided = 'http1';
      else if (++this.matched === HTTP2_PREFACE.length) this.decided = 'h2';
    }
    return this.decided;
  }
}

export interface ListenersOptions {
  readonly grpc: GrpcServer;
  readonly clientHttp: HttpListener;
  readonly metricsHttp: HttpListener;
  /** The client TLS settings (--cert-file etc.), needed when a URL is https. */
  readonly tls: ServerTls | undefined;
  /** --max-concurrent-streams: HTTP/2 streams one client connection may have open (default: gRPC's limit). */
  readonly maxConcurrentStreams?: number;
  /**
   * --listen-client-http-urls given: HTTP is served there (listenClientHttp) and no longer on the
   * client URLs, where HTTP/1.1 connections are closed (etcd's cmux then matches nothing).
   */
  readonly httpSplit?: boolean;
  readonly onError?: (err: Error, where: string) => void;
}

type Listening = net.Server | tls.Server | http.Server | https.Server;

/** Linux's sun_path holds 108 bytes with the terminating NUL; libuv would cut a longer path silently. */
export const UNIX_SOCKET_PATH_MAX = 107;

export function isUnixUrl(url: URL): boolean {
  return url.protocol === 'unix:' || url.protocol === 'unixs:';
}

/**
 * The socket file of a unix:// or unixs:// URL as etcd resolves it: host + path, percent-decoded
 * (unix:///tmp/a.sock is /tmp/a.sock; unix://localhost:2379 is a file named "localhost:2379" in the
 * working directory). Throws when the URL names no usable path.
 */
export function unixSocketPath(url: URL): string {
  // 'unix:name' (no '//', no leading '/') is an opaque URL: Go's url.URL has an empty Path for it.
  const pathPart = url.host === '' && !url.pathname.startsWith('/') ? '' : url.pathname;
  let path: string;
  try {
    path = decodeURIComponent(url.host) + decodeURIComponent(pathPart);
  } catch {
    throw new Error(`"${url.href}": malformed percent-encoding in the socket path`);
  }
  if (path === '') throw new Error(`"${url.href}" names no socket file (use unix:///absolute/path.sock, or unix://name for a file in the working directory)`);
  if (path.includes('\0')) throw new Error(`"${url.href}": a socket path cannot contain a NUL byte`);
  const bytes = Buffer.byteLength(path);
  if (bytes > UNIX_SOCKET_PATH_MAX) throw new Error(`"${url.href}": the socket path is ${bytes} bytes long, a unix socket address holds at most ${UNIX_SOCKET_PATH_MAX}`);
  return path;
}

/** A client URL's address for logs: the socket file, or host:port (with the bound port when given). */
export function clientAddress(url: URL, port?: number): string {
  if (isUnixUrl(url)) return unixSocketPath(url);
  return port === undefined ? url.host : `${url.hostname}:${port}`;
}

function splitHostPort(url: URL): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) };
}

function boundPort(server: net.Server, fallback: number): number {
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : fallback;
}

function isGrpc(headers: http2.IncomingHttpHeaders): boolean {
  const ct = headers['content-type'];
  return ct !== undefined && ct.startsWith('application/grpc');
}

export class Listeners {
  /** Receives every HTTP/2 connection (cleartext or TLS); its streams are split by content-type. */
  private readonly h2: http2.Http2Server;
  /** Never listens: the GrpcServer is attached here and gets the gRPC streams and all sessions. */
  private readonly grpcSide = http2.createServer(http2ServerOptions({}));
  /** Never listens: HTTP/2 requests that are not gRPC, through node's compatibility API. */
  private readonly httpSide: http2.Http2Server;
  /** Never listens: HTTP/1.1 connections of the client port. */
  private readonly http1: http.Server;
  private readonly servers: Listening[] = [];
  private readonly pending = new Set<net.Socket>();
  private closing: Promise<void> | undefined = undefined;
  /** Set while a rewritten TLS connection is handed to the HTTP/2 server (its 'session' comes synchronously). */
  private tlsBeneath: tls.TLSSocket | undefined = undefined;

  constructor(private readonly opts: ListenersOptions) {
    this.h2 = http2.createServer(http2ServerOptions(opts.maxConcurrentStreams === undefined ? {} : { maxConcurrentStreams: opts.maxConcurrentStreams }));
    opts.grpc.attach(this.grpcSide);
    this.httpSide = http2.createServer({}, opts.clientHttp);
    this.http1 = http.createServer({ requestTimeout: 0, headersTimeout: HTTP_HEADERS_TIMEOUT_MS }, opts.clientHttp);
    // node starts connection tracking (closeIdleConnections/closeAllConnections) and the headers-timeout
    // checks on 'listening'; this server never listens itself (sockets are handed to it), so start them.
    this.http1.emit('listening');
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      if (this.tlsBeneath !== undefined) setSessionTls(session, this.tlsBeneath);
      this.grpcSide.emit('session', session);
    });
    this.h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      (isGrpc(headers) ? this.grpcSide : this.httpSide).emit('stream', stream, headers, ...rest);
    });
    this.h2.on('sessionError', (err: Error) => this.report(err, 'http2 session'));
    this.http1.on('clientError', (_err: Error, socket: net.Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request');
      else socket.destroy();
    });
  }

  /**
   * Serves the client port at `url`: http: or https: on host:port, unix: or unixs: (TLS) on the
   * socket file unixSocketPath(url) names. Resolves to the bound TCP port (0 for a unix socket).
   */
  async listenClient(url: URL): Promise<number> {
    const server = url.protocol === 'https:' || url.protocol === 'unixs:' ? this.tlsClientServer(url) : net.createServer((socket) => this.sniff(socket));
    if (isUnixUrl(url)) {
      const path = unixSocketPath(url);
      try {
        await removeStaleSocket(path);
        await this.start(server, { path });
      } catch (err) {
        throw new Error(`cannot listen on unix socket ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      return 0;
    }
    const { host, port } = splitHostPort(url);
    return this.start(server, { host, port });
  }

  /**
   * Serves cleartext and TLS on one host:port (`http://h:p` and `https://h:p` both in
   * --listen-client-urls): the first byte of each connection picks the side. Resolves to the bound port.
   */
  async listenClientMixed(httpsUrl: URL): Promise<number> {
    const tlsSide = this.tlsClientServer(httpsUrl);
    const server = net.createServer((socket) => this.splitTls(socket, tlsSide));
    const { host, port } = splitHostPort(httpsUrl);
    return this.start(server, { host, port });
  }

  /** Reads the first chunk; a TLS handshake record (0x16) goes to tlsSide (which reads the buffered bytes first), anything else to the sniff. */
  private splitTls(socket: net.Socket, tlsSide: tls.Server): void {
    const done = this.hold(socket, (chunk) => {
      done();
      socket.pause();
      socket.unshift(chunk);
      if (this.closing !== undefined) socket.destroy();
      else if (chunk[0] === TLS_HANDSHAKE) tlsSide.emit('connection', socket);
      else {
        this.sniff(socket);
        socket.resume();
      }
    });
  }

  /**
   * Holds a connection whose protocol is not known yet: counted as pending (destroyed at close),
   * destroyed after SNIFF_TIMEOUT_MS or when it fails or closes first; `onData` gets its bytes.
   * Returns what releases it (`alsoOnRelease` runs then too).
   */
  private hold(socket: net.Socket, onData: (chunk: Buffer) => void, alsoOnRelease: () => void = () => undefined): () => void {
    this.pending.add(socket);
    const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
    const release = (): void => {
      clearTimeout(timer);
      alsoOnRelease();
      this.pending.delete(socket);
      socket.off('data', onData);
      socket.off('error', onGone);
      socket.off('close', onGone);
    };
    const onGone = (): void => {
      release();
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('error', onGone);
    socket.on('close', onGone);
    return release;
  }

  private tlsClientServer(url: URL): tls.Server {
    const t = this.requireTls(url);
    const server = tls.createServer({ ...t.options(), ALPNProtocols: ['h2', 'http/1.1'] }, (socket) => this.routeTls(socket));
    t.attach(server);
    server.on('tlsClientError', () => undefined); // a failed handshake concerns that client only
    return server;
  }

  /** --listen-client-http-urls: the gateway, /health, /version ... (HTTP/1.1, https with the client TLS) at `url`, no gRPC. */
  async listenClientHttp(url: URL): Promise<number> {
    const { host, port } = splitHostPort(url);
    const server =
      url.protocol === 'https:'
        ? https.createServer({ ...this.requireTls(url).options() }, this.opts.clientHttp)
        : http.createServer({ requestTimeout: 0, headersTimeout: HTTP_HEADERS_TIMEOUT_MS }, this.opts.clientHttp);
    if (server instanceof https.Server) this.requireTls(url).attach(server);
    return this.start(server, { host, port });
  }

  /** Serves /metrics, /health, /livez, /readyz at `url`. */
  async listenMetrics(url: URL): Promise<number> {
    const { host, port } = splitHostPort(url);
    const server =
      url.protocol === 'https:'
        ? https.createServer({ ...this.requireTls(url).options() }, this.opts.metricsHttp)
        : http.createServer({ requestTimeout: 0, headersTimeout: HTTP_HEADERS_TIMEOUT_MS }, this.opts.metricsHttp);
    if (server instanceof https.Server) this.requireTls(url).attach(server);
    return this.start(server, { host, port });
  }

  /** Stops listening, ends gRPC calls (GrpcServer.close, with its grace), then the HTTP requests still open. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const stopped = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.pending) s.destroy();
    const httpServers = [this.http1, ...this.servers.filter((s): s is http.Server | https.Server => s instanceof http.Server || s instanceof https.Server)];
    for (const s of httpServers) s.closeIdleConnections();
    await this.opts.grpc.close(); // GOAWAY, in-flight calls get the GrpcServer's grace
    for (const s of httpServers) s.closeAllConnections(); // HTTP requests (e.g. watches over HTTP) end here
    this.http1.close();
    await Promise.all(stopped);
  }

  private requireTls(url: URL): ServerTls {
    if (this.opts.tls === undefined) throw new Error(`${url.href}: ${url.protocol.slice(0, -1)} needs --cert-file and --key-file`);
    return this.opts.tls;
  }

  /** Listens at `where` (host and port, or a socket path: node's net.Server then unlinks the file at close). */
  private async start(server: Listening, where: { host: string; port: number } | { path: string }): Promise<number> {
    if (this.closing !== undefined) throw new Error('listeners are closed');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err: Error) => this.report(err, 'listener'));
    this.servers.push(server);
    return 'port' in where ? boundPort(server, where.port) : 0;
  }

  private routeTls(socket: tls.TLSSocket): void {
    if (socket.alpnProtocol === 'http/1.1') this.hand(socket, 'http1');
    else this.sniff(socket, socket.alpnProtocol === 'h2');
  }

  /**
   * Reads until the protocol is known; HTTP/1.1 (or, after ALPN h2, anything but the preface, for
   * nghttp2 to refuse) gets the socket with the bytes put back, HTTP/2 goes through the authority probe.
   */
  private sniff(socket: net.Socket, alpnH2 = false): void {
    const sniffer = new ProtocolSniffer();
    const chunks: Buffer[] = [];
    let abandonProbe = (): void => undefined;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      const protocol = sniffer.push(chunk);
      if (protocol === undefined) return;
      socket.off('data', onData);
      const bytes = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      if (protocol === 'h2') {
        abandonProbe = probeAuthority(socket, bytes, (h) => {
          done();
          this.handH2(h, socket);
        });
        return;
      }
      done();
      socket.pause();
      socket.unshift(bytes);
      this.hand(socket, alpnH2 ? 'h2' : protocol);
    };
    const done = this.hold(socket, onData, () => abandonProbe());
  }

  private hand(socket: net.Socket, protocol: Protocol): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    if (protocol === 'h2') this.h2.emit('connection', socket);
    else if (this.opts.httpSplit === true) socket.destroy();
    else {
      this.http1.emit('connection', socket);
      socket.resume();
    }
  }

  private handH2(h: Handover, socket: net.Socket): void {
    if (h.kind === 'raw') this.hand(h.socket, 'h2');
    else if (this.closing !== undefined) h.stream.destroy();
    else {
      // The session will sit on the rewriting stream: remember the TLS socket beneath for the CN.
      this.tlsBeneath = socket instanceof tls.TLSSocket ? socket : undefined;
      try {
        this.h2.emit('connection', h.stream);
      } finally {
        this.tlsBeneath = undefined;
      }
    }
  }

  private report(err: unknown, where: string): void {
    try {
      this.opts.onError?.(err instanceof Error ? err : new Error(String(err)), where);
    } catch {
      // the reporter failing must not take the server down
    }
  }
}

/**
 * nghttp2's NGHTTP2_ERR_PROTO on a session: the peer broke HTTP/2's rules. grpc-go (the etcd 3.6 Go
 * client, kube-apiserver) closes every connection with a GOAWAY whose last-stream-id names its own
 * stream, which nghttp2 calls a protocol error; etcd accepts it silently. A client's error, not the
 * server's: logged at debug level.
 */
export function isClientProtocolError(err: Error): boolean {
  const e = err as Error & { code?: unknown; errno?: unknown };
  return e.code === 'ERR_HTTP2_ERROR' && (e.errno === -505 || /Protocol error/.test(err.message));
}
