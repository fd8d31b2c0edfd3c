// Who is on the other end of an HTTP/2 session: its address and the verified TLS client certificate's CN. A session
// normally sits on the TLS socket itself; when the listener puts a stream between them (the
// :authority rewrite, api/h2authority.ts) it records the TLS socket here for that session.
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

const tlsOfSession = new WeakMap<object, TLSSocket>();

/** Records the TLS socket beneath a session whose own socket is not it. */
export function setSessionTls(session: object, socket: TLSSocket): void {
  tlsOfSession.set(session, socket);
}

/** The subject CN of the session's authorized TLS client certificate, if any. */
export function sessionCommonName(session: { readonly socket: unknown } | undefined): string | undefined {
  if (session === undefined) return undefined;
  return commonNameOf(tlsOfSession.get(session) ?? session.socket);
}

/** The subject CN of a TLS socket's authorized peer certificate, if any. */
export function commonNameOf(socket: unknown): string | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

/**
 * The client's address as grpc-go's peer.Addr prints it: `ip:port`, `[ipv6]:port` (an IPv4-mapped
 * address as plain IPv4, as Go's net.IP does), `@` for a unix socket peer (Go names an unbound unix
 * socket so), '' when the session's socket is a stream of ours with no address.
 */
export function sessionRemoteAddress(session: { readonly socket: unknown } | undefined): string {
  if (session === undefined) return '';
  const socket = tlsOfSession.get(session) ?? session.socket;
  if (!(socket instanceof Socket)) return '';
  const ip = socket.remoteAddress;
  if (ip === undefined) return '@';
  const v4 = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
  return v4.includes(':') ? `[${v4}]:${socket.remotePort ?? 0}` : `${v4}:${socket.remotePort ?? 0}`;
}
