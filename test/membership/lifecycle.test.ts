// A member's life as a supervisor (the operator's pod entrypoint) sees it, on Cairn and on etcd 3.4
// and 3.6:
//  - removed while running, and started again on the removed member's data dir: Cairn exits with
//    EXIT_MEMBER_REMOVED (78) after one log line saying so, both times; etcd exits 0 both times
//    (indistinguishable from a clean stop; a deliberate difference, documented in --help);
//  - SIGTERM: the process ends by SIGTERM after its shutdown, as etcd (which re-raises the signal);
//    a leader hands leadership to a caught-up voter first, so the others have a new leader well
//    within an election timeout, and no acknowledged write is lost;
//  - in its first 5 s a member refuses to remove a voter it is connected to ("etcdserver:
//    unhealthy cluster", etcd's strict reconfiguration check), then accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { withCluster } from '../harness/cluster.js';
import type { Cluster } from '../harness/cluster.js';
import { CAIRN_MAIN } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { EXIT_MEMBER_REMOVED } from '../../server/config/index.js';
import { TARGETS, UNHEALTHY, clusterOpts, memberRemove, outcome, retryWhile, writeAndReadEverywhere, type Target } from './lib.js';

const TIMEOUT_MS = 180_000;
const REMOVED_LINE = 'the member has been permanently removed from the cluster; exiting: never restart it on this data dir (remove the data dir and add the member again)';

interface Own {
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  lines(): string[];
  kill(sig: NodeJS.Signals): void;
}

