// The member agent's recovery snapshot (operator/member/recover.ts takeRecoverySnapshot) against a
// real 3-member Cairn cluster that lost quorum (two members killed), its client port over TLS with
// --client-cert-auth as spec.tls.client sets it up: the survivor is dialled on 127.0.0.1 over https
// with a member certificate (serverAuth + clientAuth, SAN 127.0.0.1, CN <cluster>-member) as its
// client certificate and the cluster's CA, read from a directory laid out as the mounted
// <cluster>-client-tls Secret (ca.crt, tls.crt, tls.key: accessFromTlsDir).
//   - with that access the snapshot is streamed, verified and kept, and its revision is the survivor's;
//   - without it (plaintext, as before) the same call fails: the TLS path is what makes it work.
// With auth enabled as well (spec.auth), the member certificate's CN names no etcd user: the agent's
// Snapshot is refused (hence plan/recover.ts refuses such approvals: RecoveryUnsupported). The server
// does take the CN of a verified client certificate as the user without a token, also without
// quorum: a certificate whose CN is a user with the root role gets the snapshot (what a future
// member user with the root role, created by the auth manager, would rely on).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeCa } from '../harness/certs.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { tempDir } from '../harness/procs.js';
import { unaryOk } from '../harness/client.js';
import { accessFromTlsDir, EtcdAdmin } from '../../operator/etcd/index.js';
import { RecoveryRefused, takeRecoverySnapshot } from '../../operator/member/recover.js';
import { cairnCommand } from '../../operator/member/restore.js';

const KEYS = 20;
const cairnBin = cairnCommand();
after(() => rmSync(cairnBin, { force: true }));

async function memberIdOf(endpoint: string): Promise<string> {
  const a = new EtcdAdmin(endpoint, 3000);
  try {
    return (await a.status()).memberId;
  } finally {
    a.close();
  }
}

