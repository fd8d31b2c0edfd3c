// The HTTP/JSON gateway against the reference etcd 3.4.23, with curl as the client: the seed's
// examples (etcd.io/docs/v3.5/dev-guide/api_grpc_gateway: put, range, range by prefix, watch,
// txn, authenticate + Authorization header) and error answers, run on both servers in the same
// order and compared after normalising cluster/member ids and tokens (revisions must agree);
// a watch streamed over HTTP while puts happen; /health, /version, /livez, /readyz and the metrics
// port; garbage HTTP/1.1, half an HTTP/2 preface and a gRPC client on the same port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { freePort, runEtcdctl, startCairn, startEtcd, type ServerProc } from '../harness/procs.js';
import { pollUntil, quietWindow } from '../harness/poll.js';

const CURL = process.env['CURL_BIN'] ?? 'curl';
const CURL_TIMEOUT_MS = 15_000;

interface CurlResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Runs curl -i; splits status line, headers (lower-cased names, trailers included) and body. */
function curl(args: readonly string[]): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(CURL, ['-s', '-S', '-i', '--max-time', '10', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), CURL_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      const split = out.indexOf('\r\n\r\n');
      if (split < 0) return reject(new Error(`curl ${args.join(' ')}: no HTTP answer (${err})`));
      const [statusLine = '', ...lines] = out.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      let body = out.slice(split + 4);
      // curl -i prints trailers after the body: "Grpc-Trailer-Content-Type: application/grpc\r\n".
      const trailer = /Grpc-Trailer-Content-Type: (.*)\r\n$/i.exec(body);
      if (trailer !== null) {
        headers['grpc-trailer-content-type'] = trailer[1] ?? '';
        body = body.slice(0, trailer.index);
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
  });
}

function post(server: ServerProc, path: string, body: string, extra: readonly string[] = []): Promise<CurlResult> {
  return curl([`${server.clientUrl}${path}`, '-X', 'POST', '-d', body, ...extra]);
}

/** JSON with cluster/member ids and tokens replaced (they differ between servers); revisions kept. */
function norm(text: string): unknown {
  return JSON.parse(text, (k: string, v: unknown) => {
    if (k === 'cluster_id' || k === 'member_id' || k === 'leader') return typeof v === 'string' && v !== '0' ? '<id>' : v;
    if (k === 'token') return '<token>';
    return v;
  });
}

/** What must agree between etcd and Cairn for one answer. */
function shape(r: CurlResult): unknown {
  return {
    status: r.status,
    contentType: r.headers['content-type'],
    grpcMetadata: r.headers['grpc-metadata-content-type'],
    trailer: r.headers['trailer'],
    trailerValue: r.headers['grpc-trailer-content-type'],
    cors: r.headers['access-control-allow-origin'],
    body: r.headers['content-type'] === 'application/json' ? norm(r.body) : r.body,
  };
}

let etcd: ServerProc;
let cairn: ServerProc;
let etcdMetrics: number;
let cairnMetrics: number;

before(async () => {
  [etcdMetrics, cairnMetrics] = [await freePort(), await freePort()];
  [etcd, cairn] = await Promise.all([
    startEtcd({ extraArgs: ['--listen-metrics-urls', `http://127.0.0.1:${etcdMetrics}`] }),
    startCairn({ extraArgs: ['--listen-metrics-urls', `http://127.0.0.1:${cairnMetrics}`] }),
  ]);
});

after(async () => {
  await Promise.all([etcd.stop(), cairn.stop()]);
});

/** The same request to both servers; the answers must have the same shape. Returns Cairn's. */
async function same(path: string, body: string, extra: readonly string[] = []): Promise<CurlResult> {
  const e = await post(etcd, path, body, extra);
  const c = await post(cairn, path, body, extra);
  assert.deepEqual(shape(c), shape(e), `POST ${path} ${body}`);
  return c;
}

