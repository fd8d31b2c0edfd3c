// Network partitions of real clusters (Cairn, or the reference etcd with CAIRN_DIFF_TARGET=etcd),
// each member in its own network namespace (test/harness/netns.ts; the loopback proxy fallback
// says so in the output). The test process stays connected to every member.
//
// - 3 and 5 members, the leader isolated: the old leader cannot commit (a write sent to it fails or
//   times out, and never becomes visible), it steps down; the majority elects a leader among itself
//   and commits; after healing all members converge (same leader, applied index, revision, HashKV)
//   and the old leader follows.
// - 5 members split 2|3, the leader on the 2 side, then on the 3 side: the 2 side cannot commit, the
//   3 side can; after healing all converge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { CallResult, Msg } from '../harness/client.js';
import { statusName } from '../harness/client.js';
import { createNet } from '../harness/netns.js';
import type { Net } from '../harness/netns.js';
import { pollUntil } from '../harness/poll.js';
import { targetKind } from '../harness/procs.js';
import { NetCluster } from '../lin/members.js';

const kind = targetKind();
const HEARTBEAT_MS = 100;
const ELECTION_MS = 1000;
/** Deadline of a request sent to the cut-off side: it must not succeed within it. */
const MINORITY_WRITE_MS = 4_000;
const LEADER_MS = 20_000;
const CONVERGE_MS = 60_000;

const b = (s: string): Buffer => Buffer.from(s);
function fmt(r: CallResult<Msg>): string {
  return r.ok ? `ok ${JSON.stringify(r.value['header'] ?? {})}` : `${statusName(r.code)}: ${r.details}`;
}

function put(c: NetCluster, i: number, key: string, value: string, timeoutMs = 5_000): Promise<CallResult<Msg>> {
  return c.client(i).put({ key: b(key), value: b(value) }, { timeoutMs });
}

/** The value of key on member i: linearizable (default) or served locally (serializable). */
async function get(c: NetCluster, i: number, key: string, serializable: boolean, timeoutMs = 5_000): Promise<CallResult<string | null>> {
  const r = await c.client(i).range({ key: b(key), serializable }, { timeoutMs });
  if (!r.ok) return r;
  const kvs = Array.isArray(r.value['kvs']) ? (r.value['kvs'] as Msg[]) : [];
  const v = kvs[0]?.['value'];
  return { ok: true, value: Buffer.isBuffer(v) ? v.toString() : null };
}

async function withCluster(t: TestContext, size: number, fn: (c: NetCluster, net: Net) => Promise<void>): Promise<void> {
  const net = await createNet({ size });
  t.diagnostic(`target ${kind}; ${net.description}`);
  if (net.mode === 'proxy') console.log(`NOTE: ${net.description}`);
  const c = new NetCluster(kind, net, { size, heartbeatMs: HEARTBEAT_MS, electionMs: ELECTION_MS });
  try {
    await c.boot();
    await fn(c, net);
  } catch (e) {
    console.error(`partition test failed; member logs:\n${c.logTails(40)}`);
    throw e;
  } finally {
    await c.close();
    await net.cleanup();
  }
}

/**
 * Cuts the cluster into `minority` and the rest (the majority) and checks: writes sent to every
 * minority member fail or time out; the majority agrees on a leader among itself and commits
 * (through its leader and through a follower); when the old leader is cut off it steps down and
 * the writes sent to the minority never become visible. Then heals and waits for convergence.
 */
