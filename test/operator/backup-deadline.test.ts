// The overall deadline of one backup run (operator/backup/deadline.ts), against a real S3 server
// (SeaweedFS) and a real 1-member Cairn cluster, without Kubernetes. Each case makes the run wait on
// something that accepted the connection and then answers nothing, with a short deadline injected
// through the options, and checks: the run fails with reason Timeout naming the deadline and the phase,
// well before any per-wait timeout would have ended it (Status 5 s, snapshot idle 60 s, S3 socket
// 60 s); no object under the final key; no multipart upload left open; the cluster's slot
// (BackupSlots, as the controller holds it) free again; and the next run succeeds.
//   1. the source member is a TCP server that accepts and stays silent (phase: Status);
//   2. the member streaming the snapshot is stopped with SIGSTOP after the first part was uploaded
//      (its sockets stay open; phase: snapshot upload);
//   3. the object store stops answering mid-upload (a proxy in front of SeaweedFS keeps the sockets
//      and drops their bytes): the in-flight S3 requests are aborted (their sockets closed by the
//      client), the cleanup gives up at its own bound, and the next run sweeps the open upload.
// test-file-timeout: 5 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { BackupError, BackupSlots, listBackups, runBackup, SnapshotSource, type BackupOptions, type LogLine } from '../../operator/backup/index.js';
import { startCluster } from '../harness/cluster.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { startS3, weedBin } from '../harness/s3.js';
import { clientFor, exists, incomplete, load, logSink, sourceFor } from '../backup/lib.js';

const BUCKET = 'deadline';
const MiB = 1024 * 1024;
/** Short deadlines; every per-wait timeout they beat is at least 5 s (Status) or 60 s. */
const STATUS_CASE_DEADLINE_MS = 1500;
const UPLOAD_CASE_DEADLINE_MS = 6000;
/** A run must end this soon after its deadline (cleanup included). */
const SLACK_MS = 8000;

interface Silent {
  readonly endpoint: string;
  accepted: number;
  close(): Promise<void>;
}

/** A TCP server that accepts every connection and never writes a byte. */
async function silentServer(): Promise<Silent> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    out.accepted++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const out: Silent = {
    endpoint: `127.0.0.1:${String(port)}`,
    accepted: 0,
    close: () => closeServer(server, sockets),
  };
  return out;
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((r) => server.close(() => r()));
}

interface Proxy {
  readonly endpoint: string;
  /** From now on bytes from clients are dropped and nothing is answered (sockets stay open). */
  freeze(): void;
  /** Forwards again; connections that lost bytes while frozen are closed. */
  thaw(): void;
  /** Client connections that sent bytes while frozen (requests in flight), and how many of them the client closed. */
  stalled(): { sent: number; closedByClient: number };
  close(): Promise<void>;
}

