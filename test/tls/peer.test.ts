// Peer TLS between members (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file,
// --peer-client-cert-auth), the same checks on the reference etcd and on Cairn: a 3-member cluster
// replicates over TLS and serves etcdctl --cacert/--cert/--key on TLS client URLs; the peer port speaks only TLS and refuses clients without a certificate, with
// one from another CA, or with one whose SANs do not name the connecting address (etcd's checkSAN);
// a member whose certificate comes from another CA cannot join (and the cluster keeps serving);
// a member's peer certificate replaced on disk is presented to new connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCa, type CertFiles } from '../harness/certs.js';
import { withCluster, type Cluster } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { etcdctlTlsArgs, runEtcdctl, type TargetKind } from '../harness/procs.js';
import { probe, rawExchange } from './probe.js';

async function putGet(c: Cluster, via: string, key: string, value: string): Promise<void> {
  const p = await c.client(via).put({ key: Buffer.from(key), value: Buffer.from(value) }, { timeoutMs: 10_000 });
  assert.ok(p.ok, `put via ${via}: ${JSON.stringify(p)}`);
  for (const m of c.running()) {
    await pollUntil(`${key} on ${m.name}`, async () => {
      const r = await c.client(m.name).range({ key: Buffer.from(key), serializable: true }, { timeoutMs: 2000 });
      if (!r.ok) return false;
      const kvs = r.value['kvs'];
      return Array.isArray(kvs) && kvs.length === 1 && Buffer.from((kvs[0] as { value: Buffer }).value).toString() === value;
    });
  }
}

function rejectedLines(c: Cluster, name: string): string[] {
  return (c.member(name).proc?.stderrLines() ?? []).filter((l) => /"rejected connection( on (client|peer) endpoint)?"/.test(l));
}

