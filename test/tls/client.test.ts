// Client TLS (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --cipher-suites) with
// etcdctl 3.4's --cacert/--cert/--key, the same checks on the reference etcd 3.4.23 and on Cairn:
// put/get over TLS; refused without a client certificate, with one from another CA, without the
// CA; --trusted-ca-file alone requires client certificates (etcd's RequireAndVerifyClientCert);
// garbage and plain HTTP on the TLS port do not hurt the server; the npm etcd3 client over TLS;
// certificates reloaded from disk (new connections see the new serial, open ones keep working);
// --cipher-suites restricts TLS 1.2 suites and an unknown name stops the start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { Etcd3 } from 'etcd3';
import { makeCa, type CertFiles, type TestCa } from '../harness/certs.js';
import { decodeResponse, encodeRequest, type Msg } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';
import { etcdctlTlsArgs, runEtcdctl, startTarget, type ServerProc, type TargetKind, type TlsServerFiles } from '../harness/procs.js';
import { probe, rawExchange } from './probe.js';

const KINDS = ['cairn', 'etcd'] as const satisfies readonly TargetKind[];

interface Pki {
  readonly ca: TestCa;
  readonly server: CertFiles;
  readonly root: CertFiles;
  readonly alice: CertFiles;
  /** A client certificate with CN=root from another CA. */
  readonly rogue: CertFiles;
}

function pki(): Pki {
  const ca = makeCa('client-ca');
  return {
    ca,
    server: ca.issue('server', { cn: 'server' }),
    root: ca.issue('root', { cn: 'root' }),
    alice: ca.issue('alice', { cn: 'alice' }),
    rogue: makeCa('rogue-ca').issue('rogue-root', { cn: 'root' }),
  };
}

function serverFiles(p: Pki, o: { caFile?: boolean; clientCertAuth?: boolean } = {}): TlsServerFiles {
  return {
    certFile: p.server.certFile,
    keyFile: p.server.keyFile,
    ...(o.caFile === false ? {} : { caFile: p.ca.caFile }),
    ...(o.clientCertAuth === true ? { clientCertAuth: true } : {}),
  };
}

/** etcdctl against the server with these TLS flags; short timeouts (a refused handshake makes etcdctl wait for them). */
function ctl(s: ServerProc, tls: { caFile?: string; certFile?: string; keyFile?: string }, args: readonly string[]): Promise<{ exit: number | null; stdout: string; stderr: string }> {
  return runEtcdctl(['--endpoints', s.clientUrl, '--dial-timeout=2s', '--command-timeout=3s', ...etcdctlTlsArgs(tls), ...args]);
}

function rejectedCount(s: ServerProc): number {
  return s.stderrLines().filter((l) => /"rejected connection( on (client|peer) endpoint)?"/.test(l)).length;
}

async function withServer<T>(kind: TargetKind, opts: Parameters<typeof startTarget>[1], fn: (s: ServerProc) => Promise<T>): Promise<T> {
  const s = await startTarget(kind, opts);
  try {
    return await fn(s);
  } catch (e) {
    console.error(`${kind} log tail:\n${s.stderrLines().slice(-25).join('\n')}`);
    throw e;
  } finally {
    await s.stop();
  }
}

