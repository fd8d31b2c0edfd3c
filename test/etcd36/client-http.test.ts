// --listen-client-http-urls on Cairn and etcd 3.6.8: the gateway and /health answer on the HTTP URL,
// gRPC (etcdctl 3.4) still works on the client URL, and HTTP/1.1 on the client URL gets no answer.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { refBinOrSkip } from '../harness/bins.js';
import { freePort, runEtcdctl, startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

/** etcd 3.6.8's path, or undefined after skipOrFail. */
const etcd36 = (t: TestContext): string | undefined => refBinOrSkip(t, 'etcd-3.6');

/** POST (or GET without a body) over HTTP/1.1: the status and body, or 'no answer' when the connection fails. */
function request(url: string, body?: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: body === undefined ? 'GET' : 'POST', timeout: 5000, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(`${res.statusCode ?? 0} ${text.trim()}`));
    });
    req.on('error', () => resolve('no answer'));
    req.on('timeout', () => req.destroy());
    req.end(body);
  });
}

/** "<status> <json>" with the header dropped and the JSON re-serialised (etcd 3.6's protojson spaces vary). */
function withoutHeader(answer: string): string {
  const at = answer.indexOf(' ');
  const body = JSON.parse(answer.slice(at + 1)) as Record<string, unknown>;
  delete body['header'];
  return `${answer.slice(0, at)} ${JSON.stringify(body)}`;
}

test('--listen-client-http-urls: HTTP moves to its own URL, gRPC stays on the client URL (Cairn and etcd 3.6.8)', async (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  const seen: Record<string, string[]> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    const httpUrl = `http://127.0.0.1:${await freePort()}`;
    const extraArgs = ['--listen-client-http-urls', httpUrl];
    const s = await (kind === 'etcd' ? startEtcd({ etcdBin: bin, extraArgs }) : startCairn({ extraArgs }));
    servers.push(s);
    const put = await runEtcdctl(['--endpoints', s.endpoint, 'put', 'k', 'v']);
    seen[kind] = [
      `grpc put ${put.stdout.trim()}`,
      `http health ${await request(`${httpUrl}/health`)}`,
      `http range ${withoutHeader(await request(`${httpUrl}/v3/kv/range`, JSON.stringify({ key: Buffer.from('k').toString('base64') })))}`,
      `client-port health ${await request(`${s.clientUrl}/health`)}`,
    ];
  }
  assert.deepEqual(seen['cairn'], seen['etcd']);
  assert.equal(seen['etcd']?.[3], 'client-port health no answer');
});
