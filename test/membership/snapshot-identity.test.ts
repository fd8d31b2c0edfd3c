// A member that catches up by installing the leader's snapshot keeps its own identity: the snapshot is a
// copy of the leader's database, whose meta table names the leader's member id. Found by the operator's
// end-to-end run on localkube: a replaced member that had joined through a snapshot came back after a
// container restart as the leader's id ("member ID mismatch" on every peer connection, a crash loop).
// Cairn only: the raft snapshot format is Cairn's own (etcd keeps its member id in the WAL metadata).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { addAndStart, expectRoster, promoteWhenReady, writeAndReadEverywhere } from './lib.js';

const TIMEOUT_MS = 180_000;
const KEYS = 300;

test('cairn: a learner that joined through the leader snapshot restarts as itself, not as the leader', { timeout: TIMEOUT_MS }, async () => {
  // A short raft log: the leader compacts it after 50 entries and keeps 10, so a new member can only
  // catch up from a snapshot.
  await withCluster('cairn', { size: 1, extraArgs: ['--snapshot-count=50', '--snapshot-catchup-entries=10'] }, async (c) => {
    const c1 = c.client('m1');
    for (let i = 0; i < KEYS; i++) {
      const r = await c1.put({ key: Buffer.from(`k/${String(i).padStart(4, '0')}`), value: Buffer.from(`v${String(i)}`) });
      assert.ok(r.ok, `put ${String(i)}: ${JSON.stringify(r)}`);
    }
    const { id } = await addAndStart(c, 'm1', 'm2', true);
    const m2 = c.member('m2');
    await pollUntil('m2 installed the leader snapshot', () => Promise.resolve(m2.proc?.stderrLines().some((l) => l.includes('installing a snapshot from the leader')) ?? false), 30_000, 100);
    await promoteWhenReady(c, 'm1', 'm2', id);
    await expectRoster(c, ['m1', 'm2']);

    await c.stop('m2');
    await c.start('m2');
    const st = await c.status('m2');
    assert.equal(st?.id, id, `m2 restarted as its own member id (${id}), not the leader's`);
    await c.leader();
    await writeAndReadEverywhere(c, 'm2', 'after-restart', 'ok');
    const r = await c.client('m2').range({ key: Buffer.from('k/'), range_end: Buffer.from('k0'), count_only: true });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(Number(r.value['count']), KEYS, 'every key written before the join is on m2');
  });
});
