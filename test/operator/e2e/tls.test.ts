// test-file-timeout: 8 min
// spec.tls end to end on localkube with the operator of this checkout: a 3-member cluster with client
// and peer TLS issued by the operator's own CA. The members serve client TLS with the CA of the
// Secret; a client with the operator's client certificate puts and gets, one without a client
// certificate (or in plaintext) is refused; the peer URLs are https; the operator observes the
// cluster over TLS (Available, members and leader in status, TLSReady=True). A forced rotation (the
// mounted Secret deleted: the operator issues a new certificate from its CA) reaches every running
// member without a restart: each pod serves the new serial, restartCount unchanged. The cluster has
// spec.auth too (TLS and auth together): the operator logs in over TLS, and the kubectl plugin
// (status, defrag, snapshot through port-forward) works with the operator's certificate and user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../harness/procs.js';
import { localkube, type LocalKube } from '../../harness/localkube.js';
import { pollUntil } from '../../harness/poll.js';
import { EtcdAccess, EtcdAdmin, type ClientTls } from '../../../operator/etcd/index.js';
import { asObj, availableWith, clusterManifest, condOf, deployCheckoutOperator, needLocalkube, waitStatus, type Obj } from './lk-status.js';

async function secretData(lk: LocalKube, ns: string, name: string): Promise<Record<string, Buffer>> {
  const s = JSON.parse(await lk.kubectlOk(['get', 'secret', '-n', ns, name, '-o', 'json'])) as { data: Record<string, string> };
  return Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

/** The serial of the certificate a member serves on its client port. */
function servedSerial(ip: string, servername: string, t: ClientTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: ip, port: 2379, servername, ca: t.ca, ...(t.cert !== undefined ? { cert: t.cert } : {}), ...(t.key !== undefined ? { key: t.key } : {}), ALPNProtocols: ['h2'] }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial.toUpperCase());
    });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('error', reject);
  });
}

const tlsReady = (st: Obj): boolean => condOf(st, 'TLSReady')?.status === 'True';

