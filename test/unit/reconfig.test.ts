// etcd's strict reconfiguration check as server/membership/members.ts implements it (mayAdd,
// mayRemove, mayPromote): the cases of etcd's IsReadyToAddVotingMember / IsReadyToRemoveVotingMember /
// IsReadyToPromoteMember and isConnectedSince (HealthInterval 5 s), member by member. The cluster
// tests (test/membership/) check the same answers against etcd 3.4 and 3.6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEALTH_INTERVAL_MS, mayAdd, mayPromote, mayRemove, type Member, type ReconfigView } from '../../server/membership/index.js';

const NOW = 1_000_000;
const OLD = NOW - HEALTH_INTERVAL_MS - 1;
const YOUNG = NOW - HEALTH_INTERVAL_MS + 1_000;

function m(id: number, opts: { started?: boolean; learner?: boolean } = {}): Member {
  return { id: BigInt(id), name: opts.started === false ? '' : `m${id}`, peerURLs: [`http://127.0.0.1:${2380 + id}`], clientURLs: [], isLearner: opts.learner === true };
}

/** Member 1 is self; `since` gives each peer's connection time (undefined = down). */
function view(members: Member[], since: Record<number, number | undefined>): ReconfigView {
  return { members, self: 1n, activeSince: (id) => since[Number(id)], nowMs: NOW };
}

test('mayAdd: a second voter beside one started member (growing a one-member cluster)', () => {
  assert.equal(mayAdd(view([m(1)], {}), false), 'ok');
  assert.equal(mayAdd(view([m(1)], {}), true), 'ok');
});

test('mayAdd: a third voter while the second has not started: not enough started; a learner: unhealthy', () => {
  const v = view([m(1), m(2, { started: false })], { 2: undefined });
  assert.equal(mayAdd(v, false), 'notEnoughStarted');
  assert.equal(mayAdd(v, true), 'unhealthy');
});

test('mayAdd: every voter connected for 5 s, else unhealthy (voter or learner); learners do not count', () => {
  assert.equal(mayAdd(view([m(1), m(2), m(3)], { 2: OLD, 3: OLD }), false), 'ok');
  assert.equal(mayAdd(view([m(1), m(2), m(3)], { 2: OLD, 3: YOUNG }), false), 'unhealthy');
  assert.equal(mayAdd(view([m(1), m(2), m(3)], { 2: OLD, 3: undefined }), true), 'unhealthy');
  assert.equal(mayAdd(view([m(1), m(2), m(3, { learner: true })], { 2: OLD, 3: undefined }), false), 'ok');
  // A stopped member that once started still counts as started (etcd's IsStarted is its name).
  assert.equal(mayAdd(view([m(1), m(2), m(3), m(4)], { 2: OLD, 3: OLD, 4: undefined }), false), 'unhealthy');
});

test('mayRemove: learners always; the only started voter never; a down peer yes; a connected voter only with a connected quorum left', () => {
  assert.equal(mayRemove(view([m(1), m(2, { learner: true })], { 2: YOUNG }), 2n), 'ok');
  assert.equal(mayRemove(view([m(1), m(2, { started: false })], {}), 1n), 'notEnoughStarted');
  assert.equal(mayRemove(view([m(1), m(2, { started: false })], {}), 2n), 'ok');
  assert.equal(mayRemove(view([m(1), m(2), m(3)], { 2: OLD, 3: undefined }), 3n), 'ok');
  assert.equal(mayRemove(view([m(1), m(2), m(3)], { 2: OLD, 3: undefined }), 2n), 'unhealthy');
  assert.equal(mayRemove(view([m(1), m(2), m(3)], { 2: YOUNG, 3: YOUNG }), 3n), 'unhealthy');
  // etcd subtracts the removed member from the connected count even when it is not counted yet.
  assert.equal(mayRemove(view([m(1), m(2), m(3)], { 2: OLD, 3: YOUNG }), 3n), 'unhealthy');
  assert.equal(mayRemove(view([m(1), m(2), m(3)], { 2: OLD, 3: OLD }), 3n), 'ok');
  assert.equal(mayRemove(view([m(1), m(2), m(3)], { 2: OLD, 3: OLD }), 1n), 'ok');
});

test('mayPromote: the learner counts as started; the started voters plus it must be a quorum', () => {
  assert.equal(mayPromote(view([m(1), m(2, { learner: true })], {})), 'ok');
  assert.equal(mayPromote(view([m(1), m(2, { started: false }), m(3, { started: false }), m(4, { learner: true })], {})), 'notEnoughStarted');
  assert.equal(mayPromote(view([m(1), m(2), m(3, { started: false }), m(4, { learner: true })], {})), 'ok');
});
