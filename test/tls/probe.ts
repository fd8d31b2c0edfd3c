// Raw TLS connections for the TLS tests: does a handshake with these credentials succeed, and which
// certificate does the server present? TLS 1.2 by default, so that a refused client certificate
// fails the handshake itself (with TLS 1.3 the server's verdict arrives after the client's
// handshake is done).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

export interface ProbeCreds {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly maxVersion?: tls.SecureVersion;
  readonly minVersion?: tls.SecureVersion;
  readonly ciphers?: string;
  readonly alpn?: string[];
}

export type ProbeResult =
  | { readonly ok: true; readonly serial: string; readonly cipher: string; readonly protocol: string; readonly alpn: string | false }
  | { readonly ok: false; readonly error: string };

const PROBE_TIMEOUT_MS = 5000;

/** A TLS handshake with host:port of `url`; the connection is closed right after. */
export function probe(url: string, c: ProbeCreds): Promise<ProbeResult> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const socket = tls.connect({
      host: u.hostname,
      port: Number(u.port),
      ...(c.caFile !== undefined ? { ca: readFileSync(c.caFile) } : {}),
      ...(c.certFile !== undefined ? { cert: readFileSync(c.certFile) } : {}),
      ...(c.keyFile !== undefined ? { key: readFileSync(c.keyFile) } : {}),
      maxVersion: c.maxVersion ?? 'TLSv1.2',
      ...(c.minVersion !== undefined ? { minVersion: c.minVersion } : {}),
      ...(c.ciphers !== undefined ? { ciphers: c.ciphers } : {}),
      ...(c.alpn !== undefined ? { ALPNProtocols: c.alpn } : {}),
    });
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout' }), PROBE_TIMEOUT_MS);
    socket.on('secureConnect', () =>
      finish({
        ok: true,
        serial: socket.getPeerCertificate().serialNumber.toUpperCase(),
        cipher: socket.getCipher().name,
        protocol: socket.getProtocol() ?? '',
        alpn: socket.alpnProtocol ?? false,
      }),
    );
    socket.on('error', (e: Error) => finish({ ok: false, error: e.message }));
    socket.on('close', () => finish({ ok: false, error: 'closed before the handshake finished' }));
  });
}

/** Writes `bytes` over plain TCP and resolves with what came back until the server closed (or timeout). */
export function rawExchange(url: string, bytes: Buffer | string, timeoutMs = 5000): Promise<{ reply: Buffer; closedByServer: boolean }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: u.hostname, port: Number(u.port) }, () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ reply: Buffer.concat(chunks), closedByServer: false });
    }, timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks), closedByServer: true });
    });
  });
}
