// Typed member-to-member requests (server/node/peer.ts) without servers: what a member answers,
// how a follower reads the leader's answers and refusals, and the previous release's forms on both
// sides. A real mixed cluster is test/membership/mixed-version.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodePeerResponse,
  encodePeerRequest,
  encodePeerResponse,
  PeerError_Code,
  type PeerRequestInit,
  type PeerResponseInit,
} from '../../proto/gen/cairnpb.js';
import { createLogger } from '../../server/base/log.js';
import { ClientError, ServerRefusal } from '../../server/base/errors.js';
import { decodeMembersAnswer, membersRequestBody, PEER_KIND, PeerRequests, type PeerHost } from '../../server/node/peer.js';
import type { Member } from '../../server/membership/index.js';

const MEMBERS: Member[] = [
  { id: 0x8e9e05c52164694dn, name: 'a', peerURLs: ['http://127.0.0.1:2380'], clientURLs: ['http://127.0.0.1:2379'], isLearner: false },
  { id: 0xffffffffffffffffn, name: 'b', peerURLs: ['http://127.0.0.2:2380'], clientURLs: [], isLearner: true },
];

interface Sent {
  readonly to: bigint;
  readonly kind: string;
  readonly body: Uint8Array;
}

/** A host whose peer requests are answered by `answer` (the other member) and recorded. */
function host(opts: { leader?: boolean; answer?: (s: Sent) => Promise<Uint8Array>; promote?: (id: bigint) => Promise<Member[]> } = {}): { h: PeerHost; sent: Sent[]; logs: string[] } {
  const sent: Sent[] = [];
  const logs: string[] = [];
  const h = {
    cfg: { logger: createLogger('info', (l) => logs.push(l)) },
    clusterId: 0x1234n,
    members: { all: () => MEMBERS },
    store: { hashKV: () => ({ hash: 7, compactRevision: 3 }), currentRev: 9 },
    leases: { renewHere: (id: bigint) => (id === 5n ? 30 : 0), remainingHere: (id: bigint) => (id === 5n ? { remainingMs: 29_500, ttlSeconds: 30 } : undefined) },
    leaderId: () => 2n,
    isLeader: () => opts.leader ?? true,
    request: (to: bigint, kind: string, body: Uint8Array) => {
      const s = { to, kind, body };
      sent.push(s);
      return (opts.answer ?? (() => Promise.reject(new Error('no answer'))))(s);
    },
    promoteMember: opts.promote ?? (() => Promise.resolve(MEMBERS)),
  } as unknown as PeerHost;
  return { h, sent, logs };
}

const ask = async (p: PeerRequests, req: PeerRequestInit) => decodePeerResponse(await p.handle(PEER_KIND, encodePeerRequest(req)));

test('answering: leases, HashKV, promote and the member list; NOT_LEADER, CLIENT and malformed requests as codes', async () => {
  const leader = new PeerRequests(host().h);
  assert.equal((await ask(leader, { leaseRenew: { ID: 5n } })).leaseRenew?.TTL, 30);
  assert.equal((await ask(leader, { leaseRenew: { ID: 6n } })).leaseRenew?.TTL, 0);
  assert.deepEqual((await ask(leader, { leaseTtl: { ID: 5n } })).leaseTtl, { found: true, remainingMs: 29_500, ttlSeconds: 30 });
  assert.deepEqual((await ask(leader, { leaseTtl: { ID: 6n } })).leaseTtl, { found: false, remainingMs: 0, ttlSeconds: 0 });
  assert.deepEqual((await ask(leader, { hashKv: { revision: 0, hashVersion: 2 } })).hashKv, { hash: 7, hashVersion: 2, revision: 9, compactRevision: 3 });
  assert.equal((await ask(leader, { hashKv: { revision: 0, hashVersion: 9 } })).error?.code, PeerError_Code.UNSUPPORTED);
  assert.equal((await ask(leader, { promote: { memberID: 0xffffffffffffffffn } })).promote?.members, 2);
  assert.equal((await ask(leader, {})).error?.code, PeerError_Code.UNSUPPORTED);
  const bad = decodePeerResponse(await leader.handle(PEER_KIND, Buffer.from([0xff, 0xff, 0xff])));
  assert.equal(bad.error?.code, PeerError_Code.INTERNAL);
  assert.match(bad.error?.message ?? '', /malformed peer request/);

  const follower = new PeerRequests(host({ leader: false }).h);
  for (const req of [{ leaseRenew: { ID: 5n } }, { leaseTtl: { ID: 5n } }, { promote: { memberID: 1n } }]) {
    assert.equal((await ask(follower, req)).error?.code, PeerError_Code.NOT_LEADER);
  }
  assert.equal((await ask(follower, { hashKv: { revision: 0, hashVersion: 2 } })).hashKv?.hash, 7, 'any member answers HashKV');

  const refusing = new PeerRequests(host({ promote: () => Promise.reject(new ClientError('learnerNotReady')) }).h);
  assert.deepEqual((await ask(refusing, { promote: { memberID: 1n } })).error, { code: PeerError_Code.CLIENT, clientError: 'learnerNotReady', message: 'learnerNotReady' });

  // The member list: typed on "members" with a body; the previous release's JSON without one.
  const typed = decodeMembersAnswer(await leader.handle('members', membersRequestBody()));
  const legacy = decodeMembersAnswer(await leader.handle('members', new Uint8Array(0)));
  assert.deepEqual(typed, { clusterId: 0x1234n, members: MEMBERS });
  assert.deepEqual(legacy, typed);
});

