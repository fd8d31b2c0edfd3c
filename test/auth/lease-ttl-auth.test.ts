// LeaseTimeToLive under auth, on Cairn and on etcd 3.4 and 3.6 (etcd's tests/common
// TestAuthLeaseTimeToLive): a user may ask the TTL of a lease attached to a key it cannot read as
// long as it does not ask for the keys (etcd 3.6: "without --keys, access should be allowed"); with
// keys it is refused ("permission denied") by etcd 3.6 and Cairn, while etcd 3.4.23 checks nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient, authRootAndUser, unaryOk } from '../harness/client.js';
import { startCairn, startEtcd } from '../harness/procs.js';
import { TARGETS, clusterOpts } from '../membership/lib.js';

const b = (s: string): Buffer => Buffer.from(s);
const must = unaryOk;

for (const t of TARGETS) {
  test(`${t.label}: LeaseTimeToLive of a lease on a key the user cannot read: allowed without keys`, { timeout: 60_000 }, async (tc) => {
    const opts = clusterOpts(tc, t, { size: 1 });
    if (opts === undefined) return;
    const srv = t.kind === 'cairn' ? await startCairn() : await startEtcd(opts.etcdBin !== undefined ? { etcdBin: opts.etcdBin } : {});
    const c = new EtcdClient(srv.endpoint);
    try {
      const { rootMd, uMd } = await authRootAndUser(c, b('foo'), b(''));
      const id = String((await must(c, 'Lease', 'LeaseGrant', { TTL: '60' }, uMd))['ID']);
      await must(c, 'KV', 'Put', { key: b('foo'), value: b('bar'), lease: id }, uMd);
      const ttl = async (keys: boolean): Promise<string> => {
        const r = await c.unary('Lease', 'LeaseTimeToLive', { ID: id, keys }, { metadata: uMd });
        return r.ok ? `ok keys=${String(((r.value['keys'] as unknown[] | undefined) ?? []).length)}` : r.details;
      };
      assert.equal(await ttl(true), 'ok keys=1', 'the lease holds only foo, which u may read');
      await must(c, 'KV', 'Put', { key: b('bar'), value: b('foo'), lease: id }, rootMd);
      const withKeys = await ttl(true);
      const withoutKeys = await ttl(false);
      assert.equal(withKeys, t.label === 'etcd-3.4' ? 'ok keys=2' : 'etcdserver: permission denied', 'with keys: bar is not readable by u');
      assert.equal(withoutKeys, 'ok keys=0', 'without keys: allowed');
    } finally {
      c.close();
      await srv.stop();
    }
  });
}
