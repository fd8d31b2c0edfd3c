// Damaged files on disk, against the real server process: a torn WAL tail is repaired (with a log
// line and a kept copy) and nothing acknowledged is lost; a flipped byte before the tail stops the
// start with an error naming the file and offset; a WAL in an older on-disk format is refused with a
// message saying the data dir must be recreated; a damaged LMDB file stops the start, and a record
// failing its checksum stops the server instead of being served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CAIRN_MAIN, freePort, startCairn, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { Wal } from '../../server/wal/index.js';
import { decodeSegmentHeader, encodeSegmentHeaderVersion, scanSegment } from '../../server/wal/segment.js';
import { encodeInternalRequest } from '../../proto/gen/cairnpb.js';
import { Backend } from '../../server/storage/backend/index.js';
import { META, SCHEMA_VERSION, encodeNum } from '../../server/storage/schema/index.js';
import { BACKEND_MAP_BYTES } from '../../server/base/limits.js';

const KEYS = 60;

/** Starts Cairn on dataDir, writes KEYS keys, stops it cleanly. */
async function populate(dataDir: string, marker = 'value'): Promise<void> {
  const proc = await startCairn({ dataDir });
  const c = new EtcdClient(proc.endpoint);
  try {
    for (let i = 0; i < KEYS; i++) {
      const r = await c.put({ key: Buffer.from(`k${String(i).padStart(3, '0')}`), value: Buffer.from(`${marker}-${i}`) });
      assert.ok(r.ok);
    }
  } finally {
    c.close();
    await proc.stop();
  }
}

async function expectAllKeys(dataDir: string): Promise<string[]> {
  const proc = await startCairn({ dataDir });
  const c = new EtcdClient(proc.endpoint);
  try {
    const r = await c.range({ key: Buffer.from('k'), range_end: Buffer.from('l') });
    assert.ok(r.ok);
    assert.equal(Number(r.value['count']), KEYS, 'every acknowledged key is there');
    assert.equal(Number((r.value['header'] as { revision: string }).revision), KEYS + 1);
    const next = await c.put({ key: Buffer.from('after'), value: Buffer.from('x') });
    assert.ok(next.ok);
    assert.equal(Number((next.value['header'] as { revision: string }).revision), KEYS + 2, 'revisions continue');
    return proc.stderrLines();
  } finally {
    c.close();
    await proc.stop();
  }
}

function walFiles(dataDir: string): string[] {
  const dir = join(dataDir, 'member', 'wal');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.wal'))
    .sort()
    .map((f) => join(dir, f));
}

function walFile(dataDir: string): string {
  const last = walFiles(dataDir).at(-1);
  assert.ok(last !== undefined, 'a WAL segment exists');
  return last;
}

/** Offset of the last entry record in a segment (hard-state records may follow it). */
function lastEntryOffset(path: string): number {
  const scan = scanSegment(readFileSync(path));
  assert.ok(!('problem' in scan), 'the segment decodes');
  assert.equal(scan.failure, undefined);
  const last = scan.records.filter((r) => r.record.kind === 'entry').at(-1);
  assert.ok(last !== undefined, 'the last segment holds an entry');
  return last.offset;
}

/** Runs the server expecting it to fail at start; returns its exit status and stderr. */
async function failedStart(dataDir: string): Promise<{ status: number | null; stderr: string }> {
  const port = await freePort();
  const r = spawnSync(process.execPath, [CAIRN_MAIN, '--data-dir', dataDir, '--listen-client-urls', `http://127.0.0.1:${port}`], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, stderr: r.stderr };
}

/** Appends one more (never acknowledged, never applied) put entry to the WAL, as a crash mid-write would leave it before the cut. */
async function appendUnappliedEntry(dataDir: string): Promise<void> {
  const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const { wal, entries } = await Wal.open({ dir: join(dataDir, 'member', 'wal'), logger: silent });
  const data = encodeInternalRequest({ header: { ID: 1n }, put: { key: Buffer.from('torn-key'), value: Buffer.from('never acknowledged') } });
  await wal.append([{ index: wal.lastIndex() + 1, term: entries.at(-1)?.term ?? 1, type: 'normal', data }]);
  await wal.close();
}

test('a WAL cut in the middle of its last (unacknowledged) record is repaired; nothing acknowledged is lost', async () => {
  const dataDir = tempDir('cairn-torn');
  await populate(dataDir);
  await appendUnappliedEntry(dataDir);
  const wal = walFile(dataDir);
  truncateSync(wal, statSync(wal).size - 7);
  const lines = await expectAllKeys(dataDir);
  assert.ok(lines.some((l) => l.includes('wal: repaired torn tail') && l.includes(wal)), 'the repair is logged with the file');
  assert.ok(readdirSync(join(dataDir, 'member', 'wal')).some((f) => f.includes('.broken')), 'the damaged segment is kept beside it');
});

test('a WAL that lost a record the backend had applied (durable data gone) refuses to start', async () => {
  const dataDir = tempDir('cairn-lost');
  await populate(dataDir);
  const wal = walFile(dataDir);
  truncateSync(wal, lastEntryOffset(wal) + 7); // tears the last entry (and drops any hard state after it)
  const { status, stderr } = await failedStart(dataDir);
  assert.notEqual(status, 0);
  assert.match(stderr, /ends at entry \d+ but the backend has applied up to \d+/);
  assert.ok(!stderr.includes('ready to serve client requests'));
});

