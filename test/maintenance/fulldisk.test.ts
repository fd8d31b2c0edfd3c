// A full disk during a write load: Cairn's data dir and WAL dir on a 160 MiB tmpfs, a load of 100 KB
// values until refused. Cairn's disk guard (free space below max(32 MiB, 2 x --wal-segment-bytes)
// raises NOSPACE) must refuse writes with etcd's quota error before the disk fills: the server stays
// up, every acknowledged write is readable, deletes work, and delete + compact + defrag + disarm
// bring writes back. Should the disk fill anyway and the server fail-stop, the test checks that every
// acknowledged write survives a restart on a bigger disk, and then fails (reporting both).
//
// Needs root (mount -t tmpfs); the tmpfs is always unmounted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdClient } from '../harness/client.js';
import type { Msg } from '../harness/client.js';
import { startCairn, tempDir } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { pollUntil } from '../harness/poll.js';
import { ctl, ok, outcome, statusOf } from './helpers.js';

const NOSPACE = 'RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded';
const VALUE_BYTES = 100 * 1024;
const b = (s: string): Buffer => Buffer.from(s);

function valueOf(n: number): Buffer {
  // Distinct per key (so a lost or swapped write shows), cheap to make.
  const v = Buffer.alloc(VALUE_BYTES, n % 251);
  v.write(`value-${n}-`, 0);
  return v;
}
const digest = (v: Buffer): string => createHash('sha256').update(v).digest('hex');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

async function readAll(c: EtcdClient): Promise<Map<string, string>> {
  const got = new Map<string, string>();
  // In pages: a single 100 MB response is more than a test needs to hold at once.
  let from = b('f/');
  for (;;) {
    const r = ok(await c.range({ key: from, range_end: b('f0'), limit: '100' }, { timeoutMs: 30_000 }), 'range');
    const kvs = r['kvs'] as Msg[];
    for (const kv of kvs) got.set(String(kv['key']), digest(kv['value'] as Buffer));
    if (r['more'] !== true || kvs.length === 0) return got;
    from = Buffer.concat([kvs[kvs.length - 1]?.['key'] as Buffer, Buffer.from([0])]);
  }
}

