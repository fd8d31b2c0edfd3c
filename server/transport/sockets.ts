// Where sockets come from: the one place that creates them. Plain TCP for http:// peer URLs; TLS
// (tls.connect / tls.Server with the member's --peer-* certificates, base/tls.ts) for https:// ones.
import net from 'node:net';
import tls from 'node:tls';
import { type Logger } from '../base/index.js';
import { type ClientTls, type ServerTls, type TlsConfig, allowedIdentity, checkClientSan, clientTls, serverTls } from '../base/tls.js';

export interface SocketFactory {
  /**
   * Starts connecting (`secure` = an https peer URL); the socket emits 'error' or, for TLS, is written
   * to at once (writes wait for the handshake).
   */
  connect(host: string, port: number, secure?: boolean): net.Socket;
  /** A listener; its connection callback gets sockets whose TLS handshake (if `secure`) succeeded. */
  createServer(onConnection: (socket: net.Socket) => void, secure?: boolean): net.Server;
  /** Releases what the factory holds (certificate reload timers). */
  close?(): void;
}

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
  const server: ServerTls = serverTls(config.files, config.settings, logger);
  let client: ClientTls;
  try {
    client = clientTls(config.files, config.settings, logger);
  } catch (e) {
    server.close();
    throw e;
  }
  return {
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
          logger.warn('rejected connection', { 'remote-addr': `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, error: why });
          socket.destroy();
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
}

/** Parses a peer URL (http://host:port or https://host:port). */
export function parsePeerUrl(url: string): PeerAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`peer URL ${url}: scheme must be http or https`);
  const secure = u.protocol === 'https:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === '' ? (secure ? 443 : 80) : Number(u.port), secure };
}

export function formatPeerUrl(host: string, port: number, secure = false): string {
  const scheme = secure ? 'https' : 'http';
  return host.includes(':') ? `${scheme}://[${host}]:${port}` : `${scheme}://${host}:${port}`;
}
