// Membership through etcdctl 3.4 on 3- and 5-member clusters: member list (table and JSON),
// member add (voter and --learner), starting the new member with the ETCD_INITIAL_CLUSTER etcdctl
// printed, member promote (refused while the learner is behind, as etcd refuses it; accepted once
// it caught up), member update, member remove (the removed process exits; restarted on its old
// data dir it exits again instead of serving), endpoint status (leader flag, raft term and index,
// learner flag) and move-leader, plus the learner's refusals and the errors etcd gives for unknown
// ids, duplicate peer URLs and bad transferees.
//
// Expected outputs are etcd 3.4.23's, normalised (ids, the cluster id, URLs and endpoints become
// <id:m1>, <cluster>, <peer:m1>, <client:m1>, <ep:m1>); CAIRN_DIFF_TARGET=etcd runs the test against
// the reference etcd (validates it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetKind } from '../harness/procs.js';
import { withCluster } from '../harness/cluster.js';
import type { Cluster, ClusterMember } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { Normalizer, ctl, hexId, parseStatusTable } from './ctl.js';
import type { CtlOutcome } from './ctl.js';

const TARGET = targetKind();
/** etcd refuses reconfiguration while a voter's peer connection is younger than 5 s (strict reconfig check). */
const UNHEALTHY = 'Error: etcdserver: unhealthy cluster';
const RECONFIG_RETRY_MS = 20_000;
const REMOVED_EXIT_MS = 20_000;

interface Expect {
  exit?: number;
  /** Exact stdout after normalisation. */
  stdout?: string;
  /** A line stderr must contain (after normalisation). */
  errorLine?: string;
}

/** Asserts an etcdctl outcome; the message names the command, what etcd answers and what came back. */
function check(n: Normalizer, o: CtlOutcome, want: Expect): void {
  const out = n.apply(o.stdout);
  const err = n.apply(o.stderr);
  const problems: string[] = [];
  if (want.exit !== undefined && o.exit !== want.exit) problems.push(`exit ${String(o.exit)}, etcd: ${String(want.exit)}`);
  if (want.stdout !== undefined && out !== want.stdout) problems.push(`stdout ${JSON.stringify(out)}, etcd: ${JSON.stringify(want.stdout)}`);
  if (want.errorLine !== undefined && !err.split('\n').includes(want.errorLine)) problems.push(`stderr ${JSON.stringify(err)} lacks etcd's ${JSON.stringify(want.errorLine)}`);
  if (problems.length > 0) assert.fail(`${n.apply(o.cmd)}\n  ${problems.join('\n  ')}\n  (raw stdout ${JSON.stringify(o.stdout)}, stderr ${JSON.stringify(o.stderr)})`);
}

