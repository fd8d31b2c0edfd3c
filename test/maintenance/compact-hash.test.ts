// The compaction hash check (--feature-gates=CompactHashCheck=true, etcd 3.6's CompactHashCheck):
// the verdict on the members' answers (judgeCompactionHash, etcd's checkPeerHashes), then a 3-member
// Cairn: a compaction is checked on the whole cluster with no alarm; a follower whose LMDB file had a
// value changed while it was stopped gets the CORRUPT alarm at the next compaction (and only it).
// etcd's own e2e tests (TestCompactHashCheckDetectCorruptionInterrupt*) cover the interrupted
// compaction against the same flags on etcd 3.6.8 and Cairn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeCompactionHash, type CompactionHash } from '../../server/node/compacthash.js';
import type { PeerHash } from '../../server/node/corrupt.js';
import { withCluster, type Cluster } from '../harness/cluster.js';
import { runEtcdctl } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { corruptValue, ok } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);
const leaderHash: CompactionHash = { hash: 7, hashVersion: 2, revision: 50, compactRevision: 50 };
const peer = (id: bigint, hash: number, extra: Partial<{ compactRevision: number; hashVersion: number }> = {}): PeerHash => ({
  id,
  ok: true,
  hash,
  hashVersion: extra.hashVersion ?? 2,
  compactRevision: extra.compactRevision ?? 50,
  revision: 60,
});

test('judgeCompactionHash: agreement, skipped peers, a minority, no quorum', () => {
  assert.deepEqual(judgeCompactionHash(1n, leaderHash, [peer(2n, 7), peer(3n, 7)]).verdict, { kind: 'consistent', checked: 2, peers: 2 });
  // A peer compacted elsewhere, one hashing another version and one unreachable are skipped: not all checked.
  const skipped = judgeCompactionHash(1n, leaderHash, [peer(2n, 7), peer(3n, 9, { compactRevision: 40 }), peer(4n, 9, { hashVersion: 1 }), { id: 5n, ok: false, error: 'timeout' }]);
  assert.deepEqual(skipped.verdict, { kind: 'consistent', checked: 1, peers: 4 });
  assert.deepEqual(
    skipped.skipped.map((s) => s.id),
    [3n, 4n, 5n],
  );
  assert.match(skipped.skipped[0]?.reason ?? '', /the peer's CompactRevision 40 doesn't match leader's CompactRevision 50/);
  // Two of three agree: the third is alarmed, whoever leads.
  assert.deepEqual(judgeCompactionHash(1n, leaderHash, [peer(2n, 7), peer(3n, 8)]).verdict, { kind: 'mismatch', quorum: true, alarms: [3n], groups: [{ hash: 8, ids: [3n] }] });
  assert.deepEqual(judgeCompactionHash(1n, leaderHash, [peer(2n, 8), peer(3n, 8)]).verdict, { kind: 'mismatch', quorum: true, alarms: [1n], groups: [{ hash: 7, ids: [1n] }] });
  // No hash held by a quorum: member 0 (the whole cluster).
  const none = judgeCompactionHash(1n, leaderHash, [peer(2n, 8), peer(3n, 9)]).verdict;
  assert.equal(none.kind, 'mismatch');
  assert.deepEqual(none.kind === 'mismatch' ? [none.quorum, none.alarms] : [], [false, [0n]]);
  // Of five, two disagreeing with three: those two.
  const five = judgeCompactionHash(1n, leaderHash, [peer(2n, 7), peer(3n, 7), peer(4n, 8), peer(5n, 8)]).verdict;
  assert.deepEqual(five.kind === 'mismatch' ? five.alarms : [], [4n, 5n]);
});

async function alarms(c: Cluster, name: string): Promise<string> {
  return (await runEtcdctl([`--endpoints=${c.member(name).endpoint}`, 'alarm', 'list'])).stdout;
}

test('3 members with CompactHashCheck: a compaction checked on the whole cluster; a corrupted follower alarmed at the next one', async () => {
  await withCluster('cairn', { size: 3, extraArgs: ['--feature-gates=CompactHashCheck=true', '--compact-hash-check-time=500ms', '--compaction-batch-limit=3'] }, async (c) => {
    const leader = await c.leader();
    const lc = c.client(leader.name);
    for (let i = 0; i < 30; i++) ok(await lc.put({ key: b(`k${i % 7}`), value: b(`v${i}`) }), 'put');
    ok(await lc.put({ key: b('victim'), value: b('good-value') }), 'put victim');
    const first = Number((ok(await lc.put({ key: b('k0'), value: b('last') }), 'put')['header'] as { revision: string }).revision);
    ok(await lc.unary('KV', 'Compact', { revision: String(first), physical: true }), 'compact');
    const lines = (): string[] => leader.proc?.stderrLines() ?? [];
    const checkedAt = (rev: number): boolean => lines().some((l) => l.includes('successfully checked hash on whole cluster') && l.includes(`"revision":${rev}`));
    await pollUntil(`the compaction at ${first} checked on the whole cluster`, () => Promise.resolve(checkedAt(first)), 20_000, 100);
    assert.ok(lines().some((l) => l.includes('finished compaction hash check')));
    assert.equal(await alarms(c, leader.name), '', 'an alarm on a healthy cluster');
    // Every member logged the end of its compaction (in steps of at most 3 revisions) with its hash.
    for (const m of c.members) assert.ok(m.proc?.stderrLines().some((l) => l.includes('finished scheduled compaction') && l.includes(`"compact-revision":${first}`)), `${m.name} finished compacting`);

    const victim = c.members.find((m) => m.name !== leader.name);
    assert.ok(victim !== undefined);
    const victimId = await c.idOf(victim.name);
    await c.stop(victim.name);
    await corruptValue(victim.dataDir, 'victim', 'good-value', 'evil-value');
    await c.start(victim.name);
    for (let i = 0; i < 5; i++) ok(await lc.put({ key: b(`k${i}`), value: b(`w${i}`) }), 'put');
    const second = Number((ok(await lc.put({ key: b('k1'), value: b('later') }), 'put')['header'] as { revision: string }).revision);
    ok(await lc.unary('KV', 'Compact', { revision: String(second), physical: true }), 'compact');
    await pollUntil('the CORRUPT alarm', async () => (await alarms(c, leader.name)).includes('alarm:CORRUPT'), 20_000, 200);
    assert.equal(await alarms(c, leader.name), `memberID:${victimId} alarm:CORRUPT \n`);
    assert.ok(lines().some((l) => l.includes('Detected compaction hash mismatch') && l.includes(BigInt(victimId).toString(16))), 'the mismatch names the victim');
  });
});
