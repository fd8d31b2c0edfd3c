// server/base/tls.ts in process: --cipher-suites names (Go/IANA → OpenSSL), the flag combinations
// etcd refuses, files that cannot be used at start, and reload (a change is picked up; a broken or
// mismatched file is logged and the last good certificates stay; a later good change is taken).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { checkTlsSettings, clientTls, opensslCiphers, serverTls, TlsConfigError, type TlsSettings } from '../../server/base/tls.js';
import { createLogger, type Logger } from '../../server/base/log.js';
import { makeCa } from '../harness/certs.js';
import { pollUntil } from '../harness/poll.js';
import { probe } from './probe.js';

function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', (l) => lines.push(l)), lines };
}

const DEFAULTS: TlsSettings = { cipherSuites: [], minVersion: 'TLSv1.2', maxVersion: undefined, reloadIntervalMs: 50 };

test('--cipher-suites: Go names map to OpenSSL suites this build has; unknown names are refused as etcd refuses them', () => {
  const goNames = [
    'TLS_RSA_WITH_AES_128_CBC_SHA', 'TLS_RSA_WITH_AES_256_CBC_SHA', 'TLS_RSA_WITH_AES_128_GCM_SHA256', 'TLS_RSA_WITH_AES_256_GCM_SHA384',
    'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
    'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  ];
  const available = new Set(tls.getCiphers().map((c) => c.toUpperCase()));
  for (const n of goNames) {
    const s = opensslCiphers([n], 'TLSv1.2');
    assert.ok(s !== undefined && available.has(s), `${n} → ${String(s)}`);
  }
  assert.equal(opensslCiphers(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'], 'TLSv1.2'), 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384');
  // TLS 1.3 suites cannot be restricted (as in Go): they stay on whenever TLS 1.3 may be used; TLS 1.3 names are accepted and ignored.
  assert.equal(opensslCiphers(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_AES_128_GCM_SHA256'], undefined), 'ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256');
  assert.equal(opensslCiphers([], undefined), undefined);
  assert.throws(() => opensslCiphers(['TLS_NOPE'], undefined), { name: 'TlsConfigError', message: 'unexpected TLS cipher suite "TLS_NOPE"' });
  assert.throws(() => opensslCiphers(['ECDHE-RSA-AES128-GCM-SHA256'], undefined), TlsConfigError, 'OpenSSL names are not Go names');
});

test('TLS flag combinations etcd 3.5 refuses', () => {
  assert.throws(() => checkTlsSettings({ ...DEFAULTS, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' }), { message: 'min version (TLS1.3) is greater than max version (TLS1.2)' });
  assert.throws(() => checkTlsSettings({ ...DEFAULTS, minVersion: 'TLSv1.3', cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'] }), /cannot be configured when only TLS1.3 or greater is supported/);
  assert.throws(() => checkTlsSettings({ ...DEFAULTS, maxVersion: 'TLSv1.2', cipherSuites: ['TLS_AES_128_GCM_SHA256'] }), /leaves no TLS 1.2 suite/);
  checkTlsSettings({ ...DEFAULTS, minVersion: 'TLSv1.3' });
  checkTlsSettings({ ...DEFAULTS, maxVersion: 'TLSv1.2', cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'] });
});

test('unusable files stop the start: missing, not PEM, a key that does not match the certificate', () => {
  const ca = makeCa('files-ca');
  const a = ca.issue('a');
  const b = ca.issue('b');
  const { log } = memoryLog();
  const files = (certFile: string, keyFile: string, trustedCaFile = ''): { certFile: string; keyFile: string; trustedCaFile: string; clientCertAuth: boolean } => ({ certFile, keyFile, trustedCaFile, clientCertAuth: false });
  assert.throws(() => serverTls(files(`${a.certFile}.missing`, a.keyFile), DEFAULTS, log), { name: 'TlsConfigError', message: /cannot read cert file .*missing/ });
  assert.throws(() => serverTls(files(a.certFile, b.keyFile), DEFAULTS, log), { name: 'TlsConfigError', message: /cannot use certificate/ });
  assert.throws(() => clientTls(files(a.certFile, a.keyFile, a.keyFile), DEFAULTS, log), { name: 'TlsConfigError' }, 'a key is not a CA certificate');
  const ok = serverTls(files(a.certFile, a.keyFile, ca.caFile), DEFAULTS, log);
  assert.equal(ok.requiresClientCert, true, 'a trusted CA file alone requires client certificates (etcd)');
  ok.close();
  const noCa = serverTls(files(a.certFile, a.keyFile), DEFAULTS, log);
  assert.equal(noCa.requiresClientCert, false);
  assert.equal(noCa.options().requestCert, false);
  noCa.close();
});

test('reload: a changed certificate reaches attached servers and dials; a broken one is logged and the last good one kept', { timeout: 30_000 }, async () => {
  const ca = makeCa('reload-ca');
  const first = ca.issue('srv');
  const { log, lines } = memoryLog();
  const files = { certFile: first.certFile, keyFile: first.keyFile, trustedCaFile: ca.caFile, clientCertAuth: true };
  const st = serverTls(files, DEFAULTS, log);
  const ct = clientTls(files, DEFAULTS, log);
  const reloads: string[] = [];
  ct.onReload(() => reloads.push('client'));
  const server = tls.createServer(st.options(), (s) => s.end());
  st.attach(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  const url = `https://127.0.0.1:${addr.port}`;
  const creds = { caFile: ca.caFile, certFile: first.certFile, keyFile: first.keyFile };
  try {
    const r0 = await probe(url, creds);
    assert.ok(r0.ok && r0.serial === first.serial, JSON.stringify(r0));

    // A key that does not match the certificate: logged, the old pair stays.
    const other = makeCa('other-ca').issue('k');
    const goodKey = readFileSync(first.keyFile);
    writeFileSync(first.keyFile, readFileSync(other.keyFile));
    await pollUntil('the failed reload logged', () => Promise.resolve(lines.some((l) => l.includes('failed to reload TLS certificates'))), 10_000);
    writeFileSync(first.keyFile, goodKey); // back to the good key: a change, so tried again (and the same pair loads)
    await pollUntil('a successful reload', () => Promise.resolve(lines.some((l) => l.includes('reloaded TLS certificates'))), 10_000);
    const r1 = await probe(url, creds);
    assert.ok(r1.ok && r1.serial === first.serial, JSON.stringify(r1));

    // A new certificate: new handshakes present it; the dialling side's options carry it too.
    const second = ca.issue('srv');
    await pollUntil('the new certificate served', async () => {
      const r = await probe(url, creds);
      return r.ok && r.serial === second.serial;
    }, 10_000, 50);
    await pollUntil('the client side reloaded', () => Promise.resolve(String(ct.options().cert) === readFileSync(second.certFile, 'utf8')), 10_000);
    assert.ok(reloads.length >= 1);
  } finally {
    st.close();
    ct.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
