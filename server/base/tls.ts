// TLS settings for the client port and for peer traffic, built from etcd's flags (--cert-file,
// --key-file, --trusted-ca-file, --client-cert-auth, the --peer-* equivalents, --cipher-suites,
// --tls-min-version, --tls-max-version), with certificates reloaded from disk when they change.
//
// Usage (node builtins only; the caller makes the sockets):
//
//   const t = serverTls(cfg.clientTls, { cipherSuites, minVersion, maxVersion }, log);  // throws TlsConfigError
//   const server = http2.createSecureServer({ ...t.options(), ALPNProtocols: ['h2', 'http/1.1'], allowHTTP1: true });
//   t.attach(server);        // every later reload calls server.setSecureContext(...)
//   ...
//   t.close();               // stops watching the files (servers are closed by their owner)
//
//   const c = clientTls(cfg.peerTls, settings, log);   // for dials: tls.connect({ ...c.options(), host, port })
//
// Behaviour, as etcd's transport.TLSInfo (client/pkg/transport/listener.go):
// - Server side: the server presents cert-file/key-file. Client certificates are requested and
//   required (Go's RequireAndVerifyClientCert: no certificate, or one not signed by trusted-ca-file,
//   fails the handshake) when client-cert-auth is set or a trusted-ca-file is given; otherwise none is
//   asked for. (etcd: `ClientAuth = RequireAndVerifyClientCert if TrustedCAFile != "" || ClientCertAuth`.)
// - Client side (a member dialling a peer): it presents its own cert-file/key-file and verifies the
//   other side against trusted-ca-file (the system roots when none is given), host name or IP checked
//   against the certificate's SANs, as Go's tls.Client does.
// - Reload: etcd re-reads the key pair on every handshake (GetCertificate). We poll the files' inode,
//   size and mtime every `reloadIntervalMs` (default 2 s) and, on a change, re-read the cert, key and
//   CA and build a new secure context: servers get setSecureContext (new handshakes use it; open
//   connections keep theirs), dials use the new options. A file that fails to load (half written,
//   key not matching the cert, bad PEM) is logged as a warning and the previous certificates stay in
//   use; the next change is tried again. Unlike etcd 3.4, the CA file is reloaded too.
// - --cipher-suites takes Go's (= IANA) names, mapped here to OpenSSL's; an unknown name is a startup
//   error, as in etcd ("unexpected TLS cipher suite"). They restrict TLS 1.2 only: TLS 1.3 suites are
//   not configurable in Go, so with TLS 1.3 allowed the three TLS 1.3 suites stay enabled (TLS 1.3
//   names given in the list are accepted and ignored, as Go does). As etcd 3.5, --cipher-suites with
//   --tls-min-version=TLS1.3 is an error, and min must not exceed max. etcd 3.4 always capped TLS at
//   1.2; we (like etcd 3.5) allow 1.3 unless --tls-max-version=TLS1.2.
import { X509Certificate } from 'node:crypto';
import { type Stats, readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import tls from 'node:tls';
import type { Logger } from './log.js';

/** Certificate files of one side (structurally config's TlsFiles). */
export interface TlsFileSet {
  readonly certFile: string;
  readonly keyFile: string;
  /** '' = none. */
  readonly trustedCaFile: string;
  readonly clientCertAuth: boolean;
  /** Certificate revocation list (--client-crl-file / --peer-crl-file); '' or absent = none. */
  readonly crlFile?: string;
  /** --peer-cert-allowed-cn: the other side's certificate must have one of these CNs (or an allowed hostname). */
  readonly allowedCns?: readonly string[];
  /** --client-cert-allowed-hostname / --peer-cert-allowed-hostname: ... or be valid for one of these names. */
  readonly allowedHostnames?: readonly string[];
  /** --peer-client-cert-file / --peer-client-key-file: presented when dialling instead of certFile/keyFile. */
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  /** --peer-skip-client-san-verification. */
  readonly skipClientSanVerify?: boolean;
  /** Auto TLS (self-signed): dials do not verify the other side's certificate, as etcd's InsecureSkipVerify. */
  readonly insecureSkipVerify?: boolean;
}

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TlsSettings {
  /** Go/IANA cipher suite names (--cipher-suites); empty = OpenSSL's defaults. */
  readonly cipherSuites: readonly string[];
  readonly minVersion: TlsVersion;
  /** undefined = the highest Node supports (TLS 1.3). */
  readonly maxVersion: TlsVersion | undefined;
  /** How often the files are checked for changes (default TLS_RELOAD_INTERVAL_MS). */
  readonly reloadIntervalMs?: number;
}

export const TLS_RELOAD_INTERVAL_MS = 2000;

/** One side's files and the process-wide TLS flags: what the peer transport and the client listener take. */
export interface TlsConfig {
  readonly files: TlsFileSet;
  readonly settings: TlsSettings;
}

/** A TLS flag combination or file that cannot be used: a startup error. */
export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

/** The server side of one TLS listener set (client port or peer port). */
export interface ServerTls {
  /**
   * Options for tls.createServer / http2.createSecureServer: key, cert, ca, ciphers, versions,
   * requestCert + rejectUnauthorized when client certificates are required. Add ALPNProtocols yourself.
   * Always the latest successfully loaded files.
   */
  options(): tls.TlsOptions;
  /** True when clients must present a certificate signed by the trusted CA. */
  readonly requiresClientCert: boolean;
  /**
   * Applies every later reload to this server (server.setSecureContext), and logs its failed
   * handshakes as etcd 3.6 does (warning 'rejected connection on client|peer endpoint' with remote-addr and error).
   */
  attach(server: tls.Server): void;
  /** Called after each successful reload, with the new options. */
  onReload(cb: (options: tls.TlsOptions) => void): void;
  /** Stops watching the files. */
  close(): void;
}

/** The client side (peer dials): present our certificate, verify the server against the CA. */
export interface ClientTls {
  /** Options for tls.connect (add host, port, servername). Always the latest successfully loaded files. */
  options(): tls.ConnectionOptions;
  onReload(cb: (options: tls.ConnectionOptions) => void): void;
  close(): void;
}

/** Go's cipher suite names (crypto/tls constants, as etcd accepts them) → OpenSSL names. */
const TLS12_SUITES: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_RC4_128_SHA: 'RC4-SHA',
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: 'DES-CBC3-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: 'ECDHE-ECDSA-RC4-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_RC4_128_SHA: 'ECDHE-RSA-RC4-SHA',
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: 'ECDHE-RSA-DES-CBC3-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

/** TLS 1.3 suites: OpenSSL uses the IANA names; always enabled when TLS 1.3 is (as in Go). */
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;

/**
 * The OpenSSL cipher string for --cipher-suites (undefined = defaults). Throws TlsConfigError for a
 * name Go does not know, or one this OpenSSL build cannot do (e.g. RC4).
 */
export function opensslCiphers(names: readonly string[], maxVersion: TlsVersion | undefined): string | undefined {
  if (names.length === 0) return undefined;
  const available = new Set(tls.getCiphers().map((c) => c.toUpperCase()));
  const out: string[] = [];
  for (const name of names) {
    if ((TLS13_SUITES as readonly string[]).includes(name)) continue;
    const openssl = TLS12_SUITES[name];
    if (openssl === undefined) throw new TlsConfigError(`unexpected TLS cipher suite "${name}"`);
    if (!available.has(openssl)) throw new TlsConfigError(`TLS cipher suite "${name}" (${openssl}) is not supported by this build's OpenSSL`);
    if (!out.includes(openssl)) out.push(openssl);
  }
  if (maxVersion !== 'TLSv1.2') out.push(...TLS13_SUITES);
  if (out.length === 0) throw new TlsConfigError(`--cipher-suites ${names.join(',')} leaves no TLS 1.2 suite while TLS 1.3 is disabled`);
  return out.join(':');
}

/** Flag combinations etcd 3.5 refuses (embed.Config.Validate). */
export function checkTlsSettings(s: TlsSettings): void {
  if (s.maxVersion === 'TLSv1.2' && s.minVersion === 'TLSv1.3') {
    throw new TlsConfigError('min version (TLS1.3) is greater than max version (TLS1.2)');
  }
  if (s.minVersion === 'TLSv1.3' && s.cipherSuites.length > 0) {
    throw new TlsConfigError(`cipher suites ${s.cipherSuites.join(',')} cannot be configured when only TLS1.3 or greater is supported`);
  }
  opensslCiphers(s.cipherSuites, s.maxVersion);
}

interface Loaded {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  readonly crl: Buffer | undefined;
}

type Side = 'server' | 'client';

function filesOf(files: TlsFileSet): string[] {
  return [files.certFile, files.keyFile, files.trustedCaFile, files.crlFile ?? ''].filter((f) => f !== '');
}

/** A CRL as DER: etcd 3.6 reads the file as DER (x509.ParseRevocationList); Cairn takes DER and PEM. */
function crlDer(b: Buffer): Buffer {
  const text = b.subarray(0, 11).toString('latin1');
  if (text !== '-----BEGIN ') return b;
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(b.toString('latin1'));
  if (m === null) throw new TlsConfigError('CRL file: no X509 CRL block');
  return Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
}

/** A certificate serial as compared: upper-case hex without leading zeros. */
function serialKey(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

/**
 * The revoked serials of a CRL file as of now: the file is stat'ed at each call and read and parsed
 * again only when its signature() (as the certificate reloader's: inode, size, times) changed; a file that cannot be read or parsed throws
 * at every call until it can.
 */
function crlWatcher(file: string): () => Set<string> {
  let seen = '';
  let serials: Set<string> | undefined;
  return () => {
    const key = signature([statSync(file)]);
    if (serials === undefined || key !== seen) {
      serials = crlRevokedSerials(readFileSync(file));
      seen = key;
    }
    return serials;
  };
}

/**
 * The serial numbers a CRL revokes (RFC 5280 CertificateList: tbsCertList = version?, signature,
 * issuer, thisUpdate, nextUpdate?, revokedCertificates? (SEQUENCE OF {serial INTEGER, ...}), ...).
 * Only the list is read, as etcd's checkCRL does: neither the CRL's signature nor its dates are
 * checked (OpenSSL's CRL check refuses every certificate once nextUpdate is past, which etcd does not).
 */
export function crlRevokedSerials(file: Buffer): Set<string> {
  const der = crlDer(file);
  const tlv = (at: number, end: number): { tag: number; start: number; end: number } => {
    if (at + 2 > end) throw new TlsConfigError('CRL file: malformed crl (truncated)');
    const tag = der[at] as number;
    let len = der[at + 1] as number;
    let p = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || p + n > end) throw new TlsConfigError('CRL file: malformed crl (length)');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (der[p++] as number);
    }
    if (p + len > end) throw new TlsConfigError('CRL file: malformed crl (element past its end)');
    return { tag, start: p, end: p + len };
  };
  const children = (outer: { start: number; end: number }): { tag: number; start: number; end: number }[] => {
    const out = [];
    for (let at = outer.start; at < outer.end; ) {
      const c = tlv(at, outer.end);
      out.push(c);
      at = c.end;
    }
    return out;
  };
  const top = tlv(0, der.length);
  if (top.tag !== 0x30) throw new TlsConfigError('CRL file: malformed crl (not a SEQUENCE)');
  const tbs = children(top)[0];
  if (tbs === undefined || tbs.tag !== 0x30) throw new TlsConfigError('CRL file: malformed crl (no tbsCertList)');
  const fields = children(tbs);
  let i = fields[0]?.tag === 0x02 ? 1 : 0; // version
  i += 2; // signature, issuer
  while (fields[i] !== undefined && ((fields[i] as { tag: number }).tag === 0x17 || (fields[i] as { tag: number }).tag === 0x18)) i++; // thisUpdate, nextUpdate
  const revoked = new Set<string>();
  const list = fields[i];
  if (list === undefined || list.tag !== 0x30) return revoked;
  for (const entry of children(list)) {
    const serial = children(entry)[0];
    if (serial === undefined || serial.tag !== 0x02) throw new TlsConfigError('CRL file: malformed crl (revoked entry without a serial)');
    revoked.add(serialKey(der.subarray(serial.start, serial.end).toString('hex')));
  }
  return revoked;
}

