// The auth manager (operator/controller/auth.ts) against a real Cairn server with simple tokens that
// expire after 1 s (--auth-token-ttl=1) and an in-memory Secret store in place of the Kubernetes
// API: enabling from the root Secret, the operator's own user and its token renewed after expiry,
// a changed Secret becoming root's password, bad input (a missing Secret, a wrong root password with
// the operator's credentials lost) reported with a backoff that makes no call before it runs out,
// recovery, and disabling when spec.auth goes away. Plus withAuth (the status merge) and EtcdAccess.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCairn, type ServerProc } from '../harness/procs.js';
import { AuthManager, OPERATOR_USER, operatorSecretName, type AuthOutcome } from '../../operator/controller/auth.js';
import { withAuth } from '../../operator/controller/controller.js';
import { EtcdAccess, EtcdAdmin, EtcdCallError } from '../../operator/etcd/index.js';
import { KubeError, type KubeRest } from '../../operator/kube/index.js';
import { SnapshotSource } from '../../operator/backup/index.js';
import type { SnapshotResponse } from '../../proto/gen/etcdserverpb.js';
import { withDefaults, type EtcdCluster, type EtcdClusterStatus, type JsonObject } from '../../operator/api/index.js';

class FakeSecrets {
  readonly store = new Map<string, JsonObject>();
  gets = 0;
  private rv = 100;
  put(ns: string, name: string, data: Record<string, string>): void {
    this.rv++;
    const enc = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    this.store.set(`/api/v1/namespaces/${ns}/secrets/${name}`, { metadata: { name, namespace: ns, resourceVersion: String(this.rv) }, data: enc });
  }
  del(ns: string, name: string): void {
    this.store.delete(`/api/v1/namespaces/${ns}/secrets/${name}`);
  }
  rest(): KubeRest {
    return {
      get: (path: string): Promise<JsonObject> => {
        this.gets++;
        const s = this.store.get(path);
        return s === undefined ? Promise.reject(new KubeError('GET', path, 404, 'NotFound', 'not found')) : Promise.resolve(s);
      },
      apply: (path: string, o: JsonObject): Promise<JsonObject> => {
        const m = o['metadata'] as { name: string; namespace: string };
        const data = (o['data'] ?? {}) as Record<string, string>;
        this.put(m.namespace, m.name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])));
        return Promise.resolve(this.store.get(path) ?? {});
      },
    } as unknown as KubeRest;
  }
}

function cluster(auth: boolean, status?: EtcdClusterStatus): EtcdCluster {
  const c: EtcdCluster = {
    apiVersion: 'cairn.dev/v1alpha1',
    kind: 'EtcdCluster',
    metadata: { name: 'db', namespace: 'ns', uid: 'u-1', generation: 1 },
    spec: withDefaults(auth ? { auth: { rootSecretRef: { name: 'root' } } } : {}),
  };
  if (status !== undefined) c.status = status;
  return c;
}

const statusAfter = (s: EtcdClusterStatus, o: AuthOutcome): EtcdClusterStatus => withAuth(s, o, new Date().toISOString(), 1);