test('seed: put, range, range by prefix, txn — the same JSON as etcd 3.4.23', async () => {
  const put = await same('/v3/kv/put', '{"key": "Zm9v", "value": "YmFy"}');
  assert.deepEqual((norm(put.body) as { header: unknown }).header, { cluster_id: '<id>', member_id: '<id>', revision: '2', raft_term: '2' });
  const range = await same('/v3/kv/range', '{"key": "Zm9v"}');
  assert.deepEqual((norm(range.body) as { kvs: unknown }).kvs, [{ key: 'Zm9v', create_revision: '2', mod_revision: '2', version: '1', value: 'YmFy' }]);
  await same('/v3/kv/put', '{"key": "Zm9vMg==", "value": "dHdv"}');
  await same('/v3/kv/range', '{"key": "Zm9v", "range_end": "Zm9w"}');
  await same('/v3/kv/range', '{"key": "Zm9v", "rangeEnd": "Zm9w", "keysOnly": true, "sortOrder": "DESCEND", "limit": 1}');
  await same('/v3/kv/txn', '{"compare":[{"target":"CREATE","key":"Zm9v","createRevision":"2"}],"success":[{"requestPut":{"key":"Zm9v","value":"YmFy"}}]}');
  await same('/v3/kv/txn', '{"compare":[{"target":"VALUE","key":"Zm9v","value":"bm8="}],"failure":[{"request_range":{"key":"Zm9v"}},{"request_delete_range":{"key":"Zm9vMg==","prev_kv":true}}]}');
  await same('/v3beta/kv/range', '{"key": "Zm9v"}');
  await same('/v3/lease/grant', '{"TTL":"60","ID":"4242"}');
  await same('/v3/kv/lease/leases', '{}');
  await same('/v3/lease/revoke', '{"ID":"4242"}');
});

test('errors: the same status, headers and JSON as etcd 3.4.23', async () => {
  await same('/v3/kv/range', '{bad');
  await same('/v3/kv/range', '{"key":5}');
  await same('/v3/kv/range', '{"key":"Zm9"}');
  await same('/v3/kv/range', '{"limit":1.5}');
  await same('/v3/kv/range', '{"sort_order":"FOO"}');
  await same('/v3/kv/range', '[]');
  await same('/v3/kv/put', '{}'); // key is not provided
  await same('/v3/kv/put', ''); // an empty body is an empty request
  await same('/v3/kv/range', '{"key":"Zm9v","revision":"1000"}'); // future revision: OutOfRange → 400
  await same('/v3/kv/compaction', '{"revision":"3"}');
  await same('/v3/kv/range', '{"key":"Zm9v","revision":"2"}'); // compacted
  await same('/v3/lease/revoke', '{"ID":"99"}'); // NotFound → 404
  await same('/v3/lease/keepalive', '{"ID":"99"}'); // a stream: TTL 0 for an unknown lease
  await same('/v3/auth/user/get', '{"name":"nobody"}'); // FailedPrecondition → 412
  await same('/v3/nope', '{}'); // the gateway's own "Not Found"
  await same('/v3alpha/kv/range', '{}'); // not served: Go's "404 page not found"
  await same('/v3/watch', 'junk'); // a bidi stream's bad first request: code 2, HTTP 500
  for (const server of [etcd, cairn]) {
    const get = await curl([`${server.clientUrl}/v3/kv/range`]);
    assert.equal(get.status, 405, `${server.name}: GET on a gateway path`);
    assert.equal(get.body, 'Method Not Allowed\n');
    const options = await curl([`${server.clientUrl}/v3/kv/range`, '-X', 'OPTIONS']);
    assert.equal(options.status, 200);
    assert.equal(options.headers['access-control-allow-methods'], 'POST, GET, OPTIONS, PUT, DELETE');
  }
});

