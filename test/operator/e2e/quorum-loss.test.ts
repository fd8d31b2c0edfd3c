// test-file-timeout: 10 min
// Quorum loss reported, end to end on localkube with the operator of this checkout (image, CRDs,
// RBAC; the Deployment cairn-operator restarted on it): a 3-member cluster with keys loses two
// members the way lost nodes with local volumes lose them (their claims and pods deleted at once: the
// StatefulSet brings the pods back on empty volumes, where the member entrypoint finds its started
// member's data gone and starts no server). Through the real server's answers without quorum (the
// linearizable member list refused, the survivor's own list and Status served) the operator records
// status.quorumLoss: db-1 and db-2 lost, db-0 the survivor with its applied index and a revision at
// least that of the last write; Available=False/NoQuorum (the 5-minute QuorumLost threshold and its
// Warning Event are the planner units' business: test/operator/quorum.test.ts). While it lasts the
// operator changes nothing: the survivor still lists three members and no membership Event follows.
// The survivor's Maintenance.Snapshot streams whole without quorum (what a recovery starts from).
// Then the opt-in recovery (plan/recover.ts), with the operator's --quorum-loss-after-s at 40 s
// (CAIRN_QUORUM_LOSS_AFTER_S on the Deployment, removed again at the end): an approval naming another
// member is refused (Recovered=False/RecoveryRefused, a Warning Event) and never acted on; once
// QuorumLost is reported, the approval cairn.dev/approve-quorum-recovery=<the best survivor shown>
// makes the survivor's snapshot (on its own volume) a new one-member cluster with a new token and
// cluster id, db-1 and db-2 rejoin as learners on new volumes and are promoted: three voters, every
// key written before the loss readable (the survivor had them all), a write after it works, the
// stages as Events, Recovered=True naming the revision kept, and the annotation removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { localkube } from '../../harness/localkube.js';
import { pollUntil } from '../../harness/poll.js';
import { EtcdClient, unaryOk } from '../../harness/client.js';
import { EtcdAdmin } from '../../../operator/etcd/index.js';
import { SnapshotSource } from '../../../operator/backup/index.js';
import type { SnapshotResponse } from '../../../proto/gen/etcdserverpb.js';
import { asObj, availableWith, clusterManifest, condOf, deployCheckoutOperator, eventsOf, needLocalkube, statusOf, waitStatus, type Obj } from './lk-status.js';

const APPROVE = 'cairn.dev/approve-quorum-recovery';
const QUORUM_LOSS_AFTER_S = 40;
const MEMBERSHIP_EVENTS = new Set(['MemberAdded', 'MemberPromoted', 'MemberRemoved', 'PodDeleted', 'VolumeDeleted', 'Scaled']);

