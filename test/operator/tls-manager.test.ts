// The certificate manager (operator/controller/tls.ts) and the CA (operator/pki) on an in-memory
// Secret store: operator-issued certificates (CA kept, member certificate with the cluster's names,
// the operator's client certificate, renewal near expiry, re-issue when the Secret is gone),
// user-provided Secrets copied only when good (an expired or mismatched certificate is reported and
// the mounted Secret keeps the previous one), and the member pod spec of spec.tls. Then a real Cairn
// server serves the issued certificate and the operator's EtcdAdmin reaches it with its client
// certificate, while a client without one is refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { TlsManager, tlsSecretNames } from '../../operator/controller/tls.js';
import { issue, newCA, problemOf } from '../../operator/pki/index.js';
import { EtcdAccess, EtcdAdmin } from '../../operator/etcd/index.js';
import { KubeError, type KubeRest } from '../../operator/kube/index.js';
import { withDefaults, type EtcdCluster, type JsonObject } from '../../operator/api/index.js';
import { serverArgs, statefulSet } from '../../operator/plan/index.js';
import { startCairn } from '../harness/procs.js';

class FakeSecrets {
  readonly store = new Map<string, Record<string, string>>();
  writes = 0;
  path = (name: string): string => `/api/v1/namespaces/ns/secrets/${name}`;
  set(name: string, data: Record<string, string>): void {
    this.store.set(this.path(name), data);
  }
  get(name: string): Record<string, string> | undefined {
    return this.store.get(this.path(name));
  }
  rest(): KubeRest {
    return {
      get: (path: string): Promise<JsonObject> => {
        const d = this.store.get(path);
        if (d === undefined) return Promise.reject(new KubeError('GET', path, 404, 'NotFound', 'not found'));
        return Promise.resolve({ data: Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) });
      },
      apply: (path: string, o: JsonObject): Promise<JsonObject> => {
        this.writes++;
        const d = o['data'] as Record<string, string>;
        this.store.set(path, Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])));
        return Promise.resolve(o);
      },
    } as unknown as KubeRest;
  }
}

function cluster(tls: unknown): EtcdCluster {
  return { apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name: 'db', namespace: 'ns', uid: 'u', generation: 1 }, spec: withDefaults({ tls }) };
}

const names = (pem: string): string => new X509Certificate(pem).subjectAltName ?? '';

