// Corruption checks on a 3-member Cairn (--experimental-corrupt-check-time 1s): one value changed in
// a stopped follower's LMDB file (the record kept well-formed: same length, CRC recomputed) makes the
// leader raise CORRUPT for that member once it is back; then every change is refused with 'etcdserver:
// corrupt cluster' while reads work. Restarted with --experimental-initial-corrupt-check the
// corrupted member refuses to start ('found data inconsistency with peers'), a healthy one starts.
// Hash versions (rolling upgrade from the release whose HashKV was Cairn's CRC-32): a peer's reply
// without hashVersion, as that release sends it, is never compared with our etcd 3.6 hash (no CORRUPT,
// no refusal to start), while a different hash of the same version still is; a member answers the
// previous release's 8-byte request in that release's form, and its clients' HashKV stays etcd's.
// Last, a real mixed cluster: the previous release (built from git history) as one member.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backend } from '../../server/storage/backend/index.js';
import { BACKEND_MAP_BYTES } from '../../server/base/limits.js';
import { HASH_KV_VERSION, KvStore } from '../../server/mvcc/index.js';
import {
  LEGACY_HASH_VERSION,
  answerHashRequest,
  decodeHashReply,
  decodeHashRequest,
  encodeHashRequest,
  initialMismatches,
  periodicMismatches,
  refusesVersionedRequest,
  versionSkips,
  type LocalHash,
} from '../../server/node/corrupt.js';
import { withCluster } from '../harness/cluster.js';
import type { Cluster } from '../harness/cluster.js';
import { runEtcdctl, startCairn, startEtcd } from '../harness/procs.js';
import { previousRelease } from '../harness/previous-release.js';
import { etcd36Bin } from '../harness/bins.js';
import { EtcdClient } from '../harness/client.js';
import { pollUntil, quietWindow } from '../harness/poll.js';
import { corruptValue, ctl, ok, outcome } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);
const CORRUPT = 'DATA_LOSS: etcdserver: corrupt cluster';

/** Writes a copy of a member's config file with extra settings; returns its path. */
function configWith(dataDir: string, extra: Record<string, unknown>): string {
  const cfg = JSON.parse(readFileSync(`${dataDir}.conf.yaml`, 'utf8')) as Record<string, unknown>;
  const path = `${dataDir}.initial-check.conf.yaml`;
  writeFileSync(path, `${JSON.stringify({ ...cfg, ...extra }, null, 1)}\n`);
  return path;
}

async function alarmList(c: Cluster, name: string): Promise<string> {
  const r = await runEtcdctl([`--endpoints=${c.member(name).endpoint}`, 'alarm', 'list']);
  return r.stdout;
}

