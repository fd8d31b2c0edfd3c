// Auto compaction (--auto-compaction-mode periodic|revision, --auto-compaction-retention):
// periodic with a 2 s retention compacts to the revision of about 2 s ago (etcd 3.4 side by side
// for the log lines), revision mode keeps the last N revisions (Cairn's
// --auto-compaction-revision-interval shortens etcd's fixed 5-minute check), and on a 3-member
// cluster only the leader compacts: one compaction per step, not one per member.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient } from '../harness/client.js';
import { withCluster } from '../harness/cluster.js';
import { startCairn, startEtcd } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { ctl, hashKvOf, headerRev, ok, statusOf } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);

function logMsgs(p: ServerProc | undefined): Array<{ msg: string; fields: Record<string, unknown> }> {
  const out: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  for (const l of p?.stderrLines() ?? []) {
    if (!l.startsWith('{')) continue;
    try {
      const j = JSON.parse(l) as Record<string, unknown>;
      if (typeof j['msg'] === 'string') out.push({ msg: j['msg'], fields: j });
    } catch {
      // not a JSON line
    }
  }
  return out;
}

interface PeriodicRun {
  /** ms after the load started at which the compaction was first seen, and its revision. */
  seenAtMs: number;
  compactRev: number;
  /** Revision acknowledged at each ms offset. */
  acks: Array<[number, number]>;
  compactMsgs: string[];
  getRev1: string;
}

