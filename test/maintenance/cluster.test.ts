// Maintenance on a 3-member Cairn cluster: etcdctl endpoint status/health/hashkv --cluster (compared
// in shape with a 3-member etcd 3.4's), Maintenance.Hash equal on every member once quiet, a raw
// Snapshot stream from a follower (chunks, remaining_bytes, trailing SHA-256), and `etcdctl snapshot
// save` from a follower and from the leader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { methodDefinition } from '../harness/client.js';
import type { EtcdClient, Msg } from '../harness/client.js';
import { withCluster } from '../harness/cluster.js';
import type { Cluster } from '../harness/cluster.js';
import { runEtcdctl, tempDir } from '../harness/procs.js';
import type { TargetKind } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { ok, pool } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);

async function load(c: Cluster): Promise<void> {
  const leader = await c.leader();
  const cl = c.client(leader.name);
  const keys = Array.from({ length: 300 }, (_, i) => `k/${String(i).padStart(4, '0')}`);
  await pool(keys, 6, async (k) => {
    ok(await cl.put({ key: b(k), value: Buffer.alloc(1000, 0x63) }), `put ${k}`);
  });
  ok(await cl.deleteRange({ key: b('k/0'), range_end: b('k/1') }), 'delete');
}

interface ClusterView {
  /** `endpoint status --cluster -w table` with values replaced by their kind. */
  statusTable: string[];
  statusJson: Array<Record<string, unknown>>;
  health: string[];
  hashkv: string[];
  exits: { status: number | null; statusJson: number | null; health: number | null; hashkv: number | null };
  stderr: string;
}

/** Replaces what differs between clusters (urls, ids, versions, sizes, numbers) in a table row. */
function shapeRow(row: string): string {
  return row
    .replace(/(http:\/\/)?127\.0\.0\.1:\d+/g, '<url>')
    .replace(/\b[0-9a-f]{14,16}\b/g, '<id>')
    .replace(/\b3\.\d+\.\d+\b/g, '<version>')
    .replace(/\b\d+(\.\d+)? [kMG]?B\b/g, '<size>')
    .replace(/\| +\d+ +\|/g, '| <n> |')
    .replace(/\| +\d+ +\|/g, '| <n> |')
    .replace(/ +/g, ' ');
}

/**
 * etcdctl's endpoint commands: with --cluster (one endpoint given; etcdctl dials every member's
 * advertised client URL, "http://host:port", as the gRPC target) or with all endpoints listed.
 */
async function view(c: Cluster, cluster: boolean): Promise<ClusterView> {
  const ep = `--endpoints=${cluster ? (c.endpoints()[0] ?? '') : c.endpoints().join(',')}`;
  const more = cluster ? ['--cluster'] : [];
  const st = await runEtcdctl([ep, 'endpoint', 'status', ...more, '-w', 'table']);
  const stj = await runEtcdctl([ep, 'endpoint', 'status', ...more, '-w', 'json']);
  const health = await runEtcdctl([ep, 'endpoint', 'health', ...more]);
  const hkv = await runEtcdctl([ep, 'endpoint', 'hashkv', ...more]);
  let statusJson: Array<Record<string, unknown>> = [];
  try {
    statusJson = JSON.parse(stj.stdout) as Array<Record<string, unknown>>;
  } catch {
    // reported by checkView through exits
  }
  return {
    exits: { status: st.exit, statusJson: stj.exit, health: health.exit, hashkv: hkv.exit },
    stderr: [st.stderr, stj.stderr, hkv.stderr].join('').trim(),
    statusTable: st.stdout.trimEnd().split('\n'),
    statusJson,
    // etcdctl 3.4 prints health lines on stderr.
    health: (health.stdout + health.stderr).trimEnd().split('\n').filter((l) => l !== ''),
    hashkv: hkv.stdout.trimEnd().split('\n'),
  };
}

