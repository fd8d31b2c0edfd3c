// The client port over TLS: one port, ALPN decides — gRPC (etcdctl, ALPN h2), the gateway over
// HTTP/1.1 and over HTTP/2 (curl), /health — on the reference etcd 3.4.23 and on Cairn, with
// --client-cert-auth; and with auth enabled, the gateway's caller is the client certificate's CN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { makeCa, type CertFiles, type TestCa } from '../harness/certs.js';
import { etcdctlTlsArgs, runEtcdctl, startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

let ca: TestCa;
let root: CertFiles;
let alice: CertFiles;
let etcd: ServerProc;
let cairn: ServerProc;

before(async () => {
  ca = makeCa('gw-ca');
  const server = ca.issue('server', { cn: 'server' });
  root = ca.issue('root', { cn: 'root' });
  alice = ca.issue('alice', { cn: 'alice' });
  const tls = { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.caFile, clientCertAuth: true };
  [etcd, cairn] = await Promise.all([startEtcd({ tls }), startCairn({ tls })]);
});

after(async () => {
  await Promise.all([etcd.stop(), cairn.stop()]);
});

interface Answer {
  readonly exit: number | null;
  readonly status: number;
  readonly body: string;
  readonly version: string;
}

function curlTls(url: string, args: readonly string[], cert: CertFiles | undefined): Promise<Answer> {
  const certArgs = cert === undefined ? [] : ['--cert', cert.certFile, '--key', cert.keyFile];
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-s', '--max-time', '10', '--cacert', ca.caFile, ...certArgs, '-w', '\n%{http_code} %{http_version}', url, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (exit) => {
      const nl = out.lastIndexOf('\n');
      const [status = '0', version = ''] = out.slice(nl + 1).split(' ');
      resolve({ exit, status: Number(status), body: out.slice(0, Math.max(nl, 0)), version });
    });
  });
}

function ids(body: string): unknown {
  return JSON.parse(body, (k: string, v: unknown) => (k === 'cluster_id' || k === 'member_id' ? '<id>' : k === 'token' ? '<token>' : v));
}

test('TLS: the gateway over HTTP/1.1 and HTTP/2 (ALPN), gRPC and /health on one port, as etcd', async () => {
  const answers: unknown[] = [];
  for (const server of [etcd, cairn]) {
    const put = await curlTls(`${server.clientUrl}/v3/kv/put`, ['--http1.1', '-X', 'POST', '-d', '{"key":"dGxz","value":"eQ=="}'], root);
    assert.deepEqual([put.exit, put.status, put.version], [0, 200, '1.1'], `${server.name}: ${put.body}`);
    const range = await curlTls(`${server.clientUrl}/v3/kv/range`, ['--http2', '-X', 'POST', '-d', '{"key":"dGxz"}'], root);
    assert.deepEqual([range.exit, range.status, range.version], [0, 200, '2'], `${server.name}: ${range.body}`);
    const health = await curlTls(`${server.clientUrl}/health`, [], root);
    assert.equal(health.status, 200);
    const ctl = etcdctlTlsArgs({ caFile: ca.caFile, certFile: root.certFile, keyFile: root.keyFile });
    const get = await runEtcdctl(['--endpoints', server.clientUrl, ...ctl, 'get', 'tls', '--print-value-only']);
    assert.equal(get.stdout.trim(), 'y', `${server.name} etcdctl: ${get.stderr}`);
    const refused = await curlTls(`${server.clientUrl}/v3/kv/range`, ['-X', 'POST', '-d', '{"key":"dGxz"}'], undefined);
    assert.notEqual(refused.exit, 0, `${server.name}: no client certificate, no answer`);
    answers.push([ids(put.body), ids(range.body)]);
  }
  assert.deepEqual(answers[1], answers[0]);
});

test('TLS + auth: a gateway call without a token acts as the client certificate CN (Cairn)', async () => {
  const ctl = (cert: CertFiles): string[] => ['--endpoints', cairn.clientUrl, ...etcdctlTlsArgs({ caFile: ca.caFile, certFile: cert.certFile, keyFile: cert.keyFile })];
  for (const args of [['user', 'add', 'root:pw'], ['user', 'grant-role', 'root', 'root'], ['user', 'add', 'alice:pw'], ['auth', 'enable']]) {
    const r = await runEtcdctl([...ctl(root), ...args]);
    assert.equal(r.exit, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  try {
    const asRoot = await curlTls(`${cairn.clientUrl}/v3/kv/range`, ['-X', 'POST', '-d', '{"key":"dGxz"}'], root);
    assert.equal(asRoot.status, 200, asRoot.body);
    const asAlice = await curlTls(`${cairn.clientUrl}/v3/kv/range`, ['-X', 'POST', '-d', '{"key":"dGxz"}'], alice);
    assert.equal(asAlice.status, 403, asAlice.body);
    assert.deepEqual(JSON.parse(asAlice.body), { error: 'etcdserver: permission denied', message: 'etcdserver: permission denied', code: 7 });
  } finally {
    const off = await runEtcdctl([...ctl(root), 'auth', 'disable']);
    assert.equal(off.exit, 0, off.stderr);
  }
});