describe('certificate manager', () => {
  it('issues from its own CA, keeps good certificates, renews near expiry and re-issues a deleted Secret', async () => {
    const s = new FakeSecrets();
    let now = new Date();
    const m = new TlsManager(s.rest(), () => now);
    const out = await m.prepare(cluster({ client: {}, peer: {} }), () => undefined);
    assert.equal(out.condition?.status, 'True', out.condition?.message);
    const ca = s.get(tlsSecretNames.ca('db'));
    const client = s.get('db-client-tls');
    const peer = s.get('db-peer-tls');
    const op = s.get('db-operator-tls');
    assert.ok(ca !== undefined && client !== undefined && peer !== undefined && op !== undefined);
    assert.equal(problemOf({ cert: client['tls.crt'] ?? '', key: client['tls.key'] ?? '', ca: ca['tls.crt'] ?? '' }, now), undefined);
    assert.match(names(client['tls.crt'] ?? ''), /DNS:\*\.db-peer\.ns\.svc.*DNS:db-client\.ns\.svc/);
    assert.match(new X509Certificate(op['tls.crt'] ?? '').subject, /CN=cairn-operator/);
    assert.ok(out.client !== undefined && out.status?.client !== undefined);
    const writes = s.writes;
    const again = await m.prepare(cluster({ client: {}, peer: {} }), () => undefined);
    assert.equal(s.writes, writes, 'nothing rewritten while the certificates are good');
    assert.equal(again.client, out.client, 'the same client TLS object (the access and its token survive)');
    // 61 days on (90-day certificates: less than a third left): renewed, same CA.
    now = new Date(now.getTime() + 61 * 86_400_000);
    const renewed = await m.prepare(cluster({ client: {}, peer: {} }), () => undefined);
    assert.notEqual(renewed.status?.client?.serial, out.status?.client?.serial);
    assert.equal(s.get(tlsSecretNames.ca('db'))?.['tls.crt'], ca['tls.crt'], 'the CA is kept');
    // A deleted serving Secret is issued anew (the e2e forces a rotation this way).
    s.store.delete(s.path('db-peer-tls'));
    const reissued = await m.prepare(cluster({ client: {}, peer: {} }), () => undefined);
    assert.notEqual(reissued.status?.peer?.serial, renewed.status?.peer?.serial);
  });

  it('copies a good user Secret; an expired or mismatched one is reported and the previous one stays mounted', async () => {
    const s = new FakeSecrets();
    const ca = newCA('user-ca');
    const good = issue(ca, { commonName: 'm', dnsNames: ['*.db-peer.ns.svc'], ips: [], server: true, client: true, validityDays: 30 });
    const opCert = issue(ca, { commonName: 'cairn-operator', dnsNames: [], ips: [], server: false, client: true, validityDays: 30 });
    s.set('mine', { 'tls.crt': good.cert, 'tls.key': good.key, 'ca.crt': ca.cert });
    s.set('op', { 'tls.crt': opCert.cert, 'tls.key': opCert.key });
    const m = new TlsManager(s.rest());
    const spec = { client: { secretName: 'mine', operatorSecretName: 'op' } };
    const out = await m.prepare(cluster(spec), () => undefined);
    assert.equal(out.condition?.status, 'True', out.condition?.message);
    assert.equal(s.get('db-client-tls')?.['tls.crt'], good.cert);
    assert.equal(out.status?.client?.from, 'ns/mine');
    assert.equal(s.get(tlsSecretNames.ca('db')), undefined, 'no CA of its own when the user brings the certificates');
    // Expired.
    const expired = issue(ca, { commonName: 'm', dnsNames: [], ips: [], server: true, client: true, validityDays: 1, notBefore: new Date(Date.now() - 3 * 86_400_000) });
    s.set('mine', { 'tls.crt': expired.cert, 'tls.key': expired.key, 'ca.crt': ca.cert });
    let bad = await m.prepare(cluster(spec), () => undefined);
    assert.equal(bad.condition?.status, 'False');
    assert.equal(bad.condition?.reason, 'InvalidCertificate');
    assert.match(bad.condition?.message ?? '', /client: Secret ns\/mine: the certificate expired at .*keep serving the previous certificate/);
    assert.equal(s.get('db-client-tls')?.['tls.crt'], good.cert, 'the mounted Secret keeps the good one');
    assert.equal(bad.status?.client?.serial, out.status?.client?.serial);
    // Mismatched key.
    s.set('mine', { 'tls.crt': good.cert, 'tls.key': opCert.key, 'ca.crt': ca.cert });
    bad = await m.prepare(cluster(spec), () => undefined);
    assert.match(bad.condition?.message ?? '', /tls.key is not the key of tls.crt/);
    // Another CA's certificate.
    const other = issue(newCA('other'), { commonName: 'm', dnsNames: [], ips: [], server: true, client: true, validityDays: 30 });
    s.set('mine', { 'tls.crt': other.cert, 'tls.key': other.key, 'ca.crt': ca.cert });
    bad = await m.prepare(cluster(spec), () => undefined);
    assert.match(bad.condition?.message ?? '', /not signed by ca.crt/);
    assert.equal(s.get('db-client-tls')?.['tls.crt'], good.cert);
    // No operator certificate named.
    bad = await m.prepare(cluster({ client: { secretName: 'mine' } }), () => undefined);
    assert.match(bad.condition?.message ?? '', /operatorSecretName is needed/);
  });

  it('puts spec.tls into the member pods: flags, mounted Secrets, https URLs, probes on the metrics listener', () => {
    const c = cluster({ client: {}, peer: {} });
    const args = serverArgs(c.spec);
    for (const f of ['--cert-file=/etc/cairn/tls/client/tls.crt', '--trusted-ca-file=/etc/cairn/tls/client/ca.crt', '--client-cert-auth', '--peer-client-cert-auth', '--listen-metrics-urls=http://0.0.0.0:2382']) assert.ok(args.includes(f), f);
    const sts = JSON.stringify(statefulSet(c, c.spec, 'img', 3, { data: '1Gi', wal: '1Gi' }));
    assert.match(sts, /"secretName":"db-client-tls"/);
    assert.match(sts, /"CAIRN_PEER_URL","value":"https:\/\/\$\(POD_NAME\)\.db-peer\.\$\(POD_NAMESPACE\)\.svc:2380"/);
    assert.match(sts, /"readinessProbe":\{"httpGet":\{"path":"\/readyz","port":2382\}/);
    const plain = cluster(undefined);
    assert.ok(!serverArgs(plain.spec).some((a) => a.includes('cert')));
  });

  it('a real server serves the issued certificate; the operator reaches it with its client certificate, a client without one is refused', async () => {
    const s = new FakeSecrets();
    const m = new TlsManager(s.rest());
    const out = await m.prepare(cluster({ client: {} }), () => 'db-0.db-peer.ns.svc');
    const dir = mkdtempSync(join(tmpdir(), 'cairn-tls-'));
    const sec = s.get('db-client-tls') ?? {};
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) writeFileSync(join(dir, f), sec[f] ?? '');
    const srv = await startCairn({ tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt'), clientCertAuth: true } });
    try {
      const op = new EtcdAdmin(srv.endpoint, 3000, new EtcdAccess(undefined, out.client));
      const anon = new EtcdAdmin(srv.endpoint, 3000, new EtcdAccess(undefined, { ca: Buffer.from(sec['ca.crt'] ?? '') }));
      try {
        await op.put('k', 'v');
        assert.equal((await op.status()).leader !== '0', true);
        await assert.rejects(anon.put('k', 'x'));
      } finally {
        op.close();
        anon.close();
      }
    } finally {
      await srv.stop();
    }
  });
});