describe('auth manager on a real server (simple tokens, --auth-token-ttl=1)', () => {
  let srv: ServerProc;
  before(async () => {
    srv = await startCairn({ extraArgs: ['--auth-token-ttl=1'] });
  });
  after(async () => {
    await srv.stop();
  });

  it('enables auth from the Secret, keeps working with its own user, reports bad input with backoff, recovers, disables', async () => {
    const secrets = new FakeSecrets();
    let clock = 1_000_000;
    const m = new AuthManager(secrets.rest(), () => clock);
    const eps = [srv.endpoint];

    // No Secret: reported, nothing enabled, retried only after the backoff.
    let out = await m.prepare(cluster(true), eps);
    assert.equal(out.condition?.reason, 'RootSecretMissing');
    assert.match(out.condition?.message ?? '', /Secret ns\/root .* does not exist; retrying in 5 s/);
    assert.equal(out.block, false);
    assert.equal(out.requeueMs, 5000);
    const gets = secrets.gets;
    out = await m.prepare(cluster(true), eps);
    assert.equal(secrets.gets, gets, 'nothing tried again before the backoff ran out');
    assert.equal(out.condition?.reason, 'RootSecretMissing');

    // The Secret appears: root, the operator's user, auth enable.
    secrets.put('ns', 'root', { password: 'pw-1' });
    clock += 5000;
    out = await m.prepare(cluster(true), eps);
    assert.equal(out.condition?.reason, 'AuthEnabled', JSON.stringify(out));
    assert.equal(out.status?.enabled, true);
    assert.equal(out.status?.user, OPERATOR_USER);
    assert.ok(secrets.store.has(`/api/v1/namespaces/ns/secrets/${operatorSecretName('db')}`));
    let st = statusAfter({}, out);
    assert.equal(st.conditions?.find((c) => c.type === 'AuthReady')?.status, 'True');

    const anon = new EtcdAdmin(srv.endpoint, 3000, new EtcdAccess(undefined));
    try {
      await assert.rejects(anon.put('k', 'v'), (e: unknown) => e instanceof EtcdCallError && /user name is empty/.test(e.details));
      assert.equal(typeof (await anon.authenticate('root', 'pw-1')), 'string', 'root logs in with the Secret\'s password');
    } finally {
      anon.close();
    }
    // The operator's calls, tokens expiring between them (registered for the endpoint: a plain EtcdAdmin uses it).
    const op = new EtcdAdmin(srv.endpoint, 3000);
    try {
      assert.ok(op.access !== undefined, 'the access is registered for the endpoint');
      const s1 = await op.status();
      assert.ok(s1.leader !== '0');
      const before = op.access.authentications;
      await new Promise((r) => setTimeout(r, 1600));
      await op.status();
      await op.put('k', 'v');
      assert.equal(op.access.authentications, before + 1, 'one new login after the token expired');
    } finally {
      op.close();
    }

    // The backup's snapshot stream under auth: Status and Snapshot are root-only; the token rides on the channel credentials.
    const access = new EtcdAdmin(srv.endpoint, 3000).access;
    assert.ok(access !== undefined);
    const bare = new SnapshotSource(srv.endpoint);
    const src = new SnapshotSource(srv.endpoint, access.callChannelCredentials(() => new EtcdAdmin(srv.endpoint, 3000, access)));
    try {
      await assert.rejects(bare.status(), /user name is empty/);
      assert.ok((await src.status()).revision > 0);
      let bytes = 0;
      for await (const m of src.snapshot()) bytes += (m as SnapshotResponse).blob.length;
      assert.ok(bytes > 0, 'the snapshot streams under auth');
    } finally {
      src.close();
      bare.close();
    }

    // A changed Secret becomes root's password.
    secrets.put('ns', 'root', { password: 'pw-2' });
    out = await m.prepare(cluster(true, st), eps);
    st = statusAfter(st, out);
    assert.equal(st.auth?.rootSecretVersion, '103');
    const probe = new EtcdAdmin(srv.endpoint, 3000, new EtcdAccess(undefined));
    try {
      assert.equal(typeof (await probe.authenticate('root', 'pw-2')), 'string');
      await assert.rejects(probe.authenticate('root', 'pw-1'), /authentication failed/);
    } finally {
      probe.close();
    }

    // The operator's credentials lost and a wrong root password: blocked, reported, backoff.
    secrets.del('ns', operatorSecretName('db'));
    secrets.put('ns', 'root', { password: 'wrong' });
    out = await m.prepare(cluster(true, st), eps);
    assert.equal(out.block, true);
    assert.equal(out.condition?.reason, 'RootPasswordRejected');
    assert.match(out.condition?.message ?? '', /root refuses the password in Secret ns\/root key password .*retrying in 5 s/);
    st = statusAfter(st, out);
    const g2 = secrets.gets;
    out = await m.prepare(cluster(true, st), eps);
    assert.equal(out.block, true);
    assert.equal(secrets.gets, g2, 'no new attempt inside the backoff');
    clock += 5000;
    out = await m.prepare(cluster(true, st), eps);
    assert.match(out.condition?.message ?? '', /retrying in 10 s/, 'the backoff grows');

    // The right password: root restores the operator's user.
    secrets.put('ns', 'root', { password: 'pw-2' });
    clock += 10_000;
    out = await m.prepare(cluster(true, st), eps);
    assert.equal(out.block, false, JSON.stringify(out));
    assert.equal(out.condition?.status, 'True');
    st = statusAfter(st, out);
    const op2 = new EtcdAdmin(srv.endpoint, 3000);
    try {
      await op2.status();
    } finally {
      op2.close();
    }

    // spec.auth removed: auth disabled with the operator's user.
    out = await m.prepare(cluster(false, st), eps);
    assert.equal(out.status?.enabled, false);
    st = statusAfter(st, out);
    assert.equal(st.conditions?.find((c) => c.type === 'AuthReady'), undefined);
    const plain = new EtcdAdmin(srv.endpoint, 3000, new EtcdAccess(undefined));
    try {
      await plain.put('k', 'after');
    } finally {
      plain.close();
    }
  });
});

describe('withAuth and EtcdAccess (pure)', () => {
  it('keeps the transition time while the condition says the same', () => {
    const a: AuthOutcome = { access: undefined, block: false, status: { enabled: true, user: OPERATOR_USER }, condition: { status: 'True', reason: 'AuthEnabled', message: 'm' } };
    const s1 = withAuth({}, a, '2026-01-01T00:00:00Z', 1);
    const s2 = withAuth({ conditions: [] }, a, '2026-01-01T00:01:00Z', 1, s1);
    assert.equal(s2.conditions?.find((c) => c.type === 'AuthReady')?.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.deepEqual(s2.auth, { enabled: true, user: OPERATOR_USER });
    const s3 = withAuth({ conditions: [] }, { access: undefined, block: false }, '2026-01-01T00:02:00Z', 1, s2);
    assert.equal(s3.conditions?.find((c) => c.type === 'AuthReady')?.status, 'True', 'carried when the manager says nothing');
  });

  it('authenticates once for concurrent callers and again after forget', async () => {
    let calls = 0;
    const via = { authenticate: (): Promise<string> => Promise.resolve(`t${String(++calls)}`) };
    const a = new EtcdAccess({ user: 'u', password: 'p' });
    const [x, y] = await Promise.all([a.token(via), a.token(via)]);
    assert.equal(x, 't1');
    assert.equal(y, 't1');
    a.forget('t1');
    assert.equal(await a.token(via), 't2');
    assert.equal(await new EtcdAccess(undefined).token(via), undefined);
  });
});
