// kube-apiserver 1.34 (built from Go modules, hack/install-kube.sh) on a 1-member backend, driven
// by the real kubectl: the same scenario runs on the reference etcd 3.6 first (which proves the
// assertions) and then on Cairn. Objects only: no controllers run, so a Deployment makes no Pods.
//   readyz/livez with their etcd checks; namespaces, configmaps, secrets, deployments, services;
//   a CRD and its custom resources; server-side apply and its conflicts; optimistic-concurrency
//   conflicts (stale resourceVersion); `kubectl get --chunk-size` over 5,000 objects (the paging
//   requests seen in kubectl's -v=6 log, remainingItemCount exact); watches from a resourceVersion
//   (kubectl get --raw ...?watch=1&resourceVersion=RV and kubectl get -w); Events deleted by their
//   lease (--event-ttl); the apiserver's compaction loop (--etcd-compaction-interval) compacting the
//   backend with no error in its log.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Cluster } from '../harness/cluster.js';
import { EtcdClient } from '../harness/client.js';
import { kubeBins, startBackend, startKubeApiserver, type KubeApiserver, type KubectlRun } from '../harness/kube.js';
import { pollUntil, pool } from '../harness/poll.js';
import { trackChild, type TargetKind } from '../harness/procs.js';

const EVENT_TTL_S = 4;
const COMPACTION_INTERVAL_S = 4;
const BULK = 5000;
const CHUNK = 500;

