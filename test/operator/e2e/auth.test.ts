// test-file-timeout: 8 min
// spec.auth end to end on localkube with the operator of this checkout: a cluster created with
// spec.auth (root's password in a Secret) and simple tokens that expire after 3 s of disuse
// (--auth-token-ttl=3, so nearly every reconcile meets an expired token) gets auth enabled by the
// operator; root logs in with the Secret's password, an unauthenticated put is refused ('user name
// is empty'); the operator still grows it 1 -> 3 (learner adds and promotions, root-only under auth)
// and reports the members and the leader; a changed Secret becomes root's password. Bad input: the
// root Secret deleted is reported (RootSecretMissing); with the operator's own credentials gone too
// the operator stops (nothing observed without credentials), and a wrong password is reported
// (RootPasswordRejected, naming the Secret) and retried with a growing backoff, not in a tight loop;
// the right password restores the operator's user and the cluster is Available again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { localkube, type LocalKube } from '../../harness/localkube.js';
import { EtcdClient, unaryOk } from '../../harness/client.js';
import { pollUntil } from '../../harness/poll.js';
import { asObj, availableWith, clusterManifest, condOf, deployCheckoutOperator, needLocalkube, waitStatus, type Obj } from './lk-status.js';

function rootSecret(ns: string, password: string): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db-root', namespace: ns }, stringData: { password } });
}

const authReady = (reason: string) => (st: Obj): boolean => condOf(st, 'AuthReady')?.reason === reason;

async function rootToken(c: EtcdClient, password: string): Promise<string> {
  return String((await unaryOk(c, 'Auth', 'Authenticate', { name: 'root', password }))['token']);
}

/**
 * Root's token through the client Service once it routes: the operator's Available comes from the
 * members themselves, and kube-proxy may route to a just-Ready pod a moment later (connection refused
 * until then; seen in a CI run). Any other answer than a refused connection fails at once.
 */
async function rootTokenWhenRouted(c: EtcdClient, password: string): Promise<string> {
  let token = '';
  await pollUntil(
    'root logs in through the client Service',
    async () => {
      const r = await c.unary('Auth', 'Authenticate', { name: 'root', password });
      if (r.ok) {
        token = String(r.value['token']);
        return true;
      }
      if (/ECONNREFUSED|No connection established/.test(r.details)) return false;
      throw new Error(`Authenticate through the client Service: ${r.details}`);
    },
    30_000,
    250,
  );
  return token;
}

