// The RawNode contract with its host: Ready/advance, restart from storage, what step() refuses or ignores,
// randomised election timeouts, status(), config validation and the invariant checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage, NONE, RawNode, type Entry, type Message, type RaftConfig } from '../../server/raft/index.js';
import { enc } from './scenarios/net.js';

const conf = { voters: [1n, 2n, 3n], learners: [] };

function config(over: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id: 1n, electionTicks: 10, heartbeatTicks: 1, applied: 0, maxSizePerMsg: 1 << 20, maxInflightMsgs: 256,
    maxUncommittedEntriesBytes: 0, checkQuorum: false, preVote: false, randomInt: () => 0, ...over,
  };
}

const ent = (index: number, term: number, data = ''): Entry => ({ index, term, type: 'normal', data: enc(data) });

function msg(type: Message['type'], over: Partial<Message> = {}): Message {
  return { type, from: 2n, to: 1n, term: 1, index: 0, logTerm: 0, commit: 0, entries: [], reject: false, rejectHint: 0, context: new Uint8Array(0), ...over };
}

test('restart: term, vote and commit come from storage; committed entries start after cfg.applied', () => {
  const storage = new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 3, vote: 2n, commit: 4 }, [
    ent(1, 1, 'a'), ent(2, 1, 'b'), ent(3, 2, 'c'), ent(4, 3, 'd'), ent(5, 3, 'e'),
  ]);
  const rn = new RawNode(config({ applied: 2 }), storage);
  const st = rn.status();
  assert.deepEqual(st.hardState, { term: 3, vote: 2n, commit: 4 });
  assert.deepEqual(st.softState, { lead: NONE, role: 'follower' });
  assert.equal(st.lastIndex, 5);
  assert.equal(st.applied, 2);
  assert.ok(rn.hasReady());
  const rd = rn.ready();
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [3, 4]);
  assert.equal(rd.hardState, undefined, 'unchanged hard state is not repeated');
  assert.equal(rd.entries.length, 0);
  assert.equal(rd.mustSync, false);
  rn.advance(rd);
  assert.equal(rn.hasReady(), false);
  assert.equal(rn.status().applied, 4);
});

test('one Ready at a time: ready() before advance() throws, hasReady() is false meanwhile', () => {
  const rn = new RawNode(config(), new MemoryStorage({ index: 0, term: 0, confState: { voters: [1n], learners: [] } }, { term: 0, vote: NONE, commit: 0 }));
  rn.campaign();
  const rd = rn.ready();
  assert.deepEqual(rd.softState, { lead: 1n, role: 'leader' });
  assert.deepEqual(rd.hardState, { term: 1, vote: 1n, commit: 1 });
  assert.equal(rd.mustSync, true);
  // A single voter's entry is committed in the same Ready that asks to persist it.
  assert.deepEqual(rd.entries.map((e) => e.index), [1]);
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [1]);
  assert.equal(rn.hasReady(), false);
  assert.throws(() => rn.ready(), /raft: invariant violated: ready\(\) called again/);
  rn.propose(enc('x')); // allowed meanwhile; waits for the next Ready
  assert.throws(() => rn.advance({ ...rd }), /not the outstanding one/);
  rn.advance(rd);
  const rd2 = rn.ready();
  assert.equal(rd2.softState, undefined);
  assert.deepEqual(rd2.entries.map((e) => e.index), [2]);
  assert.deepEqual(rd2.committedEntries.map((e) => e.index), [2], 'entries handed out once');
});

test('a host that does not persist a Ready\'s entries is caught at advance()', () => {
  const storage = new MemoryStorage({ index: 0, term: 0, confState: { voters: [1n], learners: [] } }, { term: 0, vote: NONE, commit: 0 });
  const rn = new RawNode(config(), storage);
  rn.campaign();
  const rd = rn.ready();
  assert.throws(() => rn.advance(rd), /raft: invariant violated: applied 1 <= committed 1 <= last 0/);
});

test('step: local message types throw; misaddressed, termless or unknown-peer answers are ignored', () => {
  const rn = new RawNode(config(), new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 0, vote: NONE, commit: 0 }));
  for (const t of ['hup', 'beat', 'checkQuorum', 'unreachable', 'snapStatus'] as const) {
    assert.throws(() => rn.step(msg(t)), /refuses the local message type/);
  }
  rn.step(msg('heartbeat', { to: 7n, term: 5 }));
  rn.step(msg('heartbeat', { term: 0 }));
  rn.step(msg('appResp', { from: 9n, term: 5 }));
  rn.step(msg('app', { term: 5, index: 0, entries: [ent(3, 5)] })); // entries do not follow index
  assert.equal(rn.status().hardState.term, 0);
  assert.equal(rn.hasReady(), false);
  // A well-formed heartbeat is taken: new term, leader known, an answer to send.
  rn.step(msg('heartbeat', { term: 5 }));
  const rd = rn.ready();
  assert.deepEqual(rd.softState, { lead: 2n, role: 'follower' });
  assert.deepEqual(rd.messages.map((m) => [m.type, m.to, m.term]), [['heartbeatResp', 2n, 5]]);
  rn.advance(rd);
});

