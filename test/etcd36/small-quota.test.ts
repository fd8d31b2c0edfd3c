// A fresh member under --quota-backend-bytes of 13 pages (etcd's e2e TestCtlV3Alarm): the first small
// put is accepted, filling with page-sized values ends in NOSPACE and the alarm, and after compaction,
// defragmentation and disarming a small put is accepted again — on Cairn as on etcd 3.6.8. The quota
// counts Cairn's pages holding data (Backend.sizeInUseBytes); both servers' sizes are reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statusName, type CallResult, type EtcdClient, type Msg } from '../harness/client.js';
import { onEtcd36AndCairn } from '../harness/differential.js';

const PAGE_BYTES = 4096;
const QUOTA = 13 * PAGE_BYTES;
/** Puts of one page each before giving up (the quota is 13 pages). */
const FILL_PUTS_MAX = 64;

const answer = (r: CallResult<Msg>): string => (r.ok ? 'ok' : `${statusName(r.code)} ${r.details}`);

async function sizes(c: EtcdClient): Promise<string> {
  const st = await c.unary('Maintenance', 'Status', {});
  return st.ok ? `dbSize ${String(st.value['dbSize'])} inUse ${String(st.value['dbSizeInUse'])}` : answer(st);
}

async function alarmSteps(c: EtcdClient, report: string[]): Promise<string[]> {
  const out: string[] = [];
  report.push(`fresh: ${await sizes(c)}`);
  out.push(`small put: ${answer(await c.put({ key: Buffer.from('1st_test'), value: Buffer.alloc(64, 'a') }))}`);
  report.push(`after the first put: ${await sizes(c)}`);
  let last: CallResult<Msg> = { ok: false, code: -1, details: 'not tried' };
  let puts = 0;
  while (puts < FILL_PUTS_MAX) {
    last = await c.put({ key: Buffer.from('2nd_test'), value: Buffer.alloc(PAGE_BYTES, 'b') });
    if (!last.ok) break;
    puts++;
  }
  report.push(`page puts accepted before NOSPACE: ${puts}`);
  out.push(`filling ends with: ${answer(last)}`);
  const alarms = await c.unary('Maintenance', 'Alarm', { action: 'GET' });
  out.push(`alarms: ${alarms.ok ? JSON.stringify((alarms.value['alarms'] as Msg[]).map((a) => a['alarm'])) : answer(alarms)}`);
  out.push(`small put under the alarm: ${answer(await c.put({ key: Buffer.from('3rd_test'), value: Buffer.alloc(64, 'a') }))}`);
  const rev = await c.range({ key: Buffer.from('1st_test') });
  const current = rev.ok ? Number((rev.value['header'] as Msg)['revision']) : 0;
  out.push(`compact: ${answer(await c.compact({ revision: current, physical: true }))}`);
  out.push(`defragment: ${answer(await c.unary('Maintenance', 'Defragment', {}))}`);
  report.push(`after defragment: ${await sizes(c)}`);
  const members = await c.unary('Cluster', 'MemberList', {});
  const id = members.ok ? String(((members.value['members'] as Msg[])[0] ?? {})['ID']) : '0';
  out.push(`disarm: ${answer(await c.unary('Maintenance', 'Alarm', { action: 'DEACTIVATE', memberID: id, alarm: 'NOSPACE' }))}`);
  out.push(`small put after disarm: ${answer(await c.put({ key: Buffer.from('4th_test'), value: Buffer.alloc(64, 'a') }))}`);
  return out;
}

test('a 13-page --quota-backend-bytes: first put, NOSPACE, recovery as on etcd 3.6.8', async (t) => {
  const report: Record<string, string[]> = { etcd: [], cairn: [] };
  let which: 'etcd' | 'cairn' = 'etcd';
  const seen = await onEtcd36AndCairn(
    t,
    async (c) => {
      const out = await alarmSteps(c, report[which] ?? []);
      which = 'cairn';
      return out;
    },
    { extraArgs: ['--quota-backend-bytes', String(QUOTA)] },
  );
  if (seen === undefined) return;
  t.diagnostic(`etcd 3.6.8: ${(report['etcd'] ?? []).join('; ')}`);
  t.diagnostic(`cairn: ${(report['cairn'] ?? []).join('; ')}`);
  assert.deepEqual(seen.cairn, seen.etcd);
  assert.equal(seen.etcd[0], 'small put: ok');
});
