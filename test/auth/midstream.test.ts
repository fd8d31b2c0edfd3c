// A role revoked while the user's streams are open, run against etcd 3.4.23 and Cairn: what the open
// watch, the open keepalive stream, a new watch on the same stream and a new call see afterwards must
// match. (etcd checks a watch's permission only when it is created and a keepalive never: streams
// opened before the revoke keep working; anything new is refused.) Also LeaseTimeToLive's check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient, openKeepAlive, openWatch, unaryOk, type Msg } from '../harness/client.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

const b = (s: string): Buffer => Buffer.from(s);

const must = unaryOk;

/** Next watch message: 'event <keys>' or a summary of a control message; 'nothing' if none within ms. */
async function nextWatch(w: ReturnType<typeof openWatch>, ms: number): Promise<string> {
  try {
    const m = await w.next(ms);
    const evs = (m['events'] as Msg[] | undefined) ?? [];
    if (evs.length > 0) return `event ${evs.map((e) => String((e['kv'] as Msg)['key'])).join(',')}`;
    return `created=${String(m['created'])} canceled=${String(m['canceled'])} reason=${String(m['cancel_reason'])}`;
  } catch (err) {
    return `nothing (${err instanceof Error ? err.message.replace(/\d+ ms/, 'N ms') : String(err)})`;
  }
}

async function scenario(srv: ServerProc): Promise<Record<string, string>> {
  const c = new EtcdClient(srv.endpoint);
  const obs: Record<string, string> = {};
  try {
    await must(c, 'Auth', 'UserAdd', { name: 'root', password: 'r' });
    await must(c, 'Auth', 'RoleAdd', { name: 'root' });
    await must(c, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    await must(c, 'Auth', 'RoleAdd', { name: 'w' });
    await must(c, 'Auth', 'RoleGrantPermission', { name: 'w', perm: { permType: 'READWRITE', key: b('w/'), range_end: b('w0') } });
    await must(c, 'Auth', 'UserAdd', { name: 'u', password: 'p' });
    await must(c, 'Auth', 'UserGrantRole', { user: 'u', role: 'w' });
    await must(c, 'Lease', 'LeaseGrant', { ID: '77', TTL: '60' });
    await must(c, 'KV', 'Put', { key: b('w/l'), value: b('x'), lease: '77' });
    await must(c, 'Auth', 'AuthEnable', {});
    const rootMd = { token: String((await must(c, 'Auth', 'Authenticate', { name: 'root', password: 'r' }))['token']) };
    const uMd = { token: String((await must(c, 'Auth', 'Authenticate', { name: 'u', password: 'p' }))['token']) };

    // TimeToLive: Cairn checks READ on the attached keys (etcd 3.5.9+); 3.4.23 checks nothing.
    const ttlNobody = await c.unary('Lease', 'LeaseTimeToLive', { ID: '77', keys: true });
    obs['ttl-nobody'] = ttlNobody.ok ? 'ok' : ttlNobody.details;

    const w = openWatch(c, { metadata: uMd });
    w.send({ create_request: { key: b('w/'), range_end: b('w0') } });
    obs['watch-created'] = await nextWatch(w, 5000);
    const ka = openKeepAlive(c, { metadata: uMd });
    await must(c, 'KV', 'Put', { key: b('w/1'), value: b('1') }, rootMd);
    obs['event-before'] = await nextWatch(w, 5000);
    ka.send({ ID: '77' });
    obs['keepalive-before'] = `TTL ${String((await ka.next(5000))['TTL'])}`;

    await must(c, 'Auth', 'UserRevokeRole', { name: 'u', role: 'w' }, rootMd);
    await must(c, 'KV', 'Put', { key: b('w/2'), value: b('2') }, rootMd);
    obs['event-after-revoke'] = await nextWatch(w, 3000);
    ka.send({ ID: '77' });
    obs['keepalive-after-revoke'] = `TTL ${String((await ka.next(5000))['TTL'])}`;
    w.send({ create_request: { key: b('w/'), range_end: b('w0') } });
    obs['new-watch-same-stream'] = await nextWatch(w, 5000);
    const r = await c.range({ key: b('w/1') }, { metadata: uMd });
    obs['range-after-revoke'] = r.ok ? 'ok' : r.details;
    const p = await c.put({ key: b('w/3'), value: b('3') }, { metadata: uMd });
    obs['put-after-revoke'] = p.ok ? 'ok' : p.details;
    const ttl = await c.unary('Lease', 'LeaseTimeToLive', { ID: '77', keys: true }, { metadata: uMd });
    obs['ttl-after-revoke'] = ttl.ok ? 'ok' : ttl.details;
    await must(c, 'KV', 'Put', { key: b('w/4'), value: b('4') }, rootMd);
    obs['event-later'] = await nextWatch(w, 3000);
    w.cancel();
    ka.cancel();
  } finally {
    c.close();
  }
  return obs;
}

test('a role revoked mid-stream: open watch and keepalive streams behave as in etcd 3.4.23', { timeout: 90_000 }, async () => {
  const flags = ['--bcrypt-cost', '4'];
  const [etcd, cairn] = await Promise.all([startEtcd({ extraArgs: flags }), startCairn({ extraArgs: flags })]);
  try {
    const [e, c] = await Promise.all([scenario(etcd), scenario(cairn)]);
    // Known difference (see the header): LeaseTimeToLive's permission check.
    assert.equal(e['ttl-nobody'], 'ok');
    assert.equal(c['ttl-nobody'], 'etcdserver: user name is empty');
    assert.equal(e['ttl-after-revoke'], 'ok');
    assert.equal(c['ttl-after-revoke'], 'etcdserver: permission denied');
    for (const k of ['ttl-nobody', 'ttl-after-revoke']) {
      delete e[k];
      delete c[k];
    }
    assert.deepEqual(c, e);
    // What etcd does, pinned: the open watch keeps delivering, the keepalive keeps renewing, a new
    // watch and new calls are refused.
    assert.equal(e['event-after-revoke'], 'event w/2');
    assert.equal(e['keepalive-after-revoke'], 'TTL 60');
    assert.match(e['new-watch-same-stream'] ?? '', /canceled=true reason=rpc error: code = PermissionDenied/);
    assert.equal(e['range-after-revoke'], 'etcdserver: permission denied');
    assert.equal(e['event-later'], 'event w/4');
  } finally {
    await Promise.all([etcd.stop(), cairn.stop()]);
  }
});