/** Runs a server process of our own (its exit status is what the test looks at) with the given arguments. */
function own(t: Target, bin: string | undefined, args: readonly string[]): Own {
  const child = t.kind === 'cairn' ? spawn(process.execPath, [CAIRN_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(bin ?? 'etcd', [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  process.on('exit', () => child.kill('SIGKILL'));
  return { exit, lines: () => out.split('\n'), kill: (sig) => child.kill(sig) };
}

/** Waits for an own process to exit, at most ms. */
async function exitOf(p: Own, ms: number, what: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const r = await Promise.race([p.exit, new Promise<undefined>((res) => setTimeout(() => res(undefined), ms).unref())]);
  if (r === undefined) {
    p.kill('SIGKILL');
    assert.fail(`${what}: still running after ${ms} ms; last lines:\n${p.lines().slice(-15).join('\n')}`);
  }
  return r;
}

/** The JSON log lines whose msg is `msg`. */
function logLines(p: Own, msg: string): Record<string, unknown>[] {
  return p
    .lines()
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o['msg'] === msg);
}

/** Replaces the harness's process of `name` by one of our own on the same config file (same ports, data dir). */
async function takeOver(c: Cluster, t: Target, bin: string | undefined, name: string): Promise<Own> {
  await c.stop(name);
  const p = own(t, bin, ['--config-file', `${c.member(name).dataDir}.conf.yaml`]);
  await pollUntil(`${name} answering again`, async () => (await c.status(name)) !== undefined, 30_000, 100);
  return p;
}

for (const t of TARGETS) {
  test(`${t.label}: exit status of a member removed while running, and of a start on its data dir`, { timeout: TIMEOUT_MS }, async (tc) => {
    const opts = clusterOpts(tc, t, { size: 3 });
    if (opts === undefined) return;
    const want = t.kind === 'cairn' ? EXIT_MEMBER_REMOVED : 0;
    await withCluster(t.kind, opts, async (c) => {
      const id = await c.idOf('m3');
      const p = await takeOver(c, t, opts.etcdBin, 'm3');
      assert.equal(outcome(await retryWhile([UNHEALTHY], () => memberRemove(c, 'm1', id))), 'ok', 'MemberRemove m3');
      const removed = await exitOf(p, 20_000, 'the removed member');
      // etcd 3.6.8 races its own shutdown here: its client listener's goroutine sometimes reports
      // "server is stopping" and the process exits 1 instead of 0 (seen 3 times in 4 on a loaded
      // machine). That is the reference's race, not a behaviour to copy: accepted for etcd only, and
      // only with that line.
      const etcdRace = t.kind !== 'cairn' && removed.code === 1 && p.lines().some((l) => l.includes('server is stopping'));
      if (!etcdRace) assert.deepEqual(removed, { code: want, signal: null }, `exit status of the removed member; last lines:\n${p.lines().slice(-8).join('\n')}`);
      if (t.kind === 'cairn') assert.equal(logLines(p, REMOVED_LINE).length, 1, 'one log line saying the member was removed');

      const again = own(t, opts.etcdBin, ['--config-file', `${c.member('m3').dataDir}.conf.yaml`]);
      const restarted = await exitOf(again, 20_000, 'a start on the removed member\'s data dir');
      // The same etcd 3.6.8 race on the start that finds itself removed (seen once in a CI run).
      const etcdRaceAgain = t.kind !== 'cairn' && restarted.code === 1 && again.lines().some((l) => l.includes('server is stopping'));
      if (!etcdRaceAgain) assert.deepEqual(restarted, { code: want, signal: null }, `exit status of a start on the removed data dir; last lines:\n${again.lines().slice(-8).join('\n')}`);
      if (t.kind === 'cairn') {
        const line = logLines(again, REMOVED_LINE);
        assert.equal(line.length, 1, 'one log line saying the data dir is a removed member\'s');
        assert.equal(line[0]?.['exit-code'], EXIT_MEMBER_REMOVED);
      }
    });
  });

  test(`${t.label}: SIGTERM ends the process by SIGTERM; a leader hands over first (new leader within an election timeout, no acknowledged write lost)`, { timeout: TIMEOUT_MS }, async (tc) => {
    const ELECTION_MS = 3_000;
    const opts = clusterOpts(tc, t, { size: 3, electionMs: ELECTION_MS, heartbeatMs: 100 });
    if (opts === undefined) return;
    await withCluster(t.kind, opts, async (c) => {
      await writeAndReadEverywhere(c, 'm1', 'warm', 'up');
      const victimId = await c.idOf('m1');
      const victim = await takeOver(c, t, opts.etcdBin, 'm1');
      const followers = ['m2', 'm3'];
      // Make our own process (m1) the leader: MoveLeader through whoever leads now.
      await pollUntil(
        'm1 leading',
        async () => {
          const sts = await Promise.all(['m1', ...followers].map((n) => c.status(n, 1_000)));
          if (sts.every((s) => s?.leader === victimId)) return true;
          const leading = sts.find((s) => s !== undefined && s.leader === s.id);
          if (leading !== undefined) await c.client(leading.name).unary('Maintenance', 'MoveLeader', { targetID: victimId }, { timeoutMs: 5_000 });
          return false;
        },
        30_000,
        200,
      );
      // Writes through a follower while the leader stops: every acknowledged one must survive.
      const acked: string[] = [];
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing; i++) {
          const k = `w${String(i).padStart(5, '0')}`;
          const r = await c.client(followers[0] ?? '').put({ key: Buffer.from(k), value: Buffer.from('v') }, { timeoutMs: 3_000 });
          if (r.ok) acked.push(k);
        }
      })();
      await pollUntil('a few acknowledged writes', () => Promise.resolve(acked.length >= 20), 10_000, 10);
      const t0 = Date.now();
      victim.kill('SIGTERM');
      let newLeaderMs = -1;
      await pollUntil(
        'a new leader among the others',
        async () => {
          const sts = await Promise.all(followers.map((f) => c.status(f, 500)));
          const l = sts[0]?.leader;
          const ok = sts.every((s) => s !== undefined && s.leader === l) && l !== undefined && l !== '0' && l !== victimId;
          if (ok && newLeaderMs < 0) newLeaderMs = Date.now() - t0;
          return ok;
        },
        3 * ELECTION_MS,
        20,
      );
      const st = await exitOf(victim, 20_000, 'the SIGTERMed leader');
      assert.deepEqual(st, { code: null, signal: 'SIGTERM' }, 'a graceful stop ends by SIGTERM, as etcd');
      await pollUntil('more acknowledged writes after the handover', () => Promise.resolve(acked.length >= 40), 15_000, 10).catch(() => undefined);
      writing = false;
      await writer;
      tc.diagnostic(`new leader ${newLeaderMs} ms after SIGTERM; ${acked.length} acknowledged writes`);
      assert.ok(newLeaderMs < ELECTION_MS / 2, `new leader ${newLeaderMs} ms after SIGTERM to the leader (election timeout ${ELECTION_MS} ms)`);
      // Every acknowledged write is there, read linearizably through the new leader's cluster.
      const r = await c.client(followers[1] ?? '').range({ key: Buffer.from('w'), range_end: Buffer.from('x'), keys_only: true });
      assert.ok(r.ok, outcome(r));
      const have = new Set(((r.value['kvs'] as { key: Buffer }[] | undefined) ?? []).map((kv) => Buffer.from(kv.key).toString()));
      const lost = acked.filter((k) => !have.has(k));
      assert.deepEqual(lost, [], `acknowledged writes lost (of ${acked.length})`);
    });
  });

  test(`${t.label}: a member refuses to remove a connected voter in its first 5 s ("unhealthy cluster"), then accepts`, { timeout: TIMEOUT_MS }, async (tc) => {
    const opts = clusterOpts(tc, t, { size: 3 });
    if (opts === undefined) return;
    await withCluster(t.kind, opts, async (c) => {
      const id = await c.idOf('m3');
      await c.stop('m1');
      const t0 = Date.now();
      await c.start('m1');
      const early = await memberRemove(c, 'm1', id);
      const earlyMs = Date.now() - t0;
      assert.ok(earlyMs < 4_000, `m1 took ${earlyMs} ms to start and answer: too slow to look inside its first 5 s`);
      assert.equal(outcome(early), UNHEALTHY, `MemberRemove ${earlyMs} ms after m1 started`);
      const r = await retryWhile([UNHEALTHY], () => memberRemove(c, 'm1', id), 20_000);
      const okMs = Date.now() - t0;
      assert.equal(outcome(r), 'ok', 'MemberRemove once the peer connections are 5 s old');
      assert.ok(okMs >= 5_000, `accepted ${okMs} ms after m1 started: before its connections could be 5 s old`);
    });
  });
}