test('asking: the leader\'s answers and refusals become results, ServerRefusals and ClientErrors', async () => {
  const reply = (r: PeerResponseInit) => () => Promise.resolve(new Uint8Array(encodePeerResponse(r)));
  assert.equal(await new PeerRequests(host({ answer: reply({ leaseRenew: { TTL: 30 } }) }).h).leaseRenew(5n), 30);
  assert.deepEqual(await new PeerRequests(host({ answer: reply({ leaseTtl: { found: true, remainingMs: 100, ttlSeconds: 30 } }) }).h).leaseTTL(5n), { remainingMs: 100, ttlSeconds: 30 });
  assert.equal(await new PeerRequests(host({ answer: reply({ leaseTtl: { found: false } }) }).h).leaseTTL(5n), undefined);
  const notLeader = new PeerRequests(host({ answer: reply({ error: { code: PeerError_Code.NOT_LEADER, message: 'not leader' } }) }).h);
  await assert.rejects(notLeader.leaseRenew(5n), (e: unknown) => e instanceof ServerRefusal && e.kind === 'leaderChanged');
  const client = new PeerRequests(host({ answer: reply({ error: { code: PeerError_Code.CLIENT, clientError: 'memberNotFound', message: '' } }) }).h);
  await assert.rejects(client.promote(1n), (e: unknown) => e instanceof ClientError && e.kind === 'memberNotFound');
  const unknownKind = new PeerRequests(host({ answer: reply({ error: { code: PeerError_Code.CLIENT, clientError: 'rootUserNotExist', message: '' } }) }).h);
  await assert.rejects(unknownKind.promote(1n), (e: unknown) => e instanceof ServerRefusal && e.kind === 'timeout', 'a client refusal not relayed by design is no ClientError');
  const down = new PeerRequests(host({ answer: () => Promise.reject(new Error('connect ECONNREFUSED')) }).h);
  await assert.rejects(down.leaseRenew(5n), (e: unknown) => e instanceof ServerRefusal && e.kind === 'timeout');
  const noLeader = host();
  (noLeader.h as { leaderId: () => bigint }).leaderId = () => 0n;
  await assert.rejects(new PeerRequests(noLeader.h).leaseRenew(5n), (e: unknown) => e instanceof ServerRefusal && e.kind === 'noLeader');
  assert.equal(noLeader.sent.length, 0, 'nothing sent without a leader');
});

test('a previous-release peer: "peer" refused once, then its own forms (and its refusal strings) for a while', async () => {
  // The previous release answers its kinds and refuses "peer" as it does: by an error string.
  const oldMember = new PeerRequests(host().h);
  const { h, sent, logs } = host({
    answer: async (s) => {
      if (s.kind === PEER_KIND) throw new Error(`unknown request kind ${JSON.stringify(PEER_KIND)}`);
      if (s.kind === 'promote') throw new Error('cairn-client-error:learnerNotReady');
      return oldMember.handle(s.kind, s.body);
    },
  });
  const p = new PeerRequests(h);
  assert.equal(await p.leaseRenew(5n), 30);
  assert.deepEqual(await p.leaseTTL(5n), { remainingMs: 29_500, ttlSeconds: 30 });
  assert.equal(await p.leaseTTL(6n), undefined);
  await assert.rejects(p.promote(1n), (e: unknown) => e instanceof ClientError && e.kind === 'learnerNotReady');
  const hk = await p.hashKV(2n, 0);
  assert.equal(hk.ok, true);
  assert.deepEqual(sent.map((s) => s.kind), [PEER_KIND, 'leaseRenew', 'leaseTTL', 'leaseTTL', 'promote', 'hashkv'], 'typed once, then the old forms');
  const noted = logs.filter((l) => l.includes('peer refuses typed requests')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(noted.map((n) => n['remote-peer-id']), ['2']);
  // The old forms on the answering side: refusals are strings the previous release matches.
  const follower = new PeerRequests(host({ leader: false }).h);
  await assert.rejects(follower.handle('leaseRenew', Buffer.alloc(8)), /not leader/);
  await assert.rejects(follower.handle('nonsense', Buffer.alloc(0)), /unknown request kind "nonsense"/);
});
