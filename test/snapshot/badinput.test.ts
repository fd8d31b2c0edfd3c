// Snapshot files that must be refused (cut short, altered, trailer removed, not LMDB or bbolt, damaged bbolt)
// with a clear error and nothing written; restore targets that exist; command lines the tool does not
// understand; --skip-hash-check and --wal-dir on a good file; `snapshot status` printed exactly as
// etcdctl 3.4 prints a DBStatus; progress lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { freePort, runEtcdctl, startCairn, startEtcd, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { formatStatus, humanizeBytes, isWriteOut } from '../../server/ctl/print.js';
import { Progress, PROGRESS_EVERY_BYTES } from '../../server/snap/index.js';
import { createLogger } from '../../server/base/log.js';
import { allKvs, logLines, ok, runCairn, saveSnapshot, type ToolRun } from './helpers.js';

const dir = tempDir('cairn-snapshot-bad-');
/** What `etcdctl snapshot save` gets from Cairn: an etcd (bbolt) database and its SHA-256. */
let goodFile = '';
/** A Cairn snapshot in the LMDB form Maintenance.Snapshot served before bbolt (a member's db.mdb and its SHA-256). */
let lmdbFile = '';
let etcdFile = '';
let goodKvs: string[] = [];
let peerUrl = '';

/** A file derived from the good snapshot. */
function variant(name: string, edit: (b: Buffer) => Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, edit(readFileSync(goodFile)));
  return path;
}

function restoreArgs(file: string, dataDir: string, extra: readonly string[] = []): string[] {
  return ['snapshot', 'restore', file, '--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl, '--data-dir', dataDir, ...extra];
}

/** A restore that must fail with `pattern`, leaving neither the data dir nor the WAL dir behind. */
async function refused(file: string, pattern: RegExp, extra: readonly string[] = []): Promise<ToolRun> {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const walDir = `${out}-wal`;
  const r = await runCairn(restoreArgs(file, out, ['--wal-dir', walDir, ...extra]));
  assert.equal(r.exit, 1, `exit code (stderr: ${r.stderr})`);
  const last = r.stderr.trim().split('\n').pop() ?? '';
  assert.match(last, /^Error: /);
  assert.match(last, pattern);
  assert.equal(existsSync(out), false, 'no data dir left behind');
  assert.equal(existsSync(walDir), false, 'no WAL dir left behind');
  return r;
}

test('setup: a Cairn snapshot and an etcd (bbolt) snapshot', { timeout: 60_000 }, async () => {
  peerUrl = `http://127.0.0.1:${await freePort()}`;
  const cairn = await startCairn();
  const c = new EtcdClient(cairn.endpoint);
  try {
    for (let i = 0; i < 300; i++) ok(await c.put({ key: Buffer.from(`k${i}`), value: Buffer.from('v'.repeat(200)) }), 'Put');
    goodKvs = (await allKvs(c)).kvs;
    goodFile = join(dir, 'good.db');
    await saveSnapshot(cairn.endpoint, goodFile);
  } finally {
    c.close();
    await cairn.stop();
  }
  const db = readFileSync(join(cairn.dataDir, 'member', 'db.mdb'));
  lmdbFile = join(dir, 'lmdb.db');
  writeFileSync(lmdbFile, Buffer.concat([db, createHash('sha256').update(db).digest()]));
  const etcd = await startEtcd();
  try {
    for (let i = 0; i < 20; i++) assert.equal((await runEtcdctl([`--endpoints=${etcd.endpoint}`, 'put', `e${i}`, 'x'])).exit, 0);
    etcdFile = join(dir, 'etcd.db');
    await saveSnapshot(etcd.endpoint, etcdFile);
  } finally {
    await etcd.stop();
  }
  assert.ok(statSync(goodFile).size > 64 * 1024);
});

test('a snapshot cut short is refused', async () => {
  const size = statSync(goodFile).size;
  await refused(variant('half.db', (b) => b.subarray(0, Math.floor(size / 2))), /is truncated: \d+ bytes is not a whole number of 512-byte sectors plus the 32-byte SHA-256 trailer/);
  await refused(variant('minus1.db', (b) => b.subarray(0, size - 1)), /is truncated/);
  // cut by a whole page, or 512 bytes gone from the middle: the size still looks right, the hash does not
  await refused(variant('minus4096.db', (b) => b.subarray(0, size - 4096)), /has a SHA-256 mismatch/);
  await refused(variant('hole.db', (b) => Buffer.concat([b.subarray(0, 8192), b.subarray(8192 + 512)])), /has a SHA-256 mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\): the file was cut short or altered/);
  await refused(variant('empty.db', () => Buffer.alloc(0)), /is truncated: 0 bytes, shorter than its 32-byte SHA-256 trailer/);
  await refused(join(dir, 'missing.db'), /cannot read snapshot file ".*missing\.db": ENOENT/);
});

