// node/stats.ts: the leader's late-heartbeat detector (etcd's timeout detector) and the duration
// helpers the WAL, backend and transport hooks use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeartbeatGaps, appliedIn, nodeStats, renewed, timed, SLOW_APPLY_MS } from '../../server/node/stats.js';
import type { Message } from '../../server/raft/index.js';

function msg(type: Message['type'], to: bigint): Message {
  return { type, to, from: 1n, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

test('a heartbeat more than two intervals after the previous one to that peer counts as a send failure', async () => {
  const gaps = new HeartbeatGaps();
  const before = nodeStats.heartbeatSendFailures;
  gaps.sent([msg('heartbeat', 2n), msg('app', 3n)], 10);
  gaps.sent([msg('heartbeat', 2n)], 10_000); // on time: gap below 2 x 10 s
  assert.equal(nodeStats.heartbeatSendFailures, before);
  await new Promise((r) => setTimeout(r, 30));
  gaps.sent([msg('heartbeat', 2n), msg('heartbeat', 3n)], 10); // 30 ms > 2 x 10 ms for peer 2; first for peer 3
  assert.equal(nodeStats.heartbeatSendFailures, before + 1);
  gaps.reset();
  await new Promise((r) => setTimeout(r, 30));
  gaps.sent([msg('heartbeat', 2n)], 10); // first after a reset: not late
  assert.equal(nodeStats.heartbeatSendFailures, before + 1);
  gaps.sent([msg('app', 2n), msg('vote', 2n)], 10); // other messages are not looked at
  assert.equal(nodeStats.heartbeatSendFailures, before + 1);
});

test('durations reach the installed observers; slow applies and renewals are counted', async () => {
  const seen: number[] = [];
  const slot = { observe: (s: number) => void seen.push(s) };
  assert.equal(await timed(slot, new Promise<string>((r) => setTimeout(() => r('v'), 20))), 'v');
  assert.equal(seen.length, 1);
  assert.ok((seen[0] ?? 0) >= 0.015 && (seen[0] ?? 0) < 5, `seconds ${seen[0]}`);
  await assert.rejects(timed(slot, Promise.reject(new Error('x'))), /x/);
  assert.equal(seen.length, 1, 'a failed operation is not observed');

  const commits: number[] = [];
  const prev = nodeStats.backendCommit.observe;
  nodeStats.backendCommit.observe = (s) => void commits.push(s);
  try {
    const slow = nodeStats.slowApplies;
    appliedIn(5, 2);
    appliedIn(SLOW_APPLY_MS + 1, 3);
    assert.deepEqual(commits, [0.002, 0.003], 'a backend commit is the commit alone');
    assert.equal(nodeStats.slowApplies, slow + 1);
  } finally {
    nodeStats.backendCommit.observe = prev;
  }
  const renewals = nodeStats.leasesRenewed;
  assert.equal(renewed(undefined), undefined);
  assert.equal(renewed(30), 30);
  assert.equal(nodeStats.leasesRenewed, renewals + 1);
});
