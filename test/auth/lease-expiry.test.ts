// With auth enabled, an expired lease is revoked and its keys deleted, as etcd does (etcd revokes
// expired leases as root: authStore.WithRoot). Cairn once proposed the revoke without a user, the
// permission check at apply refused it ("user name is empty") and the lease never went: its key was
// still there 13 s after a 2 s lease and TimeToLive said remaining -1 s. Run on Cairn and on etcd
// 3.4 and 3.6 (the oracle): the key of a user's 2 s lease is deleted within a few seconds, and
// TimeToLive then answers TTL -1 (lease not found).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient, authRootAndUser, unaryOk } from '../harness/client.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { TARGETS, clusterOpts } from '../membership/lib.js';

const b = (s: string): Buffer => Buffer.from(s);
const must = unaryOk;
const LEASE_TTL_S = 2;
/** etcd deletes the key within ~3 s of the grant (TTL + its 500 ms expiry check + a commit). */
const GONE_WITHIN_MS = 6_000;

interface Observed {
  readonly keyGone: boolean;
  readonly ttlAfter: string;
  readonly otherKeyKept: boolean;
}

async function scenario(srv: ServerProc): Promise<{ obs: Observed; goneAfterMs: number }> {
  const c = new EtcdClient(srv.endpoint);
  try {
    const { rootMd, uMd } = await authRootAndUser(c, b('e/'), b('e0'));

    const granted = Date.now();
    const lease = await must(c, 'Lease', 'LeaseGrant', { TTL: String(LEASE_TTL_S) }, uMd);
    const id = String(lease['ID']);
    await must(c, 'KV', 'Put', { key: b('e/leased'), value: b('x'), lease: id }, uMd);
    await must(c, 'KV', 'Put', { key: b('e/plain'), value: b('y') }, uMd);

    const count = async (key: string): Promise<number> => {
      const r = await must(c, 'KV', 'Range', { key: b(key) }, rootMd);
      return Number((r)['count'] ?? 0);
    };
    let keyGone = true;
    await pollUntil('the leased key deleted', async () => (await count('e/leased')) === 0, GONE_WITHIN_MS + 4_000, 100).catch(() => {
      keyGone = false;
    });
    const goneAfterMs = Date.now() - granted;
    const ttl = await c.unary('Lease', 'LeaseTimeToLive', { ID: id }, { metadata: rootMd });
    const ttlAfter = ttl.ok ? `TTL ${String(ttl.value['TTL'])}` : ttl.details;
    return { obs: { keyGone, ttlAfter, otherKeyKept: (await count('e/plain')) === 1 }, goneAfterMs };
  } finally {
    c.close();
  }
}

const ETCD: Observed = { keyGone: true, ttlAfter: 'TTL -1', otherKeyKept: true };

for (const t of TARGETS) {
  test(`${t.label}: with auth enabled, a user's expired ${String(LEASE_TTL_S)} s lease is revoked and its key deleted`, { timeout: 60_000 }, async (tc) => {
    const opts = clusterOpts(tc, t, { size: 1 });
    if (opts === undefined) return;
    const srv = t.kind === 'cairn' ? await startCairn() : await startEtcd(opts.etcdBin !== undefined ? { etcdBin: opts.etcdBin } : {});
    try {
      const { obs, goneAfterMs } = await scenario(srv);
      assert.deepEqual(obs, ETCD, `${t.label}; server log tail:\n${srv.stderrLines().slice(-10).join('\n')}`);
      assert.ok(goneAfterMs < GONE_WITHIN_MS, `the leased key went ${goneAfterMs} ms after the grant (etcd: ~3 s)`);
    } finally {
      await srv.stop();
    }
  });
}
