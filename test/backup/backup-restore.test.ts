// A backup of a 3-member Cairn cluster under write load, to a real S3 server (SeaweedFS), lands under
// its final key with the record's metadata, nothing left under .incomplete/; the object's bytes
// restore (download verified, `cairn snapshot restore --bump-revision --mark-compacted`) into a new
// cluster that holds exactly the keys of the source at the snapshot's revision, with revisions bumped
// past it and the old revisions compacted.
// test-file-timeout: 5 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { META, listBackups, restoreMember, runBackup } from '../../operator/backup/index.js';
import { startCluster } from '../harness/cluster.js';
import { EtcdClient } from '../harness/client.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { tempDir } from '../harness/procs.js';
import { startS3, weedBin } from '../harness/s3.js';
import { CAIRN_BIN, candidates, clientFor, incomplete, keyspace, load, logSink, restoreTarget, sourceFor, startRestored } from './lib.js';

const BUCKET = 'backups';
const BUMP = 1_000_000;

test('3 members under write load: backup to S3 with metadata, restore holds exactly the keys at its revision, revisions bumped', async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const [s3server, cluster] = await Promise.all([startS3({ buckets: [BUCKET] }), startCluster('cairn', { size: 3 })]);
  const s3 = clientFor(s3server);
  const writer = cluster.client('m1');
  try {
    // ~24 MB of bulk data, so that the snapshot takes a while, then writes all through the backup.
    await load(writer, 'bulk/', 24, 1024 * 1024);
    let stop = false;
    let written = 0;
    const loadDone = (async (): Promise<void> => {
      while (!stop) {
        const r = await writer.put({ key: Buffer.from(`load/${String(written).padStart(8, '0')}`), value: Buffer.from(`v${written}`) });
        if (!r.ok) throw new Error(`put during backup: ${r.details}`);
        written++;
      }
    })();
    const order = await candidates(cluster);
    const from = order[0];
    assert.ok(from !== undefined && from.memberId !== from.leaderId, 'a follower is chosen first');
    const source = sourceFor(from.endpoint);
    const { log, lines } = logSink();
    const writtenBefore = written;
    const rec = await runBackup({ s3, bucket: BUCKET, prefix: 'it/', cluster: 'default-main', source, now: () => new Date(), log, partSizeBytes: 5 * 1024 * 1024, progressEveryBytes: 5 * 1024 * 1024 });
    const writtenDuring = written - writtenBefore;
    stop = true;
    await loadDone;
    source.close();
    console.error(`backup: ${rec.sizeBytes} bytes in ${rec.end.getTime() - rec.start.getTime()} ms from member ${rec.memberId}; ${writtenDuring} writes acknowledged during it`);
    assert.ok(writtenDuring > 0, 'writes went on during the backup');
    assert.ok(lines.some((l) => l['msg'] === 'backup: progress'), 'progress lines');

    // The record, the object and its metadata agree.
    assert.equal(rec.uri, `s3://${BUCKET}/${rec.key}`);
    assert.match(rec.key, /^it\/default-main\/\d{8}T\d{9}Z\.snapshot$/);
    assert.equal(rec.memberId, from.memberId);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: rec.key }));
    assert.equal(head.ContentLength, rec.sizeBytes);
    const meta = head.Metadata ?? {};
    assert.equal(meta[META.sha256], rec.sha256);
    assert.equal(meta[META.size], String(rec.sizeBytes));
    assert.equal(meta[META.revision], String(rec.revision));
    assert.equal(meta[META.member], rec.memberId);
    assert.equal(meta[META.version], rec.serverVersion);
    assert.equal(meta[META.start], rec.start.toISOString());
    assert.equal(meta[META.end], rec.end.toISOString());
    assert.ok(rec.serverVersion.length > 0);
    const body = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: rec.key }));
    const bytes = Buffer.from((await body.Body?.transformToByteArray()) ?? []);
    assert.equal(bytes.length, rec.sizeBytes);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), rec.sha256);
    assert.ok(createHash('sha256').update(bytes.subarray(0, -32)).digest().equals(bytes.subarray(-32)), 'the object ends with the SHA-256 trailer of its data');
    assert.deepEqual(await incomplete(s3, BUCKET, 'it/'), { uploads: 0, objects: 0 }, 'nothing left under .incomplete/');
    assert.deepEqual((await listBackups(s3, BUCKET, 'it/', 'default-main')).map((b) => b.key), [rec.key]);

    // Restore into a new one-member cluster.
    const target = await restoreTarget('r1');
    const res = await restoreMember({
      s3,
      bucket: BUCKET,
      key: rec.key,
      expect: { sizeBytes: rec.sizeBytes, sha256: rec.sha256 },
      downloadPath: join(tempDir('cairn-download-'), 'backup.snapshot'),
      member: { name: target.name, initialCluster: `${target.name}=${target.peerUrl}`, initialClusterToken: target.token, initialAdvertisePeerUrls: target.peerUrl, dataDir: target.dataDir },
      cairnBin: CAIRN_BIN,
      bumpRevision: BUMP,
    });
    assert.ok(res.snapshotRevision >= rec.revision, `the snapshot (revision ${res.snapshotRevision}) holds at least the recorded revision ${rec.revision}`);
    const restored = await startRestored(target);
    const rc = new EtcdClient(restored.endpoint);
    try {
      const want = await keyspace(writer, res.snapshotRevision);
      assert.equal(want.error, undefined);
      const got = await keyspace(rc);
      assert.equal(got.error, undefined);
      assert.ok(got.kvs.length > 24, `restored ${got.kvs.length} keys`);
      assert.deepEqual(got.kvs, want.kvs, 'exactly the keys of the source at the snapshot revision');
      assert.ok(got.headerRevision >= res.snapshotRevision + BUMP, `revision bumped: ${got.headerRevision} >= ${res.snapshotRevision} + ${BUMP}`);
      const old = await keyspace(rc, res.snapshotRevision);
      assert.match(old.error ?? '', /compacted/, 'revisions before the bump read as compacted');
      const w = await rc.put({ key: Buffer.from('after-restore'), value: Buffer.from('x') });
      assert.ok(w.ok && Number((w.value['header'] as Record<string, unknown>)['revision']) > res.startRevision - 1, 'writes continue past the bumped revision');
      console.error(`restore: snapshot revision ${res.snapshotRevision}, recorded (lower bound) ${rec.revision}, restored at ${got.headerRevision}`);
    } finally {
      rc.close();
      await restored.stop();
    }
  } finally {
    s3.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
