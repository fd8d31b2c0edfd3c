// Bad input and faults of backups and restores on a 1-member Cairn cluster and a real S3 server
// (SeaweedFS): wrong credentials, a missing bucket, an endpoint nobody answers at, corrupt and
// truncated objects refused before restore, retention pruning the real bucket, and the part-by-part
// final copy used above S3's CopyObject limit (exercised here with a small limit) restoring intact.
// test-file-timeout: 5 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BackupError, META, deleteBackup, listBackups, restoreMember, runBackup, toDelete, verifyObject, type BackupOptions, type BackupRecord } from '../../operator/backup/index.js';
import { startCluster } from '../harness/cluster.js';
import { EtcdClient } from '../harness/client.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { freePort, tempDir } from '../harness/procs.js';
import { S3_READ_ONLY, startS3, weedBin } from '../harness/s3.js';
import { CAIRN_BIN, clientFor, exists, incomplete, keyspace, load, logSink, restoreTarget, sourceFor, startRestored } from './lib.js';

const BUCKET = 'faults';
const DAY = 86_400_000;

function isBackupError(reason: BackupError['reason'], re?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof BackupError, `a BackupError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    if (re !== undefined) assert.match(e.message, re);
    return true;
  };
}

test('backup and restore faults on a 1-member cluster', async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const [s3server, cluster] = await Promise.all([startS3({ buckets: [BUCKET] }), startCluster('cairn', { size: 1 })]);
  const s3 = clientFor(s3server);
  const writer = cluster.client('m1');
  const source = sourceFor(cluster.member('m1').endpoint);
  const base = (o: Partial<BackupOptions> = {}): BackupOptions => ({ s3, bucket: BUCKET, prefix: 'f/', cluster: 'c1', source, now: () => new Date(), log: logSink().log, ...o });
  try {
    await load(writer, 'bulk/', 12, 1024 * 1024);
    await load(writer, 'small/', 200, 100);

    await t.test('wrong credentials: access denied, nothing uploaded', async () => {
      const ro = clientFor(s3server, S3_READ_ONLY);
      await assert.rejects(runBackup(base({ s3: ro })), isBackupError('AccessDenied', /access denied/));
      ro.destroy();
      const bogus = clientFor(s3server, { accessKeyId: 'NOSUCHKEY', secretAccessKey: 'nope' });
      await assert.rejects(runBackup(base({ s3: bogus })), isBackupError('AccessDenied'));
      bogus.destroy();
      assert.deepEqual(await listBackups(s3, BUCKET, 'f/', 'c1'), []);
      assert.deepEqual(await incomplete(s3, BUCKET, 'f/'), { uploads: 0, objects: 0 });
    });

    await t.test('missing bucket', async () => {
      await assert.rejects(runBackup(base({ bucket: 'no-such-bucket' })), isBackupError('BucketMissing', /no-such-bucket/));
    });

    await t.test('endpoint down', async () => {
      const down = clientFor(s3server, undefined, `http://127.0.0.1:${String(await freePort())}`);
      await assert.rejects(runBackup(base({ s3: down })), isBackupError('EndpointUnreachable', /did not answer/));
      down.destroy();
    });

    let good: BackupRecord | undefined;
    await t.test('a backup larger than the copy limit is copied part by part and restores intact', async () => {
      good = await runBackup(base({ copyObjectMaxBytes: 1024 * 1024, copyPartBytes: 5 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 }));
      assert.ok(good.sizeBytes > 10 * 1024 * 1024, `${good.sizeBytes} bytes: more than two copy parts`);
      const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: good.key }));
      assert.equal(head.ContentLength, good.sizeBytes);
      assert.equal(head.Metadata?.[META.sha256], good.sha256);
      const target = await restoreTarget('r1');
      const res = await restoreMember({
        s3,
        bucket: BUCKET,
        key: good.key,
        expect: { sizeBytes: good.sizeBytes, sha256: good.sha256 },
        downloadPath: join(tempDir('cairn-download-'), 'b.snapshot'),
        member: { name: target.name, initialCluster: `${target.name}=${target.peerUrl}`, initialClusterToken: target.token, initialAdvertisePeerUrls: target.peerUrl, dataDir: target.dataDir },
        cairnBin: CAIRN_BIN,
      });
      const restored = await startRestored(target);
      const rc = new EtcdClient(restored.endpoint);
      try {
        assert.deepEqual((await keyspace(rc)).kvs, (await keyspace(writer, res.snapshotRevision)).kvs);
        assert.ok((await keyspace(rc)).headerRevision >= res.snapshotRevision + 1_000_000_000, 'default bump: a billion');
      } finally {
        rc.close();
        await restored.stop();
      }
    });

    await t.test('corrupt and truncated objects are refused before anything is restored', async () => {
      assert.ok(good !== undefined);
      const rec = good;
      const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: rec.key }));
      const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
      const corrupt = Buffer.from(bytes);
      const mid = Math.floor(corrupt.length / 2);
      corrupt[mid] = (corrupt[mid] ?? 0) ^ 0x40;
      const truncated = bytes.subarray(0, bytes.length - 1000);
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/corrupt.snapshot', Body: corrupt }));
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/truncated.snapshot', Body: truncated }));
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      const cases: [string, string, { sizeBytes: number; sha256: string }, RegExp][] = [
        ['corrupt, record of the good backup', 'bad/corrupt.snapshot', { sizeBytes: rec.sizeBytes, sha256: rec.sha256 }, /SHA-256 is [0-9a-f]+, the backup record says .*corrupt/],
        ['corrupt, record matching the corrupt bytes', 'bad/corrupt.snapshot', { sizeBytes: corrupt.length, sha256: sha(corrupt) }, /trailer .* does not match its data .*corrupt/],
        ['truncated, record of the good backup', 'bad/truncated.snapshot', { sizeBytes: rec.sizeBytes, sha256: rec.sha256 }, /the object is \d+ bytes, the backup record says \d+/],
        ['truncated, record matching the short bytes', 'bad/truncated.snapshot', { sizeBytes: truncated.length, sha256: sha(truncated) }, /not whole 512-byte sectors .*truncated/],
      ];
      for (const [name, key, expect, re] of cases) {
        const target = await restoreTarget('bad');
        const downloadPath = join(tempDir('cairn-download-'), 'b.snapshot');
        await assert.rejects(
          restoreMember({
            s3,
            bucket: BUCKET,
            key,
            expect,
            downloadPath,
            member: { name: target.name, initialCluster: `${target.name}=${target.peerUrl}`, initialClusterToken: target.token, initialAdvertisePeerUrls: target.peerUrl, dataDir: target.dataDir },
            cairnBin: CAIRN_BIN,
          }),
          isBackupError('RestoreRefused', re),
          name,
        );
        assert.ok(!existsSync(target.dataDir), `${name}: no data dir was created`);
        assert.ok(!existsSync(downloadPath), `${name}: the download was removed`);
        // The operator's check before it creates any member: the same refusal, nothing written.
        await assert.rejects(verifyObject({ s3, bucket: BUCKET, key, expect }), isBackupError('RestoreRefused', re), `${name} (verifyObject)`);
      }
      const ok = await verifyObject({ s3, bucket: BUCKET, key: rec.key, expect: { sizeBytes: rec.sizeBytes, sha256: rec.sha256 } });
      assert.equal(ok.sha256, rec.sha256);
    });

    await t.test('retention prunes the real bucket: oldest first, never the newest good one', async () => {
      const now = Date.now();
      const at = [now - 3 * DAY, now - 2 * DAY, now - DAY, now - 3_600_000];
      const made: BackupRecord[] = [];
      for (const ms of at) made.push(await runBackup(base({ prefix: 'ret/', now: () => new Date(ms) })));
      const listed = await listBackups(s3, BUCKET, 'ret/', 'c1');
      assert.deepEqual(listed.map((b) => b.key), made.map((m) => m.key), 'listed oldest first');
      const items = listed.map((b) => ({ id: b.key, startMs: b.start.getTime(), good: true }));
      const del = toDelete(items, { keepLast: 2 }, now);
      assert.deepEqual(del, made.slice(0, 2).map((m) => m.key));
      for (const k of del) await deleteBackup(s3, BUCKET, k);
      assert.deepEqual((await listBackups(s3, BUCKET, 'ret/', 'c1')).map((b) => b.key), made.slice(2).map((m) => m.key));
      const left = (await listBackups(s3, BUCKET, 'ret/', 'c1')).map((b) => ({ id: b.key, startMs: b.start.getTime(), good: true }));
      for (const k of toDelete(left, { maxAgeMs: 60_000 }, now)) await deleteBackup(s3, BUCKET, k);
      const last = made[made.length - 1];
      assert.ok(last !== undefined);
      assert.deepEqual((await listBackups(s3, BUCKET, 'ret/', 'c1')).map((b) => b.key), [last.key], 'everything too old, the newest good one stays');
      assert.ok(await exists(s3, BUCKET, last.key));
    });
  } finally {
    source.close();
    s3.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
