// Auth on a 3-member cluster, etcd 3.4.23 and Cairn side by side: users and roles made through one
// member are seen by all; a token issued by one member works on every other (simple tokens are
// registered by every member when it applies the Authenticate entry; JWTs are verified with the
// shared public key); a permission revoked through one member is enforced by the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { unaryOk } from '../harness/client.js';
import { withCluster } from '../harness/cluster.js';
import type { Cluster } from '../harness/cluster.js';
import { tempDir, type TargetKind } from '../harness/procs.js';
import { OPENSSL_BIN } from '../harness/certs.js';

const b = (s: string): Buffer => Buffer.from(s);

const must = unaryOk;

async function outcome(p: Promise<{ ok: boolean; code?: number; details?: string }>): Promise<string> {
  const r = await p;
  return r.ok ? 'ok' : `${String(r.code)} ${String(r.details)}`;
}

async function scenario(cl: Cluster): Promise<Record<string, string>> {
  const [c1, c2, c3] = ['m1', 'm2', 'm3'].map((n) => cl.client(n));
  if (c1 === undefined || c2 === undefined || c3 === undefined) throw new Error('3 members expected');
  const obs: Record<string, string> = {};
  await must(c1, 'Auth', 'UserAdd', { name: 'root', password: 'r' });
  await must(c1, 'Auth', 'RoleAdd', { name: 'root' });
  await must(c1, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  await must(c2, 'Auth', 'RoleAdd', { name: 'k' });
  await must(c3, 'Auth', 'RoleGrantPermission', { name: 'k', perm: { permType: 'READWRITE', key: b('k/'), range_end: b('k0') } });
  await must(c1, 'Auth', 'UserAdd', { name: 'u', password: 'p' });
  await must(c2, 'Auth', 'UserGrantRole', { user: 'u', role: 'k' });
  await must(c3, 'Auth', 'AuthEnable', {});
  const token = String((await must(c1, 'Auth', 'Authenticate', { name: 'u', password: 'p' }))['token']);
  const rootTok = String((await must(c2, 'Auth', 'Authenticate', { name: 'root', password: 'r' }))['token']);
  // Straight after the answer from m1, on the other members (they may not have applied it yet).
  obs['token-from-m1-on-m2'] = await outcome(c2.put({ key: b('k/1'), value: b('1') }, { metadata: { token } }));
  obs['token-from-m1-on-m3'] = await outcome(c3.range({ key: b('k/1') }, { metadata: { token } }));
  obs['token-from-m1-on-m1'] = await outcome(c1.range({ key: b('k/1') }, { metadata: { token } }));
  obs['root-token-from-m2-on-m3'] = await outcome(c3.unary('Auth', 'UserList', {}, { metadata: { token: rootTok } }));
  obs['denied-on-m3'] = await outcome(c3.put({ key: b('x'), value: b('1') }, { metadata: { token } }));
  obs['user-get-on-m3'] = JSON.stringify((await must(c3, 'Auth', 'UserGet', { name: 'u' }, { token: rootTok }))['roles']);
  await must(c1, 'Auth', 'RoleRevokePermission', { role: 'k', key: b('k/'), range_end: b('k0') }, { token: String((await must(c1, 'Auth', 'Authenticate', { name: 'root', password: 'r' }))['token']) });
  // A fresh token, checked on a member other than the one that changed the role.
  const fresh = String((await must(c3, 'Auth', 'Authenticate', { name: 'u', password: 'p' }))['token']);
  obs['after-revoke-on-m2'] = await outcome(c2.range({ key: b('k/1') }, { metadata: { token: fresh } }));
  obs['old-token-after-revoke-on-m3'] = await outcome(c3.range({ key: b('k/1'), serializable: true }, { metadata: { token } }));
  return obs;
}

function rsaKeys(): { priv: string; pub: string } {
  const dir = tempDir('cairn-test-jwt-cluster-');
  const priv = join(dir, 'k.key');
  const pub = join(dir, 'k.pub');
  execFileSync(OPENSSL_BIN, ['genrsa', '-out', priv, '2048'], { stdio: 'ignore' });
  execFileSync(OPENSSL_BIN, ['rsa', '-in', priv, '-pubout', '-out', pub], { stdio: 'ignore' });
  return { priv, pub };
}

async function both(extraArgs: string[]): Promise<{ etcd: Record<string, string>; cairn: Record<string, string> }> {
  const run = (kind: TargetKind): Promise<Record<string, string>> => withCluster(kind, { size: 3, extraArgs }, scenario);
  const [etcd, cairn] = await Promise.all([run('etcd'), run('cairn')]);
  return { etcd, cairn };
}

test('simple tokens on a 3-member cluster: as etcd 3.4.23', { timeout: 110_000 }, async () => {
  const { etcd, cairn } = await both([]);
  assert.deepEqual(cairn, etcd);
  assert.equal(etcd['token-from-m1-on-m2'], 'ok');
  assert.equal(etcd['denied-on-m3'], '7 etcdserver: permission denied');
  assert.equal(etcd['after-revoke-on-m2'], '7 etcdserver: permission denied');
});

test('JWT on a 3-member cluster: a token from one member works on the others, as etcd 3.4.23', { timeout: 110_000 }, async () => {
  const k = rsaKeys();
  const { etcd, cairn } = await both([`--auth-token=jwt,pub-key=${k.pub},priv-key=${k.priv},sign-method=RS256,ttl=5m`]);
  assert.deepEqual(cairn, etcd);
  assert.equal(cairn['token-from-m1-on-m3'], 'ok');
  // A JWT carries the auth revision it was issued at: after the revoke it is stale everywhere.
  assert.equal(cairn['old-token-after-revoke-on-m3'], '3 etcdserver: revision of auth store is old');
});
