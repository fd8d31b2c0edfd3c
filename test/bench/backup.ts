// `npm run bench:backup`: backup throughput and restore time of a 1 GiB database (issue 15), Cairn
// beside etcd. One single member of each, filled as the bench's admin rows fill theirs (adminload.ts:
// 64 KiB values, 32 puts in flight; CAIRN_BENCH_ADMIN_BYTES sets the size), one after the other:
//   Cairn  backup   operator/backup runBackup: Maintenance.Snapshot streamed and verified, multipart
//                   upload to a local SeaweedFS (test/harness/s3.ts) under a temporary key, copied to
//                   its final key (MB/s = object bytes / seconds, start to the object being final)
//          restore  operator/backup restoreMember: download with size/SHA-256/trailer checks, then
//                   `cairn snapshot restore --bump-revision --mark-compacted` into a new data dir
//   etcd   backup   `etcdctl snapshot save` (etcd 3.4's etcdctl) to a local file
//          restore  `etcdutl snapshot restore --bump-revision --mark-compacted` (etcd 3.6.8's etcdutl,
//                   hack/install-etcd36-tools.sh); etcd 3.4's `etcdctl snapshot restore` (no bump) if
//                   it is missing
// The etcd side writes to the local disk, the Cairn side through an S3 server on the same disk: the
// Cairn figures include the object store's work. Prints a table with ratios and the load average.
// Not part of `npm test`.
import { rmSync, statSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { runBackup, SnapshotSource } from '../../operator/backup/index.js';
import { clientFor, logSink, restoreFromRecord, restoreTarget } from '../backup/lib.js';
import { etcdutl36Bin } from '../harness/bins.js';
import { startCairn, startEtcd, tempDir, type ServerOpts, type ServerProc } from '../harness/procs.js';
import { startS3 } from '../harness/s3.js';
import { ctl, fill, QUOTA_FLAG, status, VALUE_BYTES } from './adminload.js';
import { envPositiveInt, errorText } from './loadlib.js';

const BUCKET = 'bench';
/** As restoreMember's default (etcd's advice for kube-apiserver's clusters). */
const BUMP = 1_000_000_000;
const RESTORE_TIMEOUT_MS = 30 * 60_000;

interface SideFigures {
  readonly fillSeconds: number;
  readonly dbBytes: number;
  readonly revision: number;
  readonly backupBytes: number;
  readonly backupSeconds: number;
  readonly restoreSeconds: number;
  readonly restoredRevision: number;
  readonly restoreTool: string;
  readonly loadBefore: number;
}

const say = (m: Record<string, unknown>): void => {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), ...m })}\n`);
};

const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

async function filled(label: string, start: (o: ServerOpts) => Promise<ServerProc>, dir: string, fillBytes: number): Promise<{ proc: ServerProc; fillSeconds: number; dbBytes: number; revision: number }> {
  const proc = await start({ dataDir: join(dir, `${label}-data`), extraArgs: [QUOTA_FLAG], readyTimeoutMs: 60_000 });
  const keys = Math.max(1, Math.round(fillBytes / VALUE_BYTES));
  const t0 = process.hrtime.bigint();
  await fill(proc.endpoint, keys);
  const fillSeconds = seconds(t0);
  const s = await status(proc.endpoint);
  say({ msg: 'bench: filled', side: label, keys, valueBytes: VALUE_BYTES, seconds: fillSeconds, dbBytes: s.dbSize, revision: s.revision });
  return { proc, fillSeconds, dbBytes: s.dbSize, revision: s.revision };
}

async function cairnSide(fillBytes: number): Promise<SideFigures> {
  const dir = tempDir('cairn-bench-backup-cairn-');
  const loadBefore = loadavg()[0] ?? 0;
  const s3server = await startS3({ buckets: [BUCKET] });
  const s3 = clientFor(s3server);
  const f = await filled('cairn', startCairn, dir, fillBytes);
  try {
    const source = new SnapshotSource(f.proc.endpoint);
    const { log } = logSink();
    let t0 = process.hrtime.bigint();
    const rec = await runBackup({ s3, bucket: BUCKET, prefix: 'bench/', cluster: 'bench', source, now: () => new Date(), log });
    const backupSeconds = seconds(t0);
    source.close();
    say({ msg: 'bench: cairn backup', bytes: rec.sizeBytes, seconds: backupSeconds, uri: rec.uri, revision: rec.revision });
    await f.proc.stop();
    const target = await restoreTarget('r1');
    t0 = process.hrtime.bigint();
    const res = await restoreFromRecord(s3, BUCKET, rec, { name: target.name, initialCluster: `${target.name}=${target.peerUrl}`, initialClusterToken: target.token, initialAdvertisePeerUrls: target.peerUrl, dataDir: target.dataDir }, BUMP);
    const restoreSeconds = seconds(t0);
    say({ msg: 'bench: cairn restore', seconds: restoreSeconds, snapshotRevision: res.snapshotRevision, startRevision: res.startRevision });
    if (res.snapshotRevision !== f.revision) throw new Error(`the restored snapshot is at revision ${res.snapshotRevision}, the filled member was at ${f.revision}`);
    rmSync(target.dataDir, { recursive: true, force: true });
    return { fillSeconds: f.fillSeconds, dbBytes: f.dbBytes, revision: f.revision, backupBytes: rec.sizeBytes, backupSeconds, restoreSeconds, restoredRevision: res.snapshotRevision, restoreTool: 'restoreMember (download verified + cairn snapshot restore --bump-revision --mark-compacted)', loadBefore };
  } finally {
    await f.proc.stop();
    s3.destroy();
    await s3server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function runTool(cmd: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: RESTORE_TIMEOUT_MS });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out = (out + b.toString('utf8')).slice(-8192)));
    child.stderr.on('data', (b: Buffer) => (out = (out + b.toString('utf8')).slice(-8192)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

/** etcdutl 3.6 with the bump and compaction mark, or etcd 3.4's etcdctl without them when etcdutl is missing. */
function restoreCommand(snap: string, dataDir: string): { cmd: string; args: string[]; tool: string } {
  const common = ['snapshot', 'restore', snap, '--data-dir', dataDir, '--name', 'r1', '--initial-cluster', 'r1=http://127.0.0.1:1', '--initial-advertise-peer-urls', 'http://127.0.0.1:1'];
  try {
    return { cmd: etcdutl36Bin(), args: [...common, '--bump-revision', String(BUMP), '--mark-compacted'], tool: 'etcdutl 3.6.8 snapshot restore --bump-revision --mark-compacted' };
  } catch (e) {
    say({ msg: 'bench: etcdutl 3.6 missing, falling back to etcdctl 3.4 snapshot restore (no bump)', error: errorText(e) });
    return { cmd: 'etcdctl', args: common, tool: 'etcdctl 3.4 snapshot restore (no bump: etcdutl 3.6 missing)' };
  }
}

async function etcdSide(fillBytes: number): Promise<SideFigures> {
  const dir = tempDir('cairn-bench-backup-etcd-');
  const loadBefore = loadavg()[0] ?? 0;
  const f = await filled('etcd', startEtcd, dir, fillBytes);
  const snap = join(dir, 'etcd.snapshot');
  try {
    const backupSeconds = await ctl(f.proc.endpoint, ['snapshot', 'save', snap]);
    const backupBytes = statSync(snap).size;
    say({ msg: 'bench: etcd snapshot save', bytes: backupBytes, seconds: backupSeconds });
    await f.proc.stop();
    const { cmd, args, tool } = restoreCommand(snap, join(dir, 'restored'));
    const t0 = process.hrtime.bigint();
    const r = await runTool(cmd, args);
    const restoreSeconds = seconds(t0);
    if (r.code !== 0) throw new Error(`${tool} failed (exit ${r.code}): ${r.out.trim()}`);
    say({ msg: 'bench: etcd restore', seconds: restoreSeconds, tool });
    return { fillSeconds: f.fillSeconds, dbBytes: f.dbBytes, revision: f.revision, backupBytes, backupSeconds, restoreSeconds, restoredRevision: f.revision, restoreTool: tool, loadBefore };
  } finally {
    await f.proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const mb = (bytes: number): number => bytes / 1e6;

function table(c: SideFigures | string, e: SideFigures | string): string {
  const rows: Array<[string, (s: SideFigures) => number, 'higher' | 'lower', number]> = [
    ['database after fill (MiB)', (s) => s.dbBytes / 2 ** 20, 'lower', 0],
    ['backup object / file (MiB)', (s) => s.backupBytes / 2 ** 20, 'lower', 0],
    ['backup time (s)', (s) => s.backupSeconds, 'lower', 2],
    ['backup throughput (MB/s)', (s) => mb(s.backupBytes) / s.backupSeconds, 'higher', 1],
    ['restore time (s)', (s) => s.restoreSeconds, 'lower', 2],
    ['restore throughput (MB/s)', (s) => mb(s.backupBytes) / s.restoreSeconds, 'higher', 1],
  ];
  const cell = (s: SideFigures | string, f: (s: SideFigures) => number, digits: number): string => (typeof s === 'string' ? s.slice(0, 40) : f(s).toFixed(digits));
  const lines = [`${'figure'.padEnd(38)} ${'Cairn'.padStart(12)} ${'etcd'.padStart(12)}  Cairn/etcd`];
  for (const [name, f, better, digits] of rows) {
    const ratio = typeof c === 'string' || typeof e === 'string' ? '' : `${(f(c) / f(e)).toFixed(2)}x${better === 'higher' ? ' (higher is better)' : ''}`;
    lines.push(`${name.padEnd(38)} ${cell(c, f, digits).padStart(12)} ${cell(e, f, digits).padStart(12)}  ${ratio}`);
  }
  const load = (s: SideFigures | string): string => (typeof s === 'string' ? '-' : s.loadBefore.toFixed(2));
  lines.push(`${'load average (1 min) when the side began'.padEnd(38)} ${load(c).padStart(12)} ${load(e).padStart(12)}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const fillBytes = envPositiveInt('CAIRN_BENCH_ADMIN_BYTES', 2 ** 30);
  const load0 = loadavg();
  say({ msg: 'bench: backup start', fillBytes, loadavg: load0, cpus: cpus().length });
  const side = (label: string, run: () => Promise<SideFigures>): Promise<SideFigures | string> =>
    run().catch((e: unknown) => {
      say({ msg: 'bench: side failed', side: label, error: errorText(e) });
      return `failed: ${errorText(e).split('\n')[0] ?? ''}`;
    });
  const cairn = await side('cairn', () => cairnSide(fillBytes));
  const etcd = await side('etcd', () => etcdSide(fillBytes));
  const load1 = loadavg();
  console.log(`\nBackup and restore of a single member filled with ${(fillBytes / 2 ** 30).toFixed(2)} GiB (${VALUE_BYTES / 1024} KiB values), ${cpus().length} CPUs`);
  console.log(`load average (1/5/15 min): start ${load0.map((l) => l.toFixed(2)).join(' ')}, end ${load1.map((l) => l.toFixed(2)).join(' ')}\n`);
  console.log(table(cairn, etcd));
  console.log('\nCairn: operator/backup runBackup to SeaweedFS on loopback (multipart upload, then the copy to the final key), restore = restoreMember (download + SHA-256 checks + cairn snapshot restore)');
  console.log(`etcd 3.4.23: etcdctl snapshot save to a local file; restore = ${typeof etcd === 'string' ? '(failed)' : etcd.restoreTool}`);
  if (typeof cairn === 'string' || typeof etcd === 'string') process.exitCode = 1;
}

// `node --test dist/test/` runs every .js file under dist/test as a test file; the bench must not run then.
if (process.env['NODE_TEST_CONTEXT'] !== undefined) {
  console.log('bench:backup: skipped under the test runner (run it with npm run bench:backup)');
} else {
  main().catch((e: unknown) => {
    console.error(`bench:backup: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