async function periodic(p: ServerProc): Promise<PeriodicRun> {
  const c = new EtcdClient(p.endpoint);
  try {
    await c.waitReady();
    const t0 = Date.now();
    const acks: Array<[number, number]> = [];
    let stop = false;
    const writer = (async (): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const r = ok(await c.put({ key: b(`p/${i % 50}`), value: b(String(i)) }), 'put');
        acks.push([Date.now() - t0, headerRev(r)]);
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    let seenAtMs = 0;
    let compactRev = 0;
    try {
      await pollUntil(
        'an auto compaction',
        async () => {
          // HashKV at the current revision (0): a Status-then-HashKV pair races a compaction landing
          // on that revision (etcd 3.4 refuses HashKV at the compact revision itself).
          const h = await hashKvOf(c, 0);
          // The first compaction may be to revision 1 (sampled when the server started, before the load).
          if (h.compactRevision <= 1) return false;
          seenAtMs = Date.now() - t0;
          compactRev = h.compactRevision;
          return true;
        },
        15_000,
        50,
      );
    } finally {
      stop = true;
      await writer;
    }
    const getRev1 = (await ctl(p.endpoint, ['get', 'p/1', '--rev=1'])).errors;
    const compactMsgs = [...new Set(logMsgs(p).map((m) => m.msg).filter((m) => /auto.*compaction|compaction.*auto/i.test(m)))].sort();
    return { seenAtMs, compactRev, acks, compactMsgs, getRev1 };
  } finally {
    c.close();
  }
}

/** The highest revision acknowledged at or before ms. */
function revAt(acks: Array<[number, number]>, ms: number): number {
  let r = 1;
  for (const [t, rev] of acks) if (t <= ms) r = Math.max(r, rev);
  return r;
}

test('periodic auto compaction with a 2 s retention compacts to the revision of about 2 s ago (as etcd 3.4)', async () => {
  const args = ['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '2s'];
  const etcd = await startEtcd({ extraArgs: args });
  let cairn: ServerProc | undefined;
  try {
    cairn = await startCairn({ extraArgs: args });
    // One after the other: the timing bounds need an unloaded machine more than speed.
    const e = await periodic(etcd);
    const c = await periodic(cairn);
    for (const [name, r] of [
      ['etcd', e],
      ['cairn', c],
    ] as const) {
      const why = `${name}: compacted to ${r.compactRev}, seen ${r.seenAtMs} ms after the load started; acks ${JSON.stringify(r.acks.filter((_, i) => i % 10 === 0))}`;
      // The revision compacted was current about 2 s before the compaction was seen (200 ms sampling, 50 ms polls, slack).
      assert.ok(r.compactRev <= revAt(r.acks, r.seenAtMs - 1_500), `${why}: too recent`);
      assert.ok(r.compactRev >= revAt(r.acks, r.seenAtMs - 3_500), `${why}: too old`);
      assert.ok(r.seenAtMs < 8_000, `${why}: too late`);
      assert.equal(r.getRev1, 'Error: etcdserver: mvcc: required revision has been compacted', name);
    }
    console.log(`periodic: etcd compacted to ${e.compactRev} at +${e.seenAtMs} ms, cairn to ${c.compactRev} at +${c.seenAtMs} ms`);
    console.log(`periodic log messages: etcd ${JSON.stringify(e.compactMsgs)}; cairn ${JSON.stringify(c.compactMsgs)}`);
    // etcd's compactor messages (zap, 3.4) are Cairn's too.
    for (const m of ['starting auto periodic compaction', 'completed auto periodic compaction']) {
      assert.ok(e.compactMsgs.includes(m), `etcd logs no "${m}": ${JSON.stringify(e.compactMsgs)}`);
      assert.ok(c.compactMsgs.includes(m), `cairn logs no "${m}": ${JSON.stringify(c.compactMsgs)}`);
    }
    const fields = (p: ServerProc | undefined): string[] =>
      Object.keys(logMsgs(p).find((m) => m.msg === 'completed auto periodic compaction')?.fields ?? {})
        .filter((k) => !['level', 'ts', 'caller', 'msg', 'logger'].includes(k))
        .sort();
    assert.deepEqual(fields(cairn), fields(etcd), 'fields of "completed auto periodic compaction"');
  } finally {
    await etcd.stop();
    await cairn?.stop();
  }
});

test('revision auto compaction keeps the last 10 revisions (check every 300 ms)', async () => {
  const cairn = await startCairn({
    extraArgs: ['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '10', '--auto-compaction-revision-interval', '300ms'],
  });
  const c = new EtcdClient(cairn.endpoint);
  try {
    await c.waitReady();
    // Below the retention: nothing to compact.
    for (let i = 0; i < 5; i++) ok(await c.put({ key: b(`r/${i}`), value: b('v') }), 'put');
    for (const round of [40, 25]) {
      for (let i = 0; i < round; i++) ok(await c.put({ key: b(`r/${i % 7}`), value: b(String(i)) }), 'put');
      const cur = (await statusOf(c)).revision;
      let last = 0;
      await pollUntil(
        `compaction to ${cur - 10}`,
        async () => {
          last = (await hashKvOf(c, cur)).compactRevision;
          return last === cur - 10;
        },
        5_000,
        50,
      ).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)} (compact revision ${last})`);
      });
      const old = await ctl(cairn.endpoint, ['get', 'r/0', `--rev=${cur - 11}`]);
      assert.equal(old.errors, 'Error: etcdserver: mvcc: required revision has been compacted');
      const kept = await ctl(cairn.endpoint, ['get', 'r/0', `--rev=${cur - 10}`]);
      assert.equal(kept.exit, 0, kept.errors);
    }
    const msgs = logMsgs(cairn).map((m) => m.msg);
    assert.ok(msgs.includes('auto revision compaction enabled'), JSON.stringify(msgs.filter((m) => /compact/.test(m))));
    const done = msgs.filter((m) => m === 'completed auto revision compaction').length;
    assert.ok(done >= 2 && done <= 8, `${done} auto compactions for two rounds of writes`);
  } finally {
    c.close();
    await cairn.stop();
  }
});

test('3-member cluster: only the leader runs auto compaction, one compaction per step', async () => {
  await withCluster(
    'cairn',
    { size: 3, extraArgs: ['--auto-compaction-mode=revision', '--auto-compaction-retention=10', '--auto-compaction-revision-interval=300ms'] },
    async (cl) => {
      const leader = await cl.leader();
      const lc = cl.client(leader.name);
      const targets: number[] = [];
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 30; i++) ok(await lc.put({ key: b(`c/${i % 5}`), value: b(String(i)) }), 'put');
        const cur = (await statusOf(lc)).revision;
        targets.push(cur - 10);
        await pollUntil(
          `all members compacted to ${cur - 10}`,
          async () => {
            // A follower may not have applied `cur` yet (HashKV answers "future revision").
            const hs = await cl.hashKV(cur).catch(() => undefined);
            return hs !== undefined && hs.size === 3 && [...hs.values()].every((h) => h.compactRevision === cur - 10);
          },
          10_000,
          100,
        );
      }
      await cl.waitConverged(15_000);
      const procs = cl.members.map((m) => [m.name, m.proc] as const);
      let leaderCompactions: number[] = [];
      const appliedBy = new Map<string, number[]>();
      for (const [name, p] of procs) {
        const msgs = logMsgs(p);
        const started = msgs.filter((m) => m.msg === 'starting auto revision compaction').map((m) => Number(m.fields['revision']));
        const completed = msgs.filter((m) => m.msg === 'completed auto revision compaction').map((m) => Number(m.fields['revision']));
        // Physical compaction runs on every member once per compaction applied.
        const applied = msgs.filter((m) => m.msg === 'compaction: removing old revisions').map((m) => Number(m.fields['revision']));
        if (name === leader.name) {
          // A check may also fire in the middle of a round of puts: every target is among the
          // leader's compactions, which only go up, each started one completed.
          assert.deepEqual(started, completed, `${name} (leader): started vs completed`);
          for (const t of targets) assert.ok(completed.includes(t), `${name} (leader): no compaction to ${t}: ${JSON.stringify(completed)}`);
          assert.ok(completed.every((r, i) => i === 0 || r > (completed[i - 1] ?? 0)), `${name} (leader): ${JSON.stringify(completed)}`);
          leaderCompactions = completed;
        } else {
          assert.deepEqual(started, [], `${name} (follower) ran auto compaction`);
          assert.deepEqual(completed, [], `${name} (follower) ran auto compaction`);
        }
        appliedBy.set(name, applied);
      }
      // Every member applied exactly the leader's compactions: one per step, not one per member.
      for (const [name, applied] of appliedBy) assert.deepEqual(applied, leaderCompactions, `${name}: compactions applied`);
    },
  );
});