function readFiles(files: TlsFileSet): Loaded {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new TlsConfigError(`cannot read ${what} ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  return {
    cert: read('cert file', files.certFile),
    key: read('key file', files.keyFile),
    ca: files.trustedCaFile === '' ? undefined : read('trusted CA file', files.trustedCaFile),
    crl: (files.crlFile ?? '') === '' ? undefined : read('CRL file', files.crlFile ?? ''),
  };
}

function commonOptions(l: Loaded, s: TlsSettings): tls.SecureContextOptions {
  const ciphers = opensslCiphers(s.cipherSuites, s.maxVersion);
  return {
    cert: l.cert,
    key: l.key,
    ...(l.ca === undefined ? {} : { ca: l.ca }),
    minVersion: s.minVersion,
    ...(s.maxVersion === undefined ? {} : { maxVersion: s.maxVersion }),
    ...(ciphers === undefined ? {} : { ciphers }),
  };
}

/** Every PEM block of a CA file must be a certificate, and there must be one (etcd's tlsutil.NewCertPool). */
function checkCaPem(pem: Buffer, path: string): void {
  const blocks = [...pem.toString('latin1').matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)];
  if (blocks.length === 0) throw new TlsConfigError(`trusted CA file ${path}: no certificates found`);
  for (const b of blocks) {
    if (b[1] !== 'CERTIFICATE') throw new TlsConfigError(`trusted CA file ${path}: a ${b[1] ?? '?'} block is not a certificate`);
    try {
      new X509Certificate(b[0]);
    } catch (e) {
      throw new TlsConfigError(`trusted CA file ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/** Builds the context once to check the files (bad PEM, key not matching the cert, bad CA). */
function validate(opts: tls.SecureContextOptions, files: TlsFileSet): void {
  if (Buffer.isBuffer(opts.ca)) checkCaPem(opts.ca, files.trustedCaFile);
  try {
    tls.createSecureContext(opts);
  } catch (e) {
    throw new TlsConfigError(`cannot use certificate ${files.certFile} with key ${files.keyFile}${files.trustedCaFile === '' ? '' : ` and CA ${files.trustedCaFile}`}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function signature(stats: readonly Stats[]): string {
  return stats.map((s) => `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`).join('|');
}

/** Polls the files and calls `load` when their signature changes (again after a failed load, on the next change). */
class FileWatch {
  private last: string;
  private busy = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly paths: readonly string[],
    intervalMs: number,
    private readonly load: () => void,
    private readonly log: Logger,
  ) {
    this.last = signature(paths.map((p) => statSync(p)));
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const sig = signature(await Promise.all(this.paths.map((p) => stat(p))));
      if (sig === this.last) return;
      this.last = sig;
      this.load();
    } catch (e) {
      // A file missing for a moment (replaced by rename, being rewritten): keep the old certificates.
      this.log.warn('cannot check TLS files for changes; keeping the current certificates', { files: this.paths, error: e });
    } finally {
      this.busy = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** Shared by both sides: the current options, reload on change, listeners. */
function reloading<O extends tls.SecureContextOptions>(
  files: TlsFileSet,
  s: TlsSettings,
  log: Logger,
  side: Side,
  build: (common: tls.SecureContextOptions) => O,
): { current: () => O; listeners: ((o: O) => void)[]; close: () => void } {
  checkTlsSettings(s);
  const make = (): O => {
    const common = commonOptions(readFiles(files), s);
    validate(common, files);
    return build(common);
  };
  let current = make();
  const listeners: ((o: O) => void)[] = [];
  const watch = new FileWatch(
    filesOf(files),
    s.reloadIntervalMs ?? TLS_RELOAD_INTERVAL_MS,
    () => {
      let next: O;
      try {
        next = make();
      } catch (e) {
        log.warn('failed to reload TLS certificates; keeping the previous ones', { side, 'cert-file': files.certFile, 'key-file': files.keyFile, 'trusted-ca-file': files.trustedCaFile, error: e });
        return;
      }
      current = next;
      log.info('reloaded TLS certificates', { side, 'cert-file': files.certFile, 'key-file': files.keyFile, 'trusted-ca-file': files.trustedCaFile });
      for (const l of listeners) l(next);
    },
    log,
  );
  return { current: () => current, listeners, close: () => watch.close() };
}

/** Server-side TLS for a set of listeners; throws TlsConfigError when the files or flags cannot be used. */
/** etcd 3.6's warning for a refused TLS connection, by listener (embed/config_logging.go). */
export function rejectedOn(endpoint: 'client' | 'peer'): string {
  return `rejected connection on ${endpoint} endpoint`;
}

export function serverTls(files: TlsFileSet, settings: TlsSettings, log: Logger, endpoint: 'client' | 'peer' = 'client'): ServerTls {
  const rejected = rejectedOn(endpoint);
  const requiresClientCert = files.clientCertAuth || files.trustedCaFile !== '';
  const r = reloading(files, settings, log, 'server', (common): tls.TlsOptions => ({
    ...common,
    requestCert: requiresClientCert,
    rejectUnauthorized: requiresClientCert,
  }));
  const servers = new Set<tls.Server>();
  r.listeners.push((o) => {
    for (const srv of servers) {
      try {
        srv.setSecureContext(o);
      } catch (e) {
        log.warn('cannot apply reloaded TLS certificates to a listener', { error: e });
      }
    }
  });
  return {
    options: r.current,
    requiresClientCert,
    attach: (srv) => {
      servers.add(srv);
      srv.once('close', () => servers.delete(srv));
      if ((files.allowedCns?.length ?? 0) > 0 || (files.allowedHostnames?.length ?? 0) > 0) {
        // etcd's VerifyPeerCertificate: fails the connection unless the certificate is allowed.
        srv.on('secureConnection', (socket: tls.TLSSocket) => {
          const why = allowedIdentity(socket.getPeerCertificate(), files);
          if (why === undefined) return;
          log.warn(rejected, { 'remote-addr': `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, error: why });
          socket.destroy();
        });
      }
      if ((files.crlFile ?? '') !== '') {
        // etcd's checkCRL: the file is read at each connection; a certificate whose serial it lists is
        // refused after the handshake (as is every one while the file cannot be read). Here the file
        // is stat'ed at each connection and read and parsed again only when it changed.
        const revoked = crlWatcher(files.crlFile ?? '');
        srv.on('secureConnection', (socket: tls.TLSSocket) => {
          let why: string | undefined;
          try {
            const cert = socket.getPeerCertificate();
            const serial = typeof cert.serialNumber === 'string' ? serialKey(cert.serialNumber) : '';
            if (serial !== '' && revoked().has(serial)) why = `certificate with serial ${serial} revoked`;
          } catch (e) {
            why = e instanceof Error ? e.message : String(e);
          }
          if (why === undefined) return;
          log.warn(rejected, { 'remote-addr': `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, error: why });
          socket.destroy();
        });
      }
      srv.on('tlsClientError', (err, socket) => {
        log.warn(rejected, { 'remote-addr': `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, 'server-name': socket.servername || '', error: err.message });
      });
    },
    onReload: (cb) => r.listeners.push(cb),
    close: () => {
      r.close();
      servers.clear();
    },
  };
}

