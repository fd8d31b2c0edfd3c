// Throughput of a backup of a ~256 MB database (1 member) to a local SeaweedFS with the default part
// size and queue, and of the verified download + `cairn snapshot restore` of it; prints MB/s and the
// operator process's peak RSS growth (the pipeline never holds the database in memory). Figures, not
// limits: the only assertions are that both complete, that the restored keyspace matches, and that
// memory stayed far below the database size.
// test-file-timeout: 6 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { restoreMember, runBackup } from '../../operator/backup/index.js';
import { startCluster } from '../harness/cluster.js';
import { EtcdClient } from '../harness/client.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { tempDir } from '../harness/procs.js';
import { startS3, weedBin } from '../harness/s3.js';
import { CAIRN_BIN, clientFor, keyspace, load, logSink, restoreTarget, sourceFor, startRestored } from './lib.js';

const MiB = 1024 * 1024;
const DB_MIB = Number(process.env['CAIRN_BACKUP_BENCH_MIB'] ?? 256);

test(`backup and restore throughput of a ~${DB_MIB} MB database`, async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const [s3server, cluster] = await Promise.all([startS3({ buckets: ['bench'] }), startCluster('cairn', { size: 1 })]);
  const s3 = clientFor(s3server);
  const writer = cluster.client('m1');
  const source = sourceFor(cluster.member('m1').endpoint);
  try {
    const t0 = Date.now();
    await load(writer, 'bulk/', DB_MIB, MiB, 8);
    console.error(`loaded ${DB_MIB} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 50);
    const rec = await runBackup({ s3, bucket: 'bench', prefix: 'b/', cluster: 'bench', source, now: () => new Date(), log: logSink().log });
    clearInterval(sampler);
    const secs = (rec.end.getTime() - rec.start.getTime()) / 1000;
    const growthMiB = (rssPeak - rssBefore) / MiB;
    console.error(`BACKUP ${(rec.sizeBytes / 1e6).toFixed(0)} MB in ${secs.toFixed(1)} s = ${(rec.sizeBytes / 1e6 / secs).toFixed(1)} MB/s; test process RSS grew by ${growthMiB.toFixed(0)} MiB at most`);
    assert.ok(rec.sizeBytes >= DB_MIB * MiB);
    assert.ok(growthMiB < DB_MIB / 2, `memory bounded: RSS grew ${growthMiB.toFixed(0)} MiB for a ${DB_MIB} MiB database`);

    const target = await restoreTarget('r1');
    const r0 = Date.now();
    const res = await restoreMember({
      s3,
      bucket: 'bench',
      key: rec.key,
      expect: { sizeBytes: rec.sizeBytes, sha256: rec.sha256 },
      downloadPath: join(tempDir('cairn-download-'), 'b.snapshot'),
      member: { name: target.name, initialCluster: `${target.name}=${target.peerUrl}`, initialClusterToken: target.token, initialAdvertisePeerUrls: target.peerUrl, dataDir: target.dataDir },
      cairnBin: CAIRN_BIN,
    });
    const rsecs = (Date.now() - r0) / 1000;
    console.error(`RESTORE (download + verify + cairn snapshot restore) ${(res.sizeBytes / 1e6).toFixed(0)} MB in ${rsecs.toFixed(1)} s = ${(res.sizeBytes / 1e6 / rsecs).toFixed(1)} MB/s`);
    const restored = await startRestored(target);
    const rc = new EtcdClient(restored.endpoint);
    try {
      assert.deepEqual((await keyspace(rc)).kvs.length, DB_MIB);
    } finally {
      rc.close();
      await restored.stop();
    }
  } finally {
    source.close();
    s3.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
