// Faults in the middle of a backup, on a 3-member Cairn cluster and a real S3 server (SeaweedFS):
// the object store killed -9 mid-upload (the backup fails, no object under its final name; the
// leftovers are swept by the next backup, which succeeds), and the member streaming the snapshot
// killed -9 mid-snapshot (the backup fails with SnapshotFailed, its multipart upload is aborted, a
// retry from another member works; backupCluster does that retry itself and prunes).
// test-file-timeout: 5 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackupError, backupCluster, listBackups, runBackup, type BackupOptions } from '../../operator/backup/index.js';
import { startCluster } from '../harness/cluster.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { startS3, weedBin } from '../harness/s3.js';
import { candidates, clientFor, exists, incomplete, load, logSink, sourceFor } from './lib.js';

const BUCKET = 'kills';
const MiB = 1024 * 1024;

test('killed mid-backup: the object store, then the member streaming the snapshot', async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const [s3server, cluster] = await Promise.all([startS3({ buckets: [BUCKET] }), startCluster('cairn', { size: 3 })]);
  const s3 = clientFor(s3server);
  try {
    // ~64 MB: at 5 MiB parts, one part in flight, the stream is far from its end at the first part.
    await load(cluster.client('m1'), 'bulk/', 64, MiB);
    const slow = { partSizeBytes: 5 * MiB, queueParts: 1, progressEveryBytes: 5 * MiB };

    await t.test('object store killed -9 mid-upload: no object under the final name; swept by the next backup', async () => {
      const [from] = await candidates(cluster);
      assert.ok(from !== undefined);
      const source = sourceFor(from.endpoint);
      const { lines, log } = logSink();
      let killed: Promise<void> | undefined;
      const opts: BackupOptions = {
        s3, bucket: BUCKET, prefix: 'k/', cluster: 'c3', source, now: () => new Date(), ...slow,
        log: (l) => {
          log(l);
          if (l['msg'] === 'backup: progress' && killed === undefined) killed = s3server.kill();
        },
      };
      const failed = await runBackup(opts).then(
        (r) => assert.fail(`the backup succeeded: ${r.uri}`),
        (e: unknown) => e,
      );
      await killed;
      assert.ok(failed instanceof BackupError, String(failed));
      assert.ok(['EndpointUnreachable', 'UploadFailed'].includes(failed.reason), `${failed.reason}: ${failed.message}`);
      console.error(`object store killed: ${failed.reason}: ${failed.message}`);
      assert.ok(lines.some((l) => l['level'] === 'warn' && String(l['msg']).includes('next backup sweeps')), 'the cleanup failure is logged');
      await s3server.restart();
      const key = String(lines.find((l) => l['msg'] === 'backup: started')?.['key']);
      assert.equal(await exists(s3, BUCKET, key), false, 'no object under the final name');
      assert.deepEqual(await listBackups(s3, BUCKET, 'k/', 'c3'), []);
      const left = await incomplete(s3, BUCKET, 'k/');
      console.error(`left under .incomplete/ after the store came back: ${JSON.stringify(left)}`);
      const next = logSink();
      const rec = await runBackup({ ...opts, log: next.log });
      assert.ok(await exists(s3, BUCKET, rec.key));
      if (left.uploads + left.objects > 0) assert.ok(next.lines.some((l) => l['msg'] === 'backup: removed leftovers of an earlier failed backup'));
      assert.deepEqual(await incomplete(s3, BUCKET, 'k/'), { uploads: 0, objects: 0 }, 'the next backup swept the leftovers');
      source.close();
    });

    await t.test('member killed -9 mid-snapshot: SnapshotFailed, upload aborted; a retry from another member works', async () => {
      const order = await candidates(cluster);
      const from = order[0];
      assert.ok(from !== undefined);
      const victim = cluster.members.find((m) => m.endpoint === from.endpoint);
      assert.ok(victim !== undefined);
      const source = sourceFor(from.endpoint);
      const { log } = logSink();
      let killed: Promise<void> | undefined;
      const failed = await runBackup({
        s3, bucket: BUCKET, prefix: 'm/', cluster: 'c3', source, now: () => new Date(), ...slow,
        log: (l) => {
          log(l);
          if (l['msg'] === 'backup: progress' && killed === undefined) killed = cluster.kill9(victim.name);
        },
      }).then(
        (r) => assert.fail(`the backup succeeded: ${r.uri}`),
        (e: unknown) => e,
      );
      await killed;
      source.close();
      assert.ok(failed instanceof BackupError, String(failed));
      assert.equal(failed.reason, 'SnapshotFailed', failed.message);
      console.error(`member killed: ${failed.message}`);
      assert.deepEqual(await listBackups(s3, BUCKET, 'm/', 'c3'), []);
      assert.deepEqual(await incomplete(s3, BUCKET, 'm/'), { uploads: 0, objects: 0 }, 'the multipart upload was aborted');
      const retryFrom = (await candidates(cluster)).find((c) => c.endpoint !== from.endpoint);
      assert.ok(retryFrom !== undefined);
      const src2 = sourceFor(retryFrom.endpoint);
      const rec = await runBackup({ s3, bucket: BUCKET, prefix: 'm/', cluster: 'c3', source: src2, now: () => new Date(), log: logSink().log });
      src2.close();
      assert.equal(rec.memberId, retryFrom.memberId);
      assert.ok(rec.sizeBytes > 64 * MiB);
      assert.deepEqual((await listBackups(s3, BUCKET, 'm/', 'c3')).map((b) => b.key), [rec.key]);
      await cluster.start(victim.name);
    });

    await t.test('backupCluster: the first member dies mid-snapshot, the next one is used; retention prunes', async () => {
      const before = (await listBackups(s3, BUCKET, 'm/', 'c3')).map((b) => b.key);
      const members = await candidates(cluster);
      assert.equal(members.length, 3);
      const first = members[0];
      const victim = cluster.members.find((m) => m.endpoint === first?.endpoint);
      assert.ok(first !== undefined && victim !== undefined);
      let killed: Promise<void> | undefined;
      const { log } = logSink();
      const r = await backupCluster({
        s3, bucket: BUCKET, prefix: 'm/', cluster: 'c3', members, now: () => new Date(), ...slow, retention: { keepLast: 1 },
        log: (l) => {
          log(l);
          if (l['msg'] === 'backup: progress' && killed === undefined) killed = cluster.kill9(victim.name);
        },
      });
      await killed;
      assert.equal(r.attempts.length, 2);
      assert.equal(r.attempts[0]?.error?.reason, 'SnapshotFailed');
      assert.equal(r.attempts[1]?.error, undefined);
      assert.equal(r.record.memberId, members[1]?.memberId);
      assert.deepEqual(r.pruned, before, 'keepLast 1: the older backup was pruned');
      assert.deepEqual((await listBackups(s3, BUCKET, 'm/', 'c3')).map((b) => b.key), [r.record.key]);
      assert.deepEqual(await incomplete(s3, BUCKET, 'm/'), { uploads: 0, objects: 0 });
    });
  } finally {
    s3.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