/** A curl streaming a watch; its stdout lines as they arrive. */
function streamWatch(server: ServerProc, body: string): { lines: () => string[]; stop: () => void } {
  const child = spawn(CURL, ['-s', '-N', `${server.clientUrl}/v3/watch`, '-X', 'POST', '-d', body], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  return { lines: () => out.split('\n').filter((l) => l !== ''), stop: () => child.kill('SIGTERM') };
}

test('watch over HTTP: events arrive as puts happen, as etcd streams them', async () => {
  const seen: unknown[][] = [];
  for (const server of [etcd, cairn]) {
    const w = streamWatch(server, '{"create_request": {"key":"d2F0Y2hlZA==", "prev_kv": true} }');
    try {
      await pollUntil(`${server.name}: watch created`, () => Promise.resolve(w.lines().length >= 1));
      await post(server, '/v3/kv/put', '{"key": "d2F0Y2hlZA==", "value": "MQ=="}');
      await pollUntil(`${server.name}: first event`, () => Promise.resolve(w.lines().length >= 2));
      await post(server, '/v3/kv/put', '{"key": "d2F0Y2hlZA==", "value": "Mg=="}');
      await post(server, '/v3/kv/deleterange', '{"key": "d2F0Y2hlZA=="}');
      await pollUntil(`${server.name}: all events`, () => Promise.resolve(w.lines().filter((l) => l.includes('"events"')).flatMap((l) => (norm(l) as { result: { events: unknown[] } }).result.events).length >= 3));
      seen.push(w.lines().map((l) => norm(l)));
    } finally {
      w.stop();
    }
  }
  const [fromEtcd, fromCairn] = seen;
  const events = (lines: unknown[] | undefined): unknown[] => (lines ?? []).flatMap((l) => (l as { result: { events?: unknown[] } }).result.events ?? []);
  assert.deepEqual(events(fromCairn), events(fromEtcd));
  assert.equal(events(fromCairn).length, 3);
  assert.deepEqual((fromCairn?.[0] as { result: unknown }).result, (fromEtcd?.[0] as { result: unknown }).result, 'the created message');
});

test('watch over HTTP: several requests in one body (create, create, cancel) as etcd answers them', async () => {
  const body = '{"create_request":{"key":"YQ=="}}{"create_request":{"key":"Yg=="}}{"cancel_request":{"watch_id":"0"}}';
  const out: unknown[][] = [];
  for (const server of [etcd, cairn]) {
    const w = streamWatch(server, body);
    try {
      await pollUntil(`${server.name}: three answers`, () => Promise.resolve(w.lines().length >= 3));
      out.push(w.lines().map((l) => norm(l)));
    } finally {
      w.stop();
    }
  }
  assert.deepEqual(out[1], out[0]);
});

test('seed: authenticate, then the token in the Authorization header (auth enabled, then disabled)', async () => {
  await same('/v3/auth/role/add', '{"name": "root"}');
  await same('/v3/auth/user/add', '{"name": "root", "password": "pass"}');
  await same('/v3/auth/user/grant', '{"user": "root", "role": "root"}');
  await same('/v3/auth/enable', '{}');
  await same('/v3/auth/authenticate', '{"name": "root", "password": "wrong"}');
  const tokens: string[] = [];
  for (const server of [etcd, cairn]) {
    const r = await post(server, '/v3/auth/authenticate', '{"name": "root", "password": "pass"}');
    assert.equal(r.status, 200);
    const token = (JSON.parse(r.body) as { token?: string }).token;
    assert.ok(token !== undefined && token !== '');
    tokens.push(token);
  }
  const [et = '', ct = ''] = tokens;
  const withToken = async (path: string, body: string, tokenOf: (t: string) => string): Promise<void> => {
    const e = await post(etcd, path, body, ['-H', `Authorization: ${tokenOf(et)}`]);
    const c = await post(cairn, path, body, ['-H', `Authorization: ${tokenOf(ct)}`]);
    assert.deepEqual(shape(c), shape(e), `${path} ${body} with ${tokenOf('<token>')}`);
  };
  await withToken('/v3/kv/put', '{"key": "Zm9v", "value": "YmFy"}', (t) => t);
  await same('/v3/kv/put', '{"key": "Zm9v", "value": "YmFy"}'); // no token: user name is empty
  await same('/v3/kv/range', '{"key": "Zm9v"}', ['-H', 'Authorization: not-a-token']); // invalid auth token: 401
  await withToken('/v3/kv/range', '{"key": "Zm9v"}', (t) => `Bearer ${t}`); // etcd strips no "Bearer ": invalid token
  await withToken('/v3/auth/user/list', '{}', (t) => t);
  await withToken('/v3/auth/disable', '{}', (t) => t);
  await same('/v3/kv/range', '{"key": "Zm9v"}');
});

test('/health and /version (etcd 3.5 answers; 3.4.23 lacks "reason" and reports 3.4) and the metrics port', async () => {
  const eh = await curl([`${etcd.clientUrl}/health`]);
  const ch = await curl([`${cairn.clientUrl}/health`]);
  assert.equal(ch.status, eh.status);
  assert.equal(ch.headers['content-type'], eh.headers['content-type']);
  assert.deepEqual(JSON.parse(ch.body), { ...(JSON.parse(eh.body) as object), reason: '' });
  for (const q of ['?serializable=true', '?exclude=NOSPACE', '?serializable=false&exclude=NOSPACE&exclude=CORRUPT']) {
    assert.equal((await curl([`${cairn.clientUrl}/health${q}`])).body, '{"health":"true","reason":""}', q);
  }
  const ep = await curl([`${etcd.clientUrl}/health`, '-X', 'POST']);
  const cp = await curl([`${cairn.clientUrl}/health`, '-X', 'POST']);
  assert.deepEqual([cp.status, cp.headers['allow'], cp.body], [ep.status, ep.headers['allow'], ep.body]);
  const ev = await curl([`${etcd.clientUrl}/version`]);
  const cv = await curl([`${cairn.clientUrl}/version`]);
  assert.equal(cv.status, ev.status);
  assert.equal(cv.headers['content-type'], ev.headers['content-type']);
  assert.deepEqual(Object.keys(JSON.parse(cv.body) as object), Object.keys(JSON.parse(ev.body) as object));
  assert.deepEqual(JSON.parse(cv.body), { etcdserver: '3.6.8', etcdcluster: '3.6.0' });
  for (const [server, port] of [[etcd, etcdMetrics], [cairn, cairnMetrics]] as const) {
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await curl([`${base}/health`])).status, 200, `${server.name} metrics port /health`);
    assert.equal((await curl([`${base}/version`])).body, '404 page not found\n', `${server.name} metrics port /version`);
    assert.equal((await curl([`${base}/v3/kv/range`, '-X', 'POST', '-d', '{}'])).status, 404);
    assert.equal((await curl([`${base}/health`])).headers['access-control-allow-origin'], undefined, 'no CORS on the metrics port');
  }
});