test('an altered snapshot is refused with both hashes', async () => {
  const trailer = readFileSync(goodFile).subarray(-32).toString('hex');
  const flipped = variant('flipped.db', (b) => {
    const c = Buffer.from(b);
    const at = Math.floor((c.length - 32) / 2);
    c[at] = (c[at] ?? 0) ^ 0x01;
    return c;
  });
  const r = await refused(flipped, /has a SHA-256 mismatch/);
  assert.ok(r.stderr.includes(`expected ${trailer}`), 'the expected hash is the trailer');
  await refused(
    variant('badtrailer.db', (b) => {
      const c = Buffer.from(b);
      c[c.length - 1] = (c[c.length - 1] ?? 0) ^ 0x80;
      return c;
    }),
    /has a SHA-256 mismatch/,
  );
});

test('a snapshot without its trailer is refused unless --skip-hash-check', async () => {
  const raw = variant('notrailer.db', (b) => b.subarray(0, b.length - 32));
  await refused(raw, /has no SHA-256 trailer .*--skip-hash-check/);
  // with --skip-hash-check a raw copy cut at a page boundary is caught by the bbolt meta page check,
  // or the LMDB header check for a Cairn snapshot of the LMDB form
  const cut = variant('rawcut.db', (b) => b.subarray(0, b.length - 32 - 3 * 4096));
  await refused(cut, /is truncated: its meta page says \d+ pages \(\d+ bytes\) but the file holds \d+ bytes/, ['--skip-hash-check']);
  const lmdbCut = join(dir, 'lmdbcut.db');
  writeFileSync(lmdbCut, readFileSync(lmdbFile).subarray(0, statSync(lmdbFile).size - 32 - 3 * 4096));
  await refused(lmdbCut, /is truncated: its LMDB meta page says the database has \d+ pages/, ['--skip-hash-check']);
});

test('files that are not Cairn snapshots are refused', async () => {
  // etcd's bbolt snapshots are restored (test/snapshot/etcd-import.test.ts); one whose two bbolt meta
  // pages are damaged (checksums broken, SHA-256 trailer recomputed) is refused with the reason
  const bolt = readFileSync(etcdFile).subarray(0, -32);
  const broken = Buffer.from(bolt);
  for (const page of [0, 1]) broken[page * 4096 + 16 + 60] = (broken[page * 4096 + 16 + 60] ?? 0) ^ 0xff;
  const brokenFile = join(dir, 'etcd-broken.db');
  writeFileSync(brokenFile, Buffer.concat([broken, createHash('sha256').update(broken).digest()]));
  await refused(brokenFile, /etcd snapshot file ".*etcd-broken\.db": not a valid bbolt database: meta page 0 has a bad checksum .*; meta page 1 has a bad checksum/);
  const junk = Buffer.alloc(16 * 1024, 0x5a);
  const junkFile = join(dir, 'junk.db');
  writeFileSync(junkFile, Buffer.concat([junk, createHash('sha256').update(junk).digest()]));
  await refused(junkFile, /is not a Cairn snapshot: neither of its first two pages is an LMDB meta page/);
});

test('restore into an existing data dir or WAL dir is refused and changes nothing', async () => {
  const busy = join(dir, 'busy');
  mkdirSync(busy);
  writeFileSync(join(busy, 'keep.txt'), 'mine');
  const r = await runCairn(restoreArgs(goodFile, busy));
  assert.equal(r.exit, 1);
  assert.match(r.stderr, /Error: data-dir ".*busy" not empty or could not be read/);
  assert.deepEqual(readdirSync(busy), ['keep.txt']);
  assert.equal(readFileSync(join(busy, 'keep.txt'), 'utf8'), 'mine');
  const walBusy = join(dir, 'walbusy');
  mkdirSync(walBusy);
  const out = join(dir, 'fresh-for-wal');
  const w = await runCairn(restoreArgs(goodFile, out, ['--wal-dir', walBusy]));
  assert.equal(w.exit, 1);
  assert.match(w.stderr, /Error: wal-dir ".*walbusy" exists/);
  assert.equal(existsSync(out), false);
});