test('the election timeout is randomised in [electionTicks, 2*electionTicks) through cfg.randomInt', () => {
  for (const [r, expected] of [[0, 10], [9, 19]] as const) {
    const asked: number[] = [];
    const rn = new RawNode(
      config({ randomInt: (n) => (asked.push(n), r) }),
      new MemoryStorage({ index: 0, term: 0, confState: { voters: [1n], learners: [] } }, { term: 0, vote: NONE, commit: 0 }),
    );
    let ticks = 0;
    while (rn.status().softState.role !== 'leader') {
      rn.tick();
      ticks++;
      assert.ok(ticks < 100);
    }
    assert.equal(ticks, expected);
    assert.ok(asked.every((n) => n === 10));
  }
  assert.throws(
    () => new RawNode(config({ randomInt: () => 10 }), new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 0, vote: NONE, commit: 0 })),
    /randomInt\(10\) returned 10/,
  );
});

test('status(): a leader reports every voter and learner; a follower none', () => {
  const storage = new MemoryStorage({ index: 0, term: 0, confState: { voters: [1n, 2n], learners: [3n] } }, { term: 0, vote: NONE, commit: 0 });
  const rn = new RawNode(config(), storage);
  assert.equal(rn.status().progress.size, 0);
  rn.campaign();
  rn.step(msg('voteResp', { term: 1 }));
  const st = rn.status();
  assert.equal(st.softState.role, 'leader');
  assert.deepEqual([...st.progress.keys()], [1n, 2n, 3n]);
  assert.equal(st.progress.get(3n)?.isLearner, true);
  assert.equal(st.progress.get(1n)?.match, 1);
  assert.deepEqual(st.confState, { voters: [1n, 2n], learners: [3n] });
});

test('config and storage are validated', () => {
  const storage = (): MemoryStorage => new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 0, vote: NONE, commit: 0 });
  assert.throws(() => new RawNode(config({ id: 0n }), storage()), /invalid config: id/);
  assert.throws(() => new RawNode(config({ electionTicks: 1, heartbeatTicks: 1 }), storage()), /electionTicks/);
  assert.throws(() => new RawNode(config({ maxInflightMsgs: 0 }), storage()), /maxInflightMsgs/);
  assert.throws(() => new RawNode(config({ applied: 3 }), storage()), /applied 3 is out of range/);
  const badCommit = new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 1, vote: NONE, commit: 5 }, [ent(1, 1)]);
  assert.throws(() => new RawNode(config(), badCommit), /hard state commit 5 is out of range/);
});

test('a follower persists before it answers: the Ready holds the appended entries and the answer together', () => {
  const rn = new RawNode(config(), new MemoryStorage({ index: 0, term: 0, confState: conf }, { term: 0, vote: NONE, commit: 0 }));
  rn.step(msg('app', { term: 2, index: 0, logTerm: 0, commit: 1, entries: [ent(1, 2, 'a'), ent(2, 2, 'b')] }));
  const rd = rn.ready();
  assert.deepEqual(rd.entries.map((e) => e.index), [1, 2]);
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [1]);
  assert.deepEqual(rd.hardState, { term: 2, vote: NONE, commit: 1 });
  assert.equal(rd.mustSync, true);
  assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [['appResp', 2]]);
});

test('a lone voter tells its learner the commit of an entry in the Ready after the one that persists it', () => {
  // The cap (finding R1) keeps a leader's messages from carrying a commit index past its persisted log,
  // so the app carrying a lone voter's new entry says commit = index - 1. The learner must not wait for a
  // heartbeat to hear the commit: a promoted learner serves as a learner until it applies its promotion.
  const storage = new MemoryStorage({ index: 0, term: 0, confState: { voters: [1n], learners: [2n] } }, { term: 0, vote: NONE, commit: 0 });
  const rn = new RawNode(config(), storage);
  const handle = (): readonly Message[] => {
    const rd = rn.ready();
    storage.append(rd.entries);
    if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
    rn.advance(rd);
    return rd.messages;
  };
  rn.campaign();
  handle();
  while (rn.hasReady()) handle();
  // The learner holds the leader's empty entry: replicate state.
  rn.step(msg('appResp', { from: 2n, term: 1, index: 1 }));
  while (rn.hasReady()) handle();
  rn.propose(enc('x'));
  const first = handle().filter((m) => m.type === 'app' && m.to === 2n);
  assert.deepEqual(first.map((m) => [m.entries.map((e) => e.index), m.commit]), [[[2], 1]], 'the entry goes out with the capped commit');
  assert.equal(rn.hasReady(), true, 'the commit index is announced in the next Ready');
  const second = handle().filter((m) => m.type === 'app' && m.to === 2n);
  assert.deepEqual(second.map((m) => [m.entries.length, m.commit]), [[0, 2]]);
  assert.equal(rn.hasReady(), false, 'announced once');
});