test('/livez and /readyz (etcd 3.5.11+): ok, verbose, exclude, one check, unknown check, methods', async () => {
  const base = cairn.clientUrl;
  for (const path of ['/livez', '/readyz', `http://127.0.0.1:${cairnMetrics}/readyz`]) {
    const r = await curl([path.startsWith('http') ? path : `${base}${path}`]);
    assert.deepEqual([r.status, r.headers['content-type'], r.headers['x-content-type-options'], r.body], [200, 'text/plain; charset=utf-8', 'nosniff', 'ok\n'], path);
  }
  assert.equal((await curl([`${base}/readyz?verbose`])).body, '[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n');
  assert.equal((await curl([`${base}/readyz?verbose&exclude=linearizable_read&exclude=non_learner&exclude=nonexistent`])).body, '[+]data_corruption ok\n[+]serializable_read ok\nok\n');
  assert.equal((await curl([`${base}/livez?verbose`])).body, '[+]serializable_read ok\nok\n');
  assert.equal((await curl([`${base}/readyz/linearizable_read?verbose`])).body, '[+]linearizable_read ok\nok\n');
  assert.equal((await curl([`${base}/readyz/nonexistent`])).status, 404);
  const post405 = await curl([`${base}/livez`, '-X', 'POST']);
  assert.deepEqual([post405.status, post405.headers['allow']], [405, 'GET']);
});

