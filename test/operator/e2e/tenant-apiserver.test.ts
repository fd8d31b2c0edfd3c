// A Kubernetes control plane on a managed cluster (issue 16), on localkube: a second kube-apiserver
// (the real 1.34 binary, run as a pod) whose --etcd-servers is an operator-managed 3-member Cairn
// cluster's client Service, over TLS with a client certificate (the cluster has spec.tls: members serve
// client TLS from the operator's CA and require client certificates; the tenant's certificate is
// signed by that CA, as a user would issue one). It becomes ready; kubectl against it creates and watches objects; then,
// while a client keeps creating ConfigMaps through it, the Cairn cluster underneath is upgraded
// (rolling, one pod at a time) and a member is replaced (its claims and pod deleted). /readyz recovers
// and every ConfigMap whose create was acknowledged is there. Figures: creates during the upgrade and
// the replacement, failed requests, the longest time without a successful create.
// test-file-timeout: 15 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { localkube, localkubeImage, type LocalKube } from '../../harness/localkube.js';
import { makeCa, OPENSSL_BIN } from '../../harness/certs.js';
import { kubeBins } from '../../harness/kube.js';
import { pollUntil } from '../../harness/poll.js';
import { tempDir } from '../../harness/procs.js';
import { availableWith, deployCheckoutOperator, needLocalkube, statusOf, waitStatus, type Obj } from './lk-status.js';

const AVAILABLE_TIMEOUT_MS = 300_000;
const UPGRADE_TIMEOUT_MS = 420_000;

interface Tenant {
  readonly url: string;
  readonly agent: Agent;
  readonly token: string;
  readonly kubeconfig: string;
}

