// The npm `etcd3` client's Lock and Election recipes against the server under test, with several
// contender processes (test/clients/contender.ts) at once: mutual exclusion of the lock (a
// read-check-write counter that would lose updates without it), lock and leadership takeover
// when a holder is killed -9 (after its lease expires, not before, and soon after), resign
// handing leadership over at once, one leader at a time as an observer sees it; and periodic
// watch progress notifications (etcd3 sets progress_notify on every watch; etcdctl 3.4 cannot).
//
// CAIRN_DIFF_TARGET=etcd runs it against the reference etcd (validates the test itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { ElectionObserver, Watcher } from 'etcd3';
import { REPO_ROOT, startTarget, targetKind, tempDir } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { pollUntil, quietWindow } from '../harness/poll.js';

const TARGET = targetKind();
const CONTENDER = join(REPO_ROOT, 'dist', 'test', 'clients', 'contender.js');
const SERVER_ARGS = ['--experimental-watch-progress-notify-interval=200ms'];
/** Lease TTL of the holders that get killed (s). */
const KILL_TTL = 3;
/** Allowed lateness of a takeover after the TTL (etcd checks expiry every 500 ms; contenders retry every ≤40 ms). */
const TAKEOVER_TOLERANCE_MS = 3_000;
/** How long a waiting contender must stay quiet to count as "still waiting". */
const SILENCE_MS = 500;

const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
});

interface Line {
  at: number;
  text: string;
}