/** Runs a reconfiguration, retrying while etcd's strict reconfig check answers "unhealthy cluster". */
async function reconfig(endpoints: () => readonly string[], args: readonly string[]): Promise<CtlOutcome> {
  const deadline = Date.now() + RECONFIG_RETRY_MS;
  for (;;) {
    const o = await ctl(endpoints(), args);
    if (!o.stderr.split('\n').includes(UNHEALTHY) || Date.now() > deadline) return o;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Polls `etcdctl member list` (etcd 3.4 answers it from the local member's state, which may not
 * have applied the last change yet) until its normalised, sorted lines equal `want`.
 */
async function expectMembers(n: Normalizer, endpoints: readonly string[], want: readonly string[]): Promise<void> {
  let got: string[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    got = memberTable(n, await ctl(endpoints, ['member', 'list']));
    if (JSON.stringify(got) === JSON.stringify([...want].sort()) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(got, [...want].sort(), 'etcdctl member list (normalised, sorted)');
}

/** The table `etcdctl member list` prints, normalised, lines sorted; also checks etcd's order (ascending id). */
function memberTable(n: Normalizer, o: CtlOutcome): string[] {
  check(n, o, { exit: 0 });
  const raw = o.stdout.split('\n').filter((l) => l !== '');
  const ids = raw.map((l) => BigInt(`0x${l.split(', ')[0] ?? '0'}`));
  const sorted = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  assert.deepEqual(ids, sorted, `member list not in ascending id order (etcd sorts by id):\n${o.stdout}`);
  return raw.map((l) => n.apply(l)).sort();
}

function started(m: ClusterMember, learner = false): string {
  return `<id:${m.name}>, started, ${m.name}, <peer:${m.name}>, <client:${m.name}>, ${String(learner)}`;
}

/** Normalised JSON: placeholders that stood for bare numbers become strings. */
function normJson(n: Normalizer, s: string): unknown {
  return JSON.parse(n.apply(s).replace(/(:\s*)(<[a-z-]+(?::[^>]+)?>)/g, '$1"$2"'));
}

interface JsonMember {
  ID: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

function expectedJsonMember(m: ClusterMember, learner = false): JsonMember {
  const j: JsonMember = { ID: `<id:${m.name}>`, name: m.name, peerURLs: [`<peer:${m.name}>`], clientURLs: [`<client:${m.name}>`] };
  if (learner) j.isLearner = true;
  return j;
}

/** `endpoint status` (table and JSON) on the given members: one leader, the expected learners, one term. */
async function checkEndpointStatus(c: Cluster, n: Normalizer, members: readonly ClusterMember[], learners: ReadonlySet<string>): Promise<string> {
  const leader = await c.leader();
  // Every member reports its own view: wait until all applied the last change (same term, the
  // expected learner flags) before looking through etcdctl.
  await pollUntil(
    'members agreeing on term and learner flags',
    async () => {
      const sts = await Promise.all(members.map((m) => c.status(m.name)));
      return sts.every((s, i) => s !== undefined && s.raftTerm === sts[0]?.raftTerm && s.isLearner === learners.has(members[i]?.name ?? ''));
    },
    10_000,
    50,
  );
  const eps = members.map((m) => m.endpoint);
  const table = await ctl(eps, ['endpoint', 'status']);
  check(n, table, { exit: 0 });
  const rows = parseStatusTable(table.stdout);
  assert.deepEqual(
    rows.map((r) => `${n.apply(r.endpoint)} ${n.apply(r.id)} leader=${String(r.isLeader)} learner=${String(r.isLearner)} errors=${r.errors}`),
    members.map((m) => `<ep:${m.name}> <id:${m.name}> leader=${String(m.name === leader.name)} learner=${String(learners.has(m.name))} errors=`),
    `endpoint status:\n${n.apply(table.stdout)}`,
  );
  const terms = new Set(rows.map((r) => r.raftTerm));
  assert.equal(terms.size, 1, `one raft term: ${n.apply(table.stdout)}`);
  for (const r of rows) {
    assert.ok(r.raftTerm >= 1 && r.raftIndex >= 1 && r.raftAppliedIndex >= 1, `term/index/applied positive: ${n.apply(table.stdout)}`);
    assert.ok(/^\d+\.\d+\.\d+/.test(r.version), `version is semver: ${r.version}`);
    assert.ok(/^\d+(\.\d+)? [kMG]?B$/.test(r.dbSize), `db size like "20 kB": ${r.dbSize}`);
  }

  const json = await ctl(eps, ['endpoint', 'status', '-w', 'json']);
  check(n, json, { exit: 0 });
  const parsed = normJson(n, json.stdout) as Array<{ Endpoint: string; Status: Record<string, unknown> }>;
  assert.equal(parsed.length, members.length);
  parsed.forEach((e, i) => {
    const m = members[i];
    assert.ok(m !== undefined);
    const st = e.Status;
    const header = st['header'] as Record<string, unknown>;
    assert.equal(e.Endpoint, `<ep:${m.name}>`);
    assert.equal(header['member_id'], `<id:${m.name}>`);
    assert.equal(header['cluster_id'], '<cluster>');
    assert.equal(st['leader'], `<id:${leader.name}>`, `${m.name}'s Status.leader`);
    assert.equal(st['isLearner'], learners.has(m.name) ? true : undefined, `${m.name}'s Status.isLearner (omitted when false)`);
    assert.equal(st['raftTerm'], rows[0]?.raftTerm);
    assert.equal(typeof st['raftAppliedIndex'], 'number');
  });
  return leader.name;
}

/**
 * `member add <name> --peer-urls=<its peer url> [--learner]`; checks etcd's output and returns the
 * ETCD_INITIAL_CLUSTER it printed (raw) after learning the new id.
 */
async function memberAdd(c: Cluster, n: Normalizer, name: string, learner: boolean): Promise<{ member: ClusterMember; initialCluster: string }> {
  const m = await c.reserve(name);
  const o = await reconfig(() => c.endpoints(), ['member', 'add', name, `--peer-urls=${m.peerUrl}`, ...(learner ? ['--learner'] : [])]);
  const idm = /^Member +([0-9a-f]+) added to cluster/.exec(o.stdout);
  assert.ok(idm?.[1] !== undefined, `${o.cmd}: exit ${String(o.exit)} stdout ${JSON.stringify(o.stdout)} stderr ${JSON.stringify(o.stderr)}`);
  n.learn(name, BigInt(`0x${idm[1]}`).toString());
  const icm = /^ETCD_INITIAL_CLUSTER="([^"]*)"$/m.exec(o.stdout);
  const ic = icm?.[1] ?? '';
  const sortedIc = ic.split(',').map((x) => n.apply(x)).sort().join(',');
  const wantIc = [...c.members]
    .filter((x) => x.proc !== undefined || x.name === name)
    .map((x) => `${x.name}=<peer:${x.name}>`)
    .sort()
    .join(',');
  assert.equal(sortedIc, wantIc, `${o.cmd}: ETCD_INITIAL_CLUSTER`);
  const normalizedIc = n.apply(ic);
  check(n, o, {
    exit: 0,
    stdout:
      `Member <id:${name}> added to cluster <cluster>\n\nETCD_NAME="${name}"\nETCD_INITIAL_CLUSTER="${normalizedIc}"\n` +
      `ETCD_INITIAL_ADVERTISE_PEER_URLS="<peer:${name}>"\nETCD_INITIAL_CLUSTER_STATE="existing"\n`,
  });
  return { member: m, initialCluster: ic };
}

/** Promotes a learner; retries while etcd refuses it as not in sync (it is catching up). */
async function promote(n: Normalizer, name: string, voters: () => readonly string[]): Promise<void> {
  const id = hexId(n.idOf(name));
  let last: CtlOutcome | undefined;
  await pollUntil(
    `promotion of ${name}`,
    async () => {
      last = await reconfig(voters, ['member', 'promote', id]);
      if (last.exit === 0) return true;
      check(n, last, { exit: 1, errorLine: 'Error: etcdserver: can only promote a learner member which is in sync with leader' });
      return false;
    },
    30_000,
    200,
  );
  assert.ok(last !== undefined);
  check(n, last, { exit: 0, stdout: `Member <id:${name}> promoted in cluster <cluster>\n` });
}

/** Removes a member through etcdctl; the process must exit by itself; restarted on its data it must not stay up. */
async function removeAndCheckGone(c: Cluster, n: Normalizer, name: string): Promise<void> {
  const m = c.member(name);
  assert.ok(m.proc !== undefined, `${name} runs`);
  const o = await reconfig(() => c.endpoints().filter((e) => e !== m.endpoint), ['member', 'remove', hexId(n.idOf(name))]);
  check(n, o, { exit: 0, stdout: `Member <id:${name}> removed from cluster <cluster>\n` });
  await c.waitExit(name, REMOVED_EXIT_MS).catch((e: unknown) => {
    assert.fail(`${name} removed: etcd's removed member exits at once; ${e instanceof Error ? e.message : String(e)}`);
  });
  // Restarted with its old data dir, a removed member must not rejoin or keep serving: etcd learns
  // from its peers that it was removed and exits (with status 0) before serving.
  const again = await c.tryStart(name, REMOVED_EXIT_MS);
  if (again.proc !== undefined) {
    // It got as far as serving: it must then stop, or at least refuse every request.
    const gone = await c.waitExit(name, REMOVED_EXIT_MS).then(
      () => true,
      () => false,
    );
    if (!gone) {
      const put = await ctl([m.endpoint], ['put', 'removed-member-write', 'x'], { commandTimeout: '5s' });
      const tail = again.proc.stderrLines().slice(-15).join('\n');
      await c.kill9(name);
      assert.notEqual(put.exit, 0, `${name}, removed, restarted on its old data dir, still runs after ${String(REMOVED_EXIT_MS)} ms and accepts writes (etcd exits before serving); last lines:\n${tail}`);
    }
  } else {
    assert.match(again.error ?? '', /exited before ready/, `restart of removed ${name}: ${again.error ?? ''}`);
  }
}

test(`membership on a 3-member cluster via etcdctl (${TARGET})`, { timeout: 170_000 }, async (t) => {
  await withCluster(TARGET, { size: 3, name: 'm' }, async (c) => {
    const n = new Normalizer(c);
    await n.refresh();
    const [m1, m2, m3] = c.members;
    assert.ok(m1 !== undefined && m2 !== undefined && m3 !== undefined);
    const all = (): string[] => c.endpoints();

    // member list: table and JSON.
    await expectMembers(n, all(), [started(m1), started(m2), started(m3)]);
    const listJson = await ctl(all(), ['member', 'list', '-w', 'json']);
    check(n, listJson, { exit: 0 });
    const lj = normJson(n, listJson.stdout) as { header: Record<string, unknown>; members: JsonMember[] };
    assert.equal(lj.header['cluster_id'], '<cluster>');
    assert.match(String(lj.header['member_id']), /^<id:m[123]>$/);
    assert.ok(typeof lj.header['raft_term'] === 'number' && lj.header['raft_term'] >= 1, 'raft_term');
    assert.equal(lj.header['revision'], undefined, 'member list header has no revision (etcd leaves it 0)');
    assert.deepEqual([...lj.members].sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '')), [expectedJsonMember(m1), expectedJsonMember(m2), expectedJsonMember(m3)]);

    await checkEndpointStatus(c, n, [m1, m2, m3], new Set());
    check(n, await ctl(all(), ['put', 'k1', 'v1']), { exit: 0, stdout: 'OK\n' });

    // A learner: added, listed as unstarted, refused promotion while it has nothing.
    const t0 = Date.now();
    const { member: m4, initialCluster } = await memberAdd(c, n, 'm4', true);
    t.diagnostic(`member add --learner accepted after ${String(Date.now() - t0)} ms`);
    await expectMembers(n, all(), [started(m1), started(m2), started(m3), `<id:m4>, unstarted, , <peer:m4>, , true`]);
    check(n, await ctl(all(), ['member', 'promote', hexId(n.idOf('m4'))]), {
      exit: 1,
      errorLine: 'Error: etcdserver: can only promote a learner member which is in sync with leader',
    });
    await c.startNew('m4', initialCluster, 'existing');
    await checkEndpointStatus(c, n, [m1, m2, m3, m4], new Set(['m4']));
    // A learner serves serializable reads only.
    await pollUntil('k1 on the learner', async () => (await ctl([m4.endpoint], ['get', 'k1', '--consistency=s'])).stdout === 'k1\nv1\n', 20_000, 100);
    const learnerOnly = 'Error: etcdserver: rpc not supported for learner';
    check(n, await ctl([m4.endpoint], ['put', 'k2', 'v2']), { exit: 1, errorLine: learnerOnly });
    check(n, await ctl([m4.endpoint], ['get', 'k1']), { exit: 1, errorLine: learnerOnly });
    check(n, await ctl([m4.endpoint], ['member', 'list']), { exit: 1, errorLine: learnerOnly });
    check(n, await ctl([m4.endpoint], ['endpoint', 'health']), {
      exit: 1,
      stdout: '',
      errorLine: '<endpoint> is unhealthy: failed to commit proposal: etcdserver: rpc not supported for learner',
    });
    check(n, await ctl([m4.endpoint], ['member', 'promote', hexId(n.idOf('m4'))]), { exit: 1, errorLine: learnerOnly });

    // Promoted through the voters once it caught up.
    await promote(n, 'm4', () => [m1, m2, m3].map((m) => m.endpoint));
    await expectMembers(n, all(), [started(m1), started(m2), started(m3), started(m4)]);
    await checkEndpointStatus(c, n, [m1, m2, m3, m4], new Set());

    // Errors etcd gives.
    check(n, await ctl(all(), ['member', 'promote', hexId(n.idOf('m1'))]), { exit: 1, errorLine: 'Error: etcdserver: can only promote a learner member' });
    check(n, await ctl(all(), ['member', 'promote', 'abc']), { exit: 1, errorLine: 'Error: etcdserver: member not found' });
    check(n, await ctl(all(), ['member', 'remove', 'abc']), { exit: 1, errorLine: 'Error: etcdserver: member not found' });
    check(n, await ctl(all(), ['member', 'update', 'abc', '--peer-urls=http://127.0.0.1:1']), { exit: 1, errorLine: 'Error: etcdserver: member not found' });
    check(n, await reconfig(all, ['member', 'add', 'dup', `--peer-urls=${m2.peerUrl}`]), { exit: 1, errorLine: 'Error: etcdserver: Peer URLs already exists' });

    // member update: to another member's URL (refused), to the same port spelled "localhost", back.
    const id1 = hexId(n.idOf('m1'));
    check(n, await ctl(all(), ['member', 'update', id1, `--peer-urls=${m2.peerUrl}`]), { exit: 1, errorLine: 'Error: etcdserver: Peer URLs already exists' });
    const localhostUrl = m1.peerUrl.replace('127.0.0.1', 'localhost');
    check(n, await ctl(all(), ['member', 'update', id1, `--peer-urls=${localhostUrl}`]), { exit: 0, stdout: `Member <id:m1> updated in cluster <cluster>\n` });
    await expectMembers(n, all(), [
      started(m1).replace('<peer:m1>', '<peer-localhost:m1>'),
      started(m2),
      started(m3),
      started(m4),
    ]);
    check(n, await ctl(all(), ['member', 'update', id1, `--peer-urls=${m1.peerUrl}`]), { exit: 0, stdout: `Member <id:m1> updated in cluster <cluster>\n` });
    await expectMembers(n, all(), [started(m1), started(m2), started(m3), started(m4)]);

    // move-leader: a bad transferee; only followers given; to a follower.
    const lead = await c.leader();
    const follower = c.running().find((m) => m.name !== lead.name);
    assert.ok(follower !== undefined);
    check(n, await ctl(all(), ['move-leader', 'ffff']), { exit: 1, errorLine: 'Error: etcdserver: bad leader transferee' });
    check(n, await ctl([follower.endpoint], ['move-leader', hexId(n.idOf(lead.name))]), {
      exit: 128,
      errorLine: "Error: no leader endpoint given at [<endpoint>]",
    });
    check(n, await ctl(all(), ['move-leader', hexId(n.idOf(follower.name))]), {
      exit: 0,
      stdout: `Leadership transferred from <id:${lead.name}> to <id:${follower.name}>\n`,
    });
    assert.equal((await c.leader()).name, follower.name, 'leader after move-leader');
    const members4 = [m1, m2, m3, m4];
    assert.equal(await checkEndpointStatus(c, n, members4, new Set()), follower.name);

    // member remove: the removed process exits; its old data dir does not bring it back.
    await removeAndCheckGone(c, n, 'm4');
    await expectMembers(n, c.endpoints(), [started(m1), started(m2), started(m3)]);
    check(n, await ctl(c.endpoints(), ['put', 'k3', 'v3']), { exit: 0, stdout: 'OK\n' });
    await c.waitConverged(30_000);
    for (const m of c.running()) check(n, await ctl([m.endpoint], ['get', 'k', '--prefix', '--consistency=s']), { exit: 0, stdout: 'k1\nv1\nk3\nv3\n' });
  });
});

test(`membership on a 5-member cluster via etcdctl (${TARGET})`, { timeout: 170_000 }, async (t) => {
  await withCluster(TARGET, { size: 5, name: 'n' }, async (c) => {
    const n = new Normalizer(c);
    await n.refresh();
    const five = [...c.members];
    const all = (): string[] => c.endpoints();
    await expectMembers(n, all(), five.map((m) => started(m)).sort());
    await checkEndpointStatus(c, n, five, new Set());

    // A learner joins, catches up and is promoted: six voters.
    const { member: n6, initialCluster } = await memberAdd(c, n, 'n6', true);
    await c.startNew('n6', initialCluster, 'existing');
    await checkEndpointStatus(c, n, [...five, n6], new Set(['n6']));
    await promote(n, 'n6', () => five.map((m) => m.endpoint));
    await checkEndpointStatus(c, n, [...five, n6], new Set());

    // Leadership to the newcomer, then the leader itself is removed: it exits, the others elect one.
    const before = await c.leader();
    check(n, await ctl(all(), ['move-leader', hexId(n.idOf('n6'))]), {
      exit: 0,
      stdout: `Leadership transferred from <id:${before.name}> to <id:n6>\n`,
    });
    assert.equal((await c.leader()).name, 'n6');
    const tRemove = Date.now();
    await removeAndCheckGone(c, n, 'n6');
    const after = await c.leader();
    assert.notEqual(after.name, 'n6');
    t.diagnostic(`leader ${after.name} after the removal of the leader n6 (${String(Date.now() - tRemove)} ms incl. the restart check)`);

    // A voter joins directly (not as a learner); a follower is removed.
    const { member: n7, initialCluster: ic7 } = await memberAdd(c, n, 'n7', false);
    await c.startNew('n7', ic7, 'existing');
    await expectMembers(n, all(), [...five, n7].map((m) => started(m)).sort());
    const victim = five.find((m) => m.name !== after.name);
    assert.ok(victim !== undefined);
    await removeAndCheckGone(c, n, victim.name);
    const remaining = [...five.filter((m) => m !== victim), n7];
    await expectMembers(n, c.endpoints(), remaining.map((m) => started(m)).sort());
    await checkEndpointStatus(c, n, remaining, new Set());
    check(n, await ctl(c.endpoints(), ['put', 'five', 'ok']), { exit: 0, stdout: 'OK\n' });
    await c.waitConverged(30_000);
    const hashes = await c.hashKV();
    assert.equal(new Set([...hashes.values()].map((h) => h.hash)).size, 1, 'HashKV equal on all members');
    for (const m of c.running()) check(n, await ctl([m.endpoint], ['get', 'five', '--consistency=s']), { exit: 0, stdout: 'five\nok\n' });
  });
});
