// The allow/deny matrix, differential: the same users and roles (read-only, write-only, readwrite on
// a range, a prefix, from-key, no role, root), the same tokens' worth of callers (plus no token and a
// bad token) and the same requests against the reference etcd 3.4.23 and Cairn, over raw gRPC. Every
// answer must match: the status code and etcd's text for refusals, a projection of the response
// (keys, values, counts, flags; no revisions or ids) for successes.
//
// Known differences, normalised here and pinned separately:
// - Maintenance calls refused for auth (root-only Defragment, Hash, HashKV; Alarm with a bad token):
//   etcd 3.4 returns the auth store's raw error as UNKNOWN "auth: permission denied" / "auth: user
//   name is empty" / "auth: invalid auth token"; Cairn returns etcd's converted errors
//   (PERMISSION_DENIED "etcdserver: permission denied", ...), as every other service does.
// - Status: etcd 3.4 answers any caller; Cairn refuses all but root as etcd 3.6 does (pinned against
//   etcd 3.6.8 in test/etcd36/status-auth.test.ts): etcd 3.6.8's answers are expected here.
// - LeaseTimeToLive is not compared: 3.4.23 checks nothing; Cairn checks READ on the attached keys
//   as etcd 3.5.9+/3.4.26+ do (pinned in midstream.test.ts).
// - A Txn nested in a Txn: 3.4.23 checks no permission for the inner Txn's operations (the outer one
//   with no compares or operations of its own then passes for anyone, even without a user); Cairn
//   checks them as etcd 3.5 does (the nested-Txn authorization fix). Pinned: refused for every
//   caller but root and rw (READWRITE on [b, d) covers the inner delete of c/9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient, openWatch, type CallResult, type Msg } from '../harness/client.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

const b = (s: string): Buffer => Buffer.from(s);
const READ = 'READ';
const WRITE = 'WRITE';
const READWRITE = 'READWRITE';

interface RoleDef {
  readonly name: string;
  readonly perms: readonly { permType: string; key: string; rangeEnd: string }[];
}

const ROLES: readonly RoleDef[] = [
  { name: 'ro', perms: [{ permType: READ, key: 'a/', rangeEnd: 'a0' }] },
  { name: 'wo', perms: [{ permType: WRITE, key: 'a/', rangeEnd: 'a0' }] },
  { name: 'rw', perms: [{ permType: READWRITE, key: 'b', rangeEnd: 'd' }] },
  { name: 'pre', perms: [{ permType: READWRITE, key: 'p/', rangeEnd: 'p0' }, { permType: READ, key: 'a/1', rangeEnd: '' }] },
  { name: 'fk', perms: [{ permType: READ, key: 'm', rangeEnd: '\0' }, { permType: WRITE, key: 'm/w', rangeEnd: '' }] },
];
/** Callers: users with the role of the same name, 'none' (a user without roles), root, and two without a valid token. */
const USERS = ['ro', 'wo', 'rw', 'pre', 'fk', 'none'];
const CALLERS = [...USERS, 'root', 'nobody', 'badtoken'];

type Projection = (v: Msg) => unknown;
interface Req {
  readonly name: string;
  readonly service: string;
  readonly method: string;
  readonly req: object;
  readonly project?: Projection;
  /** A Maintenance call: etcd 3.4 returns auth errors raw there (see the header comment). */
  readonly rawAuthErrors?: true;
  /** A Txn nested in a Txn (see the header comment). */
  readonly nestedTxn?: true;
  /** Root-only in etcd 3.6, open to all in 3.4 (see the header comment). */
  readonly rootOnlySince36?: true;
}

const kvs: Projection = (v) => ({ kvs: ((v['kvs'] as Msg[] | undefined) ?? []).map((kv) => `${String(kv['key'])}=${String(kv['value'])}`), count: v['count'], more: v['more'] });
const ok: Projection = () => 'ok';