describe('recovery agent: snapshot of its own member over client TLS', () => {
  let c: Cluster;
  let tlsDir: string;
  let survivorTls: string;
  let survivorId: string;
  let revision: number;

  before(async () => {
    const ca = makeCa('cluster-ca');
    c = await startCluster('cairn', {
      size: 3,
      name: 'rm',
      clientTls: { caFile: ca.caFile, certFor: (n) => ca.issue(`${n}-server`, { cn: `${n}-server` }), clientCertAuth: true },
    });
    // The mounted <cluster>-client-tls Secret: one member certificate, CN <cluster>-member.
    tlsDir = tlsDirOf(ca, 'member', 'demo-member');
    const leader = await c.leader();
    for (let i = 0; i < KEYS; i++) {
      const r = await c.client(leader.name).put({ key: Buffer.from(`k${String(i)}`), value: Buffer.from(`v${String(i)}`) });
      assert.ok(r.ok, `put k${String(i)}: ${r.ok ? '' : r.details}`);
    }
    const survivor = c.member('rm1');
    assert.ok(survivor.tlsEndpoint !== undefined);
    survivorTls = survivor.tlsEndpoint.replace(/^https:\/\//, '');
    survivorId = await memberIdOf(survivor.endpoint);
    await c.kill9('rm2');
    await c.kill9('rm3');
    // The survivor's own revision (serializable read over its cleartext harness listener).
    const rr = await c.client('rm1').range({ key: Buffer.from('k0'), serializable: true });
    assert.ok(rr.ok, rr.ok ? '' : rr.details);
    const header = rr.value['header'] as { revision?: string } | undefined;
    revision = Number(header?.revision ?? 0);
    assert.ok(revision >= KEYS + 1, `survivor revision ${String(revision)}`);
  });

  after(async () => {
    await c.close();
  });

  it('without the client certificate (plaintext, as before) the snapshot fails', async () => {
    const dataMount = tempDir('cairn-test-recover-plain-');
    await assert.rejects(
      takeRecoverySnapshot({ dataMount, clientEndpoint: survivorTls, token: 'demo-uid-r1', memberId: survivorId, cairnBin }),
      (e: unknown) => e instanceof Error && !(e instanceof RecoveryRefused) && /^Status on .*(No connection established|gRPC code 14)/.test(e.message),
    );
    assert.equal(existsSync(join(dataMount, 'recovery', 'demo-uid-r1.snapshot')), false);
  });

  it('with the mounted member certificate over https, the survivor streams its snapshot onto the volume', async () => {
    const dataMount = tempDir('cairn-test-recover-tls-');
    mkdirSync(dataMount, { recursive: true });
    const access = accessFromTlsDir(tlsDir);
    assert.ok(access !== undefined);
    const rec = await takeRecoverySnapshot({ dataMount, clientEndpoint: survivorTls, token: 'demo-uid-r2', memberId: survivorId, cairnBin, access });
    assert.equal(rec.file, 'recovery/demo-uid-r2.snapshot');
    assert.equal(rec.memberId, survivorId);
    assert.equal(rec.revision, revision);
    assert.match(rec.sha256, /^[0-9a-f]{64}$/);
    assert.equal(statSync(join(dataMount, rec.file)).size, rec.sizeBytes);
    // Asked again for the same token: the file it already has.
    const again = await takeRecoverySnapshot({ dataMount, clientEndpoint: survivorTls, token: 'demo-uid-r2', memberId: survivorId, cairnBin, access });
    assert.deepEqual(again, rec);
  });

  it('over https, another member id is refused', async () => {
    const dataMount = tempDir('cairn-test-recover-other-');
    await assert.rejects(
      takeRecoverySnapshot({ dataMount, clientEndpoint: survivorTls, token: 'demo-uid-r3', memberId: 'abc', cairnBin, access: accessFromTlsDir(tlsDir) }),
      (e: unknown) => e instanceof RecoveryRefused && /not abc/.test(e.message),
    );
  });
});

function tlsDirOf(ca: ReturnType<typeof makeCa>, name: string, cn: string): string {
  const cert = ca.issue(name, { cn });
  const dir = tempDir('cairn-test-client-tls-');
  copyFileSync(ca.caFile, join(dir, 'ca.crt'));
  copyFileSync(cert.certFile, join(dir, 'tls.crt'));
  copyFileSync(cert.keyFile, join(dir, 'tls.key'));
  return dir;
}

describe('recovery agent with auth enabled (client TLS, --client-cert-auth)', () => {
  let c: Cluster;
  let ca: ReturnType<typeof makeCa>;
  let survivorTls: string;
  let survivorId: string;

  before(async () => {
    ca = makeCa('auth-ca');
    c = await startCluster('cairn', {
      size: 3,
      name: 'ra',
      clientTls: { caFile: ca.caFile, certFor: (n) => ca.issue(`${n}-server`, { cn: `${n}-server` }), clientCertAuth: true },
    });
    const leader = c.client((await c.leader()).name);
    await unaryOk(leader, 'KV', 'Put', { key: Buffer.from('k'), value: Buffer.from('v') });
    await unaryOk(leader, 'Auth', 'UserAdd', { name: 'root', password: 'r' });
    await unaryOk(leader, 'Auth', 'RoleAdd', { name: 'root' });
    await unaryOk(leader, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    const survivor = c.member('ra1');
    assert.ok(survivor.tlsEndpoint !== undefined);
    survivorTls = survivor.tlsEndpoint.replace(/^https:\/\//, '');
    survivorId = await memberIdOf(survivor.endpoint);
    await unaryOk(leader, 'Auth', 'AuthEnable', {});
    await c.kill9('ra2');
    await c.kill9('ra3');
  });

  after(async () => {
    await c.close();
  });

  it('the member certificate (CN <cluster>-member, no etcd user) is refused the snapshot', async () => {
    const dataMount = tempDir('cairn-test-recover-auth-');
    const access = accessFromTlsDir(tlsDirOf(ca, 'member', 'demo-member'));
    await assert.rejects(
      takeRecoverySnapshot({ dataMount, clientEndpoint: survivorTls, token: 'demo-uid-a1', memberId: survivorId, cairnBin, access }),
      (e: unknown) => e instanceof Error && !(e instanceof RecoveryRefused) && /permission denied|user name not found|user name is empty/.test(e.message),
    );
    assert.equal(existsSync(join(dataMount, 'recovery', 'demo-uid-a1.snapshot')), false);
  });

  it('a certificate whose CN is a user with the root role gets the snapshot without quorum (no token)', async () => {
    const dataMount = tempDir('cairn-test-recover-cn-');
    const access = accessFromTlsDir(tlsDirOf(ca, 'rootcn', 'root'));
    const rec = await takeRecoverySnapshot({ dataMount, clientEndpoint: survivorTls, token: 'demo-uid-a2', memberId: survivorId, cairnBin, access });
    assert.equal(rec.memberId, survivorId);
    assert.ok(rec.revision >= 2, `revision ${String(rec.revision)}`);
    assert.equal(statSync(join(dataMount, rec.file)).size, rec.sizeBytes);
  });
});
