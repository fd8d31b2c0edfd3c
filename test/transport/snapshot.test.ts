// Snapshot transfer over real sockets: a few MiB sent, verified, renamed and delivered; corrupted,
// oversized and cut-short transfers rejected with the temp file removed; failures reported to the sender.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { Message } from '../../server/raft/types.js';
import { encodeMessage } from '../../server/transport/codec.js';
import { decodeSnapAck, encodeFrame, frameTypes } from '../../server/transport/frame.js';
import type { OutgoingSnapshot } from '../../server/transport/index.js';
import { pollUntil } from '../harness/poll.js';
import { type Member, type RawConn, helloBytes, mesh, rawConnect, startMember, stopMember } from './fixtures.js';

const CLUSTER = 0x5eedn;

function snapMsg(from: bigint, to: bigint, index: number): Message {
  return {
    type: 'snap',
    from,
    to,
    term: 4,
    index: 0,
    logTerm: 0,
    commit: 0,
    entries: [],
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    snapshot: { index, term: 4, confState: { voters: [from, to, 3n], learners: [9n] } },
  };
}

async function partFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.snap.part'));
}

test('a snapshot of a few MiB is streamed, verified, stored and handed over; the file is released', async () => {
  const content = randomBytes(5 * 1024 * 1024 + 12345);
  const opened: Message[] = [];
  let released = 0;
  let a: Member | undefined;
  const b = await startMember(2n, CLUSTER);
  try {
    a = await startMember(1n, CLUSTER, {
      openSnapshot: async (msg): Promise<OutgoingSnapshot> => {
        opened.push(msg);
        const file = path.join(a?.dir ?? '', 'outgoing.db');
        await writeFile(file, content);
        // the host's copy is at index 120, newer than raft asked for: the message says so
        const snapshot = { index: 120, term: 4, confState: msg.snapshot?.confState ?? { voters: [], learners: [] } };
        return { msg: { ...msg, snapshot }, file, release: () => Promise.resolve(void released++) };
      },
    });
    mesh([a, b]);
    const sender = a;
    // two snap messages in one turn: the second is ignored while the first is in flight
    sender.t.send([snapMsg(1n, 2n, 100), snapMsg(1n, 2n, 101)]);
    await pollUntil('snapshot sent', () => Promise.resolve(sender.snapshotsSent.length === 1), 15_000, 20);
    assert.deepEqual(sender.snapshotsSent, [{ to: 2n, ok: true }]);
    assert.equal(opened.length, 1);
    assert.equal(released, 1);
    assert.equal(b.snapshots.length, 1);
    const got = b.snapshots[0];
    assert.ok(got !== undefined);
    assert.equal(got.msg.snapshot?.index, 120, 'the message as rewritten by openSnapshot');
    assert.deepEqual(got.msg.snapshot.confState, { voters: [1n, 2n, 3n], learners: [9n] });
    assert.equal(path.dirname(got.file), b.dir);
    assert.match(path.basename(got.file), /^0000000000000078-0000000000000004-[0-9a-f]{8}\.snap\.db$/);
    assert.ok((await readFile(got.file)).equals(content), 'the stored file is the sent file');
    assert.deepEqual(await partFiles(b.dir), []);
    assert.equal(b.received.length, 0, 'snap messages do not travel on the stream');
  } finally {
    if (a !== undefined) await stopMember(a);
    await stopMember(b);
  }
});

test('snapshot send failures: openSnapshot fails, or the receiver is down -> onSnapshotSent(false), release still called', async () => {
  let released = 0;
  const a = await startMember(1n, CLUSTER, {
    openSnapshot: (msg) => {
      if (msg.snapshot?.index === 1) return Promise.reject(new Error('no snapshot available'));
      return Promise.resolve({ msg, file: '/dev/null', release: () => Promise.resolve(void released++) });
    },
  });
  try {
    a.t.addPeer(2n, ['http://127.0.0.1:1']);
    a.t.send([snapMsg(1n, 2n, 1)]);
    await pollUntil('first failure reported', () => Promise.resolve(a.snapshotsSent.length === 1), 5000, 10);
    a.t.send([snapMsg(1n, 2n, 2)]);
    await pollUntil('second failure reported', () => Promise.resolve(a.snapshotsSent.length === 2), 5000, 10);
    assert.deepEqual(a.snapshotsSent, [
      { to: 2n, ok: false },
      { to: 2n, ok: false },
    ]);
    assert.equal(released, 1, 'release called for the snapshot that was opened');
    a.t.send([snapMsg(1n, 77n, 3)]);
    assert.deepEqual(a.snapshotsSent[2], { to: 77n, ok: false }, 'a snapshot for an unknown peer fails at once');
  } finally {
    await stopMember(a);
  }
});

