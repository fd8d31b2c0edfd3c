// Series etcd 3.6 exports that Cairn added, compared with etcd 3.6.8's /metrics on a one-member
// server: etcd_server_feature_enabled (every gate with its stage, same values, also with a gate
// turned on), etcd_network_known_peers (one series per member, Local and Remote as hex ids),
// os_fd_used / os_fd_limit. And Status.storageVersion as etcd 3.6 derives it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { storageVersionOf } from '../../server/api/maintenance.js';
import { refBinOrSkip } from '../harness/bins.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';

/** etcd 3.6.8's path, or undefined after skipOrFail. */
const etcd36 = (t: TestContext): string | undefined => refBinOrSkip(t, 'etcd-3.6');

async function series(s: ServerProc, name: string): Promise<string[]> {
  const body = await (await fetch(`${s.clientUrl}/metrics`)).text();
  return body.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

test('etcd_server_feature_enabled, etcd_network_known_peers and os_fd_* as etcd 3.6.8 exports them', async (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  for (const gates of [[], ['--feature-gates=InitialCorruptCheck=true,TxnModeWriteWithSharedBuffer=false']]) {
    const e = await startEtcd({ etcdBin: bin, extraArgs: gates });
    const c = await startCairn({ extraArgs: gates });
    servers.push(e, c);
    assert.deepEqual(await series(c, 'etcd_server_feature_enabled'), await series(e, 'etcd_server_feature_enabled'), `feature gates ${gates.join(' ')}`);
    for (const s of [e, c]) {
      const peers = await series(s, 'etcd_network_known_peers');
      assert.equal(peers.length, 1, `${s.name}: one member, itself`);
      assert.match(peers[0] ?? '', /^etcd_network_known_peers\{Local="([0-9a-f]+)",Remote="\1"\} 1$/);
      for (const n of ['os_fd_used', 'os_fd_limit']) assert.match((await series(s, n))[0] ?? '', new RegExp(`^${n} [1-9]\\d*$`));
    }
  }
});

test('Status.storageVersion: "<major>.<minor>.0" from etcd 3.6 on (etcd 3.6.8 says 3.6.0), empty before', () => {
  assert.equal(storageVersionOf('3.6.8'), '3.6.0');
  assert.equal(storageVersionOf('3.7.1'), '3.7.0');
  assert.equal(storageVersionOf('3.5.17'), '');
  assert.equal(storageVersionOf('3.4.23'), '');
});
