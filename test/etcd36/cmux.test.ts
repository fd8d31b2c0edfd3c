// One client port serving cleartext and TLS (`--listen-client-urls http://h:p,https://h:p`, etcd's cmux),
// and /debug/vars, on Cairn and etcd 3.6.8: etcdctl over both, /health and /debug/vars over both,
// /debug/vars absent from --listen-metrics-urls; the answers' shapes must agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { makeCa } from '../harness/certs.js';
import { refBinOrSkip } from '../harness/bins.js';
import { freePort, runEtcdctl, startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

/** GET over http or https (trusting `ca`): "<status> <body>", or "no answer". */
function get(url: string, ca: Buffer): Promise<{ status: number; body: string } | 'no answer'> {
  return new Promise((resolve) => {
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.get(url, { ca, timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve('no answer'));
    req.on('timeout', () => req.destroy());
  });
}

/** What the test compares of a /debug/vars answer: its variables, raft.status's fields, the member leading itself. */
function varsShape(answer: Awaited<ReturnType<typeof get>>): string {
  if (answer === 'no answer') return answer;
  if (answer.status !== 200) return `${answer.status} ${answer.body.trim()}`;
  const vars = JSON.parse(answer.body) as Record<string, unknown>;
  const raft = vars['raft.status'] as { id: string; lead: string; raftState: string; progress: Record<string, { state: string }> };
  const progress = Object.entries(raft.progress).map(([id, p]) => `${id === raft.id ? 'self' : 'other'}:${p.state}`);
  return `200 vars=${Object.keys(vars).join(',')} raft=${Object.keys(raft).join(',')} state=${raft.raftState} leadsItself=${raft.lead === raft.id} progress=${progress.join(',')} cmdlineHasFlags=${(vars['cmdline'] as string[]).includes('--listen-client-urls')}`;
}

test('http:// and https:// on one client port, and /debug/vars (Cairn and etcd 3.6.8)', async (t) => {
  const etcdBin = refBinOrSkip(t, 'etcd-3.6');
  if (etcdBin === undefined) return;
  const ca = makeCa();
  const cert = ca.issue('server');
  const caPem = readFileSync(ca.caFile);
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  const seen: Record<string, string[]> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    const port = await freePort();
    const metricsPort = await freePort();
    const urls = `http://127.0.0.1:${port},https://127.0.0.1:${port}`;
    const extraArgs = ['--listen-client-urls', urls, '--advertise-client-urls', urls, '--cert-file', cert.certFile, '--key-file', cert.keyFile, '--listen-metrics-urls', `http://127.0.0.1:${metricsPort}`];
    const s = await (kind === 'etcd' ? startEtcd({ etcdBin, extraArgs }) : startCairn({ extraArgs }));
    servers.push(s);
    const plainPut = await runEtcdctl(['--endpoints', `http://127.0.0.1:${port}`, 'put', 'k', 'v']);
    const tlsGet = await runEtcdctl(['--endpoints', `https://127.0.0.1:${port}`, '--cacert', ca.caFile, 'get', 'k']);
    const health = async (scheme: string): Promise<string> => {
      const a = await get(`${scheme}://127.0.0.1:${port}/health`, caPem);
      return a === 'no answer' ? a : `${a.status} ${(JSON.parse(a.body) as { health: string }).health}`;
    };
    const metricsVars = await get(`http://127.0.0.1:${metricsPort}/debug/vars`, caPem);
    seen[kind] = [
      `plaintext put: ${plainPut.stdout.trim()} ${plainPut.stderr.trim()}`,
      `tls get: ${tlsGet.stdout.trim().replace(/\n/g, ' ')} ${tlsGet.stderr.trim()}`,
      `http health: ${await health('http')}`,
      `https health: ${await health('https')}`,
      `http /debug/vars: ${varsShape(await get(`http://127.0.0.1:${port}/debug/vars`, caPem))}`,
      `https /debug/vars: ${varsShape(await get(`https://127.0.0.1:${port}/debug/vars`, caPem))}`,
      `metrics /debug/vars: ${metricsVars === 'no answer' ? metricsVars : metricsVars.status}`,
    ];
  }
  assert.deepEqual(seen['cairn'], seen['etcd']);
  assert.deepEqual(seen['etcd']?.slice(0, 4), ['plaintext put: OK ', 'tls get: k v ', 'http health: 200 true', 'https health: 200 true']);
  assert.equal(seen['etcd']?.[6], 'metrics /debug/vars: 404');
});
