// Tokens, against etcd 3.4.23 and Cairn: wrong passwords, simple tokens (format, TTL from
// --auth-token-ttl, extended by use, dropped on password change, auth disable and restart) and JWT
// (--auth-token jwt with keys made by openssl here: etcd's claims, expiry, tampering, and a token
// issued by etcd accepted by Cairn holding the same key).
//
// Waiting out a token's TTL is the behaviour under test (time passing with no use), so those waits
// are plain timers, not synchronisation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { EtcdClient, unaryOk } from '../harness/client.js';
import { startCairn, startEtcd, tempDir, type ServerOpts, type ServerProc } from '../harness/procs.js';
import { OPENSSL_BIN } from '../harness/certs.js';

const b = (s: string): Buffer => Buffer.from(s);
const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const must = unaryOk;

async function setup(c: EtcdClient): Promise<void> {
  await must(c, 'Auth', 'UserAdd', { name: 'root', password: 'r' });
  await must(c, 'Auth', 'RoleAdd', { name: 'root' });
  await must(c, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  await must(c, 'Auth', 'RoleAdd', { name: 'k' });
  await must(c, 'Auth', 'RoleGrantPermission', { name: 'k', perm: { permType: 'READWRITE', key: b('k'), range_end: b('') } });
  await must(c, 'Auth', 'UserAdd', { name: 'u', password: 'p' });
  await must(c, 'Auth', 'UserGrantRole', { user: 'u', role: 'k' });
  await must(c, 'Auth', 'UserAdd', { name: 'np', options: { no_password: true } });
  await must(c, 'Auth', 'AuthEnable', {});
}

async function outcome(p: Promise<{ ok: boolean; code?: number; details?: string }>): Promise<string> {
  const r = await p;
  return r.ok ? 'ok' : `${String(r.code)} ${String(r.details)}`;
}

async function authenticate(c: EtcdClient, name: string, password: string): Promise<string> {
  const r = await c.unary('Auth', 'Authenticate', { name, password });
  return r.ok ? String(r.value['token']) : `${r.code} ${r.details}`;
}

const get = (c: EtcdClient, token: string): Promise<string> => outcome(c.range({ key: b('k') }, { metadata: { token } }));

async function simpleScenario(start: (o: ServerOpts) => Promise<ServerProc>): Promise<Record<string, string>> {
  const srv = await start({ extraArgs: ['--auth-token-ttl', '2', '--bcrypt-cost', '4'] });
  let c = new EtcdClient(srv.endpoint);
  const obs: Record<string, string> = {};
  try {
    await setup(c);
    obs['wrong-password'] = await authenticate(c, 'u', 'nope');
    obs['unknown-user'] = await authenticate(c, 'who', 'p');
    obs['no-password-user'] = await authenticate(c, 'np', '');
    const t1 = await authenticate(c, 'u', 'p');
    obs['token-format'] = /^[a-zA-Z]{16}\.[0-9]+$/.test(t1) ? 'letters.index' : t1;
    obs['fresh'] = await get(c, t1);
    for (let i = 0; i < 5; i++) {
      await wait(700);
      obs[`used-${i}`] = await get(c, t1); // each use extends the 2 s TTL
    }
    await wait(3500);
    obs['idle-past-ttl'] = await get(c, t1);
    obs['garbage-token'] = await get(c, 'garbage');
    const t2 = await authenticate(c, 'u', 'p');
    const rootTok = await authenticate(c, 'root', 'r');
    await must(c, 'Auth', 'UserChangePassword', { name: 'u', password: 'p2' }, { token: rootTok });
    obs['after-password-change'] = await get(c, t2);
    obs['old-password'] = await authenticate(c, 'u', 'p');
    const t3 = await authenticate(c, 'u', 'p2');
    const rootTok2 = await authenticate(c, 'root', 'r');
    await must(c, 'Auth', 'AuthDisable', {}, { token: rootTok2 });
    obs['authenticate-disabled'] = await authenticate(c, 'u', 'p2');
    await must(c, 'Auth', 'AuthEnable', {});
    obs['after-disable-enable'] = await get(c, t3);
    const t4 = await authenticate(c, 'u', 'p2');
    obs['before-restart'] = await get(c, t4);
    // A KV write after the last Authenticate: etcd 3.4 persists its applied index only with KV
    // writes, and re-applies later entries (re-registering their tokens) on restart.
    await must(c, 'KV', 'Put', { key: b('k'), value: b('v') }, { token: t4 });
    c.close();
    await srv.stop();
    const again = await start({ dataDir: srv.dataDir, name: srv.name, extraArgs: ['--auth-token-ttl', '2', '--bcrypt-cost', '4'] });
    c = new EtcdClient(again.endpoint);
    try {
      obs['after-restart'] = await get(c, t4);
      obs['new-token-after-restart'] = await get(c, await authenticate(c, 'u', 'p2'));
    } finally {
      await again.stop();
    }
  } finally {
    c.close();
    await srv.stop();
  }
  return obs;
}

test('simple tokens and passwords behave as in etcd 3.4.23', { timeout: 110_000 }, async () => {
  const [e, c] = await Promise.all([simpleScenario(startEtcd), simpleScenario(startCairn)]);
  assert.deepEqual(c, e);
  assert.equal(e['wrong-password'], '3 etcdserver: authentication failed, invalid user ID or password');
  assert.equal(e['token-format'], 'letters.index');
  assert.equal(e['used-4'], 'ok');
  assert.equal(e['idle-past-ttl'], '16 etcdserver: invalid auth token');
  assert.equal(e['after-restart'], '16 etcdserver: invalid auth token');
});

function makeKeys(dir: string): { rsaPriv: string; rsaPub: string; ecPriv: string; ecPub: string } {
  const rsaPriv = join(dir, 'rsa.key');
  const rsaPub = join(dir, 'rsa.pub');
  const ecPriv = join(dir, 'ec.key');
  const ecPub = join(dir, 'ec.pub');
  execFileSync(OPENSSL_BIN, ['genrsa', '-out', rsaPriv, '2048'], { stdio: 'ignore' });
  execFileSync(OPENSSL_BIN, ['rsa', '-in', rsaPriv, '-pubout', '-out', rsaPub], { stdio: 'ignore' });
  execFileSync(OPENSSL_BIN, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', ecPriv], { stdio: 'ignore' });
  execFileSync(OPENSSL_BIN, ['ec', '-in', ecPriv, '-pubout', '-out', ecPub], { stdio: 'ignore' });
  return { rsaPriv, rsaPub, ecPriv, ecPub };
}

function claims(token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

test('JWT tokens (RS256, ES256): claims, expiry, tampering, an etcd-issued token accepted by Cairn', { timeout: 110_000 }, async () => {
  const k = makeKeys(tempDir('cairn-test-jwt-'));
  for (const [alg, priv, pub] of [['RS256', k.rsaPriv, k.rsaPub], ['ES256', k.ecPriv, k.ecPub]] as const) {
    const flags = ['--bcrypt-cost', '4', '--auth-token', `jwt,pub-key=${pub},priv-key=${priv},sign-method=${alg},ttl=3s`];
    const [etcd, cairn] = await Promise.all([startEtcd({ extraArgs: flags }), startCairn({ extraArgs: flags })]);
    const ce = new EtcdClient(etcd.endpoint);
    const cc = new EtcdClient(cairn.endpoint);
    try {
      await Promise.all([setup(ce), setup(cc)]);
      const [te, tc] = await Promise.all([authenticate(ce, 'u', 'p'), authenticate(cc, 'u', 'p')]);
      const [je, jc] = [claims(te), claims(tc)];
      assert.deepEqual(Object.keys(jc).sort(), Object.keys(je).sort(), `${alg}: claim names`);
      assert.equal(jc['username'], 'u');
      assert.equal(jc['revision'], je['revision'], `${alg}: revision claim (same setup on both)`);
      assert.ok(Math.abs(Number(jc['exp']) - Date.now() / 1000 - 3) < 2, `${alg}: exp ${String(jc['exp'])}`);
      assert.equal(await get(cc, tc), 'ok');
      assert.equal(await get(cc, te), 'ok', `${alg}: a token etcd signed with the same key works on Cairn`);
      assert.equal(await get(ce, tc), 'ok', `${alg}: and the other way round`);
      const tampered = tc.slice(0, -4) + (tc.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      assert.equal(await get(cc, tampered), await get(ce, tampered));
      assert.equal(await get(cc, tampered), '16 etcdserver: invalid auth token');
      assert.equal(await get(cc, 'not.a.jwt'), '16 etcdserver: invalid auth token');
      // An auth change makes older JWTs stale (their revision claim is behind), as in etcd.
      const rootE = await authenticate(ce, 'root', 'r');
      const rootC = await authenticate(cc, 'root', 'r');
      await Promise.all([must(ce, 'Auth', 'RoleAdd', { name: 'other' }, { token: rootE }), must(cc, 'Auth', 'RoleAdd', { name: 'other' }, { token: rootC })]);
      assert.equal(await get(cc, tc), await get(ce, te));
      assert.equal(await get(cc, tc), '3 etcdserver: revision of auth store is old');
      const [fe, fc] = await Promise.all([authenticate(ce, 'u', 'p'), authenticate(cc, 'u', 'p')]);
      await wait(4500); // past the 3 s ttl
      assert.equal(await get(cc, fc), await get(ce, fe));
      assert.equal(await get(cc, fc), '16 etcdserver: invalid auth token');
    } finally {
      ce.close();
      cc.close();
      await Promise.all([etcd.stop(), cairn.stop()]);
    }
  }
});