async function quietView(kind: TargetKind): Promise<{ v: ClusterView; listed: ClusterView; hashes: number[]; snap: SnapshotCheck | undefined; saved: string[] }> {
  return withCluster(kind, { size: 3 }, async (c) => {
    await load(c);
    await c.waitConverged(30_000);
    const v = await view(c, true);
    const listed = await view(c, false);
    // Maintenance.Hash once quiet (converged: same applied index everywhere).
    const hashes = await Promise.all(c.members.map(async (m) => Number(ok(await c.client(m.name).unary('Maintenance', 'Hash', {}), `Hash ${m.name}`)['hash'])));
    if (kind === 'etcd') return { v, listed, hashes, snap: undefined, saved: [] };
    const leader = await c.leader();
    const follower = c.members.find((m) => m.name !== leader.name);
    assert.ok(follower !== undefined);
    const snap = await rawSnapshot(c.client(follower.name));
    const dir = tempDir('cairn-maint-snap-');
    const saved: string[] = [];
    for (const m of [follower, leader]) {
      const file = join(dir, `${m.name}.db`);
      const r = await runEtcdctl([`--endpoints=${m.endpoint}`, '--command-timeout=60s', 'snapshot', 'save', file], { timeoutMs: 90_000 });
      assert.equal(r.exit, 0, `snapshot save from ${m.name}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Snapshot saved at ${file}`));
      // etcdctl keeps the stream as sent: the database, then its SHA-256 (what restore verifies).
      const size = statSync(file).size;
      assert.ok(size > 32 && (size - 32) % 4096 === 0, `${m.name}: snapshot of ${size} bytes`);
      const bytes = readFileSync(file);
      assert.deepEqual(bytes.subarray(size - 32), createHash('sha256').update(bytes.subarray(0, size - 32)).digest(), `${m.name}: trailing SHA-256`);
      // etcd's database format (bbolt): its first meta page carries bbolt's magic 0xED0CDAED at byte 16.
      assert.equal(bytes.readUInt32LE(16), 0xed0cdaed, `${m.name}: snapshot is not a bbolt file`);
      saved.push(`${m.name === leader.name ? 'leader' : 'follower'}: ${size} bytes`);
    }
    return { v, listed, hashes, snap, saved };
  });
}

interface SnapshotCheck {
  chunks: number;
  dataBytes: number;
}

/** Reads Maintenance.Snapshot raw and checks chunk sizes, remaining_bytes and the trailing SHA-256. */
async function rawSnapshot(c: EtcdClient): Promise<SnapshotCheck> {
  const def = methodDefinition('Maintenance', 'Snapshot');
  const msgs: Msg[] = await new Promise((res, rej) => {
    const out: Msg[] = [];
    const call: grpc.ClientReadableStream<Msg> = c.channel.makeServerStreamRequest(
      def.path,
      def.requestSerialize,
      (buf: Buffer) => def.responseDeserialize(buf) as Msg,
      {},
      { deadline: Date.now() + 60_000 },
    );
    call.on('data', (m: Msg) => out.push(m));
    call.on('error', rej);
    call.on('end', () => res(out));
  });
  assert.ok(msgs.length >= 2, `snapshot stream of ${msgs.length} messages`);
  const blobs = msgs.map((m) => m['blob'] as Buffer);
  const remaining = msgs.map((m) => Number(m['remaining_bytes']));
  const last = blobs[blobs.length - 1] ?? Buffer.alloc(0);
  const data = Buffer.concat(blobs.slice(0, -1));
  for (const [i, blob] of blobs.entries()) assert.ok(blob.length <= 32 * 1024 && blob.length > 0, `chunk ${i} of ${blob.length} bytes`);
  for (let i = 1; i < remaining.length; i++) {
    const prev = remaining[i - 1] ?? 0;
    const cur = remaining[i] ?? 0;
    // Strictly decreasing over the data chunks, then 0 for the checksum chunk.
    if (i < remaining.length - 1) assert.ok(cur < prev, `remaining_bytes ${prev} then ${cur} at chunk ${i}`);
    assert.equal(prev - cur, i < remaining.length - 1 ? (blobs[i]?.length ?? -1) : prev, `remaining_bytes step at chunk ${i}`);
  }
  assert.equal(remaining[0], data.length - (blobs[0]?.length ?? 0), 'first remaining_bytes = data length - first chunk');
  assert.equal(remaining[remaining.length - 2], 0, 'remaining_bytes after the last data chunk');
  assert.equal(remaining[remaining.length - 1], 0, 'remaining_bytes of the checksum chunk');
  assert.equal(last.length, 32, 'checksum chunk is a SHA-256');
  assert.deepEqual(last, createHash('sha256').update(data).digest(), 'last chunk = SHA-256 of the data');
  assert.equal(data.length % 512, 0, `snapshot data of ${data.length} bytes`);
  return { chunks: blobs.length, dataBytes: data.length };
}

