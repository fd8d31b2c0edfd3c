// Forwarded requests over real sockets: multiplexed responses, error propagation, timeouts, bounds,
// the anonymous 'members' request by URL, refusals, and close().
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import {
  PEER_PENDING_REQUESTS_MAX,
  PEER_REQUEST_BODY_BYTES_MAX,
  PeerRefusedError,
  PeerRequestError,
  PeerUnavailableError,
  Transport,
} from '../../server/transport/index.js';
import { pollUntil } from '../harness/poll.js';
import { type Member, startMember, stopMember } from './fixtures.js';

const CLUSTER = 0x4e9n;

interface Served {
  from: bigint;
  kind: string;
  body: string;
}

async function pair(served: Served[], hang: (() => void)[]): Promise<[Member, Member]> {
  const handleRequest = (from: bigint, kind: string, body: Uint8Array): Promise<Uint8Array> => {
    served.push({ from, kind, body: Buffer.from(body).toString() });
    if (kind === 'fail') return Promise.reject(new Error(`boom: ${Buffer.from(body).toString()}`));
    if (kind === 'throw') throw new Error('thrown synchronously');
    if (kind === 'hang') return new Promise((resolve) => hang.push(() => resolve(new Uint8Array(0))));
    return Promise.resolve(Buffer.from(`${kind}:${Buffer.from(body).toString()}`));
  };
  const a = await startMember(1n, CLUSTER, { handleRequest });
  const b = await startMember(2n, CLUSTER, { handleRequest });
  a.t.addPeer(2n, [b.url]);
  return [a, b];
}

const text = (b: Uint8Array): string => Buffer.from(b).toString();

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Error);
    return e;
  }
  assert.fail('expected a rejection');
}

