// Opening a connection to a peer: try its URLs in order; on each, connect, send the hello and wait for
// the receiver's accept or error frame. A refusal (error frame) ends the attempt at once (the receiver
// has spoken); a connection failure or timeout moves on to the next URL.
import type { Logger } from '../base/index.js';
import { PEER_DIAL_TIMEOUT_MS } from './constants.js';
import { FramedConn } from './conn.js';
import { PeerProtocolError, PeerRefusedError, PeerUnavailableError } from './errors.js';
import { type Hello, decodeError, encodeHello, frameTypes } from './frame.js';
import { type SocketFactory, parsePeerUrl } from './sockets.js';

export interface DialEnv {
  readonly sockets: SocketFactory;
  readonly logger: Logger;
  /** Every connection the dialer creates (the transport closes them all on close()). */
  track(conn: FramedConn): void;
  readonly countBytes?: ((n: number) => void) | undefined;
}

export async function dial(env: DialEnv, urls: readonly string[], hello: Hello, timeoutMs = PEER_DIAL_TIMEOUT_MS): Promise<FramedConn> {
  let last = 'no URLs';
  for (const url of urls) {
    try {
      return await dialOne(env, url, hello, timeoutMs);
    } catch (e) {
      if (e instanceof PeerRefusedError) throw e;
      last = `${url}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  throw new PeerUnavailableError('unreachable', `cannot connect to member ${hello.to.toString(16)} (${last})`);
}

function dialOne(env: DialEnv, url: string, hello: Hello, timeoutMs: number): Promise<FramedConn> {
  const { host, port, secure, path } = parsePeerUrl(url);
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err === undefined) resolve(conn);
      else {
        conn.close(err.message);
        reject(err);
      }
    };
    const conn = new FramedConn(
      path !== undefined ? env.sockets.connectUnix(path) : env.sockets.connect(host, port, secure),
      false,
      env.logger,
      (frames) => {
        const [first, ...rest] = frames;
        if (settled || first === undefined) throw new PeerProtocolError('unexpected frame before the hello reply');
        if (first.type === frameTypes.error) {
          const { code, text } = decodeError(first.payload);
          settle(new PeerRefusedError(code, text));
          return;
        }
        if (first.type !== frameTypes.accept || rest.length > 0) throw new PeerProtocolError(`unexpected frame type ${first.type} as the hello reply`);
        settle(undefined);
      },
      env.countBytes,
      url,
    );
    env.track(conn);
    conn.onClose((reason) => settle(new PeerUnavailableError('unreachable', reason)));
    const timer = setTimeout(() => settle(new PeerUnavailableError('timeout', `no hello reply within ${timeoutMs} ms`)), timeoutMs);
    conn.write(encodeHello(hello));
  });
}