function checkView(kind: string, v: ClusterView): void {
  assert.deepEqual(v.exits, { status: 0, statusJson: 0, health: 0, hashkv: 0 }, `${kind}: etcdctl exits; stderr:\n${v.stderr}\nhealth: ${v.health.join('\n')}`);
  const rows = v.statusJson.map((x) => x['Status'] as Msg);
  assert.equal(rows.length, 3, `${kind}: status rows`);
  const leaders = new Set(rows.map((r) => String(r['leader'])));
  assert.equal(leaders.size, 1, `${kind}: members disagree on the leader`);
  const ids = rows.map((r) => String((r['header'] as Msg)['member_id']));
  assert.ok(ids.includes([...leaders][0] ?? ''), `${kind}: leader not among the members`);
  assert.equal(new Set(rows.map((r) => String((r['header'] as Msg)['cluster_id']))).size, 1, `${kind}: cluster ids differ`);
  assert.equal(new Set(rows.map((r) => String(r['raftTerm']))).size, 1, `${kind}: terms differ`);
  for (const r of rows) assert.ok(Number(r['dbSize']) > 0 && Number(r['raftIndex']) > 0, `${kind}: ${JSON.stringify(r)}`);
  assert.equal(v.health.length, 3, `${kind}: health lines ${JSON.stringify(v.health)}`);
  for (const h of v.health) assert.match(h, /^(http:\/\/)?127\.0\.0\.1:\d+ is healthy: successfully committed proposal: took = /);
  assert.equal(v.hashkv.length, 3, `${kind}: hashkv lines ${JSON.stringify(v.hashkv)}`);
  const hk = v.hashkv.map((l) => l.split(', '));
  assert.equal(new Set(hk.map((p) => `${p[1]}/${p[2]}`)).size, 1, `${kind}: hashkv differs: ${JSON.stringify(v.hashkv)}`);
}

test('endpoint status/health/hashkv --cluster, Hash, Snapshot from a follower and snapshot save: 3-member Cairn (etcd 3.4 for shape)', async () => {
  const etcd = await quietView('etcd');
  const cairn = await quietView('cairn');
  console.log(`cairn snapshot from a follower: ${JSON.stringify(cairn.snap)}; saved: ${cairn.saved.join('; ')}`);
  // Maintenance.Hash: equal on every Cairn member once quiet.
  assert.equal(new Set(cairn.hashes).size, 1, `Cairn Hash differs between members: ${cairn.hashes.join(', ')}`);
  const shape = (v: ClusterView): string[] => v.statusTable.map(shapeRow).sort();
  const jsonKeys = (v: ClusterView): string[] => Object.keys(v.statusJson[0] ?? {}).concat(Object.keys((v.statusJson[0]?.['Status'] as Msg | undefined) ?? {})).sort();
  for (const [what, e, c] of [
    ['endpoints listed', etcd.listed, cairn.listed],
    ['--cluster', etcd.v, cairn.v],
  ] as const) {
    checkView(`etcd (${what})`, e);
    checkView(`cairn (${what})`, c);
    // The table has etcd's shape: same header, same row layout (values replaced by their kind).
    assert.deepEqual(shape(c), shape(e), what);
    assert.deepEqual(jsonKeys(c), jsonKeys(e), what);
  }
  console.log(`etcd Hash per member: ${etcd.hashes.join(', ')}; cairn: ${cairn.hashes.join(', ')}`);
  console.log(`status table (cairn):\n${cairn.v.statusTable.join('\n')}\nstatus table (etcd):\n${etcd.v.statusTable.join('\n')}`);
});

test('Hash and HashKV agree across Cairn members while quiet after writes, compaction and a restart', async () => {
  await withCluster('cairn', { size: 3 }, async (c) => {
    await load(c);
    const leader = await c.leader();
    const st = await c.status(leader.name);
    assert.ok(st !== undefined);
    ok(await c.client(leader.name).compact({ revision: String(st.revision - 50), physical: true }), 'compact');
    const follower = c.members.find((m) => m.name !== leader.name);
    assert.ok(follower !== undefined);
    await c.stop(follower.name);
    ok(await c.client(leader.name).put({ key: b('while-down'), value: b('x') }), 'put while a follower is down');
    await c.start(follower.name);
    await c.waitConverged(30_000);
    let last = '';
    await pollUntil(
      'equal Hash on all members',
      async () => {
        const hs = await Promise.all(c.members.map(async (m) => {
          const r = await c.client(m.name).unary('Maintenance', 'Hash', {});
          return r.ok ? `${String(r.value['hash'])}@${String((r.value['header'] as Msg)['revision'])}` : 'error';
        }));
        last = hs.join(' ');
        return new Set(hs).size === 1 && !hs.includes('error');
      },
      15_000,
      200,
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}: ${last}`);
    });
    const hk = await c.hashKV();
    assert.equal(new Set([...hk.values()].map((h) => `${h.hash}/${h.compactRevision}`)).size, 1);
    assert.equal([...hk.values()][0]?.compactRevision, st.revision - 50);
  });
});