function call(tn: Tenant, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      `${tn.url}${path}`,
      { method, agent: tn.agent, timeout: timeoutMs, headers: { authorization: `Bearer ${tn.token}`, accept: 'application/json', ...(data !== undefined ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${String(timeoutMs)} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Creates ConfigMaps through the tenant apiserver one after another until stopped. */
function createLoad(tn: Tenant, ns: string): { stop: () => Promise<void>; mark: () => { ok: number; failed: number; longestGapMs: number }; acked: Set<string> } {
  const acked = new Set<string>();
  let running = true;
  let ok = 0;
  let failed = 0;
  let lastOk = Date.now();
  let longestGapMs = 0;
  const loop = (async (): Promise<void> => {
    for (let i = 0; running; i++) {
      const name = `load-${String(i).padStart(6, '0')}`;
      try {
        const r = await call(tn, 'POST', `/api/v1/namespaces/${ns}/configmaps`, { metadata: { name }, data: { i: String(i) } });
        // 409: an earlier attempt of this name was applied though its answer was lost: acknowledged now.
        if (r.status !== 201 && r.status !== 409) throw new Error(`${String(r.status)} ${r.body.slice(0, 200)}`);
        acked.add(name);
        ok++;
        const now = Date.now();
        longestGapMs = Math.max(longestGapMs, now - lastOk);
        lastOk = now;
      } catch {
        failed++;
        i--; // the same name again: a create that was applied but not answered is found by its 409
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  return {
    acked,
    stop: async () => {
      running = false;
      await loop;
    },
    /** The counts since the last mark (and resets them). */
    mark: () => {
      const m = { ok, failed, longestGapMs: Math.max(longestGapMs, Date.now() - lastOk) };
      ok = 0;
      failed = 0;
      longestGapMs = 0;
      return m;
    },
  };
}

interface EtcdClientCert {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** A client certificate for the tenant apiserver, signed with openssl by the cluster's CA (Secret <cluster>-ca), as a user would. */
async function clientCertFromClusterCa(lk: LocalKube, ns: string, cluster: string): Promise<EtcdClientCert> {
  const data = ((JSON.parse(await lk.kubectlOk(['get', 'secret', '-n', ns, `${cluster}-ca`, '-o', 'json'])) as Obj)['data'] ?? {}) as Record<string, string>;
  const dir = tempDir('cairn-tenant-etcd-');
  const dec = (k: string): string => Buffer.from(data[k] ?? '', 'base64').toString('utf8');
  const caCrt = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  writeFileSync(caCrt, dec('tls.crt'));
  writeFileSync(caKey, dec('tls.key'), { mode: 0o600 });
  assert.match(readFileSync(caKey, 'utf8'), /PRIVATE KEY/, `Secret ${cluster}-ca holds the CA key (tls.key)`);
  const key = join(dir, 'client.key');
  const csr = join(dir, 'client.csr');
  const crt = join(dir, 'client.crt');
  const ext = join(dir, 'ext.cnf');
  writeFileSync(ext, 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  execFileSync(OPENSSL_BIN, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-subj', '/CN=tenant-apiserver', '-out', csr], { stdio: 'ignore' });
  execFileSync(OPENSSL_BIN, ['x509', '-req', '-in', csr, '-CA', caCrt, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', ext, '-out', crt], { stdio: 'ignore' });
  return { ca: readFileSync(caCrt, 'utf8'), cert: readFileSync(crt, 'utf8'), key: readFileSync(key, 'utf8') };
}

async function startTenant(lk: LocalKube, ns: string, etcdServers: string, etcd: EtcdClientCert): Promise<Tenant> {
  await lk.apply(JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'tenant', namespace: ns }, spec: { selector: { app: 'tenant-apiserver' }, ports: [{ name: 'https', port: 6443, targetPort: 6443 }] } }));
  const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'tenant', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const dir = tempDir('cairn-tenant-');
  const ca = makeCa('tenant-ca', { dir });
  const serving = ca.issue('apiserver', { sans: [`IP:${ip}`, `DNS:tenant.${ns}.svc`] });
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const token = randomBytes(24).toString('hex');
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'tenant-apiserver', namespace: ns },
    stringData: {
      'tls.crt': readFileSync(serving.certFile, 'utf8'),
      'tls.key': readFileSync(serving.keyFile, 'utf8'),
      'sa.pub': sa.publicKey,
      'sa.key': sa.privateKey,
      'tokens.csv': `${token},admin,admin-uid,"system:masters"\n`,
      'etcd-ca.crt': etcd.ca,
      'etcd.crt': etcd.cert,
      'etcd.key': etcd.key,
    },
  };
  await lk.apply(JSON.stringify(secret));
  const args = [
    `--etcd-servers=${etcdServers}`,
    '--etcd-cafile=/certs/etcd-ca.crt',
    '--etcd-certfile=/certs/etcd.crt',
    '--etcd-keyfile=/certs/etcd.key',
    '--advertise-address=$(POD_IP)',
    '--bind-address=0.0.0.0',
    '--secure-port=6443',
    '--endpoint-reconciler-type=none',
    '--tls-cert-file=/certs/tls.crt',
    '--tls-private-key-file=/certs/tls.key',
    '--token-auth-file=/certs/tokens.csv',
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    '--service-account-key-file=/certs/sa.pub',
    '--service-account-signing-key-file=/certs/sa.key',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--cert-dir=/tmp/certs',
    '--profiling=false',
  ];
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'tenant-apiserver', namespace: ns, labels: { app: 'tenant-apiserver' } },
    spec: {
      containers: [
        {
          name: 'kube-apiserver',
          // The binary is the real kube-apiserver of the kube cache (static), mounted from the host;
          // the image only gives it a root filesystem.
          image: 'localhost/cairn:dev',
          imagePullPolicy: 'Never',
          command: ['/kube/kube-apiserver', ...args],
          env: [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
          ports: [{ containerPort: 6443 }],
          volumeMounts: [
            { name: 'bin', mountPath: '/kube/kube-apiserver', readOnly: true },
            { name: 'certs', mountPath: '/certs', readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [
        { name: 'bin', hostPath: { path: kubeBins().apiserver, type: 'File' } },
        { name: 'certs', secret: { secretName: 'tenant-apiserver' } },
        { name: 'tmp', emptyDir: {} },
      ],
    },
  };
  await lk.apply(JSON.stringify(pod));
  const url = `https://${ip}:6443`;
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'tenant', cluster: { server: url, 'certificate-authority': ca.caFile } }],
      users: [{ name: 'admin', user: { token } }],
      contexts: [{ name: 'tenant', context: { cluster: 'tenant', user: 'admin' } }],
      'current-context': 'tenant',
    }),
  );
  return { url, token, kubeconfig, agent: new Agent({ keepAlive: true, maxSockets: 8, ca: readFileSync(ca.caFile) }) };
}

async function readyz(tn: Tenant): Promise<boolean> {
  try {
    return (await call(tn, 'GET', '/readyz')).status === 200;
  } catch {
    return false;
  }
}

test('a kube-apiserver on an operator-managed Cairn cluster: ready, creates and watches, through a rolling upgrade and a member replacement', { timeout: 14 * 60_000 }, async (t) => {
  if (!needLocalkube(t)) return;
  const lk = await localkube();
  await deployCheckoutOperator(lk, t);
  t.diagnostic(`image localhost/cairn:v2 built and imported in ${String(await localkubeImage('localhost/cairn:v2'))} s`);
  const ns = `tn-${randomBytes(3).toString('hex')}`;
  const name = 'store';
  await lk.createNamespace(ns);
  let tenant: Tenant | undefined;
  try {
    await lk.apply(
      JSON.stringify({
        apiVersion: 'cairn.dev/v1alpha1',
        kind: 'EtcdCluster',
        metadata: { name, namespace: ns },
        spec: { replicas: 3, image: 'localhost/cairn:dev', tls: { client: {}, peer: {} }, storage: { data: { size: '256Mi' }, wal: { size: '256Mi', storageClassName: 'local-nvme' }, reclaimPolicy: 'Delete' } },
      }),
    );
    await waitStatus(lk, ns, name, 'Available with 3 voters', availableWith(3), AVAILABLE_TIMEOUT_MS);
    const etcdCert = await clientCertFromClusterCa(lk, ns, name);
    const t0 = Date.now();
    const tn = await startTenant(lk, ns, `https://${name}-client.${ns}.svc:2379`, etcdCert);
    tenant = tn;
    await pollUntil('the tenant kube-apiserver /readyz', () => readyz(tn), 180_000, 500).catch(async (e: unknown) => {
      const log = await lk.kubectl(['logs', '-n', ns, 'tenant-apiserver', '--tail=40']);
      throw new Error(`${String(e)}\n${log.stdout}${log.stderr}`);
    });
    t.diagnostic(`tenant kube-apiserver ready ${String(Date.now() - t0)} ms after its pod was created`);

    await t.test('kubectl against it creates and watches objects', async () => {
      const kubectl = (args: string[]): Promise<string> => lk.kubectlOk(['--kubeconfig', tn.kubeconfig, ...args]);
      await kubectl(['create', 'namespace', 'work']);
      const watcher = spawn(lk.kubectlPath, ['--kubeconfig', tn.kubeconfig, 'get', 'configmaps', '-n', 'work', '--watch', '--output-watch-events'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let seen = '';
      watcher.stdout.setEncoding('utf8').on('data', (c: string) => (seen += c));
      try {
        // The watch is open once kubectl has printed the initial list (nothing yet) — create until it
        // reports an ADDED event for one of ours.
        let n = 0;
        await pollUntil(
          'kubectl --watch reports ADDED for a ConfigMap created through the tenant apiserver',
          async () => {
            await kubectl(['create', 'configmap', '-n', 'work', `watched-${String(n++)}`, '--from-literal=a=b']);
            return /ADDED\s+watched-\d+/.test(seen);
          },
          30_000,
          500,
        );
      } finally {
        watcher.kill();
      }
      const listed = await kubectl(['get', 'configmaps', '-n', 'work', '-o', 'name']);
      assert.match(listed, /configmap\/watched-0/);
    });

    await t.test('a rolling upgrade and a member replacement underneath, under writes: /readyz recovers, nothing acknowledged lost', async () => {
      const load = createLoad(tn, 'default');
      try {
        await pollUntil('the first creates', () => Promise.resolve(load.acked.size >= 20), 60_000, 100);
        load.mark();
        const up0 = Date.now();
        await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, name, '--type=merge', '-p', '{"spec":{"image":"localhost/cairn:v2"}}']);
        await waitStatus(lk, ns, name, 'upgraded to localhost/cairn:v2', (st) => availableWith(3)(st) && st['currentImage'] === 'localhost/cairn:v2', UPGRADE_TIMEOUT_MS);
        const upgrade = load.mark();
        t.diagnostic(`rolling upgrade dev -> v2 in ${String(Date.now() - up0)} ms: ${String(upgrade.ok)} ConfigMaps created through the tenant apiserver, ${String(upgrade.failed)} failed requests, longest time without a create ${String(upgrade.longestGapMs)} ms`);
        assert.ok(upgrade.ok > 0, 'creates went on during the upgrade');

        const before = ((await statusOf(lk, ns, name))['members'] as Obj[] | undefined)?.find((m) => m['name'] === `${name}-2`);
        assert.ok(before !== undefined);
        const r0 = Date.now();
        await lk.kubectlOk(['delete', 'pvc', '-n', ns, `data-${name}-2`, `wal-${name}-2`, '--wait=false']);
        await lk.kubectlOk(['delete', 'pod', '-n', ns, `${name}-2`, '--wait=false']);
        await waitStatus(
          lk,
          ns,
          name,
          `${name}-2 replaced by a new member, Available`,
          (st) => availableWith(3)(st) && ((st['members'] as Obj[] | undefined) ?? []).some((m) => m['name'] === `${name}-2` && m['id'] !== before['id']),
          AVAILABLE_TIMEOUT_MS,
        );
        const replace = load.mark();
        t.diagnostic(`member replacement in ${String(Date.now() - r0)} ms: ${String(replace.ok)} ConfigMaps created, ${String(replace.failed)} failed requests, longest time without a create ${String(replace.longestGapMs)} ms`);
        assert.ok(replace.ok > 0, 'creates went on during the replacement');
      } finally {
        await load.stop();
      }
      await pollUntil('/readyz after the changes', () => readyz(tn), 60_000, 500);
      const r = await call(tn, 'GET', '/api/v1/namespaces/default/configmaps?limit=100000', undefined, 30_000);
      assert.equal(r.status, 200, r.body.slice(0, 300));
      const have = new Set((((JSON.parse(r.body) as Obj)['items'] ?? []) as Obj[]).map((c) => String((c['metadata'] as Obj)['name'])));
      const lost = [...load.acked].filter((n) => !have.has(n));
      assert.deepEqual(lost, [], `acknowledged ConfigMaps missing: ${lost.slice(0, 10).join(', ')}`);
      t.diagnostic(`${String(load.acked.size)} acknowledged ConfigMaps, all listed after the upgrade and the replacement`);
    });
  } finally {
    tenant?.agent.destroy();
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  }
});
