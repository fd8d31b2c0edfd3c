// --peer-auto-tls: three Cairn members on https peer URLs with no certificate files elect a leader
// and replicate, each with a generated certificate under <data-dir>/fixtures/peer (serverAuth and
// clientAuth, since a member presents it when dialling), as etcd's e2e peer auto-TLS clusters do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil } from '../harness/poll.js';
import { freePort, runEtcdctl, startCairn, type ServerProc } from '../harness/procs.js';

test('--peer-auto-tls: a three-member cluster over generated peer certificates', async (t) => {
  const names = ['pa', 'pb', 'pc'];
  const peers = await Promise.all(names.map(async () => `https://127.0.0.1:${await freePort()}`));
  const initial = names.map((n, i) => `${n}=${peers[i] ?? ''}`).join(',');
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  const started = names.map((name, i) =>
    startCairn({ name, extraArgs: ['--peer-auto-tls', '--listen-peer-urls', peers[i] ?? '', '--initial-advertise-peer-urls', peers[i] ?? '', '--initial-cluster', initial] }),
  );
  servers.push(...(await Promise.all(started)));
  const endpoints = servers.map((s) => s.endpoint).join(',');
  const put = await runEtcdctl(['--endpoints', endpoints, 'put', 'k', 'v']);
  assert.equal(put.stdout.trim(), 'OK', put.stderr);
  for (const s of servers) {
    await pollUntil(`${s.name} holding k`, async () => (await runEtcdctl(['--endpoints', s.endpoint, 'get', 'k', '--consistency=s', '--print-value-only'])).stdout.trim() === 'v');
    const cert = new X509Certificate(readFileSync(join(s.dataDir, 'fixtures', 'peer', 'cert.pem')));
    assert.equal(cert.subject, 'O=etcd');
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  }
});