test('full disk during a write load: NOSPACE before ENOSPC, no acknowledged write lost, recovery by delete + compact + defrag + disarm', async () => {
  const mnt = tempDir('cairn-maint-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m', 'tmpfs', mnt]);
  let cairn: ServerProc | undefined;
  let c: EtcdClient | undefined;
  try {
    const dataDir = join(mnt, 'data');
    const walDir = join(mnt, 'wal');
    mkdirSync(dataDir);
    mkdirSync(walDir);
    cairn = await startCairn({ dataDir, walDir, extraArgs: ['--wal-segment-bytes', '4194304', '--snapshot-count', '200'] });
    const proc = cairn;
    const cl = new EtcdClient(cairn.endpoint);
    c = cl;
    await cl.waitReady();

    const acked = new Map<string, string>();
    const refusals: string[] = [];
    const otherErrors: string[] = [];
    let seq = 0;
    let stop = false;
    const writer = async (): Promise<void> => {
      while (!stop && seq < 2_000 && alive(proc.pid)) {
        const n = seq++;
        const k = `f/${String(n).padStart(5, '0')}`;
        const v = valueOf(n);
        const r = await cl.put({ key: b(k), value: v }, { timeoutMs: 20_000 });
        if (r.ok) acked.set(k, digest(v));
        else if (outcome(r) === NOSPACE) {
          refusals.push(k);
          // A few more attempts show the refusal holds; then stop.
          if (refusals.length >= 5) stop = true;
        } else otherErrors.push(`${k}: ${outcome(r)}`);
        if (otherErrors.length >= 5) stop = true;
      }
    };
    const started = Date.now();
    await Promise.all([writer(), writer(), writer()]);
    const loadMs = Date.now() - started;
    const freeAtStop = freeBytes(mnt);
    const up = alive(proc.pid);
    const summary = `${acked.size} acknowledged puts of 100 KB in ${loadMs} ms, ${refusals.length} NOSPACE refusals, other errors ${JSON.stringify(otherErrors)}, ${freeAtStop} bytes free on the tmpfs, server ${up ? 'up' : 'DOWN'}`;
    console.log(`full disk: ${summary}`);

    if (!up) {
      // Fail-stop: every acknowledged write must survive a restart on a bigger disk.
      const big = tempDir('cairn-maint-bigdisk-');
      cpSync(mnt, big, { recursive: true });
      const again = await startCairn({ name: proc.name, dataDir: join(big, 'data'), walDir: join(big, 'wal') });
      const c2 = new EtcdClient(again.endpoint);
      try {
        const got = await readAll(c2);
        const lost = [...acked].filter(([k, d]) => got.get(k) !== d).map(([k]) => k);
        console.log(`after the fail-stop, on a bigger disk: ${got.size} keys, ${lost.length} acknowledged writes lost or wrong`);
        assert.deepEqual(lost, [], 'acknowledged writes lost after the fail-stop');
      } finally {
        c2.close();
        await again.stop();
      }
      assert.fail(`the server fail-stopped instead of refusing writes with NOSPACE: ${summary}\n${proc.stderrLines().slice(-15).join('\n')}`);
    }

    assert.deepEqual(otherErrors, [], summary);
    assert.ok(refusals.length >= 1, `never refused: ${summary}`);
    assert.ok(acked.size > 50, `refused too early: ${summary}`);
    // The guard kept room: at least the part of the reserve that one check interval of load can eat.
    assert.ok(freeAtStop > 8 * 1024 * 1024, `only ${freeAtStop} bytes left: ${summary}`);

    // The alarm is NOSPACE, for this member, shown by alarm list and Status.
    const st = await statusOf(cl);
    const alarms = await ctl(cairn.endpoint, ['alarm', 'list']);
    assert.deepEqual(alarms, { exit: 0, stdout: `memberID:${st.memberId} alarm:NOSPACE \n`, errors: '' });
    assert.deepEqual(st.errors, [`memberID:${st.memberId} alarm:NOSPACE `]);
    assert.ok(proc.stderrLines().some((l) => l.includes('disk space low')), 'no "disk space low" log line');
    assert.equal(outcome(await cl.put({ key: b('small'), value: b('v') })), NOSPACE);

    // Every acknowledged write is readable with its value.
    const got = await readAll(cl);
    const lost = [...acked].filter(([k, d]) => got.get(k) !== d).map(([k]) => k);
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} of ${acked.size} acknowledged writes lost or wrong`);
    // Refused puts left nothing behind.
    for (const k of refusals) assert.equal(got.has(k), false, `refused put ${k} is visible`);

    // Deletes work; then compact + defrag free the space, disarm lets writes in.
    const del = ok(await cl.deleteRange({ key: b('f/'), range_end: b('f0') }, { timeoutMs: 30_000 }), 'delete');
    assert.equal(Number(del['deleted']), acked.size);
    const rev = Number((del['header'] as Msg)['revision']);
    ok(await cl.compact({ revision: String(rev), physical: true }, { timeoutMs: 60_000 }), 'compact');
    const defrag = await ctl(cairn.endpoint, ['defrag']);
    assert.equal(defrag.exit, 0, defrag.errors);
    // Old WAL segments go once the backend holds what they hold (snapshot-count 200): a few more entries.
    const disarm = await ctl(cairn.endpoint, ['alarm', 'disarm']);
    assert.deepEqual(disarm, { exit: 0, stdout: `memberID:${st.memberId} alarm:NOSPACE \n`, errors: '' });
    let rearmed = 0;
    await pollUntil(
      'a put accepted after disarm',
      async () => {
        const r = await cl.put({ key: b('after'), value: b('v') });
        if (!r.ok && outcome(r) === NOSPACE) {
          rearmed++;
          await ctl(proc.endpoint, ['alarm', 'disarm']);
        }
        return r.ok;
      },
      20_000,
      500,
    );
    const freeAfter = freeBytes(mnt);
    assert.ok(freeAfter > 64 * 1024 * 1024, `only ${freeAfter} bytes free after delete + compact + defrag`);
    for (let i = 0; i < 20; i++) ok(await cl.put({ key: b(`again/${i}`), value: valueOf(i) }), 'put after recovery');
    assert.equal((await ctl(cairn.endpoint, ['alarm', 'list'])).stdout, '');
    console.log(`full disk: recovered, ${freeAfter} bytes free after delete + compact + defrag; NOSPACE raised again ${rearmed} time(s) after the first disarm`);
  } finally {
    c?.close();
    await cairn?.stop();
    try {
      execFileSync('umount', [mnt]);
    } catch {
      execFileSync('umount', ['-l', mnt]);
    }
  }
});