/** Client-side TLS (peer dials); throws TlsConfigError when the files or flags cannot be used. */
export function clientTls(files: TlsFileSet, settings: TlsSettings, log: Logger): ClientTls {
  const own = files.clientCertFile !== undefined && files.clientCertFile !== '' && files.clientKeyFile !== undefined ? { ...files, certFile: files.clientCertFile, keyFile: files.clientKeyFile } : files;
  const restricted = (files.allowedCns?.length ?? 0) > 0 || (files.allowedHostnames?.length ?? 0) > 0;
  const r = reloading(own, settings, log, 'client', (common): tls.ConnectionOptions => ({
    ...common,
    rejectUnauthorized: files.insecureSkipVerify !== true,
    ...(restricted
      ? {
          checkServerIdentity: (host: string, cert: tls.PeerCertificate): Error | undefined => {
            const err = tls.checkServerIdentity(host, cert);
            if (err !== undefined) return err;
            const why = allowedIdentity(cert, files);
            return why === undefined ? undefined : new Error(why);
          },
        }
      : {}),
  }));
  return { options: r.current, onReload: (cb) => r.listeners.push(cb), close: r.close };
}

/**
 * etcd's AllowedCNs / AllowedHostnames check (client/pkg/transport TLSInfo.baseConfig's
 * VerifyPeerCertificate): the certificate passes when its subject CN is one of `allowedCns` or it is
 * valid for one of `allowedHostnames` (x509 VerifyHostname: SAN DNS names with wildcards, or SAN IPs).
 * Resolves to undefined (ok, or no restriction) or etcd's error text.
 */
