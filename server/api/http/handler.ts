// The HTTP side of the client port (etcd's HTTP mux behind cmux) and of --listen-metrics-urls.
// Client port: CORS headers on every answer and `OPTIONS` → 200 (etcd's --cors default `*`; we have
// no --cors flag, so this is etcd's default behaviour hard-wired), the gateway under /v3/ and
// /v3beta/, /health, /livez, /readyz, /version, /metrics; anything else is Go's "404 page not found".
// Metrics URLs: /metrics, /health, /livez, /readyz only, no CORS (as etcd 3.5).
import { GatewayCodec } from './codec.js';
import { goHttpError, notFound, requestPath, type HttpListener, type HttpRequest, type HttpResponse } from './exchange.js';
import { Gateway, type GatewayOptions } from './gateway.js';
import { serveDebugVars, type DebugRaftStatus } from './debugvars.js';
import { HealthEndpoints, type HealthOptions } from './health.js';
import { isGatewayPath } from './routes.js';

export interface HttpHandlersOptions extends HealthOptions {
  readonly grpc: GatewayOptions['grpc'];
  readonly onError?: (err: Error, where: string) => void;
  /** Defaults to the etcd protos beside the code. */
  readonly codec?: GatewayCodec;
  /** --enable-grpc-gateway (default true): false leaves /v3/... unserved (404), as etcd. */
  readonly gateway?: boolean;
  /** raft's status for /debug/vars (client port only). */
  readonly raftStatus: () => DebugRaftStatus;
}

export interface HttpHandlers {
  /** For HTTP requests on the client port (HTTP/1.1, and HTTP/2 requests that are not gRPC). */
  readonly client: HttpListener;
  /** For --listen-metrics-urls. */
  readonly metrics: HttpListener;
}

function addCors(res: HttpResponse): void {
  res.setHeader('Access-Control-Allow-Headers', 'accept, content-type, authorization');
  res.setHeader('Access-Control-Allow-Methods', 'POST, GET, OPTIONS, PUT, DELETE');
  res.setHeader('Access-Control-Allow-Origin', '*');
}

export function createHttpHandlers(opts: HttpHandlersOptions): HttpHandlers {
  const gateway = new Gateway({ grpc: opts.grpc, codec: opts.codec ?? GatewayCodec.load(), ...(opts.onError === undefined ? {} : { onError: opts.onError }) });
  const health = new HealthEndpoints(opts);
  const guard = (fn: HttpListener): HttpListener => (req, res) => {
    try {
      fn(req, res);
    } catch (err) {
      opts.onError?.(err instanceof Error ? err : new Error(String(err)), 'http');
      if (!res.headersSent) goHttpError(res, 500, 'Internal Server Error');
      else res.end();
    }
  };
  const client = (req: HttpRequest, res: HttpResponse): void => {
    addCors(res);
    if (req.method === 'OPTIONS') {
      res.statusCode = 200;
      res.setHeader('Content-Length', 0);
      res.end();
      return;
    }
    const path = requestPath(req);
    if (opts.gateway !== false && isGatewayPath(path)) return serveGateway(gateway, path, req, res);
    if (path === '/debug/vars') return serveDebugVars(res, opts.raftStatus());
    if (!health.serve(path, req, res, true)) notFound(res);
  };
  const metrics = (req: HttpRequest, res: HttpResponse): void => {
    const path = requestPath(req);
    if (path === '/version' || !health.serve(path, req, res, false)) notFound(res);
  };
  return { client: guard(client), metrics: guard(metrics) };
}

/** grpc-gateway v1's mux: an unknown path is "Not Found", a known path with another method 405. */
function serveGateway(gateway: Gateway, path: string, req: HttpRequest, res: HttpResponse): void {
  const method = gateway.methodFor(path);
  if (method === undefined) return goHttpError(res, 404, 'Not Found');
  if (req.method !== 'POST') return goHttpError(res, 405, 'Method Not Allowed');
  gateway.serve(method, req, res);
}
