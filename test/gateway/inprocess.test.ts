// The gateway in process, over real loopback HTTP, with stand-in handlers on etcd's method paths:
// what a stream that fails writes (grpc-gateway v1's StreamError chunk, the HTTP status from the
// code only when nothing was sent yet), a handler's non-gRPC error (Unknown, 500), a method nobody
// registered (Unimplemented, 501), the metadata a handler sees (Authorization, Grpc-Metadata-*),
// and a streaming request body sent one byte per write.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { GrpcError, GrpcServer, Status } from '../../server/api/grpc/index.js';
import { softFileLimit } from '../../server/api/http/debugvars.js';
import { Listeners } from '../../server/api/listen.js';
import { GatewayCodec, createHttpHandlers } from '../../server/api/http/index.js';
import { pollUntil } from '../harness/poll.js';

const codec = GatewayCodec.load();
const types = (path: string): NonNullable<ReturnType<GatewayCodec['methodTypes']>> => {
  const t = codec.methodTypes(path);
  assert.ok(t !== undefined, path);
  return t;
};
const SNAPSHOT = types('/etcdserverpb.Maintenance/Snapshot');
const WATCH = types('/etcdserverpb.Watch/Watch');
const RANGE = types('/etcdserverpb.KV/Range');

let listeners: Listeners;
let base: string;
const watchSeen: string[] = [];
const healthOutcomes: boolean[] = [];

before(async () => {
  const grpc = new GrpcServer({ maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 30 });
  const blob = (s: string): Uint8Array => SNAPSHOT.response.encode(SNAPSHOT.response.fromObject({ blob: Buffer.from(s), remaining_bytes: '1' })).finish();
  grpc.serverStream('/etcdserverpb.Maintenance/Snapshot', (_req, out) => {
    out.send(blob('a'));
    out.send(blob('b'));
    out.end(new GrpcError(Status.PERMISSION_DENIED, 'etcdserver: permission denied'));
  });
  grpc.bidi('/etcdserverpb.Watch/Watch', (incoming, out) => {
    incoming.onMessage((m) => {
      const req = WATCH.request.toObject(WATCH.request.decode(m), { longs: String, bytes: String }) as { create_request?: { key?: string } };
      watchSeen.push(req.create_request?.key ?? '');
      if (req.create_request?.key === Buffer.from('fail').toString('base64')) out.end(new GrpcError(Status.UNAVAILABLE, 'etcdserver: no leader'));
      else out.send(WATCH.response.encode(WATCH.response.fromObject({ created: true, watch_id: String(watchSeen.length) })).finish());
    });
    incoming.onEnd(() => out.end());
  });
  grpc.unary('/etcdserverpb.KV/Range', (bytes, ctx) => {
    const req = RANGE.request.decode(bytes) as unknown as { key: Uint8Array };
    if (Buffer.from(req.key).toString() === 'boom') throw new Error('boom');
    const kvs = Object.entries(ctx.metadata).map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(String(v)) }));
    return RANGE.response.encode(RANGE.response.fromObject({ kvs, count: String(kvs.length) })).finish();
  });
  const handlers = createHttpHandlers({
    grpc,
    codec,
    source: { hasLeader: () => false, isLearner: () => true, alarms: () => [{ memberId: 1n, alarm: 'NOSPACE' }], serializableRange: () => Promise.resolve(), linearizableRange: () => Promise.reject(new Error('no read')) },
    versions: () => ({ etcdserver: '3.6.8', etcdcluster: '3.6.0' }),
    metrics: () => Promise.resolve({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'm 1\n' }),
    requestTimeoutMs: 1000,
    onHealthChecked: (ok) => healthOutcomes.push(ok),
    raftStatus: () => ({
      id: 0x8e9e05c52164694dn,
      term: 2,
      vote: 0x8e9e05c52164694dn,
      commit: 7,
      lead: 0x8e9e05c52164694dn,
      role: 'leader',
      applied: 6,
      progress: new Map([
        [0x8e9e05c52164694dn, { match: 7, next: 8, state: 'replicate' as const }],
        [0xan, { match: 0, next: 1, state: 'probe' as const }],
      ]),
      leadTransferee: 0n,
    }),
  });
  listeners = new Listeners({ grpc, clientHttp: handlers.client, metricsHttp: handlers.metrics, tls: undefined });
  base = `http://127.0.0.1:${await listeners.listenClient(new URL('http://127.0.0.1:0'))}`;
});

after(() => listeners.close());

async function post(path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const r = await fetch(`${base}${path}`, { method: 'POST', body, headers });
  return { status: r.status, text: await r.text() };
}

test('a server stream that fails after two messages: two results, then the StreamError chunk (status stays 200)', async () => {
  const r = await post('/v3/maintenance/snapshot', '{}');
  assert.equal(r.status, 200);
  assert.equal(
    r.text,
    '{"result":{"remaining_bytes":"1","blob":"YQ=="}}\n{"result":{"remaining_bytes":"1","blob":"Yg=="}}\n' +
      '{"error":{"grpc_code":7,"http_code":403,"message":"etcdserver: permission denied","http_status":"Forbidden"}}',
  );
});

test('a bidi stream that fails before any message: the HTTP status from the code, then the StreamError chunk', async () => {
  const r = await post('/v3/watch', `{"create_request":{"key":"${Buffer.from('fail').toString('base64')}"}}`);
  assert.equal(r.status, 503);
  assert.equal(r.text, '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}');
});

