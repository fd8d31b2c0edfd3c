// Members over unix sockets (--listen-peer-urls unix://name:port, the socket file "name:port" in the
// working directory, as etcd): a 3-member cluster of etcd 3.6.8 and one of Cairn, each formed over
// unix peer sockets only, replicate a put and list the same peer URLs; the socket files go away when
// the members stop; unixs:// peer URLs are refused with a message naming the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { refBinOrSkip } from '../harness/bins.js';
import { CAIRN_MAIN, runEtcdctl, startTarget, tempDir, type ServerProc } from '../harness/procs.js';

test('a 3-member cluster over unix peer sockets (etcd 3.6.8 and Cairn)', async (t) => {
  const etcdBin = refBinOrSkip(t, 'etcd-3.6');
  if (etcdBin === undefined) return;
  const seen: Record<string, string[]> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    const dir = tempDir(`cairn-unix-peers-${kind}-`);
    const names = ['m1', 'm2', 'm3'];
    const peer = (n: string): string => `unix://${n}.sock:1`;
    const initial = names.map((n) => `${n}=${peer(n)}`).join(',');
    const procs: ServerProc[] = await Promise.all(
      names.map((n) =>
        startTarget(kind, {
          name: n,
          cwd: dir,
          ...(kind === 'etcd' ? { etcdBin } : {}),
          extraArgs: ['--listen-peer-urls', peer(n), '--initial-advertise-peer-urls', peer(n), '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `unix-${kind}`],
          readyTimeoutMs: 30_000,
        }),
      ),
    );
    try {
      assert.ok(existsSync(join(dir, 'm1.sock:1')), `${kind}: the socket file m1.sock:1 in the working directory`);
      const [a, , c] = procs;
      assert.ok(a !== undefined && c !== undefined);
      const put = await runEtcdctl(['--endpoints', a.endpoint, 'put', 'k', 'over-unix']);
      const get = await runEtcdctl(['--endpoints', c.endpoint, 'get', 'k', '--print-value-only']);
      const list = await runEtcdctl(['--endpoints', c.endpoint, 'member', 'list', '-w', 'json']);
      const peers = (JSON.parse(list.stdout) as { members: { peerURLs: string[] }[] }).members.flatMap((m) => m.peerURLs).sort();
      seen[kind] = [`put ${put.stdout.trim()}`, `get ${get.stdout.trim()}`, `peers ${peers.join(',')}`];
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
    seen[kind]?.push(`sockets left ${names.filter((n) => existsSync(join(dir, `${n}.sock:1`))).length}`);
  }
  assert.deepEqual(seen['cairn'], seen['etcd']);
  assert.deepEqual(seen['etcd'], ['put OK', 'get over-unix', 'peers unix://m1.sock:1,unix://m2.sock:1,unix://m3.sock:1', 'sockets left 0']);
});

test('a unixs:// peer URL is refused, naming the flag', () => {
  const r = spawnSync(process.execPath, [CAIRN_MAIN, '--listen-peer-urls', 'unixs://m1.sock:1'], { encoding: 'utf8', cwd: tempDir('cairn-unixs-'), timeout: 20_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--listen-peer-urls: "unixs:\/\/m1\.sock:1": TLS over a unix socket is not supported between members/);
});