/** A TCP proxy to `target` ("http://host:port") that can stop answering while keeping its sockets. */
async function freezableProxy(target: string): Promise<Proxy> {
  const u = new URL(target);
  const sockets = new Set<Socket>();
  let frozen = false;
  const lost = new Map<Socket, { closedByClient: boolean }>();
  const server = createServer((client) => {
    const upstream = connect(Number(u.port), u.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.on('error', () => undefined);
    upstream.on('error', () => client.destroy());
    client.on('data', (b) => {
      if (!frozen) {
        upstream.write(b);
        return;
      }
      if (!lost.has(client)) lost.set(client, { closedByClient: false });
    });
    upstream.on('data', (b) => {
      if (!frozen) client.write(b);
    });
    client.on('close', () => {
      const l = lost.get(client);
      if (l !== undefined) l.closedByClient = true;
      upstream.destroy();
      sockets.delete(client);
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      if (!frozen) client.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${String(port)}`,
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
      for (const c of lost.keys()) c.destroy();
    },
    stalled: () => ({ sent: lost.size, closedByClient: [...lost.values()].filter((l) => l.closedByClient).length }),
    close: () => closeServer(server, sockets),
  };
}

/** Runs a backup the way the controller does: holding the cluster's slot, released when it ends. */
async function inSlot<T>(slots: BackupSlots, cluster: string, work: () => Promise<T>): Promise<T> {
  const release = slots.tryAcquire(cluster);
  assert.ok(release !== undefined, `the slot of ${cluster} is free`);
  try {
    return await work();
  } finally {
    release();
  }
}

/** The run's rejection (it must not succeed) and how long it took. */
async function failure(run: Promise<unknown>): Promise<{ err: BackupError; ms: number }> {
  const t0 = Date.now();
  const e = await run.then(
    (r) => assert.fail(`the backup succeeded: ${JSON.stringify(r)}`),
    (x: unknown) => x,
  );
  const ms = Date.now() - t0;
  assert.ok(e instanceof BackupError, `a BackupError, got ${String(e)}`);
  console.error(`failed after ${String(ms)} ms: ${e.reason}: ${e.message}`);
  return { err: e, ms };
}

test('a backup run ends at its deadline wherever it waits', async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const [s3server, cluster] = await Promise.all([startS3({ buckets: [BUCKET] }), startCluster('cairn', { size: 1 })]);
  const s3 = clientFor(s3server);
  const slots = new BackupSlots();
  const member = sourceFor(cluster.member('m1').endpoint);
  const base = (prefix: string, o: Partial<BackupOptions> = {}): BackupOptions => ({
    s3, bucket: BUCKET, prefix, cluster: 'c1', source: member, now: () => new Date(), log: logSink().log, ...o,
  });
  /** The final key of the run that logged these lines. */
  const keyOf = (lines: readonly Record<string, unknown>[]): string => String(lines.find((l) => l['msg'] === 'backup: started')?.['key']);
  try {
    // ~32 MB: at 5 MiB parts and one part in flight, the stream is far from its end after the first part.
    await load(cluster.client('m1'), 'bulk/', 32, MiB);
    const slow = { partSizeBytes: 5 * MiB, queueParts: 1, progressEveryBytes: 5 * MiB };

    await t.test('a member that accepts the connection and never answers: Timeout in the Status phase', async () => {
      const silent = await silentServer();
      const source = new SnapshotSource(silent.endpoint);
      try {
        const { err, ms } = await failure(inSlot(slots, 'c1', () => runBackup(base('s/', { source, deadlineMs: STATUS_CASE_DEADLINE_MS }))));
        assert.equal(err.reason, 'Timeout', err.message);
        assert.match(err.message, /deadline of 1500 ms \(BACKUP_RUN_TIMEOUT_MS\)/);
        assert.match(err.message, new RegExp(`in phase "Status of the member at ${silent.endpoint}"`));
        assert.ok(ms < STATUS_CASE_DEADLINE_MS + SLACK_MS && ms < 5000, `ended ${String(ms)} ms after the start: at the deadline, before Status's own 5 s`);
        assert.ok(silent.accepted >= 1, 'the member accepted the connection');
      } finally {
        source.close();
        await silent.close();
      }
      assert.equal(slots.running('c1'), false, 'the slot is released');
      assert.deepEqual(await listBackups(s3, BUCKET, 's/', 'c1'), []);
      assert.deepEqual(await incomplete(s3, BUCKET, 's/'), { uploads: 0, objects: 0 });
      const rec = await inSlot(slots, 'c1', () => runBackup(base('s/')));
      assert.ok(await exists(s3, BUCKET, rec.key), 'the next run succeeds');
    });

    await t.test('the member stops (SIGSTOP) after the first part: Timeout in the upload phase, the multipart upload aborted', async () => {
      const { lines, log } = logSink();
      let openAtPause: Promise<{ uploads: number; objects: number }> | undefined;
      const opts = base('p/', {
        ...slow,
        source: sourceFor(cluster.member('m1').endpoint),
        deadlineMs: UPLOAD_CASE_DEADLINE_MS,
        log: (l) => {
          log(l);
          if (l['msg'] !== 'backup: progress' || openAtPause !== undefined) return;
          cluster.pause('m1');
          openAtPause = incomplete(s3, BUCKET, 'p/');
        },
      });
      let result: { err: BackupError; ms: number };
      try {
        result = await failure(inSlot(slots, 'c1', () => runBackup(opts)));
      } finally {
        if (openAtPause !== undefined) cluster.resume('m1');
        opts.source.close();
      }
      const { err, ms } = result;
      assert.ok(openAtPause !== undefined, 'the member was stopped mid-snapshot');
      assert.ok((await openAtPause).uploads >= 1, 'a multipart upload was open when the member stopped');
      assert.equal(err.reason, 'Timeout', err.message);
      assert.match(err.message, /deadline of 6 s .* in phase "snapshot upload from 127\.0\.0\.1:\d+"/);
      assert.ok(ms < UPLOAD_CASE_DEADLINE_MS + SLACK_MS, `ended ${String(ms)} ms after the start (the snapshot's idle timeout is 60 s)`);
      assert.equal(slots.running('c1'), false, 'the slot is released');
      assert.equal(await exists(s3, BUCKET, keyOf(lines)), false, 'no object under the final key');
      assert.deepEqual(await incomplete(s3, BUCKET, 'p/'), { uploads: 0, objects: 0 }, 'the multipart upload was aborted');
      const failedLine = lines.find((l) => l['msg'] === 'backup: failed');
      assert.equal(failedLine?.['reason'], 'Timeout');
      const rec = await inSlot(slots, 'c1', () => runBackup(base('p/')));
      assert.ok(await exists(s3, BUCKET, rec.key), 'the next run succeeds');
      assert.deepEqual((await listBackups(s3, BUCKET, 'p/', 'c1')).map((b) => b.key), [rec.key]);
    });

    await t.test('the object store stops answering mid-upload: Timeout, the in-flight requests aborted, the leftovers swept by the next run', async () => {
      const proxy = await freezableProxy(s3server.endpoint);
      const viaProxy = clientFor(s3server, undefined, proxy.endpoint);
      const { lines, log } = logSink();
      let frozen = false;
      const logLine: LogLine = (l) => {
        log(l);
        if (l['msg'] !== 'backup: progress' || frozen) return;
        proxy.freeze();
        frozen = true;
      };
      try {
        const opts = base('o/', { ...slow, s3: viaProxy, deadlineMs: UPLOAD_CASE_DEADLINE_MS, cleanupTimeoutMs: 1000, log: logLine });
        const { err, ms } = await failure(inSlot(slots, 'c1', () => runBackup(opts)));
        assert.ok(frozen, 'the object store stopped answering mid-upload');
        assert.equal(err.reason, 'Timeout', err.message);
        assert.match(err.message, /deadline of 6 s .* in phase "snapshot upload from /);
        assert.ok(ms < UPLOAD_CASE_DEADLINE_MS + SLACK_MS, `ended ${String(ms)} ms after the start (the S3 socket timeout is 60 s)`);
        assert.equal(slots.running('c1'), false, 'the slot is released');
        // The client closes the sockets of aborted requests; give the proxy a moment to see the last ones.
        for (let i = 0; i < 40 && proxy.stalled().closedByClient < proxy.stalled().sent; i++) await new Promise((r) => setTimeout(r, 50));
        const stalled = proxy.stalled();
        assert.ok(stalled.sent >= 1, `a request was in flight when the store stopped answering: ${JSON.stringify(stalled)}`);
        assert.equal(stalled.closedByClient, stalled.sent, `every request in flight was aborted (its socket closed): ${JSON.stringify(stalled)}`);
        assert.ok(lines.some((l) => l['level'] === 'warn' && String(l['msg']).includes('next backup sweeps')), 'the cleanup gave up at its own bound');
        proxy.thaw();
        assert.equal(await exists(s3, BUCKET, keyOf(lines)), false, 'no object under the final key');
        const rec = await inSlot(slots, 'c1', () => runBackup(base('o/', { s3: viaProxy, log: logSink().log })));
        assert.ok(await exists(s3, BUCKET, rec.key), 'the next run succeeds');
        assert.deepEqual(await incomplete(s3, BUCKET, 'o/'), { uploads: 0, objects: 0 }, 'and swept the upload the failed run left open');
      } finally {
        proxy.thaw();
        viaProxy.destroy();
        await proxy.close();
      }
    });
  } finally {
    member.close();
    s3.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
