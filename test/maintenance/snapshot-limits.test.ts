// Client snapshots hold a database copy on the data disk while they stream: at most
// CLIENT_SNAPSHOTS_MAX at once (more are refused with 'too many requests', nothing is copied for
// them), a client that goes away frees its copy, and copies a crash left behind are removed at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { EtcdClient, methodDefinition, type Msg } from '../harness/client.js';
import { startCairn } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { CLIENT_SNAPSHOTS_MAX } from '../../server/base/limits.js';

function snapDir(dataDir: string): string {
  return join(dataDir, 'member', 'snap');
}

function clientCopies(dataDir: string): string[] {
  return readdirSync(snapDir(dataDir)).filter((f) => /^client-.*\.mdb$/.test(f));
}

/** Opens a Snapshot stream and reads only its first message (the stream then waits on flow control). */
function openSnapshot(c: EtcdClient): { first: Promise<Msg>; error: Promise<grpc.ServiceError | undefined>; cancel: () => void } {
  const def = methodDefinition('Maintenance', 'Snapshot');
  const call: grpc.ClientReadableStream<Msg> = c.channel.makeServerStreamRequest(def.path, def.requestSerialize, (b: Buffer) => def.responseDeserialize(b) as Msg, {}, {});
  const first = new Promise<Msg>((resolve, reject) => {
    call.once('data', (m: Msg) => {
      call.pause();
      resolve(m);
    });
    call.once('error', reject);
  });
  const error = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on('error', (e: grpc.ServiceError) => resolve(e));
    call.on('end', () => resolve(undefined));
  });
  void first.catch(() => undefined);
  return { first, error, cancel: () => call.cancel() };
}

test(`at most ${CLIENT_SNAPSHOTS_MAX} client snapshots stream at once; a cancelled one frees its copy; leftovers are removed at start`, async () => {
  const server = await startCairn();
  const clients: EtcdClient[] = [];
  try {
    const c = new EtcdClient(server.endpoint);
    clients.push(c);
    // Enough data that a snapshot cannot fit in the flow-control windows at once (~12 MiB).
    const value = Buffer.alloc(60_000, 7);
    for (let i = 0; i < 200; i++) assert.ok((await c.put({ key: Buffer.from(`k${i}`), value })).ok);
    const open = [];
    for (let i = 0; i < CLIENT_SNAPSHOTS_MAX; i++) {
      const cl = new EtcdClient(server.endpoint);
      clients.push(cl);
      const s = openSnapshot(cl);
      await s.first;
      open.push(s);
    }
    assert.equal(clientCopies(server.dataDir).length, CLIENT_SNAPSHOTS_MAX, 'one copy per open stream');
    const extra = new EtcdClient(server.endpoint);
    clients.push(extra);
    const refused = openSnapshot(extra);
    const err = await refused.error;
    assert.equal(err?.details, 'etcdserver: too many requests');
    assert.equal(clientCopies(server.dataDir).length, CLIENT_SNAPSHOTS_MAX, 'nothing copied for the refused one');
    open[0]?.cancel();
    await pollUntil('the cancelled stream freeing its copy', () => Promise.resolve(clientCopies(server.dataDir).length === CLIENT_SNAPSHOTS_MAX - 1));
    const again = new EtcdClient(server.endpoint);
    clients.push(again);
    await openSnapshot(again).first;
    // A crash leaves copies behind: they go at the next start.
    for (const cl of clients) cl.close();
    clients.length = 0;
    await server.kill9();
    const leftover = join(snapDir(server.dataDir), 'client-abc123.mdb');
    writeFileSync(leftover, 'x');
    const restarted = await startCairn({ dataDir: server.dataDir, name: server.name });
    try {
      assert.equal(existsSync(leftover), false);
      assert.deepEqual(clientCopies(server.dataDir), []);
      assert.ok(restarted.stderrLines().some((l) => l.includes('removed a temporary copy left by an interrupted operation')));
    } finally {
      await restarted.stop();
    }
  } finally {
    for (const cl of clients) cl.close();
    await server.stop();
  }
});
