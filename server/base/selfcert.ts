// Self-signed certificates for --auto-tls and --peer-auto-tls, as etcd 3.6's transport.SelfCert makes
// them (checked against the files etcd 3.6.8 writes): an ECDSA P-521 key (PEM "EC PRIVATE KEY"),
// signed with ECDSA-SHA512, serial of 128 random bits, subject and issuer O=etcd, valid from now for
// 365 days per year of --self-signed-cert-validity, a CA (basic constraints critical, CA:TRUE) with
// Go's key usage bits (digitalSignature, keyEncipherment, certSign), a subject key identifier,
// extended key usage serverAuth (+ clientAuth for peers, who present it when dialling), and the
// listen hosts as SANs (IP addresses as IP SANs, names as DNS SANs). Files `cert.pem` and
// `key.pem` in `dir`; existing files are reused (etcd: "cert and key already exist").
//
// node:crypto signs but cannot build certificates, so the X.509 DER is written here from RFC 5280;
// node's X509Certificate parses the result back as a check.
import { X509Certificate, createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const p of parts.slice(2)) {
    const b: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) b.unshift((v & 0x7f) | 0x80);
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`, 'latin1')) : tlv(0x18, Buffer.from(`${iso}Z`, 'latin1'));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = ip.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

const ECDSA_SHA512 = seq(oid('1.2.840.10045.4.3.4'));
const DAY_MS = 86_400_000;

export interface SelfCertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** Writes (or reuses) `dir`/cert.pem and `dir`/key.pem for `hosts` (host names or IPs, ports stripped by the caller). */
export function selfCert(dir: string, hosts: readonly string[], validityYears: number, now: Date, clientAuth: boolean): SelfCertFiles {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive and minimal
  const notAfter = new Date(now.getTime() + validityYears * 365 * DAY_MS);
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
  const name = seq(tlv(0x31, seq(oid('2.5.4.10'), tlv(0x0c, Buffer.from('etcd')))));
  const uniq = [...new Set(hosts.map((h) => h.replace(/^\[|\]$/g, '')).filter((h) => h !== ''))];
  const sans = uniq.map((h) => (isIP(h) !== 0 ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h, 'latin1'))));
  const ext = (id: string, critical: boolean, value: Buffer): Buffer => seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
  const extensions = [
    ext('2.5.29.15', true, tlv(0x03, Buffer.from([0x01, 0xa2]))), // the bytes Go writes for etcd's usages
    ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), ...(clientAuth ? [oid('1.3.6.1.5.5.7.3.2')] : []))),
    ext('2.5.29.19', true, seq(tlv(0x01, Buffer.from([0xff])))),
    ext('2.5.29.14', false, tlv(0x04, createHash('sha1').update(point).digest())),
    ...(sans.length > 0 ? [ext('2.5.29.17', false, seq(...sans))] : []),
  ];
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    tlv(0x02, serial),
    ECDSA_SHA512,
    name,
    seq(time(now), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(...extensions)),
  );
  const signature = sign('sha512', tbs, privateKey);
  const der = seq(tbs, ECDSA_SHA512, tlv(0x03, Buffer.from([0]), signature));
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  const cert = new X509Certificate(pem);
  if (!cert.verify(publicKey)) throw new Error('generated self-signed certificate does not verify');
  writeFileSync(keyFile, privateKey.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
  writeFileSync(certFile, pem, { mode: 0o644 });
  return { certFile, keyFile };
}
