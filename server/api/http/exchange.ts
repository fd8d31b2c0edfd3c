// The request/response surface the HTTP handlers use: what node's HTTP/1.1 (IncomingMessage,
// ServerResponse) and HTTP/2 compatibility (Http2ServerRequest, Http2ServerResponse) objects have in
// common, so one handler serves both (etcd serves the gateway on HTTP/2 over TLS too).
import type { IncomingHttpHeaders } from 'node:http';
import { commonNameOf, sessionCommonName } from '../grpc/index.js';

export interface HttpRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly socket: unknown;
  /** HTTP/2 requests only: the stream, whose session knows the TLS socket beneath. */
  readonly stream?: { readonly session?: { readonly socket: unknown } | undefined } | undefined;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

export interface HttpResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableLength: number;
  readonly destroyed: boolean;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  addTrailers(headers: Record<string, string>): void;
  write(chunk: string | Uint8Array): boolean;
  end(chunk?: string | Uint8Array): unknown;
  once(event: 'drain' | 'close' | 'finish', listener: () => void): unknown;
}

export type HttpListener = (req: HttpRequest, res: HttpResponse) => void;

/** The URL path of a request (no query). */
export function requestPath(req: HttpRequest): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** The query parameters of a request. */
export function requestQuery(req: HttpRequest): URLSearchParams {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
}

/** Go's http.Error: text/plain, nosniff, the text and a newline. */
export function goHttpError(res: HttpResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  const body = `${text}\n`;
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** Go's ServeMux answer for a path nothing is registered at. */
export function notFound(res: HttpResponse): void {
  goHttpError(res, 404, '404 page not found');
}

/** 405 with `Allow: GET`, as etcd's /health, /version, /livez and /readyz answer other methods. */
export function getOnly(res: HttpResponse): void {
  res.setHeader('Allow', 'GET');
  goHttpError(res, 405, 'Method Not Allowed');
}

/** A complete body with its length. */
export function sendBody(res: HttpResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** The CN of the client's verified TLS certificate (the user under --client-cert-auth), if any. */
export function tlsCommonName(req: HttpRequest): string | undefined {
  return req.stream !== undefined ? sessionCommonName(req.stream.session) : commonNameOf(req.socket);
}