function ok(r: KubectlRun, what: string): string {
  assert.equal(r.code, 0, `${what}: kubectl exit ${r.code}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function json(s: string): Record<string, unknown> {
  return JSON.parse(s) as Record<string, unknown>;
}

function meta(o: Record<string, unknown>): Record<string, unknown> {
  return (o['metadata'] ?? {}) as Record<string, unknown>;
}

/** Streams a kubectl command's stdout lines until `done(lines)` says enough, then kills it. */
function kubectlStream(api: KubeApiserver, args: readonly string[], done: (lines: string[]) => boolean, timeoutMs: number): Promise<string[]> {
  const { kubectl } = kubeBins();
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, ['--kubeconfig', api.kubeconfig, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let finished = false;
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(t);
      child.kill('SIGKILL');
      if (err !== undefined) reject(err);
      else resolve(lines);
    };
    const t = setTimeout(() => finish(new Error(`kubectl ${args.join(' ')}: condition not met in ${timeoutMs} ms; lines: ${lines.join(' | ')}; stderr: ${stderr}`)), timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr += c));
    child.stdout.on('data', (c: string) => {
      partial += c;
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
      }
      if (done(lines)) finish();
    });
    child.on('close', (code) => finish(done(lines) ? undefined : new Error(`kubectl ${args.join(' ')} exited ${String(code)} early; stderr: ${stderr}`)));
  });
}

const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.cairn.test
spec:
  group: cairn.test
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string}
`;

function scenario(kind: TargetKind): void {
  describe(`kube-apiserver + kubectl on ${kind}`, { timeout: 300_000 }, () => {
    let backend: Cluster;
    let api: KubeApiserver;
    let etcd: EtcdClient;
    const k = (args: readonly string[], stdin?: string): Promise<KubectlRun> => api.kubectl(args, stdin !== undefined ? { stdin } : {});

    before(async () => {
      backend = await startBackend(kind, 1);
      const m = backend.members[0];
      assert.ok(m !== undefined);
      etcd = new EtcdClient(m.endpoint);
      api = await startKubeApiserver({
        etcdServers: backend.members.map((x) => x.clientUrl),
        extraArgs: [`--event-ttl=${String(EVENT_TTL_S)}s`, `--etcd-compaction-interval=${String(COMPACTION_INTERVAL_S)}s`],
      });
    });

    after(async () => {
      await api.stop();
      etcd.close();
      await backend.close();
    });

    it('readyz and livez are green, their etcd checks included', async () => {
      for (const path of ['/readyz?verbose', '/livez?verbose']) {
        const r = await api.request('GET', path);
        assert.equal(r.status, 200, `${path}: ${r.body}`);
        const checks = r.body.split('\n').filter((l) => /^\[[+-]\]/.test(l));
        assert.ok(checks.length > 10, r.body);
        assert.deepEqual(checks.filter((l) => l.startsWith('[-]')), [], r.body);
        assert.ok(checks.includes('[+]etcd ok'), r.body);
        if (path.startsWith('/readyz')) assert.ok(checks.includes('[+]etcd-readiness ok'), r.body);
      }
      for (const path of ['/readyz/etcd', '/readyz/etcd-readiness', '/livez/etcd']) {
        const r = await api.request('GET', path);
        assert.equal(r.status, 200, `${path}: ${r.body}`);
        assert.equal(r.body, 'ok');
      }
    });

    it('namespaces, configmaps, secrets, deployments, services', async () => {
      ok(await k(['create', 'namespace', 'objs']), 'create ns');
      ok(await k(['-n', 'objs', 'create', 'configmap', 'cm1', '--from-literal=a=1', '--from-literal=b=2']), 'create cm');
      ok(await k(['-n', 'objs', 'create', 'secret', 'generic', 's1', '--from-literal=password=hunter2']), 'create secret');
      ok(await k(['-n', 'objs', 'create', 'deployment', 'd1', '--image=registry.invalid/none:1', '--replicas=3']), 'create deployment');
      ok(await k(['-n', 'objs', 'create', 'service', 'clusterip', 'svc1', '--tcp=80:8080']), 'create service');
      const names = ok(await k(['-n', 'objs', 'get', 'configmap,secret,deployment,service', '-o', 'name']), 'get').trim().split('\n').sort();
      assert.deepEqual(names, ['configmap/cm1', 'deployment.apps/d1', 'secret/s1', 'service/svc1']);
      const cm = json(ok(await k(['-n', 'objs', 'get', 'configmap', 'cm1', '-o', 'json']), 'get cm'));
      assert.deepEqual(cm['data'], { a: '1', b: '2' });
      const s = json(ok(await k(['-n', 'objs', 'get', 'secret', 's1', '-o', 'json']), 'get secret'));
      assert.equal(Buffer.from(String((s['data'] as Record<string, string>)['password']), 'base64').toString(), 'hunter2');
      const d = json(ok(await k(['-n', 'objs', 'get', 'deployment', 'd1', '-o', 'json']), 'get deployment'));
      assert.equal((d['spec'] as Record<string, unknown>)['replicas'], 3);
      const svc = json(ok(await k(['-n', 'objs', 'get', 'service', 'svc1', '-o', 'json']), 'get svc'));
      const clusterIp = String((svc['spec'] as Record<string, unknown>)['clusterIP']);
      assert.match(clusterIp, /^10\.96\./, 'a cluster IP from --service-cluster-ip-range (allocated through the store)');
      // Updates move the resourceVersion; the RV is the backend's mod revision of the key.
      const rv1 = Number(meta(cm)['resourceVersion']);
      ok(await k(['-n', 'objs', 'label', 'configmap', 'cm1', 'tier=one']), 'label');
      const cm2 = json(ok(await k(['-n', 'objs', 'get', 'configmap', 'cm1', '-o', 'json']), 'get cm'));
      const rv2 = Number(meta(cm2)['resourceVersion']);
      assert.ok(rv2 > rv1, `${rv2} > ${rv1}`);
      const raw = await etcd.unary('KV', 'Range', { key: Buffer.from('/registry/configmaps/objs/cm1') });
      assert.ok(raw.ok);
      const kvs = (raw.value['kvs'] ?? []) as Array<Record<string, unknown>>;
      assert.equal(kvs.length, 1);
      assert.equal(Number(kvs[0]?.['mod_revision']), rv2, 'resourceVersion = mod_revision in the store');
      ok(await k(['-n', 'objs', 'scale', 'deployment', 'd1', '--replicas=5']), 'scale');
      const d2 = json(ok(await k(['-n', 'objs', 'get', 'deployment', 'd1', '-o', 'json']), 'get deployment'));
      assert.equal((d2['spec'] as Record<string, unknown>)['replicas'], 5);
      ok(await k(['-n', 'objs', 'delete', 'secret', 's1']), 'delete secret');
      const gone = await k(['-n', 'objs', 'get', 'secret', 's1']);
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /NotFound|not found/);
      // A second create of the same name is refused (Txn compare mod_revision == 0 fails).
      const dup = await k(['-n', 'objs', 'create', 'configmap', 'cm1']);
      assert.notEqual(dup.code, 0);
      assert.match(dup.stderr, /AlreadyExists|already exists/);
      // With no namespace controller running, a deleted namespace stays Terminating (a finalizer).
      ok(await k(['delete', 'namespace', 'objs', '--wait=false']), 'delete ns');
      const ns = json(ok(await k(['get', 'namespace', 'objs', '-o', 'json']), 'get ns'));
      assert.equal((ns['status'] as Record<string, unknown>)['phase'], 'Terminating');
    });

    it('a CRD and its custom resources', async () => {
      ok(await k(['apply', '-f', '-'], CRD), 'apply crd');
      ok(await k(['wait', '--for=condition=Established', 'crd/widgets.cairn.test', '--timeout=60s']), 'crd established');
      ok(await k(['create', 'namespace', 'crs']), 'ns');
      // The discovery cache of kubectl may lag the new type for a moment: retry until it is served.
      await pollUntil('widgets served', async () => (await k(['-n', 'crs', 'get', 'widgets'])).code === 0, 30_000, 200);
      for (let i = 1; i <= 3; i++) {
        ok(await k(['apply', '-f', '-'], `apiVersion: cairn.test/v1\nkind: Widget\nmetadata: {name: w${i}, namespace: crs}\nspec: {size: ${i}, color: red}\n`), `cr ${i}`);
      }
      const bad = await k(['apply', '-f', '-'], 'apiVersion: cairn.test/v1\nkind: Widget\nmetadata: {name: w0, namespace: crs}\nspec: {size: 0}\n');
      assert.notEqual(bad.code, 0, 'schema validation refuses size 0');
      assert.match(bad.stderr, /spec\.size/);
      ok(await k(['-n', 'crs', 'patch', 'widget', 'w2', '--type=merge', '-p', '{"spec":{"color":"blue"}}']), 'patch');
      const list = json(ok(await k(['-n', 'crs', 'get', 'widgets', '-o', 'json']), 'list'));
      const items = (list['items'] as Array<Record<string, unknown>>).map((o) => [meta(o)['name'], (o['spec'] as Record<string, unknown>)['color']]);
      assert.deepEqual(items, [['w1', 'red'], ['w2', 'blue'], ['w3', 'red']]);
      ok(await k(['-n', 'crs', 'delete', 'widget', 'w3']), 'delete cr');
      const names = ok(await k(['-n', 'crs', 'get', 'widgets', '-o', 'name']), 'names').trim().split('\n');
      assert.deepEqual(names, ['widget.cairn.test/w1', 'widget.cairn.test/w2']);
      const raw = await etcd.unary('KV', 'Range', { key: Buffer.from('/registry/cairn.test/widgets/crs/'), range_end: Buffer.from('/registry/cairn.test/widgets/crs0'), keys_only: true });
      assert.ok(raw.ok);
      assert.equal(Number(raw.value['count']), 2, 'two custom resources stored under /registry/<group>/<plural>/');
    });

    it('server-side apply: managers, conflicts, --force-conflicts', async () => {
      ok(await k(['create', 'namespace', 'ssa']), 'ns');
      const doc = (v: string): string => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: ssa}\ndata: {owner: "${v}"}\n`;
      ok(await k(['apply', '--server-side', '--field-manager=alice', '-f', '-'], doc('alice')), 'alice applies');
      const conflict = await k(['apply', '--server-side', '--field-manager=bob', '-f', '-'], doc('bob'));
      assert.notEqual(conflict.code, 0, 'bob conflicts with alice on data.owner');
      assert.match(conflict.stderr, /conflict/i);
      assert.match(conflict.stderr, /alice/);
      ok(await k(['apply', '--server-side', '--field-manager=bob', '--force-conflicts', '-f', '-'], doc('bob')), 'bob forces');
      const cm = json(ok(await k(['-n', 'ssa', 'get', 'configmap', 'shared', '-o', 'json', '--show-managed-fields']), 'get'));
      assert.deepEqual(cm['data'], { owner: 'bob' });
      const managers = (meta(cm)['managedFields'] as Array<Record<string, unknown>>).map((f) => f['manager']);
      assert.ok(managers.includes('bob'), JSON.stringify(managers));
    });

    it('optimistic concurrency: an update with a stale resourceVersion is refused', async () => {
      ok(await k(['create', 'namespace', 'occ']), 'ns');
      ok(await k(['-n', 'occ', 'create', 'configmap', 'c', '--from-literal=v=0']), 'create');
      const stale = json(ok(await k(['-n', 'occ', 'get', 'configmap', 'c', '-o', 'json']), 'get'));
      ok(await k(['-n', 'occ', 'patch', 'configmap', 'c', '--type=merge', '-p', '{"data":{"v":"1"}}']), 'patch moves the RV');
      (stale['data'] as Record<string, string>)['v'] = 'stale';
      const r = await k(['replace', '-f', '-'], JSON.stringify(stale));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /the object has been modified; please apply your changes to the latest version and try again/);
      // The same through the API: 409 Conflict, and the stored value is the patched one.
      const put = await api.request('PUT', '/api/v1/namespaces/occ/configmaps/c', stale);
      assert.equal(put.status, 409, put.body);
      assert.equal(json(put.body)['reason'], 'Conflict');
      const now = json(ok(await k(['-n', 'occ', 'get', 'configmap', 'c', '-o', 'json']), 'get'));
      assert.deepEqual(now['data'], { v: '1' });
      // A precondition on the uid fails too (a delete of an object that was replaced).
      const del = await api.request('DELETE', '/api/v1/namespaces/occ/configmaps/c', { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion: String(meta(stale)['resourceVersion']) } });
      assert.equal(del.status, 409, del.body);
    });

    it(`list with --chunk-size over ${BULK} objects`, { timeout: 240_000 }, async () => {
      ok(await k(['create', 'namespace', 'bulk']), 'ns');
      const names = Array.from({ length: BULK }, (_, i) => `cm-${String(i).padStart(5, '0')}`);
      await pool(names, 16, async (name) => {
        const r = await api.request('POST', '/api/v1/namespaces/bulk/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: name } });
        assert.equal(r.status, 201, r.body);
      });
      const r = await k(['-n', 'bulk', 'get', 'configmaps', `--chunk-size=${String(CHUNK)}`, '-o', 'name', '-v=6']);
      const listed = ok(r, 'chunked get').trim().split('\n');
      assert.deepEqual(listed, names.map((n) => `configmap/${n}`), 'every object once, in key order');
      const pages = r.stderr.split('\n').filter((l) => /verb="GET" url="https:[^"]+\/namespaces\/bulk\/configmaps\?[^"]*limit=500/.test(l));
      assert.equal(pages.length, BULK / CHUNK, `one request per chunk:\n${pages.join('\n')}`);
      assert.equal(pages.filter((l) => /continue=/.test(l)).length, BULK / CHUNK - 1);
      // The raw pages: remainingItemCount counts down exactly (RangeResponse.count must be exact).
      let cont = '';
      let seen = 0;
      let rv = '';
      for (let page = 0; ; page++) {
        const q = `/api/v1/namespaces/bulk/configmaps?limit=${String(CHUNK)}${cont !== '' ? `&continue=${encodeURIComponent(cont)}` : ''}`;
        const res = await api.request('GET', q);
        assert.equal(res.status, 200, res.body);
        const body = json(res.body);
        const m = meta(body);
        const items = body['items'] as unknown[];
        seen += items.length;
        if (page === 0) rv = String(m['resourceVersion']);
        else assert.equal(String(m['resourceVersion']), rv, 'every page is read at the first page\'s revision');
        cont = typeof m['continue'] === 'string' ? m['continue'] : '';
        if (cont === '') {
          assert.equal(m['remainingItemCount'], undefined);
          break;
        }
        assert.equal(m['remainingItemCount'], BULK - seen, `page ${String(page)}`);
      }
      assert.equal(seen, BULK);
    });

    it('watch from a resourceVersion (kubectl get --raw ?watch and kubectl get -w)', async () => {
      ok(await k(['create', 'namespace', 'w']), 'ns');
      const list = json(ok(await k(['get', '--raw', '/api/v1/namespaces/w/configmaps']), 'list'));
      const rv0 = String(meta(list)['resourceVersion']);
      ok(await k(['-n', 'w', 'create', 'configmap', 'a', '--from-literal=x=1']), 'create');
      ok(await k(['-n', 'w', 'patch', 'configmap', 'a', '--type=merge', '-p', '{"data":{"x":"2"}}']), 'patch');
      ok(await k(['-n', 'w', 'delete', 'configmap', 'a']), 'delete');
      // Everything after rv0 is replayed in order, with increasing resourceVersions.
      const lines = await kubectlStream(api, ['get', '--raw', `/api/v1/namespaces/w/configmaps?watch=1&resourceVersion=${rv0}`], (ls) => ls.length >= 3, 30_000);
      const evs = lines.slice(0, 3).map((l) => json(l));
      assert.deepEqual(evs.map((e) => e['type']), ['ADDED', 'MODIFIED', 'DELETED']);
      const rvs = evs.map((e) => Number(meta(e['object'] as Record<string, unknown>)['resourceVersion']));
      assert.ok(rvs[0] !== undefined && rvs[0] > Number(rv0) && rvs[0] < (rvs[1] ?? 0) && (rvs[1] ?? 0) < (rvs[2] ?? 0), `resourceVersions ${rvs.join(',')} after ${rv0}`);
      // kubectl get -w: the list (configmap/pre), then a change made once the list was printed
      // (kubectl watches from its list's resourceVersion, so the create arrives as an event).
      ok(await k(['-n', 'w', 'create', 'configmap', 'pre']), 'create pre');
      let created = false;
      const seen = await kubectlStream(
        api,
        ['-n', 'w', 'get', 'configmaps', '-w', '-o', 'name'],
        (ls) => {
          if (!created && ls.some((l) => l.includes('configmap/pre'))) {
            created = true;
            k(['-n', 'w', 'create', 'configmap', 'b']).then((r) => ok(r, 'create b'), () => undefined);
          }
          return ls.includes('configmap/b');
        },
        30_000,
      );
      assert.deepEqual(seen.slice(0, 2), ['configmap/pre', 'configmap/b'], 'the list, then the event');
    });

    it('Events expire with their lease (--event-ttl)', async () => {
      ok(await k(['create', 'namespace', 'ev']), 'ns');
      const ev = `apiVersion: v1\nkind: Event\nmetadata: {name: e1, namespace: ev}\ninvolvedObject: {kind: ConfigMap, name: x, namespace: ev}\nreason: Testing\nmessage: expires\ntype: Normal\n`;
      ok(await k(['create', '-f', '-'], ev), 'create event');
      ok(await k(['-n', 'ev', 'get', 'event', 'e1']), 'event is there');
      const raw = await etcd.unary('KV', 'Range', { key: Buffer.from('/registry/events/ev/e1') });
      assert.ok(raw.ok);
      const lease = ((raw.value['kvs'] ?? []) as Array<Record<string, string | undefined>>)[0]?.['lease'] ?? '0';
      assert.notEqual(lease, '0', 'the event key is attached to a lease');
      const ttl = await etcd.unary('Lease', 'LeaseTimeToLive', { ID: lease });
      assert.ok(ttl.ok);
      assert.ok(Number(ttl.value['grantedTTL']) >= EVENT_TTL_S, JSON.stringify(ttl.value));
      // kube-apiserver never renews or revokes it: the backend's expiry deletes the key.
      await pollUntil('the event deleted by its lease', async () => (await k(['-n', 'ev', 'get', 'event', 'e1'])).code !== 0, 30_000, 250);
      const after = await etcd.unary('KV', 'Range', { key: Buffer.from('/registry/events/ev/e1') });
      assert.ok(after.ok);
      assert.equal(Number(after.value['count'] ?? 0), 0);
      const ttl2 = await etcd.unary('Lease', 'LeaseTimeToLive', { ID: lease });
      assert.ok(ttl2.ok);
      assert.equal(Number(ttl2.value['TTL']), -1, 'the lease is gone');
    });

    it('the apiserver compacts the backend periodically, with no error in its log', async () => {
      // compact.go: every interval, a Txn on compact_rev_key, then Compact(the revision seen last time).
      await pollUntil(
        'a compaction by kube-apiserver',
        async () => {
          const r = await etcd.unary('KV', 'Range', { key: Buffer.from('/registry/namespaces/default'), revision: 2 });
          return !r.ok && /required revision has been compacted/.test(r.details);
        },
        6 * COMPACTION_INTERVAL_S * 1000,
        250,
      );
      const key = await etcd.unary('KV', 'Range', { key: Buffer.from('compact_rev_key') });
      assert.ok(key.ok);
      const kv = ((key.value['kvs'] ?? []) as Array<Record<string, unknown>>)[0];
      assert.ok(kv !== undefined, 'compact_rev_key written by the apiserver');
      assert.ok(Number(kv['version']) >= 2, 'the compactor advanced its key at least twice');
      // Lists and watches still work after compactions, and no compaction error was logged.
      ok(await k(['get', 'namespaces']), 'list after compaction');
      const bad = api.logLines().filter((l) => /^E/.test(l) && /compact/i.test(l));
      assert.deepEqual(bad, []);
    });

    it('consistent lists are served by the watch cache after RequestProgress (no fallback to the store)', async () => {
      // The feature check read Status.version (Cairn: 3.6.8 >= 3.5.13) and enabled RequestWatchProgress:
      // a list with resourceVersion="" asks the backend for the current revision, then sends
      // progress requests on the cache's watch stream until the cache has caught up with it.
      for (let i = 0; i < 5; i++) ok(await k(['get', 'configmaps', '-A', '-o', 'name']), 'consistent list');
      const m = await api.request('GET', '/metrics');
      assert.equal(m.status, 200);
      const rows = m.body.split('\n').filter((l) => l.startsWith('apiserver_watch_cache_consistent_read_total{'));
      const count = (pred: (l: string) => boolean): number => rows.filter(pred).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
      assert.ok(count((l) => l.includes('fallback="false"') && l.includes('resource="configmaps"') && l.includes('success="true"')) >= 5, rows.join('\n'));
      assert.equal(count((l) => l.includes('fallback="true"') || l.includes('success="false"')), 0, rows.join('\n'));
    });

    it('the apiserver log has no storage errors', () => {
      const errors = api.logLines().filter((l) => /^E/.test(l) && /etcd|storage|watch|cacher|grpc/i.test(l));
      assert.deepEqual(errors, []);
    });
  });
}

scenario('etcd');
scenario('cairn');
