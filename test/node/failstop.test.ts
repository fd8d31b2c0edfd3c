// Fail-stop on the impossible (issue 17 item 3), against real server processes: a raft invariant
// violation injected through the test-only failpoints raft.ready (the run loop) and raft.step (a peer's
// message) stops the member with exit status 70 and the cause in a structured JSON log line, not as a
// storage fault and not as a warning it runs on from; every write it acknowledged survives a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startCairn, tempDir, type ServerProc } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';
import { EXIT_BUG } from '../../server/config/exit.js';
import { failpoint, InjectedInvariantViolation } from '../../server/base/failpoints.js';

const WRITERS = 8;

interface Acked {
  readonly key: string;
  readonly rev: number;
}

/** Puts from WRITERS concurrent writers until each sees a refusal (or the member went away). */
async function writeUntilRefused(client: EtcdClient, prefix: string, acked: Acked[]): Promise<number> {
  let refused = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; ; i++) {
        const key = `${prefix}/${w}/${i}`;
        const r = await client.put({ key: Buffer.from(key), value: Buffer.from(`v${i}`) }, { timeoutMs: 5000 });
        if (!r.ok) {
          refused++;
          return;
        }
        acked.push({ key, rev: Number((r.value['header'] as { revision: string }).revision) });
      }
    }),
  );
  return refused;
}

/** The JSON log line that says why the member stopped. */
function stopLine(proc: ServerProc): Record<string, unknown> {
  const line = proc.stderrLines().find((l) => l.includes('internal error (a bug); stopping'));
  assert.ok(line !== undefined, `a fail-stop line in the log:\n${proc.stderrLines().slice(-20).join('\n')}`);
  return JSON.parse(line) as Record<string, unknown>;
}

async function assertAllThere(client: EtcdClient, acked: readonly Acked[], serializable: boolean): Promise<void> {
  for (const a of acked) {
    const r = await client.range({ key: Buffer.from(a.key), serializable });
    assert.ok(r.ok, `range ${a.key}: ${r.ok ? '' : r.details}`);
    const kv = (r.value['kvs'] as { mod_revision: string }[])[0];
    assert.ok(kv !== undefined, `acknowledged ${a.key} survived`);
    assert.equal(Number(kv.mod_revision), a.rev);
  }
}

test('the bug-injecting failpoints are refused outside test runs, and throw what raft throws', () => {
  assert.throws(() => failpoint('raft.ready', { CAIRN_FAILPOINTS: 'raft.ready:after=1' }), /raft\.ready injects a bug and is refused outside test runs/);
  assert.throws(() => failpoint('raft.step', { CAIRN_FAILPOINTS: 'raft.step:after=0', CAIRN_VERIFY: '0' }), /refused outside test runs/);
  const hook = failpoint('raft.step', { CAIRN_FAILPOINTS: 'raft.step:after=1', CAIRN_VERIFY: '1' });
  assert.ok(hook !== undefined);
  hook();
  assert.throws(hook, InjectedInvariantViolation);
  assert.throws(hook, /^InjectedInvariantViolation: raft: invariant violated: injected by failpoint raft\.step \(pass 3, after=1\)$/);
});

test('a server started with a bug-injecting failpoint outside a test run refuses to start', { timeout: 60_000 }, async () => {
  await assert.rejects(startCairn({ env: { CAIRN_FAILPOINTS: 'raft.ready:after=5', CAIRN_VERIFY: '0' }, readyTimeoutMs: 20_000 }), /refused outside test runs/);
});