/** Opens a raw TCP connection, writes bytes, returns what comes back before the server closes or ms pass. */
function raw(port: number, bytes: Buffer, opts: { closeAfterWrite?: boolean; waitMs: number }): Promise<{ data: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    let closedByServer = false;
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('end', () => (closedByServer = true));
    s.on('connect', () => {
      s.write(bytes);
      if (opts.closeAfterWrite === true) s.end();
    });
    setTimeout(() => {
      s.destroy();
      resolve({ data, closedByServer });
    }, opts.waitMs);
  });
}

test('bad connections do not hurt the server: garbage HTTP/1.1, half an HTTP/2 preface, gRPC still on the same port', async () => {
  const port = Number(new URL(cairn.clientUrl).port);
  const garbage = await raw(port, Buffer.from('GARBAGE\r\n\r\n'), { waitMs: 500 });
  assert.match(garbage.data, /^HTTP\/1\.1 400 Bad Request\r\n/);
  const half = Buffer.from('PRI * HTTP/2.0\r\n\r\n');
  await raw(port, half, { closeAfterWrite: true, waitMs: 200 });
  const idle = raw(port, half, { waitMs: 1500 }); // half a preface, then silence: held, not served
  const junkFrames = await raw(port, Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.alloc(64, 0xff)]), { waitMs: 500 });
  assert.ok(junkFrames.closedByServer || junkFrames.data.length > 0, 'a broken HTTP/2 connection is answered (GOAWAY) or closed');
  // Meanwhile everything else works: HTTP/1.1, HTTP/2 gateway (prior knowledge), gRPC (etcdctl).
  assert.equal((await post(cairn, '/v3/kv/put', '{"key":"c2FtZXBvcnQ=","value":"eQ=="}')).status, 200);
  const h2 = await curl(['--http2-prior-knowledge', `${cairn.clientUrl}/v3/kv/range`, '-X', 'POST', '-d', '{"key":"c2FtZXBvcnQ="}']);
  assert.equal(h2.status, 200);
  assert.equal((JSON.parse(h2.body) as { kvs: { value: string }[] }).kvs[0]?.value, 'eQ==');
  const put = await runEtcdctl(['--endpoints', cairn.endpoint, 'put', 'grpc-key', 'v']);
  assert.equal(put.exit, 0, put.stderr);
  const get = await runEtcdctl(['--endpoints', cairn.endpoint, 'get', 'grpc-key', '--print-value-only']);
  assert.equal(get.stdout.trim(), 'v');
  const idleResult = await idle;
  assert.equal(idleResult.data, '', 'nothing is answered to half a preface');
  await quietWindow(100);
  assert.equal((await curl([`${cairn.clientUrl}/health`])).status, 200, 'still healthy');
});

test('--enable-grpc-gateway=false: /v3 is not served (404 as etcd), gRPC and /health still are', async () => {
  const [e, c] = await Promise.all([startEtcd({ extraArgs: ['--enable-grpc-gateway=false'] }), startCairn({ extraArgs: ['--enable-grpc-gateway=false'] })]);
  try {
    const [re, rc] = [await post(e, '/v3/kv/put', '{"key":"Zm9v","value":"YmFy"}'), await post(c, '/v3/kv/put', '{"key":"Zm9v","value":"YmFy"}')];
    assert.equal(re.status, 404);
    assert.equal(rc.status, 404);
    assert.equal(rc.body, re.body);
    assert.equal((await curl([`${c.clientUrl}/health`])).status, 200);
    const put = await runEtcdctl(['--endpoints', c.endpoint, 'put', 'k', 'v']);
    assert.equal(put.exit, 0, put.stderr);
  } finally {
    await Promise.all([e.stop(), c.stop()]);
  }
});
