// Where sockets come from: the one place that creates them, so that TLS (tls.connect/tls.createServer with
// the host's certificates) can be swapped in later without touching the protocol code.
import net from 'node:net';

export interface SocketFactory {
  /** Starts connecting; the socket emits 'connect' (TLS: 'secureConnect' mapped to the same) or 'error'. */
  connect(host: string, port: number): net.Socket;
  createServer(onConnection: (socket: net.Socket) => void): net.Server;
}

export const plainTcp: SocketFactory = {
  connect: (host, port) => net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 }),
  createServer: (onConnection) => net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 }, onConnection),
};

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** Parses a peer URL (http://host:port). https:// is refused until TLS exists. */
export function parsePeerUrl(url: string): PeerAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid peer URL ${JSON.stringify(url)}`);
  }
  if (u.protocol === 'https:') throw new Error(`peer URL ${url}: TLS is not supported yet`);
  if (u.protocol !== 'http:') throw new Error(`peer URL ${url}: scheme must be http`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === '' ? 80 : Number(u.port) };
}

export function formatPeerUrl(host: string, port: number): string {
  return host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}