async function clientIp(lk: LocalKube, ns: string): Promise<string> {
  return (await lk.kubectlOk(['get', 'service', '-n', ns, 'db-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
}

test('spec.auth on localkube: auth enabled from a Secret, the operator keeps working with its own user', { timeout: 8 * 60_000 }, async (t) => {
  if (!needLocalkube(t)) return;
  const lk = await localkube();
  await deployCheckoutOperator(lk, t);
  const ns = `auth-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  try {
    const t0 = Date.now();
    const pw = randomBytes(9).toString('base64url');
    await lk.apply(rootSecret(ns, pw));
    await lk.apply(clusterManifest(ns, 'db', 'Delete', { replicas: 1, auth: { rootSecretRef: { name: 'db-root' } }, extraArgs: ['--auth-token-ttl=3'] }));
    let st = await waitStatus(lk, ns, 'db', 'auth enabled, Available with 1 voter', (s) => asObj(s['auth'])['enabled'] === true && authReady('AuthEnabled')(s) && availableWith(1)(s), 180_000);
    t.diagnostic(`auth enabled and Available in ${String(Date.now() - t0)} ms: ${JSON.stringify(st['auth'])}`);
    assert.equal(asObj(st['auth'])['user'], 'cairn-operator');

    const c = new EtcdClient(`${await clientIp(lk, ns)}:2379`);
    try {
      const token = await rootTokenWhenRouted(c, pw);
      await unaryOk(c, 'KV', 'Put', { key: Buffer.from('k'), value: Buffer.from('v') }, { token });
      const anon = await c.unary('KV', 'Put', { key: Buffer.from('k'), value: Buffer.from('x') });
      assert.equal(anon.ok, false, 'an unauthenticated put is refused');
      if (!anon.ok) assert.match(anon.details, /user name is empty/);
      const wrong = await c.unary('Auth', 'Authenticate', { name: 'root', password: 'not-it' });
      assert.equal(wrong.ok, false);

      // Membership changes under auth, with tokens expiring between reconciles.
      const t1 = Date.now();
      await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'db', '--type=merge', '-p', '{"spec":{"replicas":3}}']);
      st = await waitStatus(lk, ns, 'db', 'Available with 3 voters under auth', availableWith(3), 240_000);
      const members = (st['members'] ?? []) as Obj[];
      t.diagnostic(`1 -> 3 under auth in ${String(Date.now() - t1)} ms; members ${JSON.stringify(members.map((m) => [m['name'], m['leader'], m['healthy']]))}`);
      assert.equal(members.length, 3);
      assert.equal(members.filter((m) => m['leader'] === true).length, 1, 'one leader reported (Status is root-only under auth)');
      assert.ok(members.every((m) => m['healthy'] === true));

      // A changed Secret becomes root's password.
      const pw2 = randomBytes(9).toString('base64url');
      await lk.apply(rootSecret(ns, pw2));
      const v2 = (await lk.kubectlOk(['get', 'secret', '-n', ns, 'db-root', '-o', 'jsonpath={.metadata.resourceVersion}'])).trim();
      await waitStatus(lk, ns, 'db', 'root password from the changed Secret', (s) => asObj(s['auth'])['rootSecretVersion'] === v2, 90_000);
      await rootToken(c, pw2);
      assert.equal((await c.unary('Auth', 'Authenticate', { name: 'root', password: pw })).ok, false, 'the old password no longer works');

      // Bad input 1: the root Secret deleted. Auth stays on, the operator keeps working with its own user.
      await lk.kubectlOk(['delete', 'secret', '-n', ns, 'db-root']);
      st = await waitStatus(lk, ns, 'db', 'AuthReady=False RootSecretMissing', authReady('RootSecretMissing'), 90_000);
      assert.match(condOf(st, 'AuthReady')?.message ?? '', new RegExp(`Secret ${ns}/db-root`));
      // Bad input 2: the operator's own credentials gone too, then a wrong root password.
      await lk.kubectlOk(['delete', 'secret', '-n', ns, 'db-operator-auth']);
      await waitStatus(lk, ns, 'db', 'the operator cannot log in: only root can restore it', (s) => /only root can restore it/.test(condOf(s, 'AuthReady')?.message ?? ''), 120_000);
      await lk.apply(rootSecret(ns, 'wrong-password'));
      st = await waitStatus(lk, ns, 'db', 'AuthReady=False RootPasswordRejected', authReady('RootPasswordRejected'), 150_000);
      const msg = condOf(st, 'AuthReady')?.message ?? '';
      t.diagnostic(`wrong password reported: ${msg}`);
      assert.match(msg, new RegExp(`root refuses the password in Secret ${ns}/db-root key password`));
      const delays: number[] = [];
      for (const m of msg.matchAll(/retrying in (\d+) s/g)) delays.push(Number(m[1]));
      assert.ok((delays[0] ?? 0) >= 5, `retried with backoff (${msg})`);
      // The right password: the operator's user is restored by root, the cluster serves status again.
      await lk.apply(rootSecret(ns, pw2));
      st = await waitStatus(lk, ns, 'db', 'AuthReady=True again, Available with 3', (s) => authReady('AuthEnabled')(s) && condOf(s, 'AuthReady')?.status === 'True' && availableWith(3)(s), 240_000);
      t.diagnostic(`recovered: ${condOf(st, 'AuthReady')?.message ?? ''}`);
      await rootToken(c, pw2);
    } finally {
      c.close();
    }
  } finally {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});