test('a half-written record after the last good one (an unacknowledged write) is dropped at start', async () => {
  const dataDir = tempDir('cairn-torn2');
  await populate(dataDir);
  const wal = walFile(dataDir);
  appendFileSync(wal, Buffer.from([0x40, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 9, 9, 9, 9, 1, 2]));
  const lines = await expectAllKeys(dataDir);
  assert.ok(lines.some((l) => l.includes('wal: repaired torn tail')));
});

test('a flipped byte in the middle of the WAL stops the start, naming the file and offset', async () => {
  const dataDir = tempDir('cairn-flip');
  await populate(dataDir);
  const wal = walFile(dataDir);
  const bytes = readFileSync(wal);
  const at = Math.floor(bytes.length / 3);
  bytes[at] = (bytes[at] as number) ^ 0x5a;
  writeFileSync(wal, bytes);
  const { status, stderr } = await failedStart(dataDir);
  assert.notEqual(status, 0, 'the server refuses to start');
  assert.match(stderr, /wal: corrupt record in [^ ]+\.wal at offset \d+/);
  assert.ok(stderr.includes(wal), 'the error names the WAL file');
  assert.ok(!stderr.includes('ready to serve client requests'));
  assert.deepEqual(readFileSync(wal), bytes, 'the damaged file is left as it was for inspection');
});

test('a WAL written in an older on-disk format is refused: the data dir must be recreated', async () => {
  const dataDir = tempDir('cairn-walv1');
  await populate(dataDir);
  const segments = walFiles(dataDir);
  for (const path of segments) {
    const bytes = readFileSync(path);
    const header = decodeSegmentHeader(bytes);
    if ('problem' in header) assert.fail(header.problem);
    bytes.set(encodeSegmentHeaderVersion(header, 1), 0); // as an older Cairn (WAL format 1) would have written it
    writeFileSync(path, bytes);
  }
  const before = segments.map((p) => readFileSync(p));
  const { status, stderr } = await failedStart(dataDir);
  assert.notEqual(status, 0, 'the server refuses to start');
  assert.match(stderr, /WAL segment format version 1, written by an older Cairn; .*this data dir must be recreated/);
  assert.ok(stderr.includes(segments[0] ?? '?'), 'the error names the segment');
  assert.ok(!stderr.includes('ready to serve client requests'));
  assert.deepEqual(segments.map((p) => readFileSync(p)), before, 'nothing on disk changed');
});

test('an LMDB file with damaged header pages stops the start with an error naming it', async () => {
  const dataDir = tempDir('cairn-lmdb-hdr');
  await populate(dataDir);
  const db = join(dataDir, 'member', 'db.mdb');
  const bytes = readFileSync(db);
  bytes.fill(0xa5, 0, 8192);
  writeFileSync(db, bytes);
  const { status, stderr } = await failedStart(dataDir);
  assert.notEqual(status, 0);
  assert.ok(stderr.includes(`cannot open LMDB file ${db}`), stderr.slice(-2000));
  assert.ok(!stderr.includes('ready to serve client requests'));
});

test('a record failing its checksum in LMDB is never served: the server stops and names the file', async () => {
  const dataDir = tempDir('cairn-lmdb-rec');
  await populate(dataDir, 'MARKER-7d1e');
  const db = join(dataDir, 'member', 'db.mdb');
  const bytes = readFileSync(db);
  const marker = Buffer.from('MARKER-7d1e-17');
  let copies = 0;
  // LMDB is copy-on-write: stale copies of the page may remain; damage every copy.
  for (let at = bytes.indexOf(marker); at >= 0; at = bytes.indexOf(marker, at + 1)) {
    bytes[at + 3] = (bytes[at + 3] as number) ^ 0x01;
    copies++;
  }
  assert.ok(copies > 0, 'the value is in the LMDB file');
  writeFileSync(db, bytes);
  const proc = await startCairn({ dataDir });
  const c = new EtcdClient(proc.endpoint);
  try {
    const other = await c.range({ key: Buffer.from('k001') });
    assert.ok(other.ok, 'undamaged records are served');
    const r = await c.range({ key: Buffer.from('k017') });
    assert.equal(r.ok, false, 'the damaged record is not served');
    await proc.exited(10_000);
    assert.ok(proc.stderrLines().some((l) => l.includes('corrupt rev record') && l.includes(db)), 'the fatal log line names the file');
  } finally {
    c.close();
    await proc.kill9().catch(() => undefined);
  }
});

test('a backend written in another storage schema version is refused, not misread', async () => {
  const dataDir = tempDir('cairn-schema');
  await populate(dataDir);
  const db = join(dataDir, 'member', 'db.mdb');
  const backend = Backend.open(db, BACKEND_MAP_BYTES);
  backend.write(() => backend.table('meta').put(META.schemaVersion, encodeNum(SCHEMA_VERSION + 1)));
  await backend.close();
  const { status, stderr } = await failedStart(dataDir);
  assert.notEqual(status, 0);
  assert.ok(stderr.includes(`backend ${db} has storage schema version ${SCHEMA_VERSION + 1}; this Cairn reads version ${SCHEMA_VERSION}`), stderr.slice(-1500));
  assert.ok(!stderr.includes('ready to serve client requests'));
});