test('spec.tls on localkube: client and peer TLS from the operator\'s CA, rotation without restarts', { timeout: 8 * 60_000 }, async (t) => {
  if (!needLocalkube(t)) return;
  const lk = await localkube();
  await deployCheckoutOperator(lk, t);
  const ns = `tls-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  try {
    const t0 = Date.now();
    const pw = randomBytes(9).toString('base64url');
    await lk.apply(JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db-root', namespace: ns }, stringData: { password: pw } }));
    await lk.apply(clusterManifest(ns, 'db', 'Delete', { tls: { client: {}, peer: {} }, auth: { rootSecretRef: { name: 'db-root' } } }));
    let st = await waitStatus(lk, ns, 'db', 'Available with 3 voters over TLS, TLSReady, auth on', (s) => availableWith(3)(s) && tlsReady(s) && condOf(s, 'AuthReady')?.status === 'True', 300_000);
    t.diagnostic(`Available over TLS in ${String(Date.now() - t0)} ms; ${condOf(st, 'TLSReady')?.message ?? ''}`);
    const members = (st['members'] ?? []) as Obj[];
    assert.equal(members.filter((m) => m['leader'] === true).length, 1, 'the operator sees the leader over TLS');

    const op = await secretData(lk, ns, 'db-operator-tls');
    const served = await secretData(lk, ns, 'db-client-tls');
    const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'db-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const withCert: ClientTls = { ca: served['ca.crt'] ?? Buffer.alloc(0), cert: op['tls.crt'] ?? Buffer.alloc(0), key: op['tls.key'] ?? Buffer.alloc(0), serverName: () => `db-client.${ns}.svc` };
    const good = new EtcdAdmin(`${ip}:2379`, 5000, new EtcdAccess({ user: 'root', password: pw }, withCert));
    const noCert = new EtcdAdmin(`${ip}:2379`, 5000, new EtcdAccess(undefined, { ca: withCert.ca, serverName: () => `db-client.${ns}.svc` }));
    const plain = new EtcdAdmin(`${ip}:2379`, 5000, new EtcdAccess(undefined));
    try {
      await good.put('k', 'v');
      assert.equal(await good.get('k'), 'v');
      await assert.rejects(noCert.put('k', 'x'), 'a client without a client certificate is refused');
      await assert.rejects(plain.put('k', 'x'), 'a plaintext client is refused');
      const listed = await good.memberList();
      assert.ok(listed.members.every((m) => m.peerURLs.every((u) => u.startsWith('https://')) && m.clientURLs.every((u) => u.startsWith('https://'))), JSON.stringify(listed.members));
    } finally {
      good.close();
      noCert.close();
      plain.close();
    }

    // Every member serves the status' serial; restart counts before the rotation.
    const pods = JSON.parse(await lk.kubectlOk(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/instance=db', '-o', 'json'])) as { items: Array<{ metadata: { name: string }; status: { podIP: string; containerStatuses: Array<{ restartCount: number }> } }> };
    const before = pods.items.map((p) => ({ name: p.metadata.name, ip: p.status.podIP, restarts: p.status.containerStatuses[0]?.restartCount ?? -1 }));
    const serial0 = String(asObj(asObj(st['tls'])['client'])['serial']).toUpperCase();
    for (const p of before) assert.equal(await servedSerial(p.ip, `${p.name}.db-peer.${ns}.svc`, withCert), serial0, `${p.name} serves the issued certificate`);

    // Forced rotation: the mounted Secret deleted, the operator issues a new certificate.
    const tr = Date.now();
    await lk.kubectlOk(['delete', 'secret', '-n', ns, 'db-client-tls']);
    st = await waitStatus(lk, ns, 'db', 'a new client certificate issued', (s) => String(asObj(asObj(s['tls'])['client'])['serial']).toUpperCase() !== serial0 && tlsReady(s), 60_000);
    const serial1 = String(asObj(asObj(st['tls'])['client'])['serial']).toUpperCase();
    await pollUntil(
      'every member serves the new certificate',
      async () => {
        const now = await Promise.all(before.map((p) => servedSerial(p.ip, `${p.name}.db-peer.${ns}.svc`, withCert).catch(() => 'error')));
        return now.every((s) => s === serial1);
      },
      180_000,
      2000,
    );
    t.diagnostic(`rotation: serial ${serial0} -> ${serial1}, served by every member ${String(Date.now() - tr)} ms after the Secret was deleted`);
    const after = JSON.parse(await lk.kubectlOk(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/instance=db', '-o', 'json'])) as typeof pods;
    for (const p of after.items) {
      const b = before.find((x) => x.name === p.metadata.name);
      assert.equal(p.status.containerStatuses[0]?.restartCount, b?.restarts, `${p.metadata.name} not restarted`);
      assert.equal(p.status.podIP, b?.ip, `${p.metadata.name} is the same pod`);
    }
    await waitStatus(lk, ns, 'db', 'still Available after the rotation', availableWith(3), 60_000);

    // The kubectl plugin over TLS and auth (port-forward; the operator's certificate and user from their Secrets).
    const plugin = async (...args: string[]): Promise<string> => {
      const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'operator', 'cli', 'main.js'), ...args, '-n', ns, '--kubeconfig', lk.kubeconfig], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (c: Buffer) => (out += c.toString()));
        p.stderr.on('data', (c: Buffer) => (err += c.toString()));
        p.on('exit', (code) => resolve({ code, out, err }));
      });
      assert.equal(r.code, 0, `kubectl cairn ${args.join(' ')}: ${r.err}`);
      return r.out;
    };
    const status = await plugin('status', 'db');
    t.diagnostic(`kubectl cairn status:\n${status}`);
    assert.match(status, /db-0/);
    assert.match(status, /leader/i);
    await plugin('defrag', 'db');
    const file = join(mkdtempSync(join(tmpdir(), 'cairn-tls-')), 'snap.db');
    await plugin('snapshot', 'db', file);
    assert.equal(statSync(file).size % 512, 32, 'a verified snapshot file');
  } finally {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});
