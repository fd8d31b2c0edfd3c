// The EtcdCluster CRD (crds/cairn.dev_etcdclusters.yaml) on a real kube-apiserver 1.34 backed by a
// 1-member Cairn: defaults are filled in, and bad manifests are refused at admission with the
// messages of operator/api/rules.ts (even replicas, malformed versions, shrinking a volume, changing
// a storage class, bad or operator-owned extraArgs, inconsistent timeouts), through kubectl, the
// status and the scale subresources; backup schedules, destinations, bootstrap and the EtcdBackup CRD.
// The TypeScript gate (problemsOf) must agree with every verdict.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Cluster } from '../harness/cluster.js';
import { startBackend, startKubeApiserver, type KubeApiserver, type KubectlRun } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { REPO_ROOT } from '../harness/procs.js';
import { backupSpecWithDefaults, MESSAGES, problemsOf, withDefaults } from '../../operator/api/index.js';

const CRD_FILE = join(REPO_ROOT, 'crds', 'cairn.dev_etcdclusters.yaml');
const BACKUP_CRD_FILE = join(REPO_ROOT, 'crds', 'cairn.dev_etcdbackups.yaml');
const dest = { s3: { bucket: 'backups', endpoint: 'http://10.200.0.1:8333', forcePathStyle: true, credentialsSecretRef: { name: 's3-creds' } } };

function manifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdCluster', metadata: { name, namespace: 'default' }, spec });
}