test('an invariant violation in the run loop stops the member (exit 70, cause logged); acknowledged writes survive', { timeout: 120_000 }, async () => {
  const dataDir = tempDir('cairn-failstop-ready');
  const proc = await startCairn({ dataDir, env: { CAIRN_FAILPOINTS: 'raft.ready:after=150' } });
  const client = new EtcdClient(proc.endpoint);
  const acked: Acked[] = [];
  let refused: number;
  try {
    refused = await writeUntilRefused(client, 'fs', acked);
    await proc.exited(20_000);
  } finally {
    client.close();
    await proc.kill9().catch(() => undefined);
  }
  assert.ok(acked.length > 0, 'writes were acknowledged before the violation');
  assert.equal(refused, WRITERS, 'every writer saw its next write fail');
  assert.equal(proc.exitCode(), EXIT_BUG, 'exit status 70: a bug, not a storage fault (1)');
  const line = stopLine(proc);
  assert.equal(line['level'], 'error');
  assert.equal(line['exit-code'], EXIT_BUG);
  const err = line['error'] as { name: string; message: string; cause: string };
  assert.equal(err.name, 'AssertionFailure');
  assert.match(err.cause, /raft: invariant violated: injected by failpoint raft\.ready/);
  assert.ok(!proc.stderrLines().some((l) => l.includes('fatal storage error')), 'never relabelled a storage fault');

  const again = await startCairn({ dataDir, name: proc.name });
  const c = new EtcdClient(again.endpoint);
  try {
    await assertAllThere(c, acked, false);
    const put = await c.put({ key: Buffer.from('fs/after'), value: Buffer.from('x') });
    assert.ok(put.ok, 'the restarted member takes writes');
  } finally {
    c.close();
    await again.stop();
  }
});

test("an invariant violation stepping a peer's message stops that member (exit 70); the cluster goes on; it rejoins with every acknowledged write", { timeout: 180_000 }, async () => {
  const names = ['fs1', 'fs2', 'fs3'];
  const peerPorts = [await freePort(), await freePort(), await freePort()];
  const peerUrl = (i: number): string => `http://127.0.0.1:${String(peerPorts[i])}`;
  const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const dirs = names.map((n) => tempDir(`cairn-failstop-${n}-`));
  const flags = (i: number, state: 'new' | 'existing'): string[] => [
    '--listen-peer-urls', peerUrl(i),
    '--initial-advertise-peer-urls', peerUrl(i),
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', state,
    '--initial-cluster-token', `failstop-${String(process.pid)}`,
  ];
  // fs3 steps its peers' messages normally for a while, then its raft "finds" a violated invariant.
  const start = (i: number, env: Record<string, string> = {}, state: 'new' | 'existing' = 'new'): Promise<ServerProc> =>
    startCairn({ name: names[i] as string, dataDir: dirs[i] as string, extraArgs: flags(i, state), env, readyTimeoutMs: 30_000 });
  const procs = await Promise.all([start(0), start(1), start(2, { CAIRN_FAILPOINTS: 'raft.step:after=400' })]);
  const [p1, p2, p3] = procs;
  const c1 = new EtcdClient(p1.endpoint);
  const acked: Acked[] = [];
  let again: ServerProc | undefined;
  try {
    // Writes through fs1 go on until fs3 has stopped and after: the two others are a quorum. (A write
    // in flight when fs3 stops may time out if fs3 was the leader, as in etcd; only acks count.)
    let stop = false;
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `fsp/${w}/${i}`;
        const r = await c1.put({ key: Buffer.from(key), value: Buffer.from(`v${i}`) }, { timeoutMs: 10_000 });
        if (r.ok) acked.push({ key, rev: Number((r.value['header'] as { revision: string }).revision) });
      }
    });
    try {
      await p3.exited(60_000);
      const afterStop = acked.length;
      await pollUntil('writes go on after fs3 stopped', () => Promise.resolve(acked.length >= afterStop + 50), 30_000);
    } finally {
      stop = true;
      await Promise.all(writers);
    }

    assert.equal(p3.exitCode(), EXIT_BUG, 'fs3 exits 70');
    const line = stopLine(p3);
    assert.equal(line['exit-code'], EXIT_BUG);
    assert.match((line['error'] as { cause: string }).cause, /raft: invariant violated: injected by failpoint raft\.step/);
    assert.ok(!p3.stderrLines().some((l) => l.includes('dropped a peer message raft refused')), 'the violation is not dropped as a refusal');
    assert.ok(p1.exitCode() === undefined && p2.exitCode() === undefined, 'the other members run on');

    again = await start(2, {}, 'existing');
    const c3 = new EtcdClient(again.endpoint);
    try {
      // Linearizable reads through the restarted member: it has caught up with everything committed.
      await assertAllThere(c3, acked, false);
    } finally {
      c3.close();
    }
  } finally {
    c1.close();
    await Promise.all([p1.stop(), p2.stop(), p3.kill9().catch(() => undefined), again?.stop()]);
  }
});