test('requests: many in flight on one connection, each answered by id; handler errors carry their message', async () => {
  const served: Served[] = [];
  const [a, b] = await pair(served, []);
  try {
    const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => a.t.request(2n, 'echo', Buffer.from(`n${i}`), 5000)));
    assert.deepEqual(answers.map(text), Array.from({ length: 500 }, (_, i) => `echo:n${i}`));
    assert.ok(served.every((s) => s.from === 1n));
    const e = await rejection(a.t.request(2n, 'fail', Buffer.from('x1'), 5000));
    assert.ok(e instanceof PeerRequestError);
    assert.equal(e.message, 'boom: x1');
    const t = await rejection(a.t.request(2n, 'throw', Buffer.alloc(0), 5000));
    assert.ok(t instanceof PeerRequestError && t.message === 'thrown synchronously');
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    assert.equal((await a.t.request(2n, 'big', big, 5000)).length, 4 + big.length);
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('requests: timeout, pending bound, body bound, unknown and unreachable peers, close() rejects', async () => {
  const hang: (() => void)[] = [];
  const [a, b] = await pair([], hang);
  try {
    const slow = await rejection(a.t.request(2n, 'hang', Buffer.alloc(0), 150));
    assert.ok(slow instanceof PeerUnavailableError && slow.kind === 'timeout', String(slow));
    assert.match(slow.message, /timed out after 150 ms/);
    assert.equal(text(await a.t.request(2n, 'echo', Buffer.from('after'), 5000)), 'echo:after', 'the connection still serves');
    for (const h of hang.splice(0)) h(); // the late response is ignored
    assert.equal(text(await a.t.request(2n, 'echo', Buffer.from('late'), 5000)), 'echo:late');

    const pending = Array.from({ length: PEER_PENDING_REQUESTS_MAX }, () => a.t.request(2n, 'hang', Buffer.alloc(0), 20_000));
    for (const p of pending) p.catch(() => undefined);
    const over = await rejection(a.t.request(2n, 'echo', Buffer.alloc(0), 5000));
    assert.ok(over instanceof PeerUnavailableError && over.kind === 'tooManyRequests');
    await pollUntil('all hanging requests reached the peer', () => Promise.resolve(hang.length === PEER_PENDING_REQUESTS_MAX), 5000, 10);
    for (const h of hang.splice(0)) h();
    await Promise.all(pending);

    const tooBig = await rejection(a.t.request(2n, 'echo', Buffer.alloc(PEER_REQUEST_BODY_BYTES_MAX + 1), 5000));
    assert.ok(tooBig instanceof PeerUnavailableError && tooBig.kind === 'tooLarge');
    const unknown = await rejection(a.t.request(99n, 'echo', Buffer.alloc(0), 5000));
    assert.ok(unknown instanceof PeerUnavailableError && unknown.kind === 'unknownPeer');
    a.t.addPeer(3n, ['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    const down = await rejection(a.t.request(3n, 'echo', Buffer.alloc(0), 5000));
    assert.ok(down instanceof PeerUnavailableError && down.kind === 'unreachable', String(down));
    // several URLs: tried in order until one answers
    a.t.updatePeer(3n, ['http://127.0.0.1:1', b.url]);
    // b is member 2, so it refuses a hello addressed to member 3
    const wrongMember = await rejection(a.t.request(3n, 'echo', Buffer.alloc(0), 5000));
    assert.ok(wrongMember instanceof PeerRefusedError && wrongMember.code === 'memberMismatch', String(wrongMember));

    const waiting = rejection(a.t.request(2n, 'hang', Buffer.alloc(0), 20_000));
    await pollUntil('request reached the peer', () => Promise.resolve(hang.length === 1), 5000, 10);
    await a.t.close();
    const stopped = await waiting;
    assert.ok(stopped instanceof PeerUnavailableError && stopped.kind === 'stopped');
    const after = await rejection(a.t.request(2n, 'echo', Buffer.alloc(0), 1000));
    assert.ok(after instanceof PeerUnavailableError);
  } finally {
    for (const h of hang) h();
    await stopMember(a);
    await stopMember(b);
  }
});

test('requestUrl: a member not yet in the cluster may ask for the member list, and nothing else', async () => {
  const served: Served[] = [];
  const [a, b] = await pair(served, []);
  try {
    const members = await Transport.requestUrl(b.url, 'members', Buffer.from('q'), 2000);
    assert.equal(text(members), 'members:q');
    assert.deepEqual(served.at(-1), { from: 0n, kind: 'members', body: 'q' });
    assert.equal(text(await Transport.requestUrl(b.url, 'members', Buffer.alloc(0), 2000, CLUSTER)), 'members:', 'with the right cluster ID');
    const other = await rejection(Transport.requestUrl(b.url, 'echo', Buffer.alloc(0), 2000));
    assert.ok(other instanceof PeerRequestError);
    assert.match(other.message, /needs the cluster and member IDs/);
    const wrong = await rejection(Transport.requestUrl(b.url, 'members', Buffer.alloc(0), 2000, 0x777n));
    assert.ok(wrong instanceof PeerRefusedError && wrong.code === 'clusterMismatch');
    assert.equal(wrong.message, 'cluster ID mismatch (local=4e9, remote=777)');
    const down = await rejection(Transport.requestUrl('http://127.0.0.1:1', 'members', Buffer.alloc(0), 2000));
    assert.ok(down instanceof PeerUnavailableError);
    assert.equal(served.filter((s) => s.kind !== 'members').length, 0, 'the refused kinds never reached the handler');
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});

test('requests between members of different clusters are refused', async () => {
  const a = await startMember(1n, 0x1n);
  const b = await startMember(2n, 0x2n);
  try {
    a.t.addPeer(2n, [b.url]);
    const e = await rejection(a.t.request(2n, 'echo', Buffer.alloc(0), 2000));
    assert.ok(e instanceof PeerRefusedError && e.code === 'clusterMismatch');
    assert.ok(a.logs.some((l) => l.level === 'error' && l.fields['code'] === 'clusterMismatch'));
    // a member that does not know its cluster ID yet does not dial at all
    a.t.setClusterId(0n);
    const unknown = await rejection(a.t.request(2n, 'echo', Buffer.alloc(0), 2000));
    assert.ok(unknown instanceof PeerUnavailableError && /cluster ID not known/.test(unknown.message));
  } finally {
    await stopMember(a);
    await stopMember(b);
  }
});