for (const kind of KINDS) {
  test(`client TLS (${kind}): etcdctl --cacert/--cert/--key with --client-cert-auth; refusals; garbage on the port; the etcd3 client`, { timeout: 90_000 }, async () => {
    const p = pki();
    await withServer(kind, { tls: serverFiles(p, { clientCertAuth: true }) }, async (s) => {
      assert.match(s.clientUrl, /^https:\/\//);
      const full = { caFile: p.ca.caFile, certFile: p.root.certFile, keyFile: p.root.keyFile };
      const put = await ctl(s, full, ['put', 'tls/k', 'v1']);
      assert.equal(put.exit, 0, put.stderr);
      assert.equal(put.stdout, 'OK\n');
      const get = await ctl(s, full, ['get', 'tls/k']);
      assert.equal(get.exit, 0, get.stderr);
      assert.equal(get.stdout, 'tls/k\nv1\n');

      const before = rejectedCount(s);
      const noCert = await ctl(s, { caFile: p.ca.caFile }, ['get', 'tls/k']);
      assert.equal(noCert.exit, 1, 'refused without a client certificate');
      assert.match(noCert.stderr, /context deadline exceeded/);
      const otherCa = await ctl(s, { caFile: p.ca.caFile, certFile: p.rogue.certFile, keyFile: p.rogue.keyFile }, ['get', 'tls/k']);
      assert.equal(otherCa.exit, 1, 'refused with a certificate from another CA');
      const noCaCert = await ctl(s, { certFile: p.root.certFile, keyFile: p.root.keyFile }, ['get', 'tls/k']);
      assert.equal(noCaCert.exit, 1, 'etcdctl without --cacert does not trust the server');
      assert.ok(rejectedCount(s) > before, 'the refused handshakes are logged as "rejected connection"');

      // Garbage and plain HTTP on the TLS port: the connection is closed, nothing answers in cleartext.
      for (const bytes of [randomBytes(4096), 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n']) {
        const r = await rawExchange(s.clientUrl, bytes);
        assert.equal(r.closedByServer, true);
        assert.ok(!r.reply.toString('latin1').includes('200 OK'), 'no cleartext answer on the TLS port');
      }
      const after = await ctl(s, full, ['get', 'tls/k', '--print-value-only']);
      assert.equal(after.exit, 0, after.stderr);
      assert.equal(after.stdout, 'v1\n');

      // The npm etcd3 client (grpc-js) with a client certificate.
      const client = new Etcd3({
        hosts: s.clientUrl,
        credentials: { rootCertificate: readFileSync(p.ca.caFile), certChain: readFileSync(p.root.certFile), privateKey: readFileSync(p.root.keyFile) },
      });
      try {
        await client.put('tls/etcd3').value('from-etcd3');
        assert.equal(await client.get('tls/etcd3').string(), 'from-etcd3');
        assert.equal(await client.get('tls/k').string(), 'v1');
      } finally {
        client.close();
      }
    });
  });

  test(`client TLS (${kind}): --trusted-ca-file alone requires client certificates; without a CA any client that trusts the server`, { timeout: 90_000 }, async () => {
    const p = pki();
    await withServer(kind, { tls: serverFiles(p, { caFile: true, clientCertAuth: false }) }, async (s) => {
      const ok = await ctl(s, { caFile: p.ca.caFile, certFile: p.alice.certFile, keyFile: p.alice.keyFile }, ['put', 'a', '1']);
      assert.equal(ok.exit, 0, ok.stderr);
      const noCert = await ctl(s, { caFile: p.ca.caFile }, ['put', 'a', '2']);
      assert.equal(noCert.exit, 1, 'etcd (3.4 and 3.5): a trusted CA file alone turns on RequireAndVerifyClientCert');
    });
    await withServer(kind, { tls: serverFiles(p, { caFile: false }) }, async (s) => {
      const ok = await ctl(s, { caFile: p.ca.caFile }, ['put', 'a', '1']);
      assert.equal(ok.exit, 0, ok.stderr);
      // A certificate from an unknown CA is not even asked for: the server requests none.
      const rogue = await ctl(s, { caFile: p.ca.caFile, certFile: p.rogue.certFile, keyFile: p.rogue.keyFile }, ['get', 'a', '--print-value-only']);
      assert.equal(rogue.exit, 0, rogue.stderr);
      assert.equal(rogue.stdout, '1\n');
    });
  });

  test(`client TLS (${kind}): certificates reloaded from disk; new connections see the new serial, open ones keep working`, { timeout: 90_000 }, async () => {
    const p = pki();
    await withServer(kind, { tls: serverFiles(p, { clientCertAuth: true }) }, async (s) => {
      const creds = { caFile: p.ca.caFile, certFile: p.root.certFile, keyFile: p.root.keyFile };
      const session = await openSession(s.clientUrl, creds);
      try {
        assert.equal(peerSerial(session), p.server.serial);
        const r1 = await grpcUnary(session, 'KV', 'Put', { key: Buffer.from('reload'), value: Buffer.from('before') });
        assert.equal(r1.status, '0', r1.message);

        const renewed = p.ca.issue('server', { cn: 'server' });
        assert.notEqual(renewed.serial, p.server.serial);
        await pollUntil(
          'the renewed certificate on a new connection',
          async () => {
            const r = await probe(s.clientUrl, creds);
            return r.ok && r.serial === renewed.serial;
          },
          20_000,
          200,
        );
        // The connection opened before the reload still has the old certificate and still works.
        assert.equal(peerSerial(session), p.server.serial);
        const r2 = await grpcUnary(session, 'KV', 'Range', { key: Buffer.from('reload') });
        assert.equal(r2.status, '0', r2.message);
        const kvs = r2.body?.['kvs'];
        assert.ok(Array.isArray(kvs) && kvs.length === 1);
        const put = await ctl(s, creds, ['put', 'reload', 'after']);
        assert.equal(put.exit, 0, put.stderr);

        if (kind === 'cairn') {
          // A broken file on disk: logged, the last good certificate stays in use (etcd re-reads the
          // files on every handshake, so there new handshakes would fail instead).
          writeFileSync(renewed.certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
          await pollUntil('the failed reload logged', () => Promise.resolve(s.stderrLines().some((l) => l.includes('failed to reload TLS certificates'))), 20_000, 100);
          const still = await probe(s.clientUrl, creds);
          assert.ok(still.ok && still.serial === renewed.serial, `the last good certificate is kept: ${JSON.stringify(still)}`);
        }
      } finally {
        session.close();
      }
    });
  });

  test(`client TLS (${kind}): --cipher-suites restricts the TLS 1.2 suites; an unknown name stops the start`, { timeout: 90_000 }, async () => {
    const p = pki(); // EC P-256 keys: ECDSA suites
    const creds = { caFile: p.ca.caFile, certFile: p.root.certFile, keyFile: p.root.keyFile };
    await withServer(kind, { tls: serverFiles(p, { clientCertAuth: true }), extraArgs: ['--cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'] }, async (s) => {
      const allowed = await probe(s.clientUrl, { ...creds, ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
      assert.ok(allowed.ok, JSON.stringify(allowed));
      assert.equal(allowed.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256');
      const other = await probe(s.clientUrl, { ...creds, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305' });
      assert.equal(other.ok, false, 'a client offering only other TLS 1.2 suites is refused');
      const put = await ctl(s, creds, ['put', 'c', '1']);
      assert.equal(put.exit, 0, put.stderr);
      // TLS 1.3 suites are not configurable (Go): TLS 1.3 still works with all of them (etcd 3.4.23 as built by Debian too).
      const v13 = await probe(s.clientUrl, { ...creds, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
      assert.ok(v13.ok, `TLS 1.3 handshake: ${JSON.stringify(v13)}`);
    });
    await assert.rejects(startTarget(kind, { tls: serverFiles(p), extraArgs: ['--cipher-suites', 'TLS_NO_SUCH_SUITE'], readyTimeoutMs: 10_000 }), (e: unknown) => {
      assert.match(String(e), /exited before ready/);
      assert.match(String(e), /unexpected TLS cipher suite \\?"TLS_NO_SUCH_SUITE\\?"/);
      return true;
    });
  });
}

// ---- a raw gRPC call on one HTTP/2 session (to keep using a connection made before a reload) ----

async function openSession(url: string, c: { caFile: string; certFile: string; keyFile: string }): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url, { ca: readFileSync(c.caFile), cert: readFileSync(c.certFile), key: readFileSync(c.keyFile), servername: 'localhost' });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => undefined);
  return session;
}

function peerSerial(session: http2.ClientHttp2Session): string {
  return (session.socket as TLSSocket).getPeerCertificate().serialNumber.toUpperCase();
}

async function grpcUnary(session: http2.ClientHttp2Session, service: string, method: string, req: object): Promise<{ status: string; message: string; body: Msg | undefined }> {
  const msg = encodeRequest(service, method, req);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  const stream = session.request({ ':method': 'POST', ':path': `/etcdserverpb.${service}/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
  stream.end(frame);
  const chunks: Buffer[] = [];
  let status = '';
  let message = '';
  stream.on('response', (h) => {
    if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
  });
  stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
    status = String(t['grpc-status'] ?? status);
    message = String(t['grpc-message'] ?? '');
  });
  stream.on('data', (d: Buffer) => chunks.push(d));
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const all = Buffer.concat(chunks);
  const body = all.length >= 5 ? decodeResponse(service, method, all.subarray(5, 5 + all.readUInt32BE(1))) : undefined;
  return { status, message, body };
}

for (const kind of KINDS) {
  test(`client TLS (${kind}): with --client-cert-auth and auth enabled, the certificate's CN is the user`, { timeout: 90_000 }, async () => {
    const p = pki();
    await withServer(kind, { tls: serverFiles(p, { clientCertAuth: true }) }, async (s) => {
      const asRoot = { caFile: p.ca.caFile, certFile: p.root.certFile, keyFile: p.root.keyFile };
      const asAlice = { caFile: p.ca.caFile, certFile: p.alice.certFile, keyFile: p.alice.keyFile };
      for (const args of [
        ['user', 'add', 'root:rootpw', '--interactive=false'],
        ['user', 'add', 'alice:alicepw', '--interactive=false'],
        ['role', 'add', 'apps'],
        ['role', 'grant-permission', 'apps', 'readwrite', 'apps/', '--prefix=true'],
        ['auth', 'enable'],
      ]) {
        const r = await ctl(s, asRoot, args);
        assert.equal(r.exit, 0, `${args.join(' ')}: ${r.stderr}`);
      }
      // No --user: the CN decides. root may do anything; alice has no role yet.
      const rootPut = await ctl(s, asRoot, ['put', 'apps/x', '1']);
      assert.equal(rootPut.exit, 0, rootPut.stderr);
      const aliceDenied = await ctl(s, asAlice, ['put', 'apps/x', '2']);
      assert.equal(aliceDenied.exit, 1);
      assert.match(aliceDenied.stderr, /etcdserver: permission denied/);
      const grant = await ctl(s, asRoot, ['user', 'grant-role', 'alice', 'apps']);
      assert.equal(grant.exit, 0, grant.stderr);
      const alicePut = await ctl(s, asAlice, ['put', 'apps/x', '3']);
      assert.equal(alicePut.exit, 0, alicePut.stderr);
      const aliceOutside = await ctl(s, asAlice, ['put', 'other', '4']);
      assert.equal(aliceOutside.exit, 1);
      assert.match(aliceOutside.stderr, /etcdserver: permission denied/);
      // A token (--user) takes precedence over the certificate's CN.
      const aliceAsRoot = await ctl(s, asAlice, ['--user', 'root:rootpw', 'put', 'other', '5']);
      assert.equal(aliceAsRoot.exit, 0, aliceAsRoot.stderr);
      const get = await ctl(s, asRoot, ['get', '', '--prefix', '--print-value-only']);
      assert.equal(get.stdout, '3\n5\n');
    });
  });
}
