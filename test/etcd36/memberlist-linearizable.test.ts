// MemberList's `linearizable` field (etcd 3.6): a linearizable list waits for a ReadIndex (so it needs
// a quorum), a plain one is the member's own view. On three members with two of them stopped, the
// remaining member answers the plain list and cannot answer the linearizable one — on Cairn as on
// etcd 3.6.8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refBinOrSkip } from '../harness/bins.js';
import { statusName, type CallResult, type Msg } from '../harness/client.js';
import { withCluster } from '../harness/cluster.js';

/** The client's deadline for the linearizable list without a quorum. */
const NO_QUORUM_DEADLINE_MS = 3000;

/**
 * An answer: the member count, or 'refused'. How a linearizable read without a quorum fails is the
 * node's (not MemberList's): etcd 3.6.8 waits until the client's deadline (DEADLINE_EXCEEDED), Cairn
 * refuses as soon as its ReadIndex cannot be served (UNAVAILABLE, e.g. 'etcdserver: leader changed'),
 * as for Range; both answers are in the test's diagnostics.
 */
const answer = (r: CallResult<Msg>): string => (r.ok ? `ok, ${(r.value['members'] as unknown[]).length} members` : 'refused');

test('MemberList linearizable: answered with a quorum, not without one (Cairn and etcd 3.6.8)', async (t) => {
  const etcdBin = refBinOrSkip(t, 'etcd-3.6');
  if (etcdBin === undefined) return;
  const seen: Record<string, string[]> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    seen[kind] = await withCluster(kind, { size: 3, etcdBin }, async (c) => {
      const [a, b, last] = c.members.map((m) => m.name);
      if (a === undefined || b === undefined || last === undefined) throw new Error('three members expected');
      const cl = c.client(last);
      const out = [`linearizable, quorum: ${answer(await cl.unary('Cluster', 'MemberList', { linearizable: true }))}`];
      await c.stop(a);
      await c.stop(b);
      out.push(`plain, no quorum: ${answer(await cl.unary('Cluster', 'MemberList', {}))}`);
      const refused = await cl.unary('Cluster', 'MemberList', { linearizable: true }, { timeoutMs: NO_QUORUM_DEADLINE_MS });
      out.push(`linearizable, no quorum: ${answer(refused)}`);
      t.diagnostic(`${kind}: linearizable list without a quorum: ${refused.ok ? 'ok' : `${statusName(refused.code)} ${refused.details}`}`);
      return out;
    });
  }
  t.diagnostic(`etcd 3.6.8: ${(seen['etcd'] ?? []).join(' / ')}`);
  assert.deepEqual(seen['cairn'], seen['etcd']);
  assert.notEqual(seen['etcd']?.[2], 'linearizable, no quorum: ok, 3 members');
});