/** A contender child process; its stdout lines are kept with their arrival time. */
class Contender {
  readonly lines: Line[] = [];
  err = '';
  exit: { code: number | null; signal: string | null } | undefined;
  private partial = '';
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly label: string,
    args: readonly string[],
  ) {
    const child = spawn(process.execPath, [CONTENDER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    child.stdin?.on('error', () => undefined);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.partial += d;
      let nl = this.partial.indexOf('\n');
      while (nl >= 0) {
        this.lines.push({ at: Date.now(), text: this.partial.slice(0, nl) });
        this.partial = this.partial.slice(nl + 1);
        nl = this.partial.indexOf('\n');
      }
      this.poke();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.err += d));
    child.on('close', (code, signal) => {
      liveChildren.delete(child);
      this.exit = { code, signal };
      this.poke();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private poke(): void {
    for (const l of [...this.listeners]) l();
  }

  line(text: string): Line | undefined {
    return this.lines.find((l) => l.text === text);
  }

  /** Resolves with the first line equal to `text`; rejects on exit or after timeoutMs. */
  waitLine(text: string, timeoutMs = 10_000): Promise<Line> {
    return new Promise((res, rej) => {
      const check = (): void => {
        const l = this.line(text);
        if (l !== undefined) {
          done();
          res(l);
        } else if (this.exit !== undefined) {
          done();
          rej(new Error(`${this.label}: exited ${JSON.stringify(this.exit)} without printing ${JSON.stringify(text)}; stderr ${this.err}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        rej(new Error(`${this.label}: no ${JSON.stringify(text)} within ${timeoutMs} ms; lines ${JSON.stringify(this.lines.map((l) => l.text))}; stderr ${this.err}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  waitExit(timeoutMs = 10_000): Promise<{ code: number | null; signal: string | null }> {
    return new Promise((res, rej) => {
      const check = (): void => {
        if (this.exit === undefined) return;
        done();
        res(this.exit);
      };
      const timer = setTimeout(() => {
        done();
        rej(new Error(`${this.label}: still running after ${timeoutMs} ms; lines ${JSON.stringify(this.lines.map((l) => l.text))}; stderr ${this.err}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  send(cmd: string): void {
    this.child.stdin?.write(`${cmd}\n`);
  }

  kill9(): void {
    if (this.exit === undefined) this.child.kill('SIGKILL');
  }
}



function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

/** Keys under a prefix, oldest first, with their lease ids. */
async function keysUnder(c: EtcdClient, prefix: string): Promise<Array<{ key: string; value: string; lease: string }>> {
  const r = await c.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), sort_target: 'CREATE', sort_order: 'ASCEND' });
  if (!r.ok) throw new Error(`range ${prefix}: ${r.details}`);
  const kvs = r.value['kvs'] as Array<{ key: Buffer; value: Buffer; lease: string }>;
  return kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), lease: kv.lease }));
}

/** TimeToLive of a lease (decimal id): remaining s (-1 when gone) and granted TTL. */
async function timeToLive(c: EtcdClient, id: string): Promise<{ ttl: number; granted: number }> {
  const r = await c.unary('Lease', 'LeaseTimeToLive', { ID: id });
  if (!r.ok) throw new Error(`LeaseTimeToLive ${id}: ${r.details}`);
  return { ttl: Number(r.value['TTL']), granted: Number(r.value['grantedTTL']) };
}

async function leaseCount(c: EtcdClient): Promise<number> {
  const r = await c.unary('Lease', 'LeaseLeases', {});
  if (!r.ok) throw new Error(`LeaseLeases: ${r.details}`);
  return (r.value['leases'] as unknown[]).length;
}

/**
 * Cancels the client's watcher or observer (bounded wait), then closes it: a watcher left open
 * keeps reconnecting after close() and the test process never exits.
 */
async function closeClient(client: Etcd3, w: { cancel(): Promise<void> } | undefined): Promise<void> {
  if (w !== undefined) await Promise.race([w.cancel().catch(() => undefined), quietWindow(3_000)]);
  client.close();
}

/** Runs body against a fresh target server; kills leftover contenders; adds the server's stderr tail to failures. */
async function withServer(body: (srv: ServerProc, c: EtcdClient, spawned: Contender[]) => Promise<void>): Promise<void> {
  const srv = await startTarget(TARGET, { extraArgs: SERVER_ARGS });
  const c = new EtcdClient(srv.endpoint);
  const spawned: Contender[] = [];
  try {
    await body(srv, c, spawned);
  } catch (e) {
    const tails = spawned.filter((p) => p.err !== '').map((p) => `${p.label} stderr: ${p.err}`);
    if (e instanceof Error) e.message += `\n${[...tails, `${TARGET} stderr tail:`, ...srv.stderrLines().slice(-10)].join('\n')}`;
    throw e;
  } finally {
    for (const p of spawned) p.kill9();
    c.close();
    await srv.stop();
  }
}

test(`etcd3 Lock: 4 processes increment a counter under the lock without losing an update (${TARGET})`, { timeout: 90_000 }, () =>
  withServer(async (srv, c, spawned) => {
    const PROCS = 4;
    const ITER = 6;
    const log = join(tempDir('cairn-lock-log-'), 'holders.log');
    writeFileSync(log, '');
    const procs = Array.from({ length: PROCS }, (_, i) => {
      const p = new Contender(`counter#${i}`, ['lock-count', srv.clientUrl, 'counter-lock', 'counter', String(ITER), log, '10']);
      spawned.push(p);
      return p;
    });
    for (const p of procs) {
      await p.waitLine(`done ${p.pid}`, 60_000);
      assert.deepEqual(await p.waitExit(), { code: 0, signal: null }, `${p.label} stderr: ${p.err}`);
    }
    const r = await c.range({ key: Buffer.from('counter') });
    assert.ok(r.ok);
    const kv = (r.value['kvs'] as Array<{ value: Buffer; version: string }>)[0];
    assert.equal(kv?.value.toString(), String(PROCS * ITER), 'final counter (a lost update means two holders at once)');
    assert.equal(kv.version, String(PROCS * ITER), 'counter version: one put per increment');
    // The holders' log: enter/exit pairs of one pid, never interleaved.
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 2 * PROCS * ITER, 'log lines');
    const perPid = new Map<string, number>();
    for (let i = 0; i < lines.length; i += 2) {
      const enter = /^enter (\d+)$/.exec(lines[i] ?? '');
      assert.ok(enter?.[1] !== undefined, `log line ${i}: ${lines[i]} (expected an enter)`);
      assert.equal(lines[i + 1], `exit ${enter[1]}`, `log line ${i + 1} after ${lines[i]}: two holders at once`);
      perPid.set(enter[1], (perPid.get(enter[1]) ?? 0) + 1);
    }
    assert.deepEqual([...perPid.values()], Array<number>(PROCS).fill(ITER), `critical sections per process: ${JSON.stringify([...perPid])}`);
    // Every lease (held ones on release, failed tries at once) was revoked: none left, nor the lock key.
    assert.equal(await leaseCount(c), 0, 'leases left after every lock was released');
    assert.deepEqual(await keysUnder(c, 'counter-lock'), [], 'lock key left after release');
  }),
);

test(`etcd3 Lock: kill -9 the holder; a waiter gets the lock once its ${KILL_TTL} s lease expires; release hands over at once (${TARGET})`, { timeout: 90_000 }, () =>
  withServer(async (srv, c, spawned) => {
    const start = (label: string): Contender => {
      const p = new Contender(label, ['lock-hold', srv.clientUrl, 'hold-lock', String(KILL_TTL)]);
      spawned.push(p);
      return p;
    };
    const holder = start('holder');
    await holder.waitLine(`acquired ${holder.pid}`);
    const waiters = [start('waiter#1'), start('waiter#2')];
    await Promise.all(waiters.map((w) => w.waitLine(`waiting ${w.pid}`)));
    await quietWindow(SILENCE_MS);
    for (const w of waiters) assert.equal(w.line(`acquired ${w.pid}`), undefined, `${w.label} acquired while the holder held the lock`);

    const [lockKv] = await keysUnder(c, 'hold-lock');
    assert.ok(lockKv !== undefined && lockKv.lease !== '0', `lock key: ${JSON.stringify(lockKv)}`);
    const before = await timeToLive(c, lockKv.lease);
    const queriedAt = Date.now();
    assert.equal(before.granted, KILL_TTL, 'granted TTL of the lock lease');
    assert.ok(before.ttl >= 1, `lock lease remaining ${before.ttl}`);
    holder.kill9();
    const killedAt = Date.now();
    const winner = await Promise.any(waiters.map(async (w) => (await w.waitLine(`acquired ${w.pid}`, 15_000), w)));
    const takeoverAt = winner.line(`acquired ${winner.pid}`)?.at ?? Date.now();
    assert.ok(
      takeoverAt - queriedAt >= before.ttl * 1000 - 100,
      `${winner.label} got the lock ${takeoverAt - queriedAt} ms after TimeToLive said ${before.ttl} s remained (before the lease expired)`,
    );
    assert.ok(
      takeoverAt - killedAt <= KILL_TTL * 1000 + TAKEOVER_TOLERANCE_MS,
      `${winner.label} got the lock ${takeoverAt - killedAt} ms after the holder was killed (TTL ${KILL_TTL} s)`,
    );
    assert.equal((await timeToLive(c, lockKv.lease)).ttl, -1, 'the killed holder\'s lease after the takeover');
    const other = waiters.find((w) => w !== winner);
    assert.ok(other !== undefined);
    await quietWindow(SILENCE_MS);
    assert.equal(other.line(`acquired ${other.pid}`), undefined, 'both waiters hold the lock');

    winner.send('release');
    const released = await winner.waitLine(`released ${winner.pid}`);
    const next = await other.waitLine(`acquired ${other.pid}`, 5_000);
    assert.ok(next.at - released.at < 1_000, `release handed the lock over only after ${next.at - released.at} ms`);
    other.send('release');
    await other.waitLine(`released ${other.pid}`);
    for (const p of [winner, other]) assert.deepEqual(await p.waitExit(), { code: 0, signal: null }, `${p.label} stderr: ${p.err}`);
    assert.deepEqual(await keysUnder(c, 'hold-lock'), [], 'lock key left after the last release');
  }),
);

test(`etcd3 Election: 4 campaigners, one leader at a time; resign hands over at once, kill -9 at lease expiry (${TARGET})`, { timeout: 90_000 }, () =>
  withServer(async (srv, c, spawned) => {
    const client = new Etcd3({ hosts: srv.clientUrl, dialTimeout: 5_000 });
    let observer: ElectionObserver | undefined;
    try {
      const election = client.election('el', KILL_TTL);
      const prefix = 'election/el/';
      observer = await election.observe();
      const seen: Array<{ at: number; leader: string | undefined }> = [{ at: Date.now(), leader: observer.leader() }];
      observer.on('change', (v) => seen.push({ at: Date.now(), leader: v }));
      const observerErrors: Error[] = [];
      observer.on('error', (e) => observerErrors.push(e));

      // Campaigners join one after another, so their keys' create order is c1 < c2 < c3 < c4.
      const names = ['c1', 'c2', 'c3', 'c4'];
      const camp = new Map<string, Contender>();
      for (const [i, name] of names.entries()) {
        const p = new Contender(name, ['campaign', srv.clientUrl, 'el', String(KILL_TTL), name]);
        spawned.push(p);
        camp.set(name, p);
        await pollUntil(`${name}'s campaign key`, async () => (await keysUnder(c, prefix)).length === i + 1);
      }
      const get = (name: string): Contender => {
        const p = camp.get(name);
        if (p === undefined) throw new Error(name);
        return p;
      };
      /** Campaigners that printed "elected" and have neither resigned nor been killed. */
      const claiming = (): string[] =>
        names.filter((n) => {
          const p = get(n);
          return p.line(`elected ${n}`) !== undefined && p.line(`resigned ${n}`) === undefined && p.exit === undefined;
        });
      const waitLeader = async (name: string, timeoutMs = 10_000): Promise<Line> => {
        const l = await get(name).waitLine(`elected ${name}`, timeoutMs);
        await pollUntil(`observer to report ${name}`, () => Promise.resolve(observer?.leader() === name), 5_000);
        assert.deepEqual(claiming(), [name], 'campaigners claiming leadership');
        assert.equal(await election.leader(), name, 'election.leader()');
        return l;
      };

      await waitLeader('c1');
      await quietWindow(SILENCE_MS);
      assert.deepEqual(claiming(), ['c1'], 'campaigners claiming leadership while c1 leads');

      // Resign: the next in line leads at once.
      get('c1').send('resign');
      const resigned = await get('c1').waitLine('resigned c1');
      const c2 = await waitLeader('c2', 5_000);
      assert.ok(c2.at - resigned.at < 1_000, `c2 led ${c2.at - resigned.at} ms after c1 resigned`);

      // kill -9 the leader: c3 leads when c2's lease expires, not before.
      const [c2Kv] = await keysUnder(c, prefix);
      assert.equal(c2Kv?.value, 'c2', 'oldest campaign key');
      const before = await timeToLive(c, c2Kv.lease);
      const queriedAt = Date.now();
      assert.equal(before.granted, KILL_TTL, 'granted TTL of c2\'s campaign lease');
      get('c2').kill9();
      const killedAt = Date.now();
      await get('c2').waitExit();
      const c3 = await waitLeader('c3', 15_000);
      assert.ok(c3.at - queriedAt >= before.ttl * 1000 - 100, `c3 led ${c3.at - queriedAt} ms after TimeToLive said c2's lease had ${before.ttl} s left`);
      assert.ok(c3.at - killedAt <= KILL_TTL * 1000 + TAKEOVER_TOLERANCE_MS, `c3 led only ${c3.at - killedAt} ms after c2 was killed (TTL ${KILL_TTL} s)`);
      const observedC3 = seen.find((s) => s.leader === 'c3');
      assert.ok(observedC3 !== undefined && observedC3.at >= queriedAt + before.ttl * 1000 - 100, `observer saw c3 lead before c2's lease expired: ${JSON.stringify(seen)}`);

      get('c3').send('resign');
      const r3 = await get('c3').waitLine('resigned c3');
      const c4 = await waitLeader('c4', 5_000);
      assert.ok(c4.at - r3.at < 1_000, `c4 led ${c4.at - r3.at} ms after c3 resigned`);
      get('c4').send('resign');
      await get('c4').waitLine('resigned c4');
      await pollUntil('observer to report no leader', () => Promise.resolve(observer?.leader() === undefined), 5_000);
      assert.equal(await election.leader(), undefined, 'election.leader() with no campaigner left');
      for (const n of ['c1', 'c3', 'c4']) assert.deepEqual(await get(n).waitExit(), { code: 0, signal: null }, `${n} stderr: ${get(n).err}`);
      assert.deepEqual(seen.map((s) => s.leader), [undefined, 'c1', 'c2', 'c3', 'c4', undefined], 'leaders in the order the observer saw them');
      assert.deepEqual(observerErrors, [], 'observer errors');
    } finally {
      await closeClient(client, observer);
    }
  }),
);

test(`etcd3 watcher: periodic progress notifications every 200 ms carry the current revision (${TARGET})`, { timeout: 60_000 }, () =>
  withServer(async (srv) => {
    const client = new Etcd3({ hosts: srv.clientUrl, dialTimeout: 5_000 });
    let watcher: Watcher | undefined;
    try {
      await client.put('before').value('x'); // revision 2
      watcher = await client.watch().key('quiet').create();
      const progress: Array<{ at: number; rev: string }> = [];
      const events: string[] = [];
      watcher.on('data', (res) => {
        if (res.events.length === 0) progress.push({ at: Date.now(), rev: res.header.revision });
        else events.push(...res.events.map((e) => `${e.type} ${e.kv.key.toString()} ${e.kv.mod_revision}`));
      });
      // No write after the watch was created: the watcher is synced at revision 2 throughout.
      await pollUntil('4 progress notifications', () => Promise.resolve(progress.length >= 4), 5_000).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)} on a quiet watcher created at revision 2 (got ${JSON.stringify(progress)})`);
      });
      assert.deepEqual(progress.slice(0, 4).map((p) => p.rev), ['2', '2', '2', '2'], 'progress revisions');
      const [p0, , , p3] = progress;
      assert.ok(p0 !== undefined && p3 !== undefined);
      const gap = (p3.at - p0.at) / 3;
      assert.ok(gap >= 100 && gap <= 1_000, `mean gap between progress notifications ${gap} ms (interval 200 ms)`);
      // A write elsewhere moves the progress revision.
      await client.put('other').value('y'); // 3
      await pollUntil('a progress notification at revision 3', () => Promise.resolve(progress.some((p) => p.rev === '3')), 5_000);
      await client.put('quiet').value('z'); // 4
      await pollUntil('the event on the watched key', () => Promise.resolve(events.length > 0), 5_000);
      assert.deepEqual(events, ['Put quiet 4']);
      assert.ok(progress.every((p) => p.rev !== '1'), `progress below the watch's start: ${JSON.stringify(progress)}`);
    } finally {
      await closeClient(client, watcher);
    }
  }),
);
