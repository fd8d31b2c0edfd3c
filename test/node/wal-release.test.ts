// WAL release: every --snapshot-count applied entries the node flushes LMDB and deletes the WAL
// segments LMDB now holds; a restart replays only what is left and loses nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Node, type NodeConfig } from '../../server/node/index.js';
import { createLogger } from '../../server/base/log.js';
import { tempDir } from '../harness/procs.js';

const PUTS = 600;

function config(dataDir: string, lines: string[], fatal: Error[]): NodeConfig {
  return {
    name: 'release',
    dataDir,
    walDir: '',
    requestBytesMax: 1572864,
    snapshotCount: 50,
    walSegmentBytes: 8 * 1024,
    snapshotCatchupEntries: 10,
    cluster: { name: 'release', initialCluster: 'release=http://127.0.0.1:0', initialClusterState: 'new', initialClusterToken: 'etcd-cluster', initialAdvertisePeerUrls: ['http://127.0.0.1:0'] },
    listenPeerUrls: ['http://127.0.0.1:0'],
    advertiseClientUrls: ['http://127.0.0.1:2379'],
    heartbeatMs: 100,
    electionMs: 1000,
    logger: createLogger('info', (l) => lines.push(l)),
    onFatal: (err) => fatal.push(err),
    onRemoved: (err) => fatal.push(err),
  };
}

function segments(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'member', 'wal'))
    .filter((f) => f.endsWith('.wal'))
    .sort();
}

function revisionOf(node: Node): number {
  return node.store.currentRev;
}

test('WAL segments held by LMDB are released every snapshot-count entries; a restart loses nothing', async () => {
  const dataDir = tempDir('cairn-release');
  const lines: string[] = [];
  const fatal: Error[] = [];
  const node = await Node.open(config(dataDir, lines, fatal));
  await node.ready();
  for (let i = 0; i < PUTS; i++) {
    const o = await node.propose({ put: { key: Buffer.from(`k${String(i).padStart(4, '0')}`), value: Buffer.alloc(100, i % 256) } });
    assert.ok(o.ok);
  }
  await node.close();
  assert.deepEqual(fatal, []);
  const released = lines.filter((l) => l.includes('wal: released segments'));
  assert.ok(released.length >= 2, `segments were released (${released.length} times)`);
  const left = segments(dataDir);
  const rotated = lines.filter((l) => l.includes('wal: rotated segment')).length;
  assert.ok(rotated >= 8, `the WAL rotated through many small segments (${rotated})`);
  assert.ok(left.length <= 3, `only the segments not yet held by LMDB remain: ${left.join(', ')}`);
  assert.ok(!left.some((f) => f.endsWith('-0000000000000001.wal')), 'the first segment is gone');

  const lines2: string[] = [];
  const again = await Node.open(config(dataDir, lines2, fatal));
  await again.ready();
  try {
    assert.equal(revisionOf(again), PUTS + 1, 'every put is there after the restart');
    const all = again.store.beginRead().range({ start: Buffer.from('k'), end: Buffer.from('l'), single: false }, 0, 0, true);
    assert.equal(all.count, PUTS);
    const next = await again.propose({ put: { key: Buffer.from('after'), value: Buffer.from('x') } });
    assert.ok(next.ok && next.response.kind === 'put');
    if (next.ok && next.response.kind === 'put') assert.equal(next.response.resp.header?.revision, PUTS + 2);
  } finally {
    await again.close();
  }
  assert.deepEqual(fatal, []);
});