test('a follower with a changed value: CORRUPT raised, changes refused, reads served; the initial check refuses it', async () => {
  await withCluster('cairn', { size: 3, extraArgs: ['--experimental-corrupt-check-time=1s'] }, async (c) => {
    const leader = await c.leader();
    const lc = c.client(leader.name);
    for (let i = 0; i < 20; i++) ok(await lc.put({ key: b(`k${i}`), value: b(`v${i}`) }), 'put');
    ok(await lc.put({ key: b('victim'), value: b('good-value') }), 'put victim');
    await c.waitConverged(20_000);
    const victim = c.members.find((m) => m.name !== leader.name);
    const healthy = c.members.find((m) => m.name !== leader.name && m.name !== victim?.name);
    assert.ok(victim !== undefined && healthy !== undefined);
    const victimId = await c.idOf(victim.name);

    // No alarm while the data agree (a few check periods).
    await quietWindow(2_500);
    assert.equal(await alarmList(c, leader.name), '', 'an alarm on a healthy cluster');

    await c.stop(victim.name);
    const rev = await corruptValue(victim.dataDir, 'victim', 'good-value', 'evil-value');
    await c.start(victim.name);

    // The leader's periodic check finds the member whose hash differs.
    await pollUntil('CORRUPT alarm', async () => (await alarmList(c, leader.name)).includes('alarm:CORRUPT'), 15_000, 250);
    assert.equal(await alarmList(c, leader.name), `memberID:${victimId} alarm:CORRUPT \n`);
    assert.equal(await alarmList(c, healthy.name), `memberID:${victimId} alarm:CORRUPT \n`);
    const lines = leader.proc?.stderrLines() ?? [];
    assert.ok(lines.some((l) => l.includes('found data inconsistency')), 'the leader logs the inconsistency');

    // Every change is refused, on every member; reads work.
    for (const m of c.members) {
      const mc = c.client(m.name);
      assert.equal(outcome(await mc.put({ key: b('after'), value: b('x') })), CORRUPT, `put via ${m.name}`);
      assert.equal(outcome(await mc.deleteRange({ key: b('k1') })), CORRUPT, `delete via ${m.name}`);
      assert.equal(outcome(await mc.txn({ success: [{ request_delete_range: { key: b('k2') } }] })), CORRUPT, `txn via ${m.name}`);
      assert.equal(outcome(await mc.unary('Lease', 'LeaseGrant', { TTL: '60', ID: '0' })), CORRUPT, `lease grant via ${m.name}`);
      const r = ok(await mc.range({ key: b('k3') }), `range via ${m.name}`);
      assert.equal(Number(r['count']), 1);
    }
    const put = await ctl(leader.endpoint, ['put', 'after', 'x']);
    assert.deepEqual(put, { exit: 1, stdout: '', errors: 'Error: etcdserver: corrupt cluster' });
    const get = await ctl(leader.endpoint, ['get', 'victim', '--print-value-only']);
    assert.deepEqual(get, { exit: 0, stdout: 'good-value\n', errors: '' });
    // The corrupted member serves what it has (serializable): the changed value.
    const local = await ctl(victim.endpoint, ['get', 'victim', '--print-value-only', '--consistency=s']);
    assert.equal(local.stdout, 'evil-value\n');
    const st = ok(await lc.unary('Maintenance', 'Status', {}), 'Status');
    assert.deepEqual(st['errors'], [`memberID:${victimId} alarm:CORRUPT `]);

    // --experimental-initial-corrupt-check: the corrupted member refuses to start.
    await c.stop(victim.name);
    const bad = await startCairn({
      name: victim.name,
      dataDir: victim.dataDir,
      extraArgs: ['--config-file', configWith(victim.dataDir, { 'experimental-initial-corrupt-check': true })],
      readyTimeoutMs: 30_000,
    }).then(
      () => 'started',
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
    assert.match(bad, /exited before ready \(exit code [1-9]\d*, signal null\)/, bad);
    assert.match(bad, /found data inconsistency with peers/, bad);
    // A healthy member with the flag starts and serves.
    await c.stop(healthy.name);
    const good = await startCairn({
      name: healthy.name,
      dataDir: healthy.dataDir,
      extraArgs: ['--config-file', configWith(healthy.dataDir, { 'experimental-initial-corrupt-check': true })],
      readyTimeoutMs: 30_000,
    });
    try {
      assert.ok(good.stderrLines().some((l) => l.includes('initial corruption checking passed')), 'no "initial corruption checking passed" line');
      const r = await ctl(healthy.endpoint, ['get', 'victim', '--print-value-only']);
      assert.deepEqual(r, { exit: 0, stdout: 'good-value\n', errors: '' });
    } finally {
      await good.stop();
    }
    console.log(`corrupted ${victim.name} (${victimId}) at revision ${rev}`);
  });
});

/** A reply as the previous release's encodeHashReply wrote it: no hashVersion. */
const previousReleaseReply = (h: { hash: number; compactRevision: number; revision: number }): Buffer =>
  Buffer.from(JSON.stringify({ hash: h.hash, compactRevision: h.compactRevision, revision: h.revision }));

test('hash versions: a previous-release peer (no hashVersion) is never compared; the same version still is', () => {
  assert.equal(HASH_KV_VERSION, 2);
  const local: LocalHash = { hash: 0x1111, hashVersion: HASH_KV_VERSION, revision: 30, compactRevision: 5 };
  const old = decodeHashReply(2n, previousReleaseReply({ hash: 0x2222, compactRevision: 5, revision: 30 }));
  assert.deepEqual(old, { id: 2n, ok: true, hash: 0x2222, hashVersion: LEGACY_HASH_VERSION, revision: 30, compactRevision: 5 });
  const same = decodeHashReply(3n, Buffer.from(JSON.stringify({ hash: 0x2222, compactRevision: 5, revision: 30, hashVersion: HASH_KV_VERSION })));
  const agrees = decodeHashReply(4n, Buffer.from(JSON.stringify({ hash: 0x1111, compactRevision: 5, revision: 30, hashVersion: HASH_KV_VERSION })));

  // Initial check: the old peer's different hash is skipped (no refusal to start); same version caught.
  assert.deepEqual(initialMismatches(local, [old]), []);
  assert.deepEqual(initialMismatches(local, [old, agrees]), []);
  assert.deepEqual(initialMismatches(local, [old, same, agrees]), [3n]);
  assert.deepEqual(versionSkips(local, [old, same, agrees]).map((p) => p.id), [2n]);
  // Periodic check: no CORRUPT for the old peer, CORRUPT for the same-version difference.
  assert.deepEqual(periodicMismatches(1n, local, local, [old, agrees]), []);
  assert.deepEqual(periodicMismatches(1n, local, local, [old, same, agrees]), [3n]);
  // What does not depend on the hash algorithm is still checked with an old peer: ahead of its leader.
  const ahead = decodeHashReply(2n, previousReleaseReply({ hash: 0x1111, compactRevision: 5, revision: 31 }));
  assert.deepEqual(periodicMismatches(1n, local, local, [ahead]), [2n]);
  // The leader's own hash changing between its two reads at the same revision is still caught.
  assert.deepEqual(periodicMismatches(1n, local, { ...local, hash: 0x3333 }, [old]), [1n]);

  // A malformed version is no answer (never compared as version 1).
  assert.deepEqual(decodeHashReply(5n, Buffer.from(JSON.stringify({ hash: 1, compactRevision: 5, revision: 30, hashVersion: '2' }))), { id: 5n, ok: false, error: 'malformed hashkv reply' });
  // Requests: the previous release's 8-byte form (answered in version 1, unnamed), ours names the version.
  assert.deepEqual(decodeHashRequest(encodeHashRequest(30)), { revision: 30, version: undefined });
  assert.deepEqual(decodeHashRequest(encodeHashRequest(30, HASH_KV_VERSION)), { revision: 30, version: HASH_KV_VERSION });
  // The previous release refuses the 9-byte form with this message (its transport carries it): ask again.
  assert.ok(refusesVersionedRequest('remote: hashkv request of 9 bytes (want 8)'));
  assert.ok(!refusesVersionedRequest('hashkv request of 9 bytes (want 8 or 9)'));
  assert.ok(!refusesVersionedRequest('connection refused'));
});

test('hash versions on a real store: client HashKV equals etcd 3.6\'s, the peer answers name their version', async () => {
  const ops = async (endpoint: string): Promise<{ hash: number; compactRevision: number; revision: number }> => {
    const mc = new EtcdClient(endpoint);
    try {
      for (let i = 0; i < 12; i++) ok(await mc.put({ key: b(`k${i % 5}`), value: b(`v${i}`) }), 'put');
      ok(await mc.deleteRange({ key: b('k1') }), 'delete');
      ok(await mc.compact({ revision: '9', physical: true }), 'compact');
      ok(await mc.put({ key: b('k6'), value: b('after') }), 'put after compaction');
      const r = ok(await mc.unary('Maintenance', 'HashKV', { revision: '0' }), 'HashKV');
      return { hash: Number(r['hash']), compactRevision: Number(r['compact_revision']), revision: Number((r['header'] as Record<string, unknown>)['revision']) };
    } finally {
      mc.close();
    }
  };
  const etcd = await startEtcd({ etcdBin: etcd36Bin() });
  let oracle: Awaited<ReturnType<typeof ops>>;
  try {
    oracle = await ops(etcd.endpoint);
  } finally {
    await etcd.stop();
  }
  const cairn = await startCairn({});
  let client: Awaited<ReturnType<typeof ops>>;
  try {
    client = await ops(cairn.endpoint);
  } finally {
    await cairn.stop();
  }
  assert.deepEqual(client, oracle, 'Cairn\'s client HashKV is etcd 3.6\'s');
  {
    const backend = Backend.open(join(cairn.dataDir, 'member', 'db.mdb'), BACKEND_MAP_BYTES);
    try {
      const store = new KvStore(backend);
      // Our request (versioned): the client's hash, named version 2.
      const ours = decodeHashReply(9n, answerHashRequest(store, decodeHashRequest(encodeHashRequest(0, HASH_KV_VERSION))));
      assert.deepEqual(ours, { id: 9n, ok: true, hash: client.hash, hashVersion: HASH_KV_VERSION, revision: client.revision, compactRevision: client.compactRevision });
      // A previous-release leader's request (8 bytes): its own algorithm, no hashVersion, as it expects.
      const raw = answerHashRequest(store, decodeHashRequest(encodeHashRequest(0)));
      const legacy = JSON.parse(Buffer.from(raw).toString('utf8')) as Record<string, unknown>;
      assert.deepEqual(Object.keys(legacy).sort(), ['compactRevision', 'hash', 'revision']);
      assert.equal(legacy['hash'], store.hashKVv1(0).hash);
      assert.notEqual(legacy['hash'], client.hash, 'the two algorithms differ on this data');
      // The same data hashed by the two versions: a skip, not a mismatch.
      const local: LocalHash = { hash: client.hash, hashVersion: HASH_KV_VERSION, revision: client.revision, compactRevision: client.compactRevision };
      const peer = decodeHashReply(9n, raw);
      assert.deepEqual(initialMismatches(local, [peer]), []);
      assert.deepEqual(periodicMismatches(1n, local, local, [peer]), []);
      assert.throws(() => answerHashRequest(store, { revision: 0, version: 3 }), /hashkv version 3 unknown/);
    } finally {
      await backend.close();
    }
  }
});

const skipLines = (lines: readonly string[], peerHex: string): Record<string, unknown>[] =>
  lines
    .filter((l) => l.includes('skipped the hash comparison'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r['remote-peer-id'] === peerHex);

test('rolling upgrade: a previous-release member (old hash) is neither CORRUPT for a new leader, nor for itself as leader, nor a reason to refuse to start', async () => {
  const prefix = previousRelease();
  await withCluster('cairn', { size: 3, extraArgs: ['--experimental-corrupt-check-time=1s'] }, async (c) => {
    const leader = await c.leader();
    const lc = c.client(leader.name);
    for (let i = 0; i < 20; i++) ok(await lc.put({ key: b(`k${i}`), value: b(`v${i}`) }), 'put');
    ok(await lc.compact({ revision: '10', physical: true }), 'compact');
    ok(await lc.put({ key: b('after'), value: b('x') }), 'put after compaction');
    await c.waitConverged(20_000);
    const [upgrading, other] = c.members.filter((m) => m.name !== leader.name);
    assert.ok(upgrading !== undefined && other !== undefined);
    const oldHex = BigInt(await c.idOf(upgrading.name)).toString(16);
    const leaderHex = BigInt(await c.idOf(leader.name)).toString(16);
    await c.stop(upgrading.name);
    const old = await startCairn({ name: upgrading.name, dataDir: upgrading.dataDir, extraArgs: ['--config-file', `${upgrading.dataDir}.conf.yaml`], commandPrefix: prefix, readyTimeoutMs: 30_000 });
    try {
      assert.ok(readFileSync(`/proc/${old.pid}/cmdline`, 'utf8').includes('cairn-previous-release-'), 'the member runs the previous release');
      // A new leader: the old follower's hash is of version 1, skipped and logged once; no alarm.
      await pollUntil('the leader logs the skipped comparison', () => Promise.resolve(skipLines(leader.proc?.stderrLines() ?? [], oldHex).length > 0), 15_000, 250);
      await quietWindow(3_000);
      const skips = skipLines(leader.proc?.stderrLines() ?? [], oldHex);
      assert.equal(skips.length, 1, 'logged once over several check periods');
      assert.deepEqual(
        { check: skips[0]?.['check'], local: skips[0]?.['local-member-id'], lv: skips[0]?.['local-hash-version'], rv: skips[0]?.['remote-hash-version'] },
        { check: 'periodic', local: leaderHex, lv: HASH_KV_VERSION, rv: LEGACY_HASH_VERSION },
      );
      assert.equal(await alarmList(c, leader.name), '', 'no CORRUPT for the old member');

      // The old member leads: it asks in its 8-byte form and the new members answer its hash.
      const moved = await runEtcdctl([`--endpoints=${leader.endpoint}`, 'move-leader', oldHex]);
      assert.match(moved.stdout, new RegExp(`Leadership transferred from ${leaderHex} to ${oldHex}`));
      const oc = new EtcdClient(upgrading.endpoint);
      try {
        await pollUntil('the old member leads', async () => {
          const st = await oc.unary('Maintenance', 'Status', {});
          return st.ok && BigInt(String(st.value['leader'])).toString(16) === oldHex;
        }, 15_000, 250);
      } finally {
        oc.close();
      }
      // Several check periods of the old leader (its first check can come seconds after it leads;
      // answered with the new hash instead, it logs 'found data inconsistency' within this window).
      await quietWindow(10_000);
      assert.equal((await runEtcdctl([`--endpoints=${upgrading.endpoint}`, 'alarm', 'list'])).stdout, '', 'no CORRUPT raised by the old leader');
      assert.ok(!old.stderrLines().some((l) => l.includes('found data inconsistency')), 'the old leader found no inconsistency');

      // A new member restarting with the initial check beside an old and a new peer starts.
      await c.stop(other.name);
      const started = await startCairn({ name: other.name, dataDir: other.dataDir, extraArgs: ['--config-file', configWith(other.dataDir, { 'experimental-initial-corrupt-check': true })], readyTimeoutMs: 30_000 });
      try {
        const lines = started.stderrLines();
        assert.deepEqual(skipLines(lines, oldHex).map((r) => r['check']), ['initial']);
        assert.ok(lines.some((l) => l.includes('initial corruption checking passed')), 'no "initial corruption checking passed" line');
      } finally {
        await started.stop();
      }
    } finally {
      await old.stop();
    }
  });
});
