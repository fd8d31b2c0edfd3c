// --metrics=extensive adds go-grpc-prometheus's handling-time histogram (grpc_server_handling_seconds)
// per method, as etcd's flag does; without it the family is absent (etcd: basic).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runEtcdctl, startCairn, startEtcd, type ServerProc } from '../harness/procs.js';
import { labelNames, parseMetrics, sumOf, type Family } from './promtext.js';

const FAMILY = 'grpc_server_handling_seconds';
const PUT = { grpc_service: 'etcdserverpb.KV', grpc_method: 'Put', grpc_type: 'unary' };

async function scrape(p: ServerProc): Promise<Map<string, Family>> {
  const res = await fetch(`${p.clientUrl}/metrics`);
  assert.equal(res.status, 200);
  return parseMetrics(await res.text());
}

async function puts(p: ServerProc, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await runEtcdctl(['--endpoints', p.endpoint, 'put', `k${i}`, 'v']);
    assert.equal(r.exit, 0, r.stderr);
  }
}

test('--metrics=extensive: grpc_server_handling_seconds per method, counting calls (as etcd); absent by default', async () => {
  const servers = await Promise.all([
    startEtcd({ extraArgs: ['--metrics=extensive'] }),
    startCairn({ extraArgs: ['--metrics=extensive'] }),
    startCairn(),
  ]);
  const [etcd, cairn, basic] = servers;
  try {
    if (etcd === undefined || cairn === undefined || basic === undefined) throw new Error('servers');
    const shapes: string[][] = [];
    for (const p of [etcd, cairn]) {
      const before = await scrape(p);
      const countBefore = before.has(FAMILY) ? sumOf(before, FAMILY, PUT, `${FAMILY}_count`) : 0;
      await puts(p, 3);
      const after = await scrape(p);
      const f = after.get(FAMILY);
      assert.ok(f !== undefined, `${p.name}: ${FAMILY} present`);
      assert.equal(f.type, 'histogram');
      assert.equal(sumOf(after, FAMILY, PUT, `${FAMILY}_count`) - countBefore, 3, `${p.name}: three Put calls observed`);
      assert.ok(sumOf(after, FAMILY, PUT, `${FAMILY}_sum`) > 0);
      const inf = sumOf(after, FAMILY, { ...PUT, le: '+Inf' }, `${FAMILY}_bucket`);
      assert.equal(inf, sumOf(after, FAMILY, PUT, `${FAMILY}_count`), '+Inf bucket = count');
      shapes.push(labelNames(f));
    }
    assert.deepEqual(shapes[1], shapes[0], 'same label names as etcd');
    await puts(basic, 1);
    assert.equal((await scrape(basic)).has(FAMILY), false, 'basic metrics have no handling histogram');
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
});
