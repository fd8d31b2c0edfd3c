// Who is on the other end of an HTTP/2 session: the verified TLS client certificate's CN. A session
// normally sits on the TLS socket itself; when the listener puts a stream between them (the
// :authority rewrite, api/h2authority.ts) it records the TLS socket here for that session.
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
