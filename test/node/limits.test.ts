// Queues that grow with clients have a bound and a clear refusal past it; waits have deadlines
// (issue 17 item 1; server/base/limits.ts). Against real server processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { CLIENT_SNAPSHOTS_MAX, CLIENT_SNAPSHOT_STALL_MS, READS_PENDING_MAX } from '../../server/base/limits.js';
import { startCluster } from '../harness/cluster.js';
import { startCairn } from '../harness/procs.js';
import { EtcdClient, unaryOk } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';

const TOO_MANY = 'etcdserver: too many requests';
const RESOURCE_EXHAUSTED: number = grpc.status.RESOURCE_EXHAUSTED;

test(`linearizable reads past READS_PENDING_MAX (${READS_PENDING_MAX}) waiting on one member are refused with ResourceExhausted "${TOO_MANY}"`, { timeout: 180_000 }, async () => {
  const cluster = await startCluster('cairn', { size: 3 });
  try {
    const leader = await cluster.leader();
    const others = cluster.members.filter((m) => m.name !== leader.name);
    // Without its followers the leader can confirm no ReadIndex: every read waits (until the request timeout).
    for (const m of others) cluster.pause(m.name);
    const c = cluster.client(leader.name);
    const extra = 50;
    const results = await Promise.all(
      Array.from({ length: READS_PENDING_MAX + extra }, () => c.range({ key: Buffer.from('k') }, { timeoutMs: 60_000 })),
    );
    const refused = results.filter((r) => !r.ok && r.code === RESOURCE_EXHAUSTED);
    assert.equal(refused.length, extra, 'exactly the reads past the bound are refused');
    for (const r of refused) assert.equal(r.ok ? '' : r.details, TOO_MANY);
    const others2 = results.filter((r) => !r.ok && r.code !== RESOURCE_EXHAUSTED);
    assert.equal(others2.length + refused.length, results.length, 'no read succeeded without a quorum');
    for (const m of others) cluster.resume(m.name);
    await pollUntil('reads are served again once the quorum is back', async () => (await c.range({ key: Buffer.from('k') })).ok, 30_000, 200);
  } finally {
    await cluster.close();
  }
});

/** A Maintenance.Snapshot call (empty request) on a raw HTTP/2 stream of its own session. */
function snapshotCall(endpoint: string): { session: ClientHttp2Session; req: ClientHttp2Stream } {
  const session = connect(`http://${endpoint}`, { settings: { initialWindowSize: 65535 } });
  const req = session.request({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: '/etcdserverpb.Maintenance/Snapshot',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  req.end(Buffer.from([0, 0, 0, 0, 0]));
  return { session, req };
}

/** A Maintenance.Snapshot call on a raw HTTP/2 stream whose client reads nothing after the headers. */
function stalledSnapshot(endpoint: string): { close: () => void } {
  const { session, req } = snapshotCall(endpoint);
  req.pause();
  req.on('error', () => undefined);
  return {
    close: () => {
      req.destroy();
      session.destroy();
    },
  };
}

test(`a client snapshot stream whose client stopped reading ends after CLIENT_SNAPSHOT_STALL_MS (${CLIENT_SNAPSHOT_STALL_MS} ms) and frees its slot`, { timeout: 180_000 }, async () => {
  const proc = await startCairn();
  const c = new EtcdClient(proc.endpoint);
  const stalled: ReturnType<typeof stalledSnapshot>[] = [];
  try {
    // A database well past what the server buffers for one stream (8 MiB) plus the client's window.
    const value = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 24; i++) await unaryOk(c, 'KV', 'Put', { key: Buffer.from(`big/${i}`), value });
    for (let i = 0; i < CLIENT_SNAPSHOTS_MAX; i++) stalled.push(stalledSnapshot(proc.endpoint));
    await pollUntil('both copies taken', () => Promise.resolve(proc.stderrLines().filter((l) => l.includes('made a database copy for a client snapshot')).length === CLIENT_SNAPSHOTS_MAX), 30_000);
    // Both slots held by clients that read nothing: one more snapshot is refused.
    const refused = await firstSnapshotMessage(proc.endpoint);
    assert.equal(refused, `refused: ${TOO_MANY}`);
    const startedMs = Date.now();
    await pollUntil('the stalled streams are ended and their slots freed', async () => (await firstSnapshotMessage(proc.endpoint)) === 'data', CLIENT_SNAPSHOT_STALL_MS + 30_000, 500);
    assert.ok(Date.now() - startedMs >= CLIENT_SNAPSHOT_STALL_MS - 5_000, 'not before the stall deadline');
    assert.ok(proc.stderrLines().some((l) => l.includes('snapshot stream failed') && l.includes('the client read nothing')), 'the server says why it ended the stream');
  } finally {
    for (const s of stalled) s.close();
    c.close();
    await proc.stop();
  }
});

/** Opens a snapshot stream and reports its first outcome: 'data' (a chunk came) or 'refused: <message>'. */
function firstSnapshotMessage(endpoint: string): Promise<string> {
  const { session, req } = snapshotCall(endpoint);
  return new Promise<string>((resolve) => {
    const done = (v: string): void => {
      resolve(v);
      req.destroy();
      session.destroy();
    };
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined && h['grpc-status'] !== '0') done(`refused: ${decodeURIComponent(String(h['grpc-message'] ?? ''))}`);
    });
    req.on('data', () => done('data'));
    req.on('trailers', (t: IncomingHttpHeaders) => done(`refused: ${decodeURIComponent(String(t['grpc-message'] ?? ''))}`));
    req.on('error', (e: Error) => done(`error: ${e.message}`));
  });
}
