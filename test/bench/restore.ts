// Backup and restore of a ~1 GiB database (issue 15's figure): `node dist/test/bench/restore.js`
// (CAIRN_BENCH_RESTORE_MIB sets the size, default 1024). One fresh member each, filled with 1 MiB
// values (4 connections), then timed:
//   Cairn   backup/'s runBackup: Maintenance.Snapshot streamed to SeaweedFS (multipart, SHA-256
//           verified before the object gets its final name); restoreMember: download verified,
//           `cairn snapshot restore --bump-revision 1000000000 --mark-compacted`
//   etcd    3.6.8: `etcdctl snapshot save` to a local file; `etcdutl snapshot restore` with the same
//           bump and mark
// Prints one JSON line of figures.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { EtcdAdmin } from '../../operator/etcd/index.js';
import { restoreMember, runBackup, SnapshotSource } from '../../operator/backup/index.js';
import { refBin } from '../harness/bins.js';
import { REPO_ROOT, tempDir } from '../harness/procs.js';
import { startS3 } from '../harness/s3.js';
import { pollUntil } from '../harness/poll.js';

const MIB = 1024 * 1024;
const COUNT = Number(process.env['CAIRN_BENCH_RESTORE_MIB'] ?? 1024);
const VALUE = 'v'.repeat(MIB - 64);
const BUMP = 1_000_000_000;
const QUOTA = String(4 * 1024 * MIB);

async function ready(ep: string): Promise<void> {
  await pollUntil(`${ep} answers Status`, async () => {
    const c = new EtcdAdmin(ep, 1000);
    try {
      await c.status();
      return true;
    } catch {
      return false;
    } finally {
      c.close();
    }
  }, 60_000, 100);
}

async function fill(ep: string): Promise<number> {
  const t0 = Date.now();
  let next = 0;
  await Promise.all([0, 1, 2, 3].map(async () => {
    const c = new EtcdAdmin(ep, 60_000);
    try {
      while (next < COUNT) await c.put(`bench/${String(next++).padStart(6, '0')}`, VALUE);
    } finally {
      c.close();
    }
  }));
  return Date.now() - t0;
}

async function stop(p: ChildProcess): Promise<void> {
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

function member(name: string, dir: string, client: number, peer: number): string[] {
  const c = `http://127.0.0.1:${String(client)}`;
  const p = `http://127.0.0.1:${String(peer)}`;
  return ['--name', name, '--data-dir', dir, '--listen-client-urls', c, '--advertise-client-urls', c, '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `${name}=${p}`, '--quota-backend-bytes', QUOTA];
}

const mbps = (bytes: number, ms: number): number => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;

async function cairn(dir: string): Promise<Record<string, number>> {
  const p = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'server', 'main.js'), ...member('b', join(dir, 'cairn'), 23791, 23801)], { stdio: 'ignore' });
  const ep = '127.0.0.1:23791';
  await ready(ep);
  const fillMs = await fill(ep);
  const s3 = await startS3({ buckets: ['bench'] });
  try {
    const src = new SnapshotSource(ep);
    const t0 = Date.now();
    const rec = await runBackup({ s3: s3.client(), bucket: 'bench', cluster: 'bench', source: src, now: () => new Date(), log: () => undefined });
    const backupMs = Date.now() - t0;
    src.close();
    await stop(p);
    const t1 = Date.now();
    const r = await restoreMember({
      s3: s3.client(),
      bucket: 'bench',
      key: rec.key,
      expect: { sizeBytes: rec.sizeBytes, sha256: rec.sha256 },
      downloadPath: join(dir, 'download.snap'),
      member: { name: 'r', initialCluster: 'r=http://127.0.0.1:23802', initialClusterToken: 't', initialAdvertisePeerUrls: 'http://127.0.0.1:23802', dataDir: join(dir, 'cairn-restored') },
      cairnBin: join(REPO_ROOT, 'server', 'bin', 'cairn'),
      bumpRevision: BUMP,
    });
    return { fillMs, bytes: rec.sizeBytes, backupMs, backupMBps: mbps(rec.sizeBytes, backupMs), restoreMs: Date.now() - t1, restoredRevision: r.startRevision };
  } finally {
    await s3.stop();
  }
}

async function etcd(dir: string): Promise<Record<string, number>> {
  const p = spawn(refBin('etcd-3.6').path, member('e', join(dir, 'etcd'), 23793, 23803), { stdio: 'ignore' });
  const ep = '127.0.0.1:23793';
  await ready(ep);
  const fillMs = await fill(ep);
  const file = join(dir, 'etcd.db');
  const t0 = Date.now();
  execFileSync(refBin('etcdctl-3.6').path, ['--endpoints', ep, 'snapshot', 'save', file], { stdio: 'ignore' });
  const saveMs = Date.now() - t0;
  await stop(p);
  const bytes = statSync(file).size;
  const t1 = Date.now();
  const restore = ['snapshot', 'restore', file, '--data-dir', join(dir, 'etcd-restored'), '--name', 'r', '--initial-cluster', 'r=http://127.0.0.1:23804', '--initial-advertise-peer-urls', 'http://127.0.0.1:23804'];
  execFileSync(refBin('etcdutl-3.6').path, [...restore, '--bump-revision', String(BUMP), '--mark-compacted'], { stdio: 'ignore' });
  return { fillMs, bytes, saveMs, saveMBps: mbps(bytes, saveMs), restoreMs: Date.now() - t1 };
}

const dir = tempDir('cairn-bench-restore-');
try {
  const c = await cairn(dir);
  const e = await etcd(dir);
  process.stdout.write(`${JSON.stringify({ valuesMiB: COUNT, cairn: c, etcd36: e })}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
