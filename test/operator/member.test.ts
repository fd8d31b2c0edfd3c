// The member entrypoint (operator/member/main.ts) as real processes on loopback, each running a
// real Cairn server, with the bootstrap grant read from real Pod objects on a real kube-apiserver
// (no kubelet: the Pods are only records). Checks the start decisions of decide.ts end to end:
//   - without the grant and with nobody listing it, a member waits ("waiting to be added");
//   - pod 0 with the grant bootstraps a one-member cluster;
//   - a learner added for pod 1's peer URL joins with --initial-cluster-state existing and is promoted;
//   - a removed member's server stops; its entrypoint moves the data aside and waits, then joins anew
//     (new member id) when re-added, without crash-looping;
//   - pod 0 with its volume wiped and the grant revoked never bootstraps a second cluster: it sees
//     its started member listed and waits for the operator to replace it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '../harness/cluster.js';
import { startBackend, startKubeApiserver, type KubeApiserver } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { freePort, REPO_ROOT, tempDir } from '../harness/procs.js';
import { EtcdAdmin, type ListedMember } from '../../operator/etcd/index.js';
import { decide } from '../../operator/member/decide.js';
import { readRestoreOrder } from '../../operator/member/restore.js';

const ENTRY = join(REPO_ROOT, 'dist', 'operator', 'member', 'main.js');
const TOKEN = 'c-uid-test';

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  agentPort: number;
  dataMount: string;
  walMount: string;
  proc?: ChildProcess;
  out: string[];
}

