// Real `etcdctl lock` and `etcdctl elect` (3.4 and 3.6.8) against Cairn and against etcd 3.6.8:
// mutual exclusion under contention, a killed holder's lock released by its lease's expiry, and
// `elect -l` observing each leader in turn. Both servers must show the same behaviour.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { refBinOrSkip } from '../harness/bins.js';
import { type EtcdClient } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';
import { onEtcd36AndCairn } from '../harness/differential.js';
import { tempDir, trackChild } from '../harness/procs.js';

/** A running etcdctl whose output lines are collected as they come. */
class Ctl {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(bin: string, endpoint: string, args: readonly string[]) {
    this.child = spawn(bin, ['--endpoints', endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(this.child);
    let buf = '';
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((res) => this.child.on('exit', (code) => res(code)));
  }

  waitLines(n: number, what: string, timeoutMs = 15_000): Promise<void> {
    return pollUntil(what, () => Promise.resolve(this.lines.length >= n), timeoutMs);
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

async function countUnder(c: EtcdClient, prefix: string): Promise<number> {
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const r = await c.range({ key: Buffer.from(prefix), range_end: Buffer.from(end), count_only: true });
  return r.ok ? Number(r.value['count']) : -1;
}

const CONTENDERS = 4;

/** Contenders run `sh -c` under the lock, each appending begin/end lines: they must never interleave. */
async function mutualExclusion(ctl: string, endpoint: string): Promise<string> {
  const file = join(tempDir('cairn-lock-'), 'log');
  const script = `echo "begin $$" >> ${file}; sleep 0.05; echo "end $$" >> ${file}`;
  const runs = Array.from({ length: CONTENDERS }, () => new Ctl(ctl, endpoint, ['lock', 'mutex', '--', 'sh', '-c', script]));
  const codes = await Promise.all(runs.map((r) => r.exited));
  assert.deepEqual(codes, runs.map(() => 0), runs.map((r) => r.stderr).join('\n'));
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  for (let i = 0; i < lines.length; i += 2) {
    const pid = lines[i]?.split(' ')[1];
    assert.equal(lines[i], `begin ${pid}`, `line ${i}: ${lines.join(' / ')}`);
    assert.equal(lines[i + 1], `end ${pid}`, `line ${i + 1}: ${lines.join(' / ')}`);
  }
  return `exit codes ${codes.join(',')}, ${lines.length / 2} critical sections, none interleaved`;
}

/** A holder killed with SIGKILL keeps the lock until its 2 s lease expires; then the waiter gets it. */
async function expiryReleases(ctl: string, endpoint: string, c: EtcdClient): Promise<string> {
  const holder = new Ctl(ctl, endpoint, ['lock', '--ttl', '2', 'expiring']);
  await holder.waitLines(1, 'the holder has the lock');
  const waiter = new Ctl(ctl, endpoint, ['lock', 'expiring']);
  await pollUntil('the waiter queued', async () => (await countUnder(c, 'expiring/')) === 2);
  const killedAt = Date.now();
  holder.kill('SIGKILL');
  await waiter.waitLines(1, 'the waiter has the lock', 15_000);
  const afterMs = Date.now() - killedAt;
  waiter.kill('SIGINT');
  await waiter.exited;
  assert.ok(afterMs >= 1000, `the waiter got the lock ${afterMs} ms after the kill: before the holder's lease could expire`);
  return `holder ${holder.lines[0]?.replace(/[0-9a-f]+$/, '<lease>')}, waiter ${waiter.lines[0]?.replace(/[0-9a-f]+$/, '<lease>')} after the lease expired`;
}

/** `elect -l` prints each leader (key and value) as candidates win in turn. */
async function observeLeaders(ctl: string, endpoint: string): Promise<string[]> {
  const observer = new Ctl(ctl, endpoint, ['elect', '-l', 'vote']);
  const first = new Ctl(ctl, endpoint, ['elect', 'vote', 'p1']);
  await first.waitLines(2, 'p1 elected');
  await observer.waitLines(2, 'observer saw p1');
  const second = new Ctl(ctl, endpoint, ['elect', 'vote', 'p2']);
  first.kill('SIGINT');
  await first.exited;
  await second.waitLines(2, 'p2 elected');
  await observer.waitLines(4, 'observer saw p2');
  second.kill('SIGINT');
  observer.kill('SIGINT');
  await Promise.all([second.exited, observer.exited]);
  return observer.lines.map((l) => l.replace(/^vote\/[0-9a-f]+$/, 'vote/<lease>'));
}

test('etcdctl lock and elect (3.4 and 3.6.8) behave on Cairn as on etcd 3.6.8', async (t) => {
  const ctl36 = refBinOrSkip(t, 'etcdctl-3.6');
  const ctl34 = refBinOrSkip(t, 'etcdctl');
  if (ctl36 === undefined || ctl34 === undefined) return;
  const seen = await onEtcd36AndCairn(t, async (c, s) => {
    const out: string[] = [];
    for (const [version, ctl] of [['3.4', ctl34], ['3.6', ctl36]] as const) {
      out.push(`${version} lock: ${await mutualExclusion(ctl, s.endpoint)}`);
      out.push(`${version} lock: ${await expiryReleases(ctl, s.endpoint, c)}`);
      out.push(`${version} elect -l: ${(await observeLeaders(ctl, s.endpoint)).join(' ')}`);
    }
    return out;
  });
  if (seen === undefined) return;
  assert.deepEqual(seen.cairn, seen.etcd);
});