export function allowedIdentity(cert: tls.PeerCertificate, files: TlsFileSet): string | undefined {
  const cns = files.allowedCns ?? [];
  const hosts = files.allowedHostnames ?? [];
  if (cns.length === 0 && hosts.length === 0) return undefined;
  const cn = cert.subject === undefined ? undefined : cert.subject.CN;
  const cnList = Array.isArray(cn) ? cn : cn === undefined ? [] : [cn];
  if (cnList.some((c) => cns.includes(c))) return undefined;
  // Go's VerifyHostname ignores the CN; a certificate without SANs matches no host name.
  if (cert.subjectaltname !== undefined && cert.subjectaltname !== '' && hosts.some((h) => tls.checkServerIdentity(h, cert) === undefined)) return undefined;
  return 'client certificate authentication failed';
}

/**
 * etcd's checkSAN for peer listeners: when the client certificate names IP addresses or DNS names,
 * the connection's remote address must be one of the IPs or what one of the (non-wildcard) DNS names
 * resolves to. A certificate without SANs passes. Resolves to undefined (ok) or the reason.
 */
export async function checkClientSan(socket: tls.TLSSocket): Promise<string | undefined> {
  const cert = socket.getPeerCertificate();
  const remote = socket.remoteAddress;
  if (cert.subjectaltname === undefined || cert.subjectaltname === '' || remote === undefined) return undefined;
  const host = remote.startsWith('::ffff:') && isIP(remote.slice(7)) === 4 ? remote.slice(7) : remote;
  const sans = cert.subjectaltname.split(', ');
  const ips = sans.filter((s) => s.startsWith('IP Address:')).map((s) => normalizeIp(s.slice('IP Address:'.length)));
  const names = sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
  if (ips.length === 0 && names.length === 0) return undefined;
  if (ips.includes(normalizeIp(host))) return undefined;
  for (const name of names.filter((n) => !n.startsWith('*.'))) {
    try {
      const addrs = await lookup(name, { all: true });
      if (addrs.some((a) => normalizeIp(a.address) === normalizeIp(host))) return undefined;
    } catch {
      // unresolvable: try the next name
    }
  }
  return `tls: ${JSON.stringify(host)} does not match any of the certificate's SANs (${cert.subjectaltname})`;
}

function normalizeIp(ip: string): string {
  const s = ip.trim();
  if (isIP(s) !== 6) return s;
  // Expand so that ::1 and 0:0:0:0:0:0:0:1 compare equal.
  const [head = '', tail = ''] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = s.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = s.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':');
}