test('flags refused as etcd refuses them', async () => {
  const out = join(dir, 'flags');
  const cases: [string[], number, RegExp][] = [
    [restoreArgs(goodFile, out, ['--bogus']), 2, /unknown flag: --bogus/],
    [restoreArgs(goodFile, out, ['--mark-compacted']), 2, /--mark-compacted required if --revision-bump > 0/],
    [restoreArgs(goodFile, out, ['--bump-revision', '10']), 2, /--mark-compacted required if --revision-bump > 0/],
    [restoreArgs(goodFile, out, ['--bump-revision', '-3', '--mark-compacted']), 2, /invalid argument "-3" for "--bump-revision"/],
    [['snapshot', 'restore', '--data-dir', out], 2, /snapshot restore requires exactly one argument/],
    [['snapshot', 'restore', goodFile, goodFile, '--data-dir', out], 2, /exactly one argument/],
    [['snapshot', 'status', goodFile, '-w', 'yaml'], 2, /unsupported output format "yaml"/],
    [['snapshot', 'frobnicate'], 2, /unknown command "frobnicate"/],
    [['bogus'], 2, /unknown command "bogus" for "cairn"/],
    [['snapshot', 'restore', goodFile, '--name', 'other', '--initial-cluster', `solo=${peerUrl}`, '--data-dir', out], 1, /couldn't find local name "other" in the initial cluster configuration/],
    [['snapshot', 'restore', goodFile, '--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-advertise-peer-urls', 'http://127.0.0.1:1', '--data-dir', out], 1, /--initial-cluster has solo=.* but missing from --initial-advertise-peer-urls/],
    [['snapshot', 'restore', goodFile, '--name', 'solo', '--initial-cluster', 'solo=notaurl', '--data-dir', out], 1, /invalid URL "notaurl" in --initial-cluster/],
  ];
  for (const [args, code, pattern] of cases) {
    const r = await runCairn(args);
    assert.equal(r.exit, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
    assert.equal(existsSync(out), false, `${args.join(' ')} wrote nothing`);
  }
  const help = await runCairn(['help']);
  assert.equal(help.exit, 0);
  assert.match(help.stdout, /cairn snapshot restore <filename>/);
  const rhelp = await runCairn(['snapshot', 'restore', '--help']);
  assert.equal(rhelp.exit, 0);
  assert.match(rhelp.stdout, /--bump-revision/);
  const version = await runCairn(['version']);
  assert.equal(version.exit, 0);
  assert.match(version.stdout, /^cairn version: \d+\.\d+\.\d+\n/);
});

test('--skip-hash-check on a raw copy, --wal-dir, and the default data dir <name>.cairn', { timeout: 60_000 }, async () => {
  const raw = variant('raw.db', (b) => b.subarray(0, b.length - 32));
  const dataDir = join(dir, 'skip');
  const walDir = join(dir, 'skip-wal');
  const r = await runCairn(restoreArgs(raw, dataDir, ['--skip-hash-check', '--wal-dir', walDir]));
  assert.equal(r.exit, 0, r.stderr);
  assert.ok(readdirSync(walDir).some((f) => f.endsWith('.wal')));
  assert.equal(existsSync(join(dataDir, 'member', 'wal')), false);
  const solo = await startCairn({ name: 'solo', dataDir, walDir, extraArgs: ['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `solo=${peerUrl}`] });
  const c = new EtcdClient(solo.endpoint);
  try {
    assert.deepEqual((await allKvs(c)).kvs, goodKvs);
  } finally {
    c.close();
    await solo.stop();
  }
  const cwd = join(dir, 'cwd');
  mkdirSync(cwd);
  const copy = join(cwd, 'snap.db');
  copyFileSync(goodFile, copy);
  const d = await runCairn(['snapshot', 'restore', 'snap.db', '--name', 'solo', '--initial-cluster', `solo=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl], { cwd });
  assert.equal(d.exit, 0, d.stderr);
  assert.ok(existsSync(join(cwd, 'solo.cairn', 'member', 'db.mdb')));
  assert.ok(existsSync(join(cwd, 'solo.cairn', 'member', 'wal')));
  assert.deepEqual(readdirSync(join(cwd, 'solo.cairn', 'member')).sort(), ['db.mdb', 'wal'], 'no work files left');
});

test('snapshot status prints as etcdctl 3.4 prints a DBStatus (same numbers, every -w format)', async () => {
  const json = await runEtcdctl(['snapshot', 'status', etcdFile, '-w', 'json']);
  assert.equal(json.exit, 0, json.stderr);
  const ds = JSON.parse(json.stdout) as { hash: number; revision: number; totalKey: number; totalSize: number };
  for (const w of ['table', 'simple', 'json', 'fields']) {
    assert.ok(isWriteOut(w));
    const theirs = await runEtcdctl(['snapshot', 'status', etcdFile, '-w', w]);
    assert.equal(formatStatus(ds, w), theirs.stdout, `-w ${w}`);
  }
  for (const w of ['table', 'simple', 'json', 'fields']) {
    const ours = await runCairn(['snapshot', 'status', goodFile, '-w', w]);
    assert.equal(ours.exit, 0, ours.stderr);
    assert.equal(ours.stderr, '', 'status logs nothing for a small file');
    assert.ok(ours.stdout.length > 0);
  }
  const st = JSON.parse((await runCairn(['snapshot', 'status', goodFile, '-w', 'json'])).stdout) as { revision: number; totalSize: number };
  assert.equal(st.revision, 301);
  assert.equal(st.totalSize, statSync(goodFile).size - 32);
  const bad = await runCairn(['snapshot', 'status', join(dir, 'flipped.db')]);
  assert.equal(bad.exit, 1);
  assert.match(bad.stderr, /has a SHA-256 mismatch/);
  for (const [n, s] of [[0, '0 B'], [9, '9 B'], [999, '999 B'], [1000, '1.0 kB'], [20480, '20 kB'], [21500, '22 kB'], [73760, '74 kB'], [2105344, '2.1 MB'], [1073741824, '1.1 GB']] as const) {
    assert.equal(humanizeBytes(n), s);
  }
});

test('progress: a line every second or every 64 MiB, and a final line with the duration', () => {
  const lines: string[] = [];
  let now = 0;
  const p = new Progress(createLogger('info', (l) => lines.push(l)), () => now, 'copying snapshot', 'f', 4 * PROGRESS_EVERY_BYTES);
  p.advance(1024);
  assert.equal(lines.length, 0);
  now = 1000;
  p.advance(1024);
  assert.equal(lines.length, 1, 'after a second');
  p.advance(PROGRESS_EVERY_BYTES);
  assert.equal(lines.length, 2, 'after 64 MiB');
  now = 1500;
  p.advance(10);
  assert.equal(lines.length, 2);
  now = 2500;
  assert.equal(p.finish(), 2500);
  const last = JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>;
  assert.equal(last['msg'], 'copying snapshot: done');
  assert.equal(last['took-ms'], 2500);
  assert.equal(last['bytes'], 2048 + PROGRESS_EVERY_BYTES + 10);
  const mid = JSON.parse(lines[1] ?? '{}') as Record<string, unknown>;
  assert.equal(mid['total'], 4 * PROGRESS_EVERY_BYTES);
  assert.equal(typeof mid['percent'], 'number');
});

test('a restore reports its phases as JSON lines', async () => {
  const r = await runCairn(restoreArgs(goodFile, join(dir, 'phases')));
  assert.equal(r.exit, 0, r.stderr);
  const msgs = logLines(r.stderr).map((l) => l['msg']);
  assert.deepEqual(msgs, ['restoring snapshot', 'verifying snapshot: done', 'copying snapshot: done', 'restoring an etcd (bbolt) snapshot', 'restored snapshot']);
  const l = await runCairn(restoreArgs(lmdbFile, join(dir, 'phases-lmdb')));
  assert.equal(l.exit, 0, l.stderr);
  assert.deepEqual(
    logLines(l.stderr).map((x) => x['msg']),
    ['restoring snapshot', 'verifying snapshot: done', 'copying snapshot: done', 'restored snapshot'],
    'a Cairn snapshot of the LMDB form is still restored',
  );
});