function requests(caller: string): Req[] {
  const mine = `x/${caller}`;
  return [
    { name: 'range a/1', service: 'KV', method: 'Range', req: { key: b('a/1') }, project: kvs },
    { name: 'range a/ prefix', service: 'KV', method: 'Range', req: { key: b('a/'), range_end: b('a0') }, project: kvs },
    { name: 'range a/ sub-prefix', service: 'KV', method: 'Range', req: { key: b('a/1'), range_end: b('a/2') }, project: kvs },
    { name: 'range [b,c)', service: 'KV', method: 'Range', req: { key: b('b'), range_end: b('c') }, project: kvs },
    { name: 'range [b,e)', service: 'KV', method: 'Range', req: { key: b('b'), range_end: b('e') }, project: kvs },
    { name: 'range m from-key', service: 'KV', method: 'Range', req: { key: b('m'), range_end: b('\0') }, project: kvs },
    { name: 'range n from-key', service: 'KV', method: 'Range', req: { key: b('n'), range_end: b('\0') }, project: kvs },
    { name: 'range all', service: 'KV', method: 'Range', req: { key: b('\0'), range_end: b('\0'), keys_only: true }, project: kvs },
    { name: 'range serializable p/1', service: 'KV', method: 'Range', req: { key: b('p/1'), serializable: true }, project: kvs },
    { name: 'put a/1', service: 'KV', method: 'Put', req: { key: b('a/1'), value: b(`v-${caller}`) }, project: ok },
    { name: 'put a/1 prev_kv', service: 'KV', method: 'Put', req: { key: b('a/1'), value: b(`w-${caller}`), prev_kv: true }, project: ok },
    { name: 'put b/1', service: 'KV', method: 'Put', req: { key: b('b/1'), value: b(`v-${caller}`) }, project: ok },
    { name: 'put p/1 prev_kv', service: 'KV', method: 'Put', req: { key: b('p/1'), value: b(`v-${caller}`), prev_kv: true }, project: (v) => Buffer.from((v['prev_kv'] as Msg | null)?.['key'] as Buffer | undefined ?? []).toString() },
    { name: 'put m/w', service: 'KV', method: 'Put', req: { key: b('m/w'), value: b('1') }, project: ok },
    { name: 'put z/1', service: 'KV', method: 'Put', req: { key: b('z/1'), value: b('1') }, project: ok },
    { name: 'put with lease 1000 (keys a/lease)', service: 'KV', method: 'Put', req: { key: b('p/2'), value: b('1'), lease: '1000' }, project: ok },
    { name: 'delete b/9', service: 'KV', method: 'DeleteRange', req: { key: b('b/9') }, project: (v) => v['deleted'] },
    { name: 'delete [b/8,b/9) prev_kv', service: 'KV', method: 'DeleteRange', req: { key: b('b/8'), range_end: b('b/9'), prev_kv: true }, project: (v) => v['deleted'] },
    { name: 'delete a/ prefix of nothing', service: 'KV', method: 'DeleteRange', req: { key: b('a/none/'), range_end: b('a/none0') }, project: (v) => v['deleted'] },
    {
      name: 'txn compare a/1, put b/2',
      service: 'KV',
      method: 'Txn',
      req: { compare: [{ key: b('a/1'), target: 'VERSION', result: 'GREATER', version: '0' }], success: [{ request_put: { key: b('b/2'), value: b('t') } }], failure: [] },
      project: (v) => v['succeeded'],
    },
    { name: 'txn read-only range p/', service: 'KV', method: 'Txn', req: { compare: [], success: [{ request_range: { key: b('p/'), range_end: b('p0') } }], failure: [] }, project: (v) => v['succeeded'] },
    {
      name: 'txn nested delete prev_kv',
      service: 'KV',
      method: 'Txn',
      req: { compare: [], success: [{ request_txn: { compare: [], success: [{ request_delete_range: { key: b('c/9'), prev_kv: true } }], failure: [] } }], failure: [] },
      project: (v) => v['succeeded'],
      nestedTxn: true,
    },
    { name: 'txn failure branch put m/w', service: 'KV', method: 'Txn', req: { compare: [{ key: b('m/1'), target: 'VALUE', result: 'EQUAL', value: b('nope') }], success: [], failure: [{ request_put: { key: b('m/w'), value: b('f') } }] }, project: (v) => v['succeeded'] },
    { name: 'compact 1', service: 'KV', method: 'Compact', req: { revision: '1' }, project: ok },
    { name: 'lease grant', service: 'Lease', method: 'LeaseGrant', req: { TTL: '60' }, project: (v) => v['TTL'] },
    { name: 'lease revoke 3000 (no keys)', service: 'Lease', method: 'LeaseRevoke', req: { ID: '3000' }, project: ok },
    { name: 'lease revoke 1000 (key a/lease)', service: 'Lease', method: 'LeaseRevoke', req: { ID: '1000' }, project: ok },
    { name: 'lease revoke 2000 (key b/lease)', service: 'Lease', method: 'LeaseRevoke', req: { ID: '2000' }, project: ok },
    { name: 'lease leases', service: 'Lease', method: 'LeaseLeases', req: {}, project: ok },
    { name: 'status', service: 'Maintenance', method: 'Status', req: {}, project: ok, rootOnlySince36: true },
    { name: 'alarm get', service: 'Maintenance', method: 'Alarm', req: { action: 'GET' }, project: (v) => v['alarms'], rawAuthErrors: true },
    { name: 'alarm deactivate', service: 'Maintenance', method: 'Alarm', req: { action: 'DEACTIVATE', alarm: 'NOSPACE' }, project: ok, rawAuthErrors: true },
    { name: 'hashkv', service: 'Maintenance', method: 'HashKV', req: {}, project: ok, rawAuthErrors: true },
    { name: 'hash', service: 'Maintenance', method: 'Hash', req: {}, project: ok, rawAuthErrors: true },
    { name: 'defragment', service: 'Maintenance', method: 'Defragment', req: {}, project: ok, rawAuthErrors: true },
    { name: 'member list', service: 'Cluster', method: 'MemberList', req: {}, project: (v) => (v['members'] as unknown[]).length },
    { name: 'member update (unknown id)', service: 'Cluster', method: 'MemberUpdate', req: { ID: '1', peerURLs: ['http://127.0.0.1:1'] } },
    { name: 'user get self', service: 'Auth', method: 'UserGet', req: { name: caller }, project: (v) => v['roles'] },
    { name: 'user get rw', service: 'Auth', method: 'UserGet', req: { name: 'rw' }, project: (v) => v['roles'] },
    { name: 'user list', service: 'Auth', method: 'UserList', req: {}, project: (v) => v['users'] },
    { name: 'role get own', service: 'Auth', method: 'RoleGet', req: { role: caller }, project: (v) => v['perm'] },
    { name: 'role get rw', service: 'Auth', method: 'RoleGet', req: { role: 'rw' }, project: (v) => v['perm'] },
    { name: 'role list', service: 'Auth', method: 'RoleList', req: {}, project: (v) => v['roles'] },
    { name: 'user add', service: 'Auth', method: 'UserAdd', req: { name: mine, password: 'pw' }, project: ok },
    { name: 'role add', service: 'Auth', method: 'RoleAdd', req: { name: mine }, project: ok },
    { name: 'role grant permission', service: 'Auth', method: 'RoleGrantPermission', req: { name: mine, perm: { permType: READ, key: b('q'), range_end: b('') } }, project: ok },
    { name: 'user grant role', service: 'Auth', method: 'UserGrantRole', req: { user: mine, role: mine }, project: ok },
    { name: 'user change password', service: 'Auth', method: 'UserChangePassword', req: { name: mine, password: 'pw2' }, project: ok },
  ];
}

