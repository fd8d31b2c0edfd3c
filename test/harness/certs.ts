// Test certificates made with the system's openssl (Debian's openssl 3): a CA, server/peer
// certificates with SANs (127.0.0.1, localhost by default) and client certificates with a CN (the
// user name etcd takes from a client certificate). Keys are EC P-256 unless RSA is asked for (fast
// to generate either way). Every certificate gets a random serial so that a reloaded one is told
// apart from the one it replaces.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './procs.js';

export const OPENSSL_BIN = process.env['OPENSSL_BIN'] ?? 'openssl';

export type KeyType = 'ec' | 'rsa';

export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Hex serial as openssl prints it (upper case, no colons). */
  readonly serial: string;
}

export interface IssueOpts {
  /** Subject CN (default the file base name). */
  readonly cn?: string;
  /** SAN entries in openssl syntax (default ['IP:127.0.0.1', 'DNS:localhost']); [] = no SAN extension. */
  readonly sans?: readonly string[];
  readonly keyType?: KeyType;
  /** Write to these paths instead of <dir>/<name>.crt/.key (e.g. to replace a server's files in place). */
  readonly certFile?: string;
  readonly keyFile?: string;
}

export interface TestCa {
  readonly dir: string;
  /** The CA certificate (what --trusted-ca-file, --peer-trusted-ca-file and etcdctl --cacert take). */
  readonly caFile: string;
  /** Issues a leaf certificate (serverAuth + clientAuth) signed by this CA. */
  issue(name: string, opts?: IssueOpts): CertFiles;
}

function openssl(args: readonly string[]): string {
  return execFileSync(OPENSSL_BIN, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function newKeyArgs(t: KeyType): string[] {
  return t === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
}

/** A random positive 64-bit serial (hex). */
function randomSerial(): string {
  const b = randomBytes(8);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x10;
  return b.toString('hex').toUpperCase();
}

/** Makes a CA in a fresh temp dir (or `dir`). */
export function makeCa(name = 'ca', opts: { dir?: string; keyType?: KeyType } = {}): TestCa {
  const dir = opts.dir ?? tempDir('cairn-test-tls-');
  const caFile = join(dir, `${name}.crt`);
  const caKey = join(dir, `${name}.key`);
  const keyType = opts.keyType ?? 'ec';
  openssl([
    'req', '-x509', ...newKeyArgs(keyType), '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2',
    '-subj', `/CN=${name}`, '-set_serial', `0x${randomSerial()}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return {
    dir,
    caFile,
    issue: (leaf, o = {}) => {
      const certFile = o.certFile ?? join(dir, `${leaf}.crt`);
      const keyFile = o.keyFile ?? join(dir, `${leaf}.key`);
      const serial = randomSerial();
      // Written beside the target and renamed over it, so a watching server never reads half a file.
      const tmpKey = `${keyFile}.tmp`;
      const tmpCert = `${certFile}.tmp`;
      const csr = join(dir, `${leaf}.csr`);
      const ext = join(dir, `${leaf}.ext`);
      const sans = o.sans ?? ['IP:127.0.0.1', 'DNS:localhost'];
      writeFileSync(
        ext,
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment',
          'extendedKeyUsage=serverAuth,clientAuth',
          ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
        ].join('\n') + '\n',
      );
      openssl(['req', '-new', ...newKeyArgs(o.keyType ?? keyType), '-nodes', '-keyout', tmpKey, '-out', csr, '-subj', `/CN=${o.cn ?? leaf}`]);
      openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', `0x${serial}`, '-days', '2', '-extfile', ext, '-out', tmpCert]);
      renameSync(tmpKey, keyFile);
      renameSync(tmpCert, certFile);
      return { certFile, keyFile, serial };
    },
  };
}

/** The serial of a certificate file (hex, upper case), as openssl prints it. */
export function serialOf(certFile: string): string {
  const out = openssl(['x509', '-in', certFile, '-noout', '-serial']).trim();
  return out.replace(/^serial=/, '').toUpperCase();
}