for (const kind of ['cairn', 'etcd'] as const satisfies readonly TargetKind[]) {
  test(`peer TLS (${kind}): a 3-member cluster over TLS, refusals, a wrong-CA member, certificate reload`, { timeout: 150_000 }, async () => {
    const ca = makeCa('peer-ca');
    const certs = new Map<string, CertFiles>();
    for (const n of ['m1', 'm2', 'm3']) certs.set(n, ca.issue(`${n}-peer`, { cn: n }));
    const clientCa = makeCa('client-ca');
    const serverCerts = new Map(['m1', 'm2', 'm3', 'm4'].map((n) => [n, clientCa.issue(`${n}-server`, { cn: n })]));
    const root = clientCa.issue('root', { cn: 'root' });
    const rogue = makeCa('rogue-ca');
    certs.set('m4', rogue.issue('m4-peer', { cn: 'm4' }));
    const certFor = (n: string): CertFiles => {
      const f = certs.get(n);
      if (f === undefined) throw new Error(`no certificate for ${n}`);
      return f;
    };
    const serverCertFor = (n: string): CertFiles => {
      const f = serverCerts.get(n);
      if (f === undefined) throw new Error(`no server certificate for ${n}`);
      return f;
    };
    const clientTls = { caFile: clientCa.caFile, certFor: serverCertFor, clientCertAuth: true };
    await withCluster(kind, { size: 3, peerTls: { caFile: ca.caFile, certFor, clientCertAuth: true }, clientTls }, async (c) => {
      const m1 = c.member('m1');
      const m2 = c.member('m2');
      assert.match(m2.peerUrl, /^https:\/\//);
      await putGet(c, 'm1', 'peer-tls/a', 'one');

      // etcdctl over TLS against every member's TLS client URL: a put through one, read from each, health of all.
      const tlsEps = c.members.map((m) => m.tlsEndpoint ?? '');
      const ctlArgs = ['--dial-timeout=3s', '--command-timeout=5s', ...etcdctlTlsArgs({ caFile: clientCa.caFile, certFile: root.certFile, keyFile: root.keyFile })];
      const put = await runEtcdctl([`--endpoints=${tlsEps[0] ?? ''}`, ...ctlArgs, 'put', 'peer-tls/ctl', 'via-tls']);
      assert.equal(put.exit, 0, put.stderr);
      for (const ep of tlsEps) {
        const get = await runEtcdctl([`--endpoints=${ep}`, ...ctlArgs, 'get', 'peer-tls/ctl', '--print-value-only']);
        assert.equal(get.exit, 0, get.stderr);
        assert.equal(get.stdout, 'via-tls\n');
      }
      const health = await runEtcdctl([`--endpoints=${tlsEps.join(',')}`, ...ctlArgs, 'endpoint', 'health']);
      assert.equal(health.exit, 0, health.stderr + health.stdout);
      assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3, health.stdout + health.stderr);
      const noCert = await runEtcdctl([`--endpoints=${tlsEps[1] ?? ''}`, '--dial-timeout=2s', '--command-timeout=3s', '--cacert', clientCa.caFile, 'get', 'peer-tls/ctl']);
      assert.equal(noCert.exit, 1, 'a member\'s TLS client URL refuses etcdctl without a client certificate');

      // The peer port presents the member's certificate to a client with a certificate of the CA.
      const good = await probe(m2.peerUrl, { caFile: ca.caFile, certFile: certFor('m1').certFile, keyFile: certFor('m1').keyFile });
      assert.ok(good.ok, `handshake with a CA-signed client certificate: ${JSON.stringify(good)}`);
      assert.equal(good.serial, certFor('m2').serial);

      // Refusals: no client certificate; one from another CA.
      const before = rejectedLines(c, 'm2').length;
      const none = await probe(m2.peerUrl, { caFile: ca.caFile });
      assert.equal(none.ok, false, 'a peer connection without a client certificate is refused');
      const wrongCa = await probe(m2.peerUrl, { caFile: ca.caFile, certFile: certFor('m4').certFile, keyFile: certFor('m4').keyFile });
      assert.equal(wrongCa.ok, false, 'a client certificate from another CA is refused');
      await pollUntil('two rejected connections logged by m2', () => Promise.resolve(rejectedLines(c, 'm2').length >= before + 2));

      // A certificate of the right CA whose SANs do not name 127.0.0.1: the handshake passes, then
      // the member closes the connection (etcd's checkSAN on peer listeners).
      const badSan = ca.issue('bad-san', { cn: 'm9', sans: ['IP:10.9.9.9', 'DNS:nowhere.invalid'] });
      const beforeSan = rejectedLines(c, 'm2').length;
      const sanProbe = await rawTlsThenWait(m2.peerUrl, ca.caFile, badSan);
      assert.equal(sanProbe.outcome, 'closed by server', 'a client certificate not naming the remote address is refused after the handshake');
      // Cairn says why before it closes (the peer protocol's error frame, with Go's words for the TLS alert etcd sends).
      if (kind === 'cairn') assert.match(sanProbe.received, /remote error: tls: bad certificate: /, JSON.stringify(sanProbe.received));
      await pollUntil('the SAN refusal logged by m2', () => Promise.resolve(rejectedLines(c, 'm2').length > beforeSan));

      // Plain TCP on the TLS peer port: no cleartext protocol answers, the connection is closed.
      const plain = await rawExchange(m2.peerUrl, 'GET /members HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(plain.closedByServer, true);
      assert.ok(!plain.reply.toString('latin1').includes('HTTP/1.1 200'), 'no cleartext answer on the TLS peer port');

      // A member whose peer certificate comes from another CA cannot join; the cluster keeps serving.
      const beforeJoin = rejectedLines(c, 'm1').length + rejectedLines(c, 'm2').length + rejectedLines(c, 'm3').length;
      await assert.rejects(c.addMember('m4'), (e: unknown) => {
        assert.match(String(e), /exited before ready|not ready after/);
        return true;
      });
      const afterJoin = rejectedLines(c, 'm1').length + rejectedLines(c, 'm2').length + rejectedLines(c, 'm3').length;
      assert.ok(afterJoin > beforeJoin, 'the existing members logged the rogue member\'s rejected connections');
      await putGet(c, 'm2', 'peer-tls/b', 'two');

      // Reload: m1's peer certificate replaced in place; new connections see the new one, the cluster keeps working.
      const renewed = ca.issue('m1-peer', { cn: 'm1' });
      assert.notEqual(renewed.serial, certFor('m1').serial);
      certs.set('m1', renewed);
      await pollUntil(
        'the renewed certificate on m1\'s peer port',
        async () => {
          const r = await probe(m1.peerUrl, { caFile: ca.caFile, certFile: certFor('m2').certFile, keyFile: certFor('m2').keyFile });
          return r.ok && r.serial === renewed.serial;
        },
        20_000,
        200,
      );
      await putGet(c, 'm3', 'peer-tls/c', 'three');
    });
  });
}

/** Handshake with `cert`, then wait: 'closed by server' if the server hangs up within 5 s, else 'open'. */
async function rawTlsThenWait(url: string, caFile: string, cert: CertFiles): Promise<{ outcome: 'closed by server' | 'open' | 'handshake failed'; received: string }> {
  const tls = await import('node:tls');
  const { readFileSync } = await import('node:fs');
  const u = new URL(url);
  return new Promise((resolve) => {
    let handshook = false;
    let received = '';
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca: readFileSync(caFile), cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile), maxVersion: 'TLSv1.2' });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ outcome: 'open', received });
    }, 5000);
    s.on('secureConnect', () => (handshook = true));
    s.on('data', (d: Buffer) => (received += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ outcome: handshook ? 'closed by server' : 'handshake failed', received });
    });
  });
}
