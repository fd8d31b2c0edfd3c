// --client-crl-file and --client-cert-allowed-hostname on Cairn and etcd 3.6.8, side by side: with
// client certificate auth, a certificate listed in the CRL cannot get an answer, one not listed can;
// with an allowed hostname, a certificate valid for it is served and one valid only for another
// name is not. GET /health over https with each client certificate.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { makeCa, OPENSSL_BIN, type CertFiles, type TestCa } from '../harness/certs.js';
import { refBinOrSkip } from '../harness/bins.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

/** etcd 3.6.8's path, or undefined after skipOrFail. */
const etcd36 = (t: TestContext): string | undefined => refBinOrSkip(t, 'etcd-3.6');

/** A v2 CRL (DER) signed by `ca` revoking `revoked` (openssl ca -gencrl over a one-line index). */
function crl(ca: TestCa, caName: string, revoked: CertFiles): string {
  const index = join(ca.dir, 'index.txt');
  const subject = execFileSync(OPENSSL_BIN, ['x509', '-in', revoked.certFile, '-noout', '-subject', '-nameopt', 'compat'], { encoding: 'utf8' }).replace(/^subject=\s*/, '').trim();
  writeFileSync(index, `R\t301231000000Z\t240101000000Z\t${revoked.serial}\tunknown\t${subject}\n`);
  const cfg = join(ca.dir, 'ca.cnf');
  writeFileSync(join(ca.dir, 'crlnumber'), '01\n');
  writeFileSync(cfg, `[ca]\ndefault_ca = d\n[d]\ndatabase = ${index}\ncrlnumber = ${join(ca.dir, 'crlnumber')}\ndefault_md = sha256\ndefault_crl_days = 2\ncrl_extensions = ext\n[ext]\nauthorityKeyIdentifier = keyid:always\n`);
  const pem = join(ca.dir, 'crl.pem');
  execFileSync(OPENSSL_BIN, ['ca', '-gencrl', '-config', cfg, '-keyfile', join(ca.dir, `${caName}.key`), '-cert', ca.caFile, '-out', pem], { stdio: 'ignore' });
  // etcd 3.6 reads the CRL file as DER (a PEM one makes it refuse every connection: "x509: malformed crl").
  const der = join(ca.dir, 'crl.der');
  execFileSync(OPENSSL_BIN, ['crl', '-in', pem, '-outform', 'DER', '-out', der], { stdio: 'ignore' });
  return der;
}

/** 'ok' when GET /health answers with this client certificate on a new connection, else 'refused'. */
function health(s: ServerProc, ca: string, c: CertFiles): Promise<'ok' | 'refused'> {
  return new Promise((resolve) => {
    const req = https.get(`${s.clientUrl}/health`, { ca, cert: readFileSync(c.certFile), key: readFileSync(c.keyFile), timeout: 5000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : 'refused'));
    });
    req.on('error', () => resolve('refused'));
    req.on('timeout', () => req.destroy());
  });
}

test('--client-crl-file and --client-cert-allowed-hostname: the same answers on Cairn and etcd 3.6.8', async (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  const ca = makeCa('crl-ca');
  const server = ca.issue('server', { cn: 'server' });
  const good = ca.issue('good', { cn: 'good', sans: ['DNS:good.example'] });
  const bad = ca.issue('bad', { cn: 'bad', sans: ['DNS:bad.example'] });
  const revokingGood = join(ca.dir, 'revoking-good.der');
  copyFileSync(crl(ca, 'crl-ca', good), revokingGood);
  const crlFile = crl(ca, 'crl-ca', bad);
  const caPem = readFileSync(ca.caFile, 'utf8');
  const tls = { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.caFile, clientCertAuth: true };
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  const results: Record<string, string[]> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    const start = (extraArgs: string[]): Promise<ServerProc> => (kind === 'etcd' ? startEtcd({ etcdBin: bin, tls, extraArgs }) : startCairn({ tls, extraArgs }));
    // Each server its own copy of the CRL, rewritten below while it runs.
    const kindCrl = join(ca.dir, `${kind}-crl.der`);
    copyFileSync(crlFile, kindCrl);
    const withCrl = await start(['--client-crl-file', kindCrl]);
    const allowed = await start(['--client-cert-allowed-hostname', 'good.example']);
    servers.push(withCrl, allowed);
    results[kind] = [
      `crl good ${await health(withCrl, caPem, good)}`,
      `crl revoked ${await health(withCrl, caPem, bad)}`,
      `allowed good.example ${await health(allowed, caPem, good)}`,
      `allowed bad.example ${await health(allowed, caPem, bad)}`,
    ];
    // The file is read again when it changes: a CRL now revoking the other certificate.
    copyFileSync(revokingGood, kindCrl);
    results[kind].push(`crl rewritten: good ${await health(withCrl, caPem, good)}`, `crl rewritten: bad ${await health(withCrl, caPem, bad)}`);
  }
  assert.deepEqual(results['etcd'], [
    'crl good ok', 'crl revoked refused', 'allowed good.example ok', 'allowed bad.example refused', 'crl rewritten: good refused', 'crl rewritten: bad ok',
  ], 'etcd 3.6.8');
  assert.deepEqual(results['cairn'], results['etcd']);
});