/** etcd 3.4's raw auth errors from the Maintenance service, as Cairn answers them. */
const RAW_AUTH_AS_CAIRN: Readonly<Record<string, { code: number; details: string }>> = {
  'auth: permission denied': { code: 7, details: 'etcdserver: permission denied' },
  'auth: user name is empty': { code: 3, details: 'etcdserver: user name is empty' },
  'auth: invalid auth token': { code: 16, details: 'etcdserver: invalid auth token' },
};

type Answer = { ok: true; v: unknown } | { ok: false; code: number; details: string };

/** etcd 3.6.8's refusal of a root-only call to a caller without a user or with a bad token (else permission denied). */
const ETCD36_ADMIN_REFUSAL: Readonly<Record<string, Answer>> = {
  nobody: { ok: false, code: 3, details: 'etcdserver: user name is empty' },
  badtoken: { ok: false, code: 16, details: 'etcdserver: invalid auth token' },
};

function answer(r: CallResult<Msg>, project: Projection | undefined): Answer {
  if (!r.ok) return { ok: false, code: r.code, details: r.details };
  return { ok: true, v: project === undefined ? 'ok' : JSON.parse(JSON.stringify(project(r.value))) as unknown };
}

async function setup(c: EtcdClient): Promise<Map<string, Record<string, string>>> {
  const must = async (service: string, method: string, req: object): Promise<Msg> => {
    const r = await c.unary(service, method, req);
    if (!r.ok) throw new Error(`${service}.${method} ${JSON.stringify(req)}: ${r.details}`);
    return r.value;
  };
  await must('Auth', 'UserAdd', { name: 'root', password: 'rootpw' });
  await must('Auth', 'RoleAdd', { name: 'root' });
  await must('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  for (const r of ROLES) {
    await must('Auth', 'RoleAdd', { name: r.name });
    for (const p of r.perms) await must('Auth', 'RoleGrantPermission', { name: r.name, perm: { permType: p.permType, key: b(p.key), range_end: b(p.rangeEnd) } });
  }
  for (const u of USERS) {
    await must('Auth', 'UserAdd', { name: u, password: 'pw' });
    if (u !== 'none') await must('Auth', 'UserGrantRole', { user: u, role: u });
  }
  for (const k of ['a/1', 'a/2', 'b/1', 'b/8', 'c/1', 'c/9', 'm/1', 'p/1', 'z/1']) await must('KV', 'Put', { key: b(k), value: b(`init-${k}`) });
  for (const [id, key] of [['1000', 'a/lease'], ['2000', 'b/lease'], ['3000', '']] as const) {
    await must('Lease', 'LeaseGrant', { ID: id, TTL: '600' });
    if (key !== '') await must('KV', 'Put', { key: b(key), value: b('l'), lease: id });
  }
  await must('Auth', 'AuthEnable', {});
  const md = new Map<string, Record<string, string>>();
  for (const u of [...USERS, 'root']) {
    const v = await must('Auth', 'Authenticate', { name: u, password: u === 'root' ? 'rootpw' : 'pw' });
    md.set(u, { token: String(v['token']) });
  }
  md.set('nobody', {});
  md.set('badtoken', { token: 'notAToken' });
  return md;
}