/** Opens a snapshot connection to `b` by hand and announces `size` bytes. */
async function rawSnapshot(b: Member, size: number): Promise<RawConn> {
  const c = await rawConnect(b.url);
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(size));
  c.socket.write(Buffer.concat([helloBytes('snapshot', CLUSTER, 1n, 2n), encodeFrame(frameTypes.snapMsg, head, encodeMessage(snapMsg(1n, 2n, 50)))]));
  return c;
}

async function ackOf(c: RawConn): Promise<{ ok: boolean; reason: string }> {
  await pollUntil('snapshot ack', () => Promise.resolve(c.frames.some((f) => f.type === frameTypes.snapAck)), 5000, 10);
  const f = c.frames.find((x) => x.type === frameTypes.snapAck);
  assert.ok(f !== undefined);
  return decodeSnapAck(f.payload);
}

test('receiver: a corrupted, an oversized and a cut-short transfer are rejected and leave no file', async () => {
  const b = await startMember(2n, CLUSTER);
  try {
    const data = randomBytes(300_000);

    const corrupt = await rawSnapshot(b, data.length);
    corrupt.socket.write(encodeFrame(frameTypes.snapChunk, data.subarray(0, 200_000)));
    const flipped = Buffer.from(data.subarray(200_000));
    flipped[7] = (flipped[7] ?? 0) ^ 1;
    corrupt.socket.write(encodeFrame(frameTypes.snapChunk, flipped));
    corrupt.socket.write(encodeFrame(frameTypes.snapEnd, createHash('sha256').update(data).digest()));
    assert.deepEqual(await ackOf(corrupt), { ok: false, reason: 'SHA-256 mismatch' });
    await corrupt.closed;

    const tooMany = await rawSnapshot(b, 1000);
    tooMany.socket.write(encodeFrame(frameTypes.snapChunk, data.subarray(0, 1001)));
    assert.deepEqual(await ackOf(tooMany), { ok: false, reason: 'more than the announced 1000 bytes' });

    const short = await rawSnapshot(b, data.length);
    short.socket.write(encodeFrame(frameTypes.snapChunk, data.subarray(0, 1000)));
    short.socket.write(encodeFrame(frameTypes.snapEnd, createHash('sha256').update(data).digest()));
    assert.deepEqual(await ackOf(short), { ok: false, reason: `received 1000 of ${data.length} bytes` });

    const cut = await rawSnapshot(b, data.length);
    cut.socket.write(encodeFrame(frameTypes.snapChunk, data.subarray(0, 150_000)));
    await pollUntil('temp file created', async () => (await partFiles(b.dir)).length === 1, 5000, 10);
    cut.socket.destroy();
    await pollUntil('temp file removed after the cut', async () => (await partFiles(b.dir)).length === 0, 5000, 10);

    assert.equal(b.snapshots.length, 0, 'nothing handed to the host');
    assert.deepEqual(await readdir(b.dir), [], 'no file left behind');
    assert.ok(b.logs.some((l) => l.level === 'warn' && l.msg === 'rejected snapshot from peer' && l.fields['reason'] === 'SHA-256 mismatch'));

    // a well-formed transfer on a fresh connection still works
    const good = await rawSnapshot(b, data.length);
    for (let at = 0; at < data.length; at += 65536) good.socket.write(encodeFrame(frameTypes.snapChunk, data.subarray(at, at + 65536)));
    good.socket.write(encodeFrame(frameTypes.snapEnd, createHash('sha256').update(data).digest()));
    assert.deepEqual(await ackOf(good), { ok: true, reason: '' });
    await pollUntil('delivered', () => Promise.resolve(b.snapshots.length === 1), 5000, 10);
    good.socket.destroy();
  } finally {
    await stopMember(b);
  }
});

test('close() during a transfer removes the temp file before it resolves', async () => {
  const b = await startMember(2n, CLUSTER);
  const c = await rawSnapshot(b, 1_000_000);
  c.socket.write(encodeFrame(frameTypes.snapChunk, randomBytes(10_000)));
  await pollUntil('temp file created', async () => (await partFiles(b.dir)).length === 1, 5000, 10);
  await b.t.close();
  assert.deepEqual(await partFiles(b.dir), []);
  await c.closed;
  await stopMember(b);
});
