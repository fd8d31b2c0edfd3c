// kube-apiserver on a 3-member cluster, the reference etcd 3.6 and then Cairn (--etcd-servers lists all three): readyz/livez green
// with their etcd checks; then the leader is killed (SIGKILL) while kubectl writes ConfigMaps from
// two loops: the apiserver recovers (writes succeed again on the new leader, readyz green again) and
// every create kubectl saw acknowledged is stored, in the apiserver's view and on every member once
// the killed one is back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from '../harness/cluster.js';
import { startBackend, startKubeApiserver, type KubeApiserver } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import type { TargetKind } from '../harness/procs.js';

const WRITERS = 2;
const ACKS_BEFORE_KILL = 20;
const ACKS_AFTER_KILL = 20;

function scenario(kind: TargetKind): void {
  describe(`kube-apiserver on a 3-member ${kind} cluster`, { timeout: 300_000 }, () => {
    let cluster: Cluster;
    let api: KubeApiserver;

    before(async () => {
      cluster = await startBackend(kind, 3);
      api = await startKubeApiserver({ etcdServers: cluster.members.map((m) => m.clientUrl) });
    });

    after(async () => {
      await api.stop();
      await cluster.close();
    });

    it('readyz and livez are green, their etcd checks included', async () => {
      for (const path of ['/readyz?verbose', '/livez?verbose']) {
        const r = await api.request('GET', path);
        assert.equal(r.status, 200, `${path}: ${r.body}`);
        const checks = r.body.split('\n').filter((l) => /^\[[+-]\]/.test(l));
        assert.deepEqual(checks.filter((l) => l.startsWith('[-]')), [], r.body);
        assert.ok(checks.includes('[+]etcd ok'), r.body);
        if (path.startsWith('/readyz')) assert.ok(checks.includes('[+]etcd-readiness ok'), r.body);
      }
    });

    it('kill the leader while kubectl writes: the apiserver recovers and nothing acknowledged is lost', async (t) => {
      const ns = await api.kubectl(['create', 'namespace', 'lk']);
      assert.equal(ns.code, 0, ns.stderr);
      const acked: string[] = [];
      const failures: string[] = [];
      let killedAt = 0;
      let firstAckAfterKill = 0;
      let stop = false;
      const writer = async (w: number): Promise<void> => {
        for (let i = 0; !stop; i++) {
          const name = `w${String(w)}-${String(i).padStart(4, '0')}`;
          const r = await api.kubectl(['-n', 'lk', 'create', 'configmap', name, `--from-literal=i=${String(i)}`, '--request-timeout=20s'], { timeoutMs: 40_000 });
          if (r.code === 0) {
            acked.push(name);
            if (killedAt !== 0 && firstAckAfterKill === 0) firstAckAfterKill = Date.now();
          } else {
            failures.push(`${name}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
            // The create may have landed although kubectl saw an error: the next name is a new one.
          }
        }
      };
      const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
      try {
        await pollUntil(`${ACKS_BEFORE_KILL} creates before the kill`, () => Promise.resolve(acked.length >= ACKS_BEFORE_KILL), 60_000, 50);
        const leader = await cluster.leader();
        const before = acked.length;
        killedAt = Date.now();
        await cluster.kill9(leader.name);
        t.diagnostic(`killed leader ${leader.name} after ${String(before)} acknowledged creates`);
        await pollUntil(`${ACKS_AFTER_KILL} creates after the kill`, () => Promise.resolve(acked.length >= before + ACKS_AFTER_KILL), 90_000, 100);
        stop = true;
        await Promise.all(writers);
        t.diagnostic(`first acknowledged create ${String(firstAckAfterKill - killedAt)} ms after the kill; ${String(acked.length)} acknowledged, ${String(failures.length)} refused/failed: ${failures.slice(0, 5).join(' | ')}`);

        // The apiserver is healthy again on the two remaining members.
        await pollUntil('readyz green after the kill', async () => (await api.request('GET', '/readyz')).status === 200, 60_000, 250);
        const listed = await api.kubectl(['-n', 'lk', 'get', 'configmaps', '-o', 'name']);
        assert.equal(listed.code, 0, listed.stderr);
        const stored = new Set(listed.stdout.trim().split('\n').map((l) => l.replace(/^configmap\//, '')));
        const lost = acked.filter((n) => !stored.has(n));
        assert.deepEqual(lost, [], 'every acknowledged create is stored');

        // The killed member comes back, catches up, and holds the same data as the others.
        await cluster.start(leader.name);
        await cluster.waitConverged(60_000);
        const hashes = await cluster.hashKV();
        assert.equal(new Set([...hashes.values()].map((h) => h.hash)).size, 1, `HashKV differs: ${JSON.stringify([...hashes])}`);
        const m = cluster.member(leader.name);
        const raw = await cluster.client(m.name).unary('KV', 'Range', {
          key: Buffer.from('/registry/configmaps/lk/'),
          range_end: Buffer.from('/registry/configmaps/lk0'),
          keys_only: true,
          serializable: true,
        });
        assert.ok(raw.ok);
        const keys = new Set(((raw.value['kvs'] ?? []) as Array<{ key: Buffer }>).map((kv) => kv.key.toString().replace('/registry/configmaps/lk/', '')));
        assert.deepEqual(acked.filter((n) => !keys.has(n)), [], 'the restarted member holds every acknowledged create');
      } finally {
        stop = true;
        await Promise.allSettled(writers);
      }
    });
  });
}

// etcd 3.6 first: the same steps pass on the reference (its recovery time is the figure to compare).
scenario('etcd');
scenario('cairn');