async function splitAndHeal(t: TestContext, c: NetCluster, net: Net, minority: number[], tag: string): Promise<void> {
  const size = c.members.length;
  const majority = Array.from({ length: size }, (_, i) => i).filter((i) => !minority.includes(i));
  const oldLeader = await c.waitLeader(Array.from({ length: size }, (_, i) => i), LEADER_MS);
  const oldLeaderId = await c.idOf(oldLeader);
  const leaderCutOff = minority.includes(oldLeader);
  const before = await put(c, oldLeader, `${tag}/before`, 'v0');
  assert.ok(before.ok, `write before the partition: ${fmt(before)}`);

  await net.partition([minority, majority]);
  t.diagnostic(`${tag}: minority ${minority.map((i) => c.member(i).name).join(',')} | majority ${majority.map((i) => c.member(i).name).join(',')}; old leader ${c.member(oldLeader).name}`);

  // Writes to the minority (one per member, concurrently) and the majority's election run at the same time.
  const minorityWrites = Promise.all(minority.map((i) => put(c, i, `${tag}/minority-${c.member(i).name}`, 'must-not-commit', MINORITY_WRITE_MS)));
  const newLeader = await c.waitLeader(majority, LEADER_MS);
  assert.ok(majority.includes(newLeader));
  for (const [k, r] of (await minorityWrites).entries()) {
    assert.equal(r.ok, false, `a write sent to minority member ${c.member(minority[k] ?? -1).name} succeeded: ${fmt(r)}`);
    t.diagnostic(`${tag}: write to minority ${c.member(minority[k] ?? -1).name}: ${fmt(r)}`);
  }
  // The minority cannot serve linearizable reads either (ReadIndex needs a quorum).
  for (const i of minority) {
    const r = await get(c, i, `${tag}/before`, false, 2_000);
    assert.equal(r.ok, false, `a linearizable read on minority member ${c.member(i).name} succeeded: ${JSON.stringify(r)}`);
  }

  // The majority commits, through its leader and through one of its followers.
  const follower = majority.find((i) => i !== newLeader) ?? newLeader;
  for (const [i, what] of [
    [newLeader, 'leader'],
    [follower, 'follower'],
  ] as const) {
    const w = await put(c, i, `${tag}/majority-via-${what}`, `v-${what}`);
    assert.ok(w.ok, `a write through the majority's ${what} ${c.member(i).name} failed: ${fmt(w)}`);
  }
  for (const i of majority) {
    const r = await get(c, i, `${tag}/majority-via-follower`, false);
    assert.deepEqual(r, { ok: true, value: 'v-follower' }, `linearizable read on majority member ${c.member(i).name}`);
  }

  if (leaderCutOff) {
    // check-quorum: the cut-off leader steps down within a few election timeouts.
    let last = '';
    await pollUntil(
      `old leader ${c.member(oldLeader).name} stepping down`,
      async () => {
        const s = await c.status(oldLeader);
        last = s === undefined ? 'no answer' : `leader=${s.leader} term=${s.raftTerm}`;
        return s !== undefined && s.leader !== oldLeaderId;
      },
      10 * ELECTION_MS,
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}; its last status: ${last}`);
    });
  }

  await net.heal();
  const rev = await c.waitConverged(CONVERGE_MS);
  const finalLeader = await c.waitLeader(Array.from({ length: size }, (_, i) => i), LEADER_MS);
  t.diagnostic(`${tag}: healed; converged at revision ${rev}; leader ${c.member(finalLeader).name}`);
  if (leaderCutOff) {
    // Its log lacks what the majority committed in a newer term, so it cannot lead again.
    assert.notEqual(finalLeader, oldLeader, 'the cut-off old leader leads again after healing');
    // Nothing the cut-off side accepted becomes visible, on any member.
    for (const m of c.members) {
      for (const i of minority) {
        const r = await get(c, m.index, `${tag}/minority-${c.member(i).name}`, true);
        assert.deepEqual(r, { ok: true, value: null }, `the write sent to cut-off ${c.member(i).name} is visible on ${m.name}`);
      }
    }
  }
  // Everything the majority committed is on every member.
  for (const m of c.members) {
    for (const [key, want] of [
      [`${tag}/before`, 'v0'],
      [`${tag}/majority-via-leader`, 'v-leader'],
      [`${tag}/majority-via-follower`, 'v-follower'],
    ] as const) {
      const r = await get(c, m.index, key, true);
      assert.deepEqual(r, { ok: true, value: want }, `${key} on ${m.name} after healing`);
    }
  }
}

test(`3 members (${kind}): the isolated leader cannot commit and steps down, the other two elect and commit; healed, all converge`, { timeout: 180_000 }, async (t) => {
  await withCluster(t, 3, async (c, net) => {
    const leader = await c.waitLeader([0, 1, 2], LEADER_MS);
    await splitAndHeal(t, c, net, [leader], 'iso3');
  });
});

test(`5 members (${kind}): isolated leader; a 2|3 split with the leader on the 2 side, then on the 3 side`, { timeout: 300_000 }, async (t) => {
  await withCluster(t, 5, async (c, net) => {
    const all = [0, 1, 2, 3, 4];
    const leader = await c.waitLeader(all, LEADER_MS);
    await splitAndHeal(t, c, net, [leader], 'iso5');

    const l2 = await c.waitLeader(all, LEADER_MS);
    const other = all.find((i) => i !== l2) ?? 0;
    await splitAndHeal(t, c, net, [l2, other], 'split-leader-in-2');

    const l3 = await c.waitLeader(all, LEADER_MS);
    const two = all.filter((i) => i !== l3).slice(0, 2);
    await splitAndHeal(t, c, net, two, 'split-leader-in-3');
  });
});
