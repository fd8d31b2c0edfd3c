// Raft streams over real sockets on 127.0.0.1: ordering and batching between two and three members,
// refusals (cluster ID mismatch, removed member), peers speaking garbage, restarts, drops.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { test } from 'node:test';
import type { Message } from '../../server/raft/types.js';
import { encodeMessage } from '../../server/transport/codec.js';
import { encodeFrame, frameTypes } from '../../server/transport/frame.js';
import { PEER_SEND_QUEUE_MSGS } from '../../server/transport/index.js';
import { pollUntil, quietWindow } from '../harness/poll.js';
import { type Member, appMsg, helloBytes, mesh, rawConnect, startMember, stopMember } from './fixtures.js';

const CLUSTER = 0xc1a5_7e12_3456_789an;

async function waitUp(a: Member, b: Member | bigint): Promise<void> {
  const to = typeof b === 'bigint' ? b : b.id;
  await pollUntil(`stream ${a.id} -> ${to}`, () => Promise.resolve(a.t.activeSince(to) !== undefined), 5000, 10);
}

function indexesFrom(m: Member, from: bigint): number[] {
  return m.received.filter((x) => x.from === from).map((x) => x.index);
}

const range = (n: number, start = 0): number[] => Array.from({ length: n }, (_, i) => start + i);

