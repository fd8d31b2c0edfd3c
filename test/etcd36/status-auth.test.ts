// Maintenance.Status (and the other calls etcd 3.4 let any user make: Alarm, MemberList) while auth
// is enabled, as root, as a user without the root role, without a token and with a bad token — on
// Cairn as on etcd 3.6.8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authRootAndUser, statusName, type CallResult, type EtcdClient, type Msg } from '../harness/client.js';
import { onEtcd36AndCairn } from '../harness/differential.js';

const answer = (r: CallResult<Msg>): string => (r.ok ? 'ok' : `${statusName(r.code)} ${r.details}`);

async function steps(c: EtcdClient): Promise<string[]> {
  const { rootMd, uMd } = await authRootAndUser(c, Buffer.from('a'), Buffer.from('b'));
  const out: string[] = [];
  const callers: [string, Record<string, string>][] = [
    ['root', rootMd],
    ['user', uMd],
    ['no token', {}],
    ['bad token', { token: 'bad.1' }],
  ];
  for (const [who, md] of callers) {
    out.push(`Status as ${who}: ${answer(await c.unary('Maintenance', 'Status', {}, { metadata: md }))}`);
    out.push(`Alarm GET as ${who}: ${answer(await c.unary('Maintenance', 'Alarm', { action: 'GET' }, { metadata: md }))}`);
    out.push(`MemberList as ${who}: ${answer(await c.unary('Cluster', 'MemberList', {}, { metadata: md }))}`);
  }
  return out;
}

test('Status, Alarm and MemberList under auth: the same answers on Cairn and etcd 3.6.8', async (t) => {
  const seen = await onEtcd36AndCairn(t, steps);
  if (seen === undefined) return;
  t.diagnostic(`etcd 3.6.8: ${seen.etcd.join(' / ')}`);
  assert.deepEqual(seen.cairn, seen.etcd);
});