async function watchCreate(c: EtcdClient, md: Record<string, string>, key: string, rangeEnd: string): Promise<unknown> {
  const w = openWatch(c, { metadata: md });
  try {
    w.send({ create_request: { key: b(key), range_end: b(rangeEnd) } });
    const r = await w.next(5000);
    return { created: r['created'], canceled: r['canceled'], cancel_reason: r['cancel_reason'], watch_id: r['watch_id'] };
  } finally {
    w.cancel();
  }
}

test('allow/deny matrix per role: Cairn answers as etcd 3.4.23', { timeout: 110_000 }, async () => {
  const flags = ['--bcrypt-cost', '4'];
  const [etcd, cairn]: [ServerProc, ServerProc] = await Promise.all([startEtcd({ extraArgs: flags }), startCairn({ extraArgs: flags })]);
  const ce = new EtcdClient(etcd.endpoint);
  const cc = new EtcdClient(cairn.endpoint);
  let denied = 0;
  let allowed = 0;
  try {
    const [mdE, mdC] = await Promise.all([setup(ce), setup(cc)]);
    for (const caller of CALLERS) {
      const metaE = mdE.get(caller) ?? {};
      const metaC = mdC.get(caller) ?? {};
      for (const r of requests(caller)) {
        const what = `${caller}: ${r.name}`;
        const [e, c] = await Promise.all([ce.unary(r.service, r.method, r.req, { metadata: metaE }), cc.unary(r.service, r.method, r.req, { metadata: metaC })]);
        let want = answer(e, r.project);
        if (r.rawAuthErrors === true && !want.ok && want.code === 2) {
          const mapped = RAW_AUTH_AS_CAIRN[want.details];
          assert.ok(mapped !== undefined, `${what}: unexpected etcd answer ${want.details}`);
          want = { ok: false, ...mapped };
        }
        if (r.nestedTxn === true && !['root', 'rw', 'badtoken'].includes(caller)) {
          assert.deepEqual(want, { ok: true, v: true }, `${what}: etcd 3.4.23 lets a nested Txn through`);
          want = caller === 'nobody' ? { ok: false, code: 3, details: 'etcdserver: user name is empty' } : { ok: false, code: 7, details: 'etcdserver: permission denied' };
        }
        if (r.rootOnlySince36 === true && caller !== 'root') {
          assert.deepEqual(want, { ok: true, v: 'ok' }, `${what}: etcd 3.4.23 answers Status to anyone`);
          want = ETCD36_ADMIN_REFUSAL[caller] ?? { ok: false, code: 7, details: 'etcdserver: permission denied' };
        }
        assert.deepEqual(answer(c, r.project), want, what);
        if (want.ok) allowed++;
        else denied++;
      }
      for (const [key, end] of [['a/', 'a0'], ['b', 'c'], ['m', '\0'], ['p/1', '']] as const) {
        const [e, c] = await Promise.all([watchCreate(ce, metaE, key, end), watchCreate(cc, metaC, key, end)]);
        assert.deepEqual(c, e, `${caller}: watch create [${key}, ${JSON.stringify(end)})`);
      }
    }
    // The matrix must exercise both outcomes plenty (a broken setup would make everything fail alike).
    assert.ok(allowed > 60 && denied > 150, `allowed ${allowed}, denied ${denied}`);
  } finally {
    ce.close();
    cc.close();
    await Promise.all([etcd.stop(), cairn.stop()]);
  }
});