test('two members: thousands of messages each way, in order, batched into few writes', async () => {
  const a = await startMember(1n, CLUSTER);
  const b = await startMember(2n, CLUSTER);
  try {
    mesh([a, b]);
    await waitUp(a, b);
    await waitUp(b, a);
    const n = 4000;
    // one turn: everything queued now goes out in a handful of socket writes
    a.t.send(range(n).map((i) => appMsg(1n, 2n, i)));
    b.t.send(range(n).map((i) => appMsg(2n, 1n, i)));
    await pollUntil('all messages', () => Promise.resolve(b.received.length === n && a.received.length === n), 10_000, 10);
    assert.deepEqual(indexesFrom(b, 1n), range(n));
    assert.deepEqual(indexesFrom(a, 2n), range(n));
    assert.deepStrictEqual(b.received[17], appMsg(1n, 2n, 17), 'messages arrive intact');
    const stats = a.t.peerStats(2n);
    assert.ok(stats !== undefined);
    assert.equal(stats.messagesSent, n);
    assert.equal(stats.dropped, 0);
    assert.ok(stats.writes <= 4, `${n} messages queued in one turn took ${stats.writes} socket writes`);
    if (process.env['TRANSPORT_TEST_LOG'] === '1') console.error('stats', stats, 'batches', b.batches.length);
    assert.ok(b.batches.length < n / 10, `delivered in ${b.batches.length} onMessages calls`);
    assert.ok((b.t.peerStats(1n)?.bytesReceived ?? 0) >= stats.bytesSent, 'the receiver counts the bytes it got from the peer');
    // ping/pong measures the round trip (every second)
    await pollUntil('round trip measured', () => Promise.resolve(a.t.peerRoundTripMs(2n) !== undefined), 3000, 20);
    const rtt = a.t.peerRoundTripMs(2n) ?? -1;
    assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt} ms`);
    assert.ok((a.t.activeSince(2n) ?? 0) <= Date.now());
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('three members: interleaved turns from everyone to everyone stay in order per sender', async () => {
  const ms = [await startMember(11n, CLUSTER), await startMember(12n, CLUSTER), await startMember(13n, CLUSTER)];
  try {
    mesh(ms);
    for (const x of ms) for (const y of ms) if (x !== y) await waitUp(x, y);
    const turns = 30;
    const perTurn = 100;
    for (let turn = 0; turn < turns; turn++) {
      for (const x of ms) for (const y of ms) if (x !== y) x.t.send(range(perTurn, turn * perTurn).map((i) => appMsg(x.id, y.id, i)));
      await new Promise((r) => setImmediate(r));
    }
    const total = turns * perTurn;
    await pollUntil('all messages', () => Promise.resolve(ms.every((m) => m.received.length === 2 * total)), 15_000, 10);
    for (const x of ms) for (const y of ms) if (x !== y) assert.deepEqual(indexesFrom(y, x.id), range(total), `${x.id} -> ${y.id}`);
    for (const x of ms) {
      for (const y of ms) {
        if (x === y) continue;
        const s = x.t.peerStats(y.id);
        assert.ok(s !== undefined && s.messagesSent === total && s.writes <= turns, `${x.id}->${y.id}: ${s?.writes} writes for ${turns} turns`);
      }
    }
  } finally {
    for (const m of ms) await stopMember(m);
  }
});

test('cluster ID mismatch is refused both ways; the sender logs an error, retries, and nothing is delivered', async () => {
  const a = await startMember(1n, 0xaaaan);
  const b = await startMember(2n, 0xbbbbn);
  try {
    mesh([a, b]);
    const refusals = (m: Member): number => m.logs.filter((l) => l.level === 'error' && String(l.fields['reason']).startsWith('cluster ID mismatch')).length;
    await pollUntil('both sides refused twice (retrying)', () => Promise.resolve(refusals(a) >= 2 && refusals(b) >= 2), 5000, 20);
    const seenByA = a.logs.find((l) => l.level === 'error' && l.msg === 'peer refused our connection');
    assert.equal(seenByA?.fields['reason'], 'cluster ID mismatch (local=bbbb, remote=aaaa)');
    assert.equal(seenByA.fields['code'], 'clusterMismatch');
    assert.ok(b.logs.some((l) => l.level === 'warn' && l.msg === 'refused peer connection' && l.fields['code'] === 'clusterMismatch'));
    a.t.send([appMsg(1n, 2n, 1)]);
    b.t.send([appMsg(2n, 1n, 1)]);
    await quietWindow(300);
    assert.equal(a.received.length + b.received.length, 0, 'nothing delivered across clusters');
    assert.equal(a.t.activeSince(2n), undefined);
    assert.equal(b.t.activeSince(1n), undefined);
    // a member that learns the right cluster ID gets through on its next retry
    a.t.setClusterId(0xbbbbn);
    b.t.removePeer(1n);
    await waitUp(a, b);
    a.t.send([appMsg(1n, 2n, 5)]);
    await pollUntil('delivery after the fix', () => Promise.resolve(b.received.length === 1), 5000, 10);
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('a removed member is refused and told once (onRemoved); its messages are not delivered', async () => {
  const a = await startMember(1n, CLUSTER);
  const b = await startMember(2n, CLUSTER, { isRemoved: (id) => id === 1n });
  try {
    a.t.addPeer(2n, [b.url]);
    const refusals = (): number => a.logs.filter((l) => l.level === 'error' && l.fields['code'] === 'removed').length;
    await pollUntil('refused twice', () => Promise.resolve(refusals() >= 2), 5000, 20);
    assert.equal(a.removedCalls, 1);
    a.t.send([appMsg(1n, 2n, 1)]);
    await quietWindow(200);
    assert.equal(b.received.length, 0);
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('garbage, oversized frames and undecodable messages close that connection only; the member serves others', async () => {
  const a = await startMember(1n, CLUSTER);
  const b = await startMember(2n, CLUSTER);
  try {
    mesh([a, b]);
    await waitUp(b, a);
    const warnings = (reason: RegExp): number => a.logs.filter((l) => l.level === 'warn' && l.msg === 'closing peer connection: malformed data' && reason.test(String(l.fields['reason']))).length;

    const junk = await rawConnect(a.url);
    junk.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await junk.closed;
    assert.equal(warnings(/bad magic/), 1);
    assert.match(String(a.logs.find((l) => l.fields['reason'] === 'bad magic')?.fields['remote']), /^127\.0\.0\.1:\d+$/);

    const big = await rawConnect(a.url);
    big.socket.write(helloBytes('stream', CLUSTER, 9n, 1n));
    const header = Buffer.alloc(5);
    header.writeUInt32BE(0x7fff_ffff, 0);
    header.writeUInt8(frameTypes.msg, 4);
    big.socket.write(header);
    await big.closed;
    assert.equal(big.frames[0]?.type, frameTypes.accept);
    assert.equal(warnings(/exceeds the limit/), 1);

    const bad = await rawConnect(a.url);
    bad.socket.write(Buffer.concat([helloBytes('stream', CLUSTER, 9n, 1n), encodeFrame(frameTypes.msg, Buffer.from([1, 2, 3]))]));
    await bad.closed;
    assert.equal(warnings(/message truncated/), 1);

    const wrongType = await rawConnect(a.url);
    wrongType.socket.write(Buffer.concat([helloBytes('stream', CLUSTER, 9n, 1n), encodeFrame(frameTypes.response, Buffer.alloc(5))]));
    await wrongType.closed;
    assert.equal(warnings(/unexpected frame type 7 on an incoming stream/), 1);

    // a valid message sent on someone else's behalf is refused too
    const spoof = await rawConnect(a.url);
    spoof.socket.write(Buffer.concat([helloBytes('stream', CLUSTER, 9n, 1n), encodeFrame(frameTypes.msg, encodeMessage(appMsg(2n, 1n, 1)))]));
    await spoof.closed;
    assert.equal(warnings(/on the stream from 9/), 1);

    // and the transport is still up: b's stream was not disturbed, new connections work
    b.t.send([appMsg(2n, 1n, 42)]);
    await pollUntil('delivery after garbage', () => Promise.resolve(a.received.some((m) => m.index === 42)), 5000, 10);
    assert.ok(a.received.every((m: Message) => m.from === 2n), 'nothing from the garbage peers was delivered');
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('a peer that restarts on the same port is reconnected; messages while it is down are dropped and reported', async () => {
  const a = await startMember(1n, CLUSTER);
  let b = await startMember(2n, CLUSTER);
  const port = new URL(b.url).port;
  try {
    mesh([a, b]);
    await waitUp(a, b);
    a.t.send([appMsg(1n, 2n, 1)]);
    await pollUntil('first delivery', () => Promise.resolve(b.received.length === 1), 5000, 10);
    await stopMember(b, false);
    await pollUntil('stream seen down', () => Promise.resolve(a.t.activeSince(2n) === undefined), 5000, 10);
    await pollUntil('unreachable reported', () => Promise.resolve(a.unreachable.includes(2n)), 5000, 10);
    const droppedBefore = a.t.peerStats(2n)?.dropped ?? 0;
    a.t.send([appMsg(1n, 2n, 2)]);
    await pollUntil('message to the down peer dropped', () => Promise.resolve((a.t.peerStats(2n)?.dropped ?? 0) > droppedBefore), 5000, 10);
    b = await startMember(2n, CLUSTER, { listenUrls: [`http://127.0.0.1:${port}`], dir: b.dir });
    await waitUp(a, b);
    a.t.send([appMsg(1n, 2n, 3)]);
    await pollUntil('delivery after restart', () => Promise.resolve(b.received.some((m) => m.index === 3)), 5000, 10);
    assert.ok(!b.received.some((m) => m.index === 2), 'a message sent while the peer was down is not buffered for later');
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('queue bound: a full queue drops and reports the peer unreachable (at most once per second)', async () => {
  const a = await startMember(1n, CLUSTER);
  const b = await startMember(2n, CLUSTER);
  try {
    a.t.addPeer(2n, [b.url]);
    await waitUp(a, b);
    const n = PEER_SEND_QUEUE_MSGS + 500;
    a.t.send(range(n).map((i) => appMsg(1n, 2n, i)));
    a.t.send(range(100, n).map((i) => appMsg(1n, 2n, i)));
    assert.equal(a.t.peerStats(2n)?.dropped, 600);
    assert.deepEqual(a.unreachable, [2n], 'reported once for all the drops of this second');
    await pollUntil('queued messages delivered', () => Promise.resolve(b.received.length === PEER_SEND_QUEUE_MSGS), 10_000, 10);
    assert.deepEqual(indexesFrom(b, 1n), range(PEER_SEND_QUEUE_MSGS));
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('a peer that stops reading: the socket backs up, the queue fills, messages drop; the silent stream is closed', async () => {
  const a = await startMember(1n, CLUSTER);
  // a "peer" that accepts the hello and then never reads again
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('data', () => {
      s.write(encodeFrame(frameTypes.accept));
      s.pause();
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  try {
    a.t.addPeer(2n, [`http://127.0.0.1:${addr.port}`]);
    await waitUp(a, 2n);
    for (let turn = 0; turn < 400 && (a.t.peerStats(2n)?.dropped ?? 0) === 0; turn++) {
      a.t.send(range(200).map((i) => appMsg(1n, 2n, i, 4096)));
      await new Promise((r) => setImmediate(r));
    }
    assert.ok((a.t.peerStats(2n)?.dropped ?? 0) > 0, 'messages were dropped once the queue was full');
    assert.ok(a.unreachable.includes(2n));
    // no pong ever comes back: the stream is closed after the read timeout and redialled
    await pollUntil('silent stream closed', () => Promise.resolve(a.logs.some((l) => l.msg === 'peer stream lost' && /nothing received/.test(String(l.fields['reason'])))), 9000, 50);
  } finally {
    await stopMember(a);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a peer that cannot be reached: messages are dropped and reported, dialling goes on with backoff', async () => {
  const a = await startMember(1n, CLUSTER);
  const free = net.createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
  const addr = free.address();
  assert.ok(addr !== null && typeof addr === 'object');
  await new Promise<void>((r) => free.close(() => r()));
  try {
    a.t.addPeer(2n, [`http://127.0.0.1:${addr.port}`]);
    await pollUntil('outage logged', () => Promise.resolve(a.logs.some((l) => l.msg === 'peer stream unreachable')), 5000, 10);
    a.t.send([appMsg(1n, 2n, 1)]);
    await pollUntil('unreachable reported', () => Promise.resolve(a.unreachable.includes(2n)), 5000, 10);
    assert.equal(a.logs.filter((l) => l.msg === 'peer stream unreachable').length, 1, 'one warning per outage, not per attempt');
    assert.ok((a.t.peerStats(2n)?.dropped ?? 0) >= 1);
  } finally {
    await stopMember(a);
  }
});