const groups = new Set<number>();
process.on('exit', () => {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

describe('member entrypoint (real servers, grant from a real kube-apiserver)', () => {
  let backend: Cluster;
  let api: KubeApiserver;
  const members: Member[] = [];
  const endpoints = (): string => members.map((m) => `127.0.0.1:${String(m.clientPort)}`).join(',');

  const peerURL = (m: Member): string => `http://127.0.0.1:${String(m.peerPort)}`;

  function start(m: Member): void {
    const env = {
      ...process.env,
      POD_NAME: m.name,
      POD_NAMESPACE: 'default',
      CAIRN_CLUSTER: 'c',
      CAIRN_PEER_SERVICE: 'c-peer',
      CAIRN_CLIENT_SERVICE: 'c-client',
      CAIRN_CLUSTER_TOKEN: TOKEN,
      CAIRN_DATA_DIR: m.dataMount,
      CAIRN_WAL_DIR: m.walMount,
      CAIRN_AGENT_PORT: String(m.agentPort),
      CAIRN_SERVER_ARGS: JSON.stringify(['--heartbeat-interval=50', '--election-timeout=500']),
      CAIRN_PEER_URL: peerURL(m),
      CAIRN_CLIENT_URL: `http://127.0.0.1:${String(m.clientPort)}`,
      CAIRN_LISTEN_PEER_URL: peerURL(m),
      CAIRN_LISTEN_CLIENT_URL: `http://127.0.0.1:${String(m.clientPort)}`,
      CAIRN_MEMBERS_ENDPOINTS: endpoints(),
      KUBECONFIG: api.kubeconfig,
    };
    const p = spawn(process.execPath, [ENTRY], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (p.pid !== undefined) groups.add(p.pid);
    m.out.length = 0;
    const take = (c: Buffer): void => {
      m.out.push(...c.toString('utf8').split('\n'));
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    m.proc = p;
  }

  async function stop(m: Member): Promise<void> {
    const p = m.proc;
    if (p === undefined || p.exitCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await done;
    if (p.pid !== undefined) groups.delete(p.pid);
  }

  const logged = (m: Member, s: string): boolean => m.out.some((l) => l.includes(s));
  /** pollUntil, with both members' last log lines in the failure. */
  const poll = (what: string, cond: () => Promise<boolean>, timeoutMs: number, everyMs: number): Promise<void> =>
    pollUntil(what, cond, timeoutMs, everyMs).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${members.map((m) => `--- ${m.name}:\n${m.out.filter((l) => l !== '').slice(-25).join('\n')}`).join('\n')}`);
    });

  async function list(): Promise<ListedMember[]> {
    for (const m of members) {
      const c = new EtcdAdmin(`127.0.0.1:${String(m.clientPort)}`, 2000);
      try {
        return (await c.memberList()).members;
      } catch {
        // next
      } finally {
        c.close();
      }
    }
    return [];
  }

  async function admin<T>(fn: (c: EtcdAdmin) => Promise<T>): Promise<T> {
    const c = new EtcdAdmin(`127.0.0.1:${String(members[0]?.clientPort ?? 0)}`, 5000);
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  }

  async function annotate(pod: string, value: string | null): Promise<void> {
    const r = await api.request('PATCH', `/api/v1/namespaces/default/pods/${pod}`, { metadata: { annotations: { 'cairn.dev/bootstrap-token': value } } }, { contentType: 'application/merge-patch+json' });
    assert.equal(r.status, 200, r.body);
  }

  before(async () => {
    backend = await startBackend('cairn', 1);
    api = await startKubeApiserver({ etcdServers: backend.members.map((x) => x.clientUrl) });
    // No controller-manager here: the namespace's default ServiceAccount is made by hand.
    const sa = await api.request('POST', '/api/v1/namespaces/default/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    assert.ok(sa.status === 201 || sa.status === 409, sa.body);
    for (let i = 0; i < 2; i++) {
      const dir = tempDir(`cairn-member-${String(i)}-`);
      members.push({ name: `c-${String(i)}`, clientPort: await freePort(), peerPort: await freePort(), agentPort: await freePort(), dataMount: join(dir, 'data'), walMount: join(dir, 'wal'), out: [] });
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `c-${String(i)}`, namespace: 'default' }, spec: { containers: [{ name: 'cairn', image: 'localhost/cairn:dev' }] } };
      const r = await api.request('POST', '/api/v1/namespaces/default/pods', pod);
      assert.equal(r.status, 201, r.body);
    }
  });

  after(async () => {
    for (const m of members) await stop(m);
    await api.stop();
    await backend.close();
  });

  it('waits without the grant; bootstraps pod 0 with it', async () => {
    const [m0, m1] = members;
    assert.ok(m0 !== undefined && m1 !== undefined);
    start(m0);
    start(m1);
    await poll('both waiting to be added', () => Promise.resolve(logged(m0, 'waiting to be added') && logged(m1, 'waiting to be added')), 20_000, 100);
    const live = await fetch(`http://127.0.0.1:${String(m1.agentPort)}/livez`);
    assert.equal(live.status, 200, 'a waiting member stays live');
    await annotate('c-0', 'some-other-token');
    await poll('a grant for another token ignored (no start)', () => Promise.resolve(logged(m0, 'waiting to be added')), 2000, 100);
    assert.ok(!logged(m0, 'bootstrapping'));
    await annotate('c-0', TOKEN);
    await poll('pod 0 bootstraps and answers', async () => (await list()).length === 1, 30_000, 200);
    assert.ok(logged(m0, 'bootstrapping a new one-member cluster'));
    assert.ok(!logged(m1, 'bootstrapping'), 'pod 1 never bootstraps');
    assert.equal((await fetch(`http://127.0.0.1:${String(m0.agentPort)}/livez`)).status, 200);
  });

  it('a learner added for pod 1 joins, catches up and is promoted', async () => {
    const m1 = members[1];
    assert.ok(m1 !== undefined);
    await admin((c) => c.put('before-join', 'v'));
    const id = await admin((c) => c.memberAddLearner(peerURL(m1)));
    await poll('pod 1 joined (named in the list)', async () => (await list()).some((m) => m.id === id && m.name === 'c-1'), 30_000, 200);
    await poll(
      'promotion of the caught-up learner',
      async () => {
        try {
          await admin((c) => c.memberPromote(id));
          return true;
        } catch {
          return false;
        }
      },
      30_000,
      250,
    );
    const l = await list();
    assert.equal(l.filter((m) => !m.isLearner).length, 2);
    const c1 = new EtcdAdmin(`127.0.0.1:${String(m1.clientPort)}`);
    try {
      await poll('pod 1 serves reads as a voter', async () => (await c1.get('before-join').catch(() => undefined)) === 'v', 20_000, 200);
    } finally {
      c1.close();
    }
  });

  it('a removed member moves its data aside and waits; re-added it joins with a new id', async () => {
    const m1 = members[1];
    assert.ok(m1 !== undefined);
    const old = (await list()).find((m) => m.name === 'c-1');
    assert.ok(old !== undefined);
    // The leader refuses to remove a voter until the rest count as active ("unhealthy cluster").
    await poll('removal accepted', async () => admin((c) => c.memberRemove(old.id)).then(() => true, () => false), 20_000, 250);
    await poll('pod 1 moved its data aside and waits', () => Promise.resolve(logged(m1, 'moved the data of a removed member aside') && m1.out.filter((l) => l.includes('waiting to be added')).length >= 2), 30_000, 200);
    assert.equal(m1.proc?.exitCode, null, 'the entrypoint did not exit (no crash-loop)');
    assert.ok(readdirSync(m1.dataMount).some((n) => n.startsWith('removed-')));
    const id = await admin((c) => c.memberAddLearner(peerURL(m1)));
    assert.notEqual(id, old.id);
    await poll('pod 1 rejoined as the new member', async () => (await list()).some((m) => m.id === id && m.name === 'c-1'), 30_000, 200);
  });

  it('pod 0 with a wiped volume and the grant revoked never bootstraps a second cluster', async () => {
    const [m0, m1] = members;
    assert.ok(m0 !== undefined && m1 !== undefined);
    // Make pod 1 a voter first so the cluster keeps its data without pod 0's.
    const id1 = (await list()).find((m) => m.name === 'c-1')?.id ?? '';
    await poll(
      'pod 1 promoted',
      async () => {
        await admin((c) => c.memberPromote(id1)).catch(() => undefined);
        // Pod 1's own view must show the promotion before pod 0 stops (it alone answers then).
        const c = new EtcdAdmin(`127.0.0.1:${String(m1.clientPort)}`, 2000);
        try {
          return (await c.memberList(false)).members.some((m) => m.id === id1 && !m.isLearner);
        } catch {
          return false;
        } finally {
          c.close();
        }
      },
      30_000,
      250,
    );
    await annotate('c-0', null);
    await stop(m0);
    rmSync(m0.dataMount, { recursive: true, force: true });
    rmSync(m0.walMount, { recursive: true, force: true });
    start(m0);
    await poll('pod 0 says its data is gone and waits', () => Promise.resolve(logged(m0, 'its data is gone; waiting for the operator to replace it')), 30_000, 200).catch((e: unknown) => {
      throw new Error(`${String(e)}\npod 0 log:\n${m0.out.slice(-20).join("\n")}\npod 1 log:\n${m1.out.slice(-30).join("\n")}`);
    });
    assert.ok(!logged(m0, 'bootstrapping'));
    const state = (await (await fetch(`http://127.0.0.1:${String(m0.agentPort)}/state`)).json()) as { state: string };
    assert.equal(state.state, 'dataLost', 'the agent tells the operator the data is gone');
    assert.ok(!existsSync(join(m0.dataMount, 'member-data', 'member')), 'no server started on the wiped volume');
  });
});

describe('member start decision for a cluster restored from a backup (decide.ts, pure)', () => {
  const base = { podName: 'c-0', peerURL: 'http://c-0.c-peer.ns.svc:2380', token: TOKEN, hasData: false, marker: false, grant: undefined, members: undefined };

  it('another cluster\'s data or marker on the volume is moved aside first, whatever else holds', () => {
    for (const hasData of [false, true]) {
      for (const grant of [undefined, TOKEN]) {
        assert.equal(decide({ ...base, hasData, marker: true, grant, restore: true, foreign: true }).kind, 'moveAside');
      }
    }
  });

  it('granted pod 0 with an empty volume restores instead of bootstrapping; without the grant it waits', () => {
    const d = decide({ ...base, grant: TOKEN, restore: true, foreign: false, members: [] });
    assert.equal(d.kind, 'restore');
    assert.ok(d.kind === 'restore' && d.initialCluster === `c-0=${base.peerURL}`);
    assert.equal(decide({ ...base, restore: true, foreign: false }).kind, 'wait');
    assert.equal(decide({ ...base, grant: TOKEN, restore: false, members: [] }).kind, 'bootstrap');
  });

  it('after the restore (data and this cluster\'s marker) it starts; other pods join when listed', () => {
    assert.equal(decide({ ...base, hasData: true, marker: true, restore: true, foreign: false }).kind, 'start');
    const listed = [{ id: 'a1', name: 'c-0', peerURLs: ['http://c-0.c-peer.ns.svc:2380'] }, { id: 'b2', name: '', peerURLs: ['http://c-1.c-peer.ns.svc:2380'] }];
    assert.equal(decide({ ...base, podName: 'c-1', peerURL: 'http://c-1.c-peer.ns.svc:2380', restore: true, foreign: false, members: listed }).kind, 'join');
  });

  it('without a restore, data found on the volume starts as before (no token check)', () => {
    assert.equal(decide({ ...base, hasData: true, marker: true, foreign: true }).kind, 'start');
  });

  it('CAIRN_RESTORE is parsed at the gate with errors that name the field', () => {
    const ok = { uri: 's3://b/k', bucket: 'b', key: 'k', region: 'us-east-1', forcePathStyle: true, sha256: 'ab'.repeat(32), sizeBytes: 4128, endpoint: 'http://10.0.0.1:8333' };
    assert.deepEqual(readRestoreOrder({ CAIRN_RESTORE: JSON.stringify(ok) }), ok);
    assert.equal(readRestoreOrder({}), undefined);
    assert.throws(() => readRestoreOrder({ CAIRN_RESTORE: JSON.stringify({ ...ok, key: '' }) }), /CAIRN_RESTORE\.key must be a non-empty string/);
    assert.throws(() => readRestoreOrder({ CAIRN_RESTORE: JSON.stringify({ ...ok, sizeBytes: -1 }) }), /CAIRN_RESTORE\.sizeBytes must be a positive integer/);
  });
});