describe('EtcdCluster CRD admission on kube-apiserver 1.34 (Cairn backend)', () => {
  let backend: Cluster;
  let api: KubeApiserver;
  const k = (args: readonly string[], stdin?: string): Promise<KubectlRun> => api.kubectl(args, stdin !== undefined ? { stdin } : {});
  const apply = (name: string, spec: Record<string, unknown>): Promise<KubectlRun> => k(['apply', '--server-side', '-f', '-'], manifest(name, spec));
  const get = async (name: string): Promise<Record<string, unknown>> => {
    const r = await k(['get', 'etcdcluster', name, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  before(async () => {
    backend = await startBackend('cairn', 1);
    api = await startKubeApiserver({ etcdServers: backend.members.map((x) => x.clientUrl) });
    for (const f of [CRD_FILE, BACKUP_CRD_FILE]) {
      const r = await k(['apply', '--server-side', '-f', f]);
      assert.equal(r.code, 0, `CRD apply: ${r.stderr}`);
    }
    await pollUntil(
      'EtcdCluster and EtcdBackup CRDs established',
      async () => (await k(['wait', '--for=condition=Established', '--timeout=5s', 'crd/etcdclusters.cairn.dev', 'crd/etcdbackups.cairn.dev'])).code === 0,
      60_000,
      250,
    );
  });

  after(async () => {
    await api.stop();
    await backend.close();
  });

  it('fills in the defaults the operator also applies (withDefaults)', async () => {
    const r = await apply('defaults', {});
    assert.equal(r.code, 0, r.stderr);
    const o = await get('defaults');
    assert.deepEqual(withDefaults(o['spec']), o['spec'], 'the apiserver and withDefaults fill in the same values');
    const spec = o['spec'] as Record<string, unknown>;
    assert.equal(spec['replicas'], 3);
    assert.deepEqual(spec['storage'], { data: { size: '1Gi' }, wal: { size: '1Gi' }, reclaimPolicy: 'Retain' });
  });

  const refusals: Array<{ what: string; spec: Record<string, unknown>; message: string }> = [
    { what: 'even replicas', spec: { replicas: 4 }, message: MESSAGES.replicas },
    { what: 'zero replicas', spec: { replicas: 0 }, message: MESSAGES.replicas },
    { what: 'nine replicas', spec: { replicas: 9 }, message: MESSAGES.replicas },
    { what: 'a malformed version', spec: { version: 'latest' }, message: MESSAGES.version },
    { what: 'a version with a leading zero', spec: { version: '1.02.3' }, message: MESSAGES.version },
    { what: 'an extra arg that is no flag', spec: { extraArgs: ['max-txn-ops=10'] }, message: MESSAGES.extraArgFormat },
    { what: 'an extra arg the operator owns', spec: { extraArgs: ['--data-dir=/tmp/x'] }, message: MESSAGES.extraArgOwned },
    { what: 'an owned flag without a value', spec: { extraArgs: ['--max-txn-ops=256', '--initial-cluster-state'] }, message: MESSAGES.extraArgOwned },
    { what: 'an election timeout under 5 heartbeats', spec: { server: { heartbeatIntervalMs: 300, electionTimeoutMs: 1000 } }, message: MESSAGES.timeouts },
    { what: 'a size that is no quantity', spec: { storage: { data: { size: 'big' } } }, message: MESSAGES.quantity },
    { what: 'a backup schedule that does not parse', spec: { backup: { schedule: 'every minute', destination: dest } }, message: MESSAGES.schedule },
    { what: 'a backup schedule with six fields', spec: { backup: { schedule: '0 * * * * *', destination: dest } }, message: MESSAGES.schedule },
    { what: 'a minute out of range', spec: { backup: { schedule: '60 3 * * *', destination: dest } }, message: MESSAGES.schedule },
    { what: 'a defrag schedule that does not parse', spec: { defrag: { schedule: '@reboot' } }, message: MESSAGES.schedule },
    { what: 'a time zone that is no name', spec: { backup: { schedule: '@daily', timeZone: 'UTC plus 2', destination: dest } }, message: MESSAGES.timeZone },
    { what: 'a bucket name with capitals', spec: { backup: { schedule: '@daily', destination: { s3: { bucket: 'My_Bucket' } } } }, message: MESSAGES.bucket },
    { what: 'an endpoint that is no http(s) URL', spec: { backup: { schedule: '@daily', destination: { s3: { bucket: 'b12', endpoint: 's3.example.com' } } } }, message: MESSAGES.endpoint },
    { what: 'a maxAge that is no duration', spec: { backup: { schedule: '@daily', destination: dest, retention: { maxAge: '1 month' } } }, message: MESSAGES.maxAge },
    { what: 'a revision compaction with a duration', spec: { compaction: { mode: 'revision', retention: '5m' } }, message: MESSAGES.compactionRetention },
    { what: 'fromBackup with both sources', spec: { bootstrap: { fromBackup: { backupRef: { name: 'b' }, s3: { bucket: 'bkp', key: 'k' } } } }, message: MESSAGES.fromBackupOne },
    { what: 'fromBackup with no source', spec: { bootstrap: { fromBackup: {} } }, message: MESSAGES.fromBackupOne },
  ];

  for (const c of refusals) {
    it(`refuses ${c.what} at creation with the reason`, async () => {
      const r = await apply(`bad-${String(refusals.indexOf(c))}`, c.spec);
      assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
      assert.ok(r.stderr.includes(c.message), `stderr lacks "${c.message}":\n${r.stderr}`);
      assert.ok(problemsOf(withDefaults(c.spec)).includes(c.message), 'the TypeScript gate agrees');
    });
  }

  it('accepts a full valid spec, and the TypeScript gate agrees', async () => {
    const spec = {
      replicas: 5,
      version: 'v0.1.0',
      storage: { data: { size: '2Gi', storageClassName: 'fast' }, wal: { size: '512Mi', storageClassName: 'nvme' }, reclaimPolicy: 'Delete' },
      extraArgs: ['--max-txn-ops=256', '--experimental-initial-corrupt-check'],
      server: { heartbeatIntervalMs: 200, electionTimeoutMs: 2000 },
      tolerations: [{ key: 'k', operator: 'Exists' }],
      nodeSelector: { disk: 'nvme' },
    };
    const r = await apply('good', spec);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(problemsOf(withDefaults(spec)), []);
  });

  it('refuses shrinking a volume and changing a storage class on update; growing is accepted', async () => {
    const base = { replicas: 3, storage: { data: { size: '2Gi', storageClassName: 'fast' }, wal: { size: '1Gi' } } };
    assert.equal((await apply('immutable', base)).code, 0);
    const shrink = { ...base, storage: { data: { size: '1Gi', storageClassName: 'fast' }, wal: { size: '1Gi' } } };
    let r = await apply('immutable', shrink);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.shrink), r.stderr);
    assert.ok(problemsOf(withDefaults(shrink), withDefaults(base)).includes(MESSAGES.shrink));
    const klass = { ...base, storage: { data: { size: '2Gi', storageClassName: 'slow' }, wal: { size: '1Gi' } } };
    r = await apply('immutable', klass);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.storageClass), r.stderr);
    assert.ok(problemsOf(withDefaults(klass), withDefaults(base)).includes(MESSAGES.storageClass));
    const walClass = { ...base, storage: { data: { size: '2Gi', storageClassName: 'fast' }, wal: { size: '1Gi', storageClassName: 'nvme' } } };
    r = await apply('immutable', walClass);
    assert.notEqual(r.code, 0, 'setting a class where none was is a change of class');
    assert.ok(r.stderr.includes(MESSAGES.storageClass), r.stderr);
    const grow = { ...base, storage: { data: { size: '4Gi', storageClassName: 'fast' }, wal: { size: '2048Mi' } } };
    r = await apply('immutable', grow);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(problemsOf(withDefaults(grow), withDefaults(base)), []);
  });

  it('accepts backup, compaction, quota and defrag settings; fills their defaults as withDefaults does', async () => {
    const spec = {
      backup: { schedule: '*/5 * * * *', timeZone: 'Europe/Berlin', destination: dest },
      compaction: { mode: 'revision', retention: '1000' },
      quotaBackendBytes: 1_000_000_000,
      defrag: { schedule: '0 4 * * SUN' },
    };
    const r = await apply('with-backup', spec);
    assert.equal(r.code, 0, r.stderr);
    const o = await get('with-backup');
    assert.deepEqual(withDefaults(o['spec']), o['spec']);
    const got = o['spec'] as { backup: { retention: unknown; suspend: boolean; destination: { s3: Record<string, unknown> } }; defrag: { minFragmentation: number } };
    assert.deepEqual(got.backup.retention, { keepLast: 7 });
    assert.equal(got.backup.suspend, false);
    assert.equal(got.backup.destination.s3['region'], 'us-east-1');
    assert.deepEqual(got.backup.destination.s3['credentialsSecretRef'], { name: 's3-creds', accessKeyIdKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' });
    assert.equal(got.defrag.minFragmentation, 20);
    assert.deepEqual(problemsOf(withDefaults(spec)), []);
  });

  it('spec.bootstrap cannot be changed, removed or added after creation', async () => {
    const from = { replicas: 1, bootstrap: { fromBackup: { s3: { bucket: 'bkp', key: 'a/b.snapshot' } } } };
    assert.equal((await apply('restored', from)).code, 0);
    for (const next of [{ replicas: 1, bootstrap: { fromBackup: { s3: { bucket: 'bkp', key: 'other' } } } }, { replicas: 1 }]) {
      const r = await apply('restored', next);
      assert.notEqual(r.code, 0, `accepted: ${JSON.stringify(next)}`);
      assert.ok(r.stderr.includes(MESSAGES.bootstrapImmutable), r.stderr);
      assert.ok(problemsOf(withDefaults(next), withDefaults(from)).includes(MESSAGES.bootstrapImmutable));
    }
    assert.equal((await apply('plain', { replicas: 1 })).code, 0);
    const r = await apply('plain', from);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.bootstrapImmutable), r.stderr);
  });

  it('spec.tls and spec.auth: accepted with their defaults; which TLS sides are on is set at creation, a secretName may change', async () => {
    const spec = { replicas: 3, tls: { client: {}, peer: { secretName: 'peer-certs' } }, auth: { rootSecretRef: { name: 'root' } } };
    let r = await apply('secure', spec);
    assert.equal(r.code, 0, r.stderr);
    r = await k(['get', 'etcdcluster', 'secure', '-o', 'json']);
    const got = (JSON.parse(r.stdout) as { spec: { auth: { rootSecretRef: { key: string } } } }).spec;
    assert.equal(got.auth.rootSecretRef.key, 'password');
    assert.equal(withDefaults(spec).auth?.rootSecretRef.key, 'password');
    const renamed = { ...spec, tls: { client: {}, peer: { secretName: 'peer-certs-2' } } };
    r = await apply('secure', renamed);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(problemsOf(withDefaults(renamed), withDefaults(spec)), []);
    const tries: Array<[Record<string, unknown>, boolean]> = [
      [{ ...spec, tls: { client: {} } }, false],
      [{ replicas: 3, auth: spec.auth }, false],
      [{ ...spec, tls: { client: { secretName: 'client-certs', operatorSecretName: 'op-cert' }, peer: { secretName: 'peer-certs-2' } } }, true],
    ];
    for (const [next, ok] of tries) {
      r = await apply('secure', next);
      if (ok) {
        assert.equal(r.code, 0, `only a secretName change: ${r.stderr}`);
        continue;
      }
      assert.notEqual(r.code, 0, `accepted: ${JSON.stringify(next)}`);
      assert.ok(r.stderr.includes(MESSAGES.tlsSides), r.stderr);
      assert.ok(problemsOf(withDefaults(next), withDefaults(renamed)).includes(MESSAGES.tlsSides));
    }
    assert.equal((await apply('insecure', { replicas: 1 })).code, 0);
    r = await apply('insecure', { replicas: 1, tls: { client: {} } });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.tlsSides), r.stderr);
  });

  it('EtcdBackup: defaults, clusterName immutable, a bad destination refused, printer columns', async () => {
    const eb = (spec: Record<string, unknown>): string => JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdBackup', metadata: { name: 'one', namespace: 'default' }, spec });
    let r = await k(['apply', '--server-side', '-f', '-'], eb({ clusterName: 'a', destination: dest }));
    assert.equal(r.code, 0, r.stderr);
    r = await k(['get', 'eb', 'one', '-o', 'json']);
    const got = (JSON.parse(r.stdout) as { spec: unknown }).spec;
    assert.deepEqual(backupSpecWithDefaults(got), got, 'the apiserver and backupSpecWithDefaults agree');
    r = await k(['apply', '--server-side', '-f', '-'], eb({ clusterName: 'b', destination: dest }));
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.clusterNameImmutable), r.stderr);
    r = await k(['apply', '--server-side', '-f', '-'], eb({ clusterName: 'a', destination: { s3: { bucket: 'NO' } } }));
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.bucket), r.stderr);
    const status = { status: { phase: 'Succeeded', size: 4096, revision: 17 } };
    r = await k(['patch', 'etcdbackup', 'one', '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
    assert.equal(r.code, 0, r.stderr);
    const g = await k(['get', 'etcdbackups']);
    assert.match(g.stdout, /NAME\s+CLUSTER\s+PHASE\s+SIZE\s+REVISION\s+AGE/);
    assert.match(g.stdout, /one\s+a\s+Succeeded\s+4096\s+17/);
  });

  it('the scale subresource refuses an even count and takes an odd one', async () => {
    assert.equal((await apply('scaled', { replicas: 3 })).code, 0);
    let r = await k(['scale', 'etcdcluster/scaled', '--replicas=4']);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(MESSAGES.replicas), r.stderr);
    r = await k(['scale', 'etcdcluster/scaled', '--replicas=5']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await get('scaled'))['spec'] !== undefined && ((await get('scaled'))['spec'] as Record<string, unknown>)['replicas'], 5);
  });

  it('printer columns and the status subresource work', async () => {
    assert.equal((await apply('printed', { replicas: 1 })).code, 0);
    const status = { status: { phase: 'Running', readyMembers: '1/1', currentVersion: '0.1.0', replicas: 1, selector: 'app=x' } };
    const r = await k(['patch', 'etcdcluster', 'printed', '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
    assert.equal(r.code, 0, r.stderr);
    const g = await k(['get', 'etcdcluster', 'printed']);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /NAME\s+REPLICAS\s+READY\s+PHASE\s+VERSION\s+OPERATION\s+AGE/);
    assert.match(g.stdout, /printed\s+1\s+1\/1\s+Running\s+0\.1\.0/);
  });
});