test('unary: a non-gRPC error is Unknown (500); a method nobody registered is Unimplemented (501)', async () => {
  const boom = await post('/v3/kv/range', `{"key":"${Buffer.from('boom').toString('base64')}"}`);
  assert.deepEqual([boom.status, JSON.parse(boom.text)], [500, { error: 'boom', message: 'boom', code: 2 }]);
  const put = await post('/v3/kv/put', '{"key":"YQ=="}');
  assert.deepEqual([put.status, JSON.parse(put.text)], [501, { error: 'unknown method Put for service etcdserverpb.KV', message: 'unknown method Put for service etcdserverpb.KV', code: 12 }]);
  const auth = await post('/v3/auth/status', '{}');
  assert.deepEqual([auth.status, (JSON.parse(auth.text) as { error: string }).error], [501, 'unknown service etcdserverpb.Auth']);
});

test('metadata: Authorization as authorization and token (raw), Grpc-Metadata-* headers by their suffix', async () => {
  const r = await post('/v3/kv/range', '{"key":"YQ=="}', { Authorization: 'Bearer abc', 'Grpc-Metadata-Hasleader': 'true' });
  assert.equal(r.status, 200);
  const kvs = (JSON.parse(r.text) as { kvs: { key: string; value: string }[] }).kvs.map((kv): [string, string] => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]);
  assert.deepEqual(new Map(kvs), new Map([['hasleader', 'true'], ['authorization', 'Bearer abc'], ['token', 'Bearer abc']]));
});

test('a streaming body written one byte at a time: every request arrives, in order', async () => {
  watchSeen.length = 0;
  const keys = ['YQ==', 'Yg==', 'Yw=='];
  const body = Buffer.from(keys.map((k) => `{"create_request":{"key":"${k}"}}\n`).join(''));
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const req = http.request(`${base}/v3/watch`, { method: 'POST' }, (res) => {
      let buf = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        lines.push(...parts);
      });
      res.on('end', resolve);
    });
    req.on('error', reject);
    let i = 0;
    const next = (): void => {
      if (i === body.length) {
        req.end();
        return;
      }
      req.write(body.subarray(i, ++i), () => setImmediate(next));
    };
    next();
  });
  await pollUntil('three answers', () => Promise.resolve(lines.length >= 3));
  assert.deepEqual(watchSeen, keys);
  assert.deepEqual(lines.map((l) => JSON.parse(l) as unknown), [1, 2, 3].map((n) => ({ result: { watch_id: String(n), created: true } })));
});

test('health with a NOSPACE alarm, no leader, a learner and a failing linearizable read', async () => {
  const h = await fetch(`${base}/health`);
  assert.deepEqual([h.status, await h.text()], [503, '{"health":"false","reason":"ALARM NOSPACE"}\n']);
  const noLeader = await fetch(`${base}/health?exclude=NOSPACE`);
  assert.deepEqual([noLeader.status, await noLeader.text()], [503, '{"health":"false","reason":"RAFT NO LEADER"}\n']);
  const ser = await fetch(`${base}/health?exclude=NOSPACE&serializable=true`);
  assert.deepEqual([ser.status, await ser.text()], [200, '{"health":"true","reason":""}']);
  assert.deepEqual(healthOutcomes, [false, false, true], 'each /health outcome is reported (for etcd_server_health_*)');
  const ready = await fetch(`${base}/readyz`);
  assert.deepEqual([ready.status, await ready.text()], [503, '[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: no read\n[-]non_learner failed: not supported for learner\n\n']);
  const live = await fetch(`${base}/livez`);
  assert.deepEqual([live.status, await live.text()], [200, 'ok\n']);
  const metrics = await fetch(`${base}/metrics`);
  assert.deepEqual([metrics.status, metrics.headers.get('content-type'), await metrics.text()], [200, 'text/plain; version=0.0.4; charset=utf-8', 'm 1\n']);
});

test('/debug/vars: expvar\'s layout, raft.status as etcd\'s raft marshals it, any method', async () => {
  for (const method of ['GET', 'POST']) {
    const r = await fetch(`${base}/debug/vars`, { method });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    const text = await r.text();
    assert.match(text, /^\{\n"cmdline": \[.*\],\n"file_descriptor_limit": \d+,\n"memstats": \{.*\},\n"raft\.status": \{.*\}\n\}\n$/);
    const vars = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(vars), ['cmdline', 'file_descriptor_limit', 'memstats', 'raft.status']);
    assert.equal(
      JSON.stringify(vars['raft.status']),
      '{"id":"8e9e05c52164694d","term":2,"vote":"8e9e05c52164694d","commit":7,"lead":"8e9e05c52164694d","raftState":"StateLeader","applied":6,' +
        '"progress":{"8e9e05c52164694d":{"match":7,"next":8,"state":"StateReplicate"},"a":{"match":0,"next":1,"state":"StateProbe"}},"leadtransferee":"0"}',
    );
    assert.ok((vars['memstats'] as { HeapAlloc: number }).HeapAlloc > 0);
  }
});

test('softFileLimit reads the soft limit of "Max open files" (unlimited: none)', () => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n';
  assert.equal(softFileLimit(limits), 1024);
  assert.equal(softFileLimit(limits.replace('1024  ', 'unlimited')), undefined);
  assert.equal(softFileLimit(''), undefined);
});
