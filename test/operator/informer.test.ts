// The operator's informers against a real kube-apiserver 1.34 (on Cairn): every watch carries
// timeoutSeconds and is resumed from its resourceVersion when the API server ends it (no re-list), and
// a watch whose connection dies without a FIN or RST (a TCP proxy that silently drops everything on
// the established connections) is abandoned at its client-side deadline, so the cache catches up
// instead of stalling until TCP keepalive gives up (the operator's BackupRunner and controller read
// these caches).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import type { Cluster } from '../harness/cluster.js';
import { startBackend, startKubeApiserver, type KubeApiserver } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { freePort } from '../harness/procs.js';
import { boundedWatch } from '../../operator/kube/index.js';

/** A TCP proxy; blackhole() makes every connection open at that moment drop all data silently. */
class Proxy {
  private readonly pairs = new Set<{ a: Socket; b: Socket; dead: boolean }>();
  private server: Server | undefined;
  port = 0;
  constructor(private readonly target: number) {}
  async start(): Promise<void> {
    this.port = await freePort();
    this.server = createServer((a) => {
      const b = createConnection({ host: '127.0.0.1', port: this.target });
      const pair = { a, b, dead: false };
      this.pairs.add(pair);
      const pipe = (from: Socket, to: Socket): void => {
        from.on('data', (d: Buffer) => {
          if (!pair.dead) to.write(d);
        });
        from.on('end', () => {
          if (!pair.dead) to.end();
        });
        from.on('error', () => to.destroy());
      };
      pipe(a, b);
      pipe(b, a);
      const drop = (): void => {
        this.pairs.delete(pair);
        a.destroy();
        b.destroy();
      };
      a.on('close', drop);
      b.on('close', () => {
        if (!pair.dead) drop();
      });
    });
    await new Promise<void>((r) => this.server?.listen(this.port, '127.0.0.1', r));
  }
  blackhole(): number {
    let n = 0;
    for (const p of this.pairs) {
      if (!p.dead) n++;
      p.dead = true;
    }
    return n;
  }
  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

describe('informers: bounded watches on a real kube-apiserver', () => {
  let backend: Cluster;
  let api: KubeApiserver;
  let proxy: Proxy;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  const ns = 'informer-test';
  let lists = 0;
  let watches = 0;
  let inf: k8s.ListWatch<k8s.V1ConfigMap>;

  before(async () => {
    backend = await startBackend('cairn', 1);
    api = await startKubeApiserver({ etcdServers: backend.members.map((x) => x.clientUrl) });
    proxy = new Proxy(Number(new URL(api.url).port));
    await proxy.start();
    kc = new k8s.KubeConfig();
    kc.loadFromFile(api.kubeconfig);
    const cur = kc.getCurrentCluster();
    assert.ok(cur !== null);
    kc.clusters = kc.clusters.map((c) => (c.name === cur.name ? { ...c, server: `https://127.0.0.1:${String(proxy.port)}` } : c));
    core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const bounded = boundedWatch(kc, { minTimeoutS: 2, graceS: 2 });
    const counting = {
      watch: (...args: Parameters<k8s.Watch['watch']>) => {
        watches++;
        return bounded.watch(...args);
      },
    };
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    inf = new k8s.ListWatch<k8s.V1ConfigMap>(path, counting as k8s.Watch, async () => {
      lists++;
      return core.listNamespacedConfigMap({ namespace: ns });
    }, false);
    inf.on('error', (e: unknown) => {
      // An aborted dead watch is resumed by the ListWatch itself (boundedWatch reports it as a normal
      // end); any error reaching here would stop the informer, which the assertions below catch.
      console.error('informer error', e);
    });
    await inf.start();
  });

  after(async () => {
    await inf?.stop();
    await proxy?.stop();
    await api?.stop();
    await backend?.close();
  });

  const has = (name: string): boolean => inf.list().some((c) => c.metadata?.name === name);

  it('the API server ends each watch after its timeoutSeconds; the informer resumes from its resourceVersion without re-listing', async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'one' }, data: { a: '1' } } });
    await pollUntil('ConfigMap one in the cache', () => Promise.resolve(has('one')), 10_000, 50);
    const w0 = watches;
    await pollUntil('two more watches (the server ended the earlier ones)', () => Promise.resolve(watches >= w0 + 2), 20_000, 100);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'two' }, data: { a: '2' } } });
    await pollUntil('ConfigMap two in the cache', () => Promise.resolve(has('two')), 10_000, 50);
    assert.equal(lists, 1, 'resumed from the resourceVersion, never re-listed');
  });

  it('a watch whose connection silently dies is abandoned at its deadline and the cache catches up', async () => {
    const dead = proxy.blackhole();
    assert.ok(dead >= 1, 'the watch connection was open');
    const w0 = watches;
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'three' }, data: { a: '3' } } });
    // The blackholed watch never delivers "three" and never ends; only the client-side deadline
    // (timeoutSeconds 2–3 s + 2 s) starts a new watch on a new connection.
    await pollUntil('ConfigMap three in the cache after the dead watch was abandoned', () => Promise.resolve(has('three')), 20_000, 50);
    assert.ok(watches > w0, 'a new watch was started');
  });
});
