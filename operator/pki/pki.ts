// The operator's small certificate authority (spec.tls without user-provided Secrets): a CA kept in
// a Secret, and the member and operator certificates it issues. Certificates are built with
// node-forge (no hand-written ASN.1); keys are RSA 2048 made by Node's own crypto; certificates are
// read and checked (validity, chain, key match) with Node's X509Certificate.
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

export interface KeyPair {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key (PKCS#8). */
  readonly key: string;
}

export interface IssueRequest {
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly ips: readonly string[];
  /** Extended key usages: serverAuth and/or clientAuth. */
  readonly server: boolean;
  readonly client: boolean;
  readonly validityDays: number;
  /** Validity start (default now minus 5 minutes, for clock skew). */
  readonly notBefore?: Date;
}

export const CA_VALIDITY_DAYS = 3650;
export const CERT_VALIDITY_DAYS = 90;
const SKEW_MS = 5 * 60_000;

function rsaKey(): { pub: forge.pki.rsa.PublicKey; priv: forge.pki.rsa.PrivateKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(pkcs1);
  const pub = forge.pki.setRsaPublicKey(priv.n, priv.e);
  return { pub, priv, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** A positive serial of 16 random bytes (hex). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

function base(commonName: string, validityDays: number, notBefore: Date | undefined, pub: forge.pki.rsa.PublicKey): forge.pki.Certificate {
  const c = forge.pki.createCertificate();
  c.publicKey = pub;
  c.serialNumber = serial();
  const from = notBefore ?? new Date(Date.now() - SKEW_MS);
  c.validity.notBefore = from;
  c.validity.notAfter = new Date(from.getTime() + validityDays * 86_400_000);
  c.setSubject([{ name: 'commonName', value: commonName }]);
  return c;
}

/** A self-signed CA. */
export function newCA(commonName: string, validityDays = CA_VALIDITY_DAYS): KeyPair {
  const k = rsaKey();
  const c = base(commonName, validityDays, undefined, k.pub);
  c.setIssuer(c.subject.attributes);
  c.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  c.sign(k.priv, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(c), key: k.pem };
}

/** A leaf certificate signed by `ca`. */
export function issue(ca: KeyPair, r: IssueRequest): KeyPair {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(createPrivateKey(ca.key).export({ type: 'pkcs1', format: 'pem' }).toString());
  const k = rsaKey();
  const c = base(r.commonName, r.validityDays, r.notBefore, k.pub);
  c.setIssuer(caCert.subject.attributes);
  const altNames = [...r.dnsNames.map((value) => ({ type: 2, value })), ...r.ips.map((ip) => ({ type: 7, ip }))];
  c.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: r.server, clientAuth: r.client },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  c.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(c), key: k.pem };
}

export interface CertInfo {
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: string;
}

/** The first certificate of a PEM bundle, read. */
export function certInfo(pem: string): CertInfo {
  const x = new X509Certificate(pem);
  return { serial: x.serialNumber, notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo), subject: x.subject };
}

/**
 * What is wrong with a key pair for use now (undefined: nothing): not PEM, expired or not yet
 * valid, the key not the certificate's, not signed by the CA.
 */
export function problemOf(pair: { cert: string; key: string; ca?: string }, now: Date): string | undefined {
  let x: X509Certificate;
  try {
    x = new X509Certificate(pair.cert);
  } catch (e) {
    return `tls.crt is not a PEM certificate (${e instanceof Error ? e.message : String(e)})`;
  }
  if (new Date(x.validTo) <= now) return `the certificate expired at ${new Date(x.validTo).toISOString()}`;
  if (new Date(x.validFrom) > now) return `the certificate is not valid before ${new Date(x.validFrom).toISOString()}`;
  try {
    if (!x.checkPrivateKey(createPrivateKey(pair.key))) return 'tls.key is not the key of tls.crt';
  } catch (e) {
    return `tls.key is not a PEM private key (${e instanceof Error ? e.message : String(e)})`;
  }
  if (pair.ca !== undefined) {
    let ca: X509Certificate;
    try {
      ca = new X509Certificate(pair.ca);
    } catch (e) {
      return `ca.crt is not a PEM certificate (${e instanceof Error ? e.message : String(e)})`;
    }
    if (!x.checkIssued(ca) || !x.verify(ca.publicKey)) return 'tls.crt is not signed by ca.crt';
  }
  return undefined;
}

/** Renew once less than a third of the lifetime is left. */
export function needsRenewal(pem: string, now: Date): boolean {
  const i = certInfo(pem);
  const life = i.notAfter.getTime() - i.notBefore.getTime();
  return i.notAfter.getTime() - now.getTime() < life / 3;
}