test('quorum loss on localkube: reported with the survivor ranked, nothing changed until approved; the approved recovery', { timeout: 10 * 60_000 }, async (t) => {
  if (!needLocalkube(t)) return;
  const lk = await localkube();
  await lk.kubectlOk(['-n', 'cairn-system', 'set', 'env', 'deploy/cairn-operator', `CAIRN_QUORUM_LOSS_AFTER_S=${String(QUORUM_LOSS_AFTER_S)}`]);
  t.after(async () => {
    await lk.kubectl(['-n', 'cairn-system', 'set', 'env', 'deploy/cairn-operator', 'CAIRN_QUORUM_LOSS_AFTER_S-']);
  });
  await deployCheckoutOperator(lk, t);
  const ns = `ql-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  try {
    const t0 = Date.now();
    await lk.apply(clusterManifest(ns, 'db', 'Delete'));
    await waitStatus(lk, ns, 'db', 'Available, 3 voters', availableWith(3), 240_000);
    t.diagnostic(`Available with 3 voters in ${String(Date.now() - t0)} ms`);
    const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'db-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const c = new EtcdClient(`${ip}:2379`);
    let lastRev = 0;
    try {
      for (let i = 0; i < 50; i++) lastRev = Number(asObj((await unaryOk(c, 'KV', 'Put', { key: Buffer.from(`k/${String(i)}`), value: Buffer.from(`v${String(i)}`) }))['header'])['revision']);
    } finally {
      c.close();
    }
    const ip0 = (await lk.kubectlOk(['get', 'pod', '-n', ns, 'db-0', '-o', 'jsonpath={.status.podIP}'])).trim();

    // Two members lost with their volumes, at once (one at a time, the operator would replace the first).
    const lostAt = new Date().toISOString();
    await lk.kubectlOk(['delete', 'pvc', '-n', ns, 'data-db-1', 'wal-db-1', 'data-db-2', 'wal-db-2', '--wait=false']);
    await lk.kubectlOk(['delete', 'pod', '-n', ns, 'db-1', 'db-2', '--wait=false']);

    const st = await waitStatus(lk, ns, 'db', 'status.quorumLoss with db-1 and db-2 lost', (s) => {
      const q = asObj(s['quorumLoss']);
      return Array.isArray(q['lost']) && (q['lost'] as string[]).join(',') === 'db-1,db-2';
    }, 120_000);
    const q = asObj(st['quorumLoss']);
    t.diagnostic(`quorumLoss: ${JSON.stringify(q)}`);
    const survivors = q['survivors'] as Obj[];
    assert.equal(survivors.length, 1);
    const s0 = survivors[0] ?? {};
    assert.equal(s0['name'], 'db-0');
    assert.ok(Number(s0['raftAppliedIndex']) > 0, 'the survivor reports its applied index');
    assert.ok(Number(s0['revision']) >= lastRev, `survivor revision ${String(s0['revision'])} >= last write ${String(lastRev)}`);
    assert.ok(Number(q['lastKnownRevision']) >= lastRev);
    assert.ok(String(q['since']) >= lostAt.slice(0, 19), `since ${String(q['since'])} after the loss at ${lostAt}`);
    assert.equal(q['confirmedAt'], undefined, `not confirmed before the ${String(QUORUM_LOSS_AFTER_S)} s threshold`);
    const avail = condOf(st, 'Available');
    assert.equal(avail?.status, 'False');
    assert.equal(avail?.reason, 'NoQuorum');
    assert.match(avail?.message ?? '', /2 of 3 voting members not answering since .*db-1, db-2.*QuorumLost in \d+ s/);

    // While it lasts nothing changes: over 20 s every status keeps the record, the survivor lists three
    // members on its own, and the operator records no membership Event after the loss.
    const admin = new EtcdAdmin(`${ip0}:2379`, 3000);
    try {
      const until = Date.now() + 20_000;
      await pollUntil('20 s of quorum loss observed unchanged', async () => {
        const now = await statusOf(lk, ns, 'db');
        assert.ok(now['quorumLoss'] !== undefined, 'the record stays while the loss lasts');
        assert.notEqual(condOf(now, 'Available')?.status, 'True');
        const own = await admin.memberList(false);
        assert.equal(own.members.length, 3, 'the survivor still lists three members');
        await assert.rejects(admin.memberList(true), 'the linearizable list is refused without quorum');
        return Date.now() >= until;
      }, 40_000, 2000);
    } finally {
      admin.close();
    }
    // What a recovery would start from: the survivor still streams its whole database without quorum.
    const src = new SnapshotSource(`${ip0}:2379`);
    try {
      let bytes = 0;
      let remaining = -1;
      for await (const m of src.snapshot()) {
        const r = m as SnapshotResponse;
        bytes += r.blob.length;
        remaining = Number(r.remainingBytes);
      }
      t.diagnostic(`the survivor's snapshot without quorum: ${String(bytes)} bytes`);
      assert.ok(bytes > 0);
      assert.equal(remaining, 0, 'the stream ends with its last message');
    } finally {
      src.close();
    }
    // An approval naming another member (and before the loss is confirmed): refused, never acted on.
    await lk.kubectlOk(['annotate', 'etcdcluster', '-n', ns, 'db', `${APPROVE}=db-1`]);
    const refused = await waitStatus(lk, ns, 'db', 'Recovered=False/RecoveryRefused', (s) => condOf(s, 'Recovered')?.reason === 'RecoveryRefused', 60_000);
    t.diagnostic(`refused: ${condOf(refused, 'Recovered')?.message ?? ''}`);
    assert.equal(refused['recovery'], undefined);
    await lk.kubectlOk(['annotate', 'etcdcluster', '-n', ns, 'db', `${APPROVE}-`]);
    await waitStatus(lk, ns, 'db', 'the refusal dropped with the annotation', (s) => s['recoveryRefusal'] === undefined, 60_000);
    const after = (await eventsOf(lk, ns, 'db')).filter((e) => e.time >= lostAt && MEMBERSHIP_EVENTS.has(e.reason));
    assert.deepEqual(after, [], 'no membership or volume step after the loss');
    assert.ok((await eventsOf(lk, ns, 'db')).some((e) => e.reason === 'RecoveryRefused' && /=db-1 refused/.test(e.note)), 'a Warning Event for the refused approval');

    // QuorumLost confirmed; approve the survivor it shows as best.
    const lost = await waitStatus(lk, ns, 'db', 'Available=False/QuorumLost', (s) => condOf(s, 'Available')?.reason === 'QuorumLost' && asObj(s['quorumLoss'])['confirmedAt'] !== undefined, 120_000);
    const best = String(asObj(((asObj(lost['quorumLoss'])['survivors'] ?? []) as Obj[])[0])['name']);
    assert.equal(best, 'db-0');
    const oldClusterId = String(lost['clusterId']);
    const approvedAt = Date.now();
    await lk.kubectlOk(['annotate', 'etcdcluster', '-n', ns, 'db', `${APPROVE}=${best}`]);
    const done = await waitStatus(lk, ns, 'db', 'recovered: 3 voters, Recovered=True', (s) => availableWith(3)(s) && asObj(s['recovery'])['stage'] === 'Completed' && condOf(s, 'Recovered')?.status === 'True', 240_000);
    t.diagnostic(`recovered in ${String(Date.now() - approvedAt)} ms: ${JSON.stringify(done['recovery'])}`);
    const rec = asObj(done['recovery']);
    const snap = asObj(rec['snapshot']);
    assert.ok(Number(snap['revision']) >= lastRev, `revision kept ${String(snap['revision'])} >= last write ${String(lastRev)}`);
    assert.equal(snap['pvc'], 'data-db-0');
    assert.notEqual(done['clusterId'], oldClusterId, 'a new cluster id');
    assert.equal(done['clusterToken'], rec['token']);
    assert.notEqual(rec['token'], rec['previousToken']);
    assert.match(condOf(done, 'Recovered')?.message ?? '', new RegExp(`recovered from db-0 .*revision ${String(snap['revision'])} kept`));
    const ann = (await lk.kubectlOk(['get', 'etcdcluster', '-n', ns, 'db', '-o', `jsonpath={.metadata.annotations.cairn\.dev/approve-quorum-recovery}`])).trim();
    assert.equal(ann, '', 'the approval consumed');
    const reasons = (await eventsOf(lk, ns, 'db')).map((e) => e.reason);
    for (const r of ['RecoveryApproved', 'RecoverySnapshotTaken', 'RecoveryRestarting', 'RecoveryRestored', 'RecoveryCompleted']) assert.ok(reasons.includes(r), `Event ${r} in ${reasons.join(', ')}`);

    // Every write acknowledged before the loss is there; a write after the recovery works.
    const c2 = new EtcdClient(`${ip}:2379`);
    try {
      const r = await unaryOk(c2, 'KV', 'Range', { key: Buffer.from('k/'), range_end: Buffer.from('k0') });
      const kvs = new Map(((r['kvs'] ?? []) as Obj[]).map((kv) => [(kv['key'] as Buffer).toString('utf8'), (kv['value'] as Buffer).toString('utf8')]));
      for (let i = 0; i < 50; i++) assert.equal(kvs.get(`k/${String(i)}`), `v${String(i)}`, `k/${String(i)} after the recovery`);
      const rev = Number(asObj((await unaryOk(c2, 'KV', 'Put', { key: Buffer.from('after/1'), value: Buffer.from('x') }))['header'])['revision']);
      assert.ok(rev > Number(snap['revision']), `a write after the recovery at revision ${String(rev)}`);
      const got = await unaryOk(c2, 'KV', 'Range', { key: Buffer.from('after/1') });
      assert.equal((((got['kvs'] ?? []) as Obj[])[0]?.['value'] as Buffer | undefined)?.toString('utf8'), 'x');
    } finally {
      c2.close();
    }
  } finally {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});
