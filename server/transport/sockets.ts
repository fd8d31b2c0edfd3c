// Where sockets come from: the one place that creates them. Plain TCP for http:// peer URLs; TLS
// (tls.connect / tls.Server with the member's --peer-* certificates, base/tls.ts) for https:// ones;
// a unix socket for unix:// ones (etcd: unix://name:port is the socket file "name:port", relative to
// the working directory; unixs:// is refused).
import net from 'node:net';
import tls from 'node:tls';
import { type Logger } from '../base/index.js';
import { encodeError } from './frame.js';
import { type ClientTls, type ServerTls, type TlsConfig, allowedIdentity, checkClientSan, clientTls, rejectedOn, serverTls } from '../base/tls.js';

export interface SocketFactory {
  /**
   * Starts connecting (`secure` = an https peer URL); the socket emits 'error' or, for TLS, is written
   * to at once (writes wait for the handshake).
   */
  connect(host: string, port: number, secure?: boolean): net.Socket;
  /** Starts connecting to a unix socket (a unix:// peer URL). */
  connectUnix(path: string): net.Socket;
  /** A listener; its connection callback gets sockets whose TLS handshake (if `secure`) succeeded. */
  createServer(onConnection: (socket: net.Socket) => void, secure?: boolean): net.Server;
  /** Releases what the factory holds (certificate reload timers). */
  close?(): void;
}

/** What a member whose certificate a peer refused reads (Go's text for a bad_certificate TLS alert). */
export const BAD_CERTIFICATE = 'remote error: tls: bad certificate';
/** A refused connection is closed at the latest this long after its refusal was written. */
const REJECT_LINGER_MS = 1_000;

const TCP_OPTS = { noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 } as const;
/** A peer that connects but does not finish the TLS handshake is dropped after this long. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

class NoTlsError extends Error {
  override readonly name = 'NoTlsError';
}

export const plainTcp: SocketFactory = {
  connect: (host, port, secure) => {
    if (secure === true) throw new NoTlsError('https peer URL but no --peer-cert-file/--peer-key-file were given');
    return net.connect({ host, port, ...TCP_OPTS });
  },
  connectUnix: (path) => net.connect({ path }),
  createServer: (onConnection, secure) => {
    if (secure === true) throw new NoTlsError('https peer URL but no --peer-cert-file/--peer-key-file were given');
    return net.createServer(TCP_OPTS, onConnection);
  },
};

/**
 * Sockets for a member with peer certificates: https URLs use TLS (we present our certificate when
 * dialling and verify the peer against --peer-trusted-ca-file; inbound, client certificates are
 * required when --peer-client-cert-auth or a CA is given, and their SANs must match the remote
 * address, as etcd's peer listener checks); http URLs stay plain TCP. Throws TlsConfigError when the
 * files or flags cannot be used.
 */
export function tlsSockets(config: TlsConfig, logger: Logger): SocketFactory {
  const server: ServerTls = serverTls(config.files, config.settings, logger, 'peer');
  let client: ClientTls;
  try {
    client = clientTls(config.files, config.settings, logger);
  } catch (e) {
    server.close();
    throw e;
  }
  return {
    connectUnix: (path) => plainTcp.connectUnix(path),
    connect: (host, port, secure) => {
      if (secure !== true) return plainTcp.connect(host, port);
      const socket = tls.connect({ ...client.options(), host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}) });
      socket.setNoDelay(true);
      socket.setKeepAlive(true, TCP_OPTS.keepAliveInitialDelay);
      return socket;
    },
    createServer: (onConnection, secure) => {
      if (secure !== true) return plainTcp.createServer(onConnection);
      const srv = tls.createServer({ ...server.options(), ...TCP_OPTS, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS }, (socket) => {
        if (!server.requiresClientCert) {
          onConnection(socket);
          return;
        }
        socket.pause();
        const allowed = allowedIdentity(socket.getPeerCertificate(), config.files);
        const san = config.files.skipClientSanVerify === true ? Promise.resolve(undefined) : checkClientSan(socket);
        void san.then((sanWhy) => allowed ?? sanWhy).then((why) => {
          if (why === undefined) {
            socket.resume();
            onConnection(socket);
            return;
          }
          logger.warn(rejectedOn('peer'), { 'remote-addr': `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, error: why });
          // etcd refuses such a certificate inside the handshake, and the dialer reads the TLS alert as
          // "remote error: tls: bad certificate"; Node cannot refuse by name there, so the refusal
          // comes as the protocol's first frame with the same words, then the connection ends.
          socket.end(encodeError('badCertificate', `${BAD_CERTIFICATE}: ${why}`));
          setTimeout(() => socket.destroy(), REJECT_LINGER_MS).unref();
        });
      });
      server.attach(srv);
      return srv;
    },
    close: () => {
      server.close();
      client.close();
    },
  };
}

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
  /** https: the connection uses TLS. */
  readonly secure: boolean;
  /** unix://: the socket file (host and port are then the URL's, for logs only). */
  readonly path?: string;
}

/** Parses a peer URL (http://host:port or https://host:port). */
export function parsePeerUrl(url: string): PeerAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(url)}`);
  }
  if (u.protocol === 'unix:') {
    if (u.host === '' || u.pathname !== '') throw new Error(`peer URL ${url}: a unix peer URL has the form unix://name:port (the socket file "name:port")`);
    return { host: u.hostname, port: Number(u.port === '' ? 0 : u.port), secure: false, path: decodeURIComponent(u.host) };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`peer URL ${url}: scheme must be http, https or unix${u.protocol === 'unixs:' ? ' (TLS over a unix socket is not supported between members)' : ''}`);
  const secure = u.protocol === 'https:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === '' ? (secure ? 443 : 80) : Number(u.port), secure };
}

export function formatPeerUrl(host: string, port: number, secure = false): string {
  const scheme = secure ? 'https' : 'http';
  return host.includes(':') ? `${scheme}://[${host}]:${port}` : `${scheme}://${host}:${port}`;
}

