// localkube end to end: up -> node Ready; a 3-replica StatefulSet of the Cairn image (data on the
// default class, WAL on local-nvme, --wal-dir on it) forms a cluster from a static --initial-cluster
// of the pods' DNS names (cluster DNS and peer traffic over the pod network); a pod resolves the
// members' names; etcdctl on the host writes and reads through a ClusterIP Service (kube-proxy);
// every process of the stack killed at once leaves traces that the next up, in another state dir,
// takes down first; down leaves no trace (processes, mounts, cni0, iptables chains, cgroups, sysctls).
//
// Needs root. Outside CI a machine that cannot run it skips with the reason (skipOrFail); under
// CI=true it fails.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { localkube, localkubeDir, localkubeMissing, runLocalkubeCli, type LocalKube } from '../harness/localkube.js';
import { runKubectl } from '../harness/kube.js';
import { pollUntil } from '../harness/poll.js';
import { podPids } from '../../hack/localkube/host.js';
import { skipOrFail } from '../harness/prereq.js';
import { runEtcdctl } from '../harness/procs.js';


function statefulSet(ns: string): string {
  const peer = (i: number): string => `cairn-${String(i)}=http://cairn-${String(i)}.cairn.${ns}.svc.cluster.local:2380`;
  return `apiVersion: v1
kind: Service
metadata: {name: cairn, namespace: ${ns}}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: cairn}
  ports: [{name: client, port: 2379}, {name: peer, port: 2380}]
---
apiVersion: v1
kind: Service
metadata: {name: cairn-client, namespace: ${ns}}
spec:
  selector: {app: cairn}
  ports: [{name: client, port: 2379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cairn, namespace: ${ns}}
spec:
  serviceName: cairn
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: cairn}}
  template:
    metadata: {labels: {app: cairn}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: cairn
        image: localhost/cairn:dev
        imagePullPolicy: Never
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        args:
        - --name=$(POD_NAME)
        - --data-dir=/var/lib/cairn/data
        - --wal-dir=/var/lib/cairn/wal
        - --listen-client-urls=http://0.0.0.0:2379
        - --advertise-client-urls=http://$(POD_NAME).cairn.${ns}.svc.cluster.local:2379
        - --listen-peer-urls=http://0.0.0.0:2380
        - --initial-advertise-peer-urls=http://$(POD_NAME).cairn.${ns}.svc.cluster.local:2380
        - --initial-cluster=${[0, 1, 2].map(peer).join(',')}
        - --initial-cluster-state=new
        - --initial-cluster-token=smoke-${ns}
        ports: [{name: client, containerPort: 2379}, {name: peer, containerPort: 2380}]
        readinessProbe:
          httpGet: {path: /readyz, port: 2379}
          periodSeconds: 1
        volumeMounts:
        - {name: data, mountPath: /var/lib/cairn/data}
        - {name: wal, mountPath: /var/lib/cairn/wal}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - metadata: {name: wal}
    spec: {accessModes: [ReadWriteOnce], storageClassName: local-nvme, resources: {requests: {storage: 1Gi}}}
`;
}

/** Files under dir, recursively (the WAL volume's directory on the host). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const f = join(dir, e);
    if (statSync(f).isDirectory()) out.push(...filesUnder(f));
    else out.push(f);
  }
  return out;
}

/** Processes of the stack: every daemon of localkube (and each containerd shim) names the state dir
 * on its command line; other tests' kube-apiservers on this machine do not. */
function stackProcesses(dir: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(dir)) found.push(`${e} ${cmd.slice(0, 200)}`);
    } catch {
      // gone
    }
  }
  return found;
}

test('localkube: a Cairn StatefulSet on a real one-node Kubernetes, and down leaves no trace', { timeout: 40 * 60_000 }, async (t) => {
  const missing = localkubeMissing();
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return;
  }
  const t0 = Date.now();
  const lk: LocalKube = await localkube();
  t.diagnostic(`localkube up in ${String(Date.now() - t0)} ms (${lk.upMs === 0 ? 'already up' : 'started here'}); kubeconfig ${lk.kubeconfig}`);
  const node = await lk.kubectlOk(['get', 'node', 'localkube', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
  assert.equal(node, 'True', 'node localkube Ready');
  const classes = await lk.kubectlOk(['get', 'storageclass', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}{"\\n"}{end}']);
  assert.match(classes, /^local-path=true$/m, 'local-path is the default class');
  assert.match(classes, /^local-nvme=/m, 'local-nvme exists');

  const ns = `smoke-${randomBytes(3).toString('hex')}`;
  await lk.createNamespace(ns);
  const tApply = Date.now();
  await lk.apply(statefulSet(ns));
  await lk.waitPodsReady(ns, 'app=cairn', 3, 300_000);
  t.diagnostic(`3-member StatefulSet Ready ${String(Date.now() - tApply)} ms after apply`);

  // Volumes: data on the default class, WAL on local-nvme, and the WAL really written there.
  const pvcs = await lk.kubectlOk(['get', 'pvc', '-n', ns, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.spec.storageClassName}={.status.phase}{"\\n"}{end}']);
  for (let i = 0; i < 3; i++) {
    assert.match(pvcs, new RegExp(`^data-cairn-${String(i)}=local-path=Bound$`, 'm'), pvcs);
    assert.match(pvcs, new RegExp(`^wal-cairn-${String(i)}=local-nvme=Bound$`, 'm'), pvcs);
  }
  const walFiles = filesUnder(join(lk.dir, 'volumes', 'local-nvme')).filter((f) => f.includes(`_${ns}_wal-cairn-`));
  assert.ok(walFiles.length >= 3, `WAL files on the local-nvme volumes: ${walFiles.join(', ')}`);

  // Cluster DNS from a pod: each member's name, and the headless Service's three addresses.
  const names = [0, 1, 2].map((i) => `cairn-${String(i)}.cairn.${ns}.svc.cluster.local`);
  const script = `const dns=require('dns').promises;(async()=>{const out={};for(const n of ${JSON.stringify([...names, `cairn.${ns}.svc.cluster.local`])})out[n]=(await dns.resolve4(n)).sort();console.log(JSON.stringify(out))})().catch(e=>{console.error(e);process.exit(1)})`;
  const dnsRun = await lk.exec(ns, 'cairn-0', ['node', '-e', script]);
  assert.equal(dnsRun.code, 0, dnsRun.stderr);
  const resolved = JSON.parse(dnsRun.stdout) as Record<string, string[]>;
  const podIps = (await lk.kubectlOk(['get', 'pods', '-n', ns, '-l', 'app=cairn', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.podIP}{"\\n"}{end}']))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('='));
  for (const [pod, ip] of podIps) assert.deepEqual(resolved[`${pod ?? ''}.cairn.${ns}.svc.cluster.local`], [ip], `DNS of ${pod ?? ''}`);
  assert.equal(resolved[`cairn.${ns}.svc.cluster.local`]?.length, 3, 'the headless Service resolves to the 3 members');

  // The cluster formed (3 started members) and serves writes and reads through the ClusterIP Service.
  const clusterIp = (await lk.kubectlOk(['get', 'service', '-n', ns, 'cairn-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const ep = ['--endpoints', `http://${clusterIp}:2379`, '--dial-timeout', '5s', '--command-timeout', '10s'];
  const members = await runEtcdctl([...ep, 'member', 'list', '-w', 'json']);
  assert.equal(members.exit, 0, members.stderr);
  const list = (JSON.parse(members.stdout) as { members: Array<{ name?: string; clientURLs?: string[] }> }).members;
  assert.deepEqual(list.map((m) => m.name).sort(), ['cairn-0', 'cairn-1', 'cairn-2']);
  assert.ok(list.every((m) => (m.clientURLs ?? []).length === 1), 'every member started and published its client URL');
  const put = await runEtcdctl([...ep, 'put', 'smoke', ns]);
  assert.equal(put.exit, 0, put.stderr);
  const get = await runEtcdctl([...ep, 'get', 'smoke', '--print-value-only']);
  assert.equal(get.exit, 0, get.stderr);
  assert.equal(get.stdout.trim(), ns);
  // The same value from inside the cluster: each member's own endpoint, over the pod network.
  for (const pod of ['cairn-1', 'cairn-2']) {
    const r = await lk.exec(ns, pod, ['node', '-e', `fetch('http://cairn-0.cairn.${ns}.svc.cluster.local:2379/health').then(r=>r.text()).then(t=>console.log(t))`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"health":\s*"true"/);
  }

  // Every process of the stack killed at once (as when the machine's processes are all killed
  // mid-run): its interfaces, mounts, cgroups and chains stay, with no one to take them down. The
  // next up, in another state dir, takes those traces down first and starts.
  const crashed = localkubeDir();
  const kill = (): number => {
    const pids = [...stackProcesses(crashed).map((l) => Number(l.split(' ')[0])), ...podPids()];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    return pids.length;
  };
  assert.ok(kill() > 0, 'the stack had processes to kill');
  await pollUntil('every process of the stack gone', () => Promise.resolve(kill() === 0), 30_000, 100);
  assert.ok(existsSync('/sys/class/net/lkube0'), 'the killed stack left lkube0');
  const dir = `${crashed}-after-crash`;
  // Whatever fails below, the second localkube goes down with the test (the runner knows only the first).
  t.after(async () => {
    if (existsSync(join(dir, 'state.json'))) await runLocalkubeCli(['down', '--dir', dir], 300_000);
  });
  const tUp = Date.now();
  const up = await runLocalkubeCli(['up', '--dir', dir, '--no-image'], 600_000);
  t.diagnostic(`up after the crash in ${String(Date.now() - tUp)} ms`);
  assert.equal(up.code, 0, `up after a crash failed:\n${up.stderr.slice(-4000)}`);
  assert.match(up.stderr, /taking down the traces of a localkube whose processes are gone/);
  assert.deepEqual(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${crashed}/`)), [], 'no mount left under the crashed state dir');
  assert.ok(!existsSync(join(crashed, 'state.json')), 'the crashed state dir is gone but for its logs');
  const node2 = await runKubectl(up.stdout.trim().split('\n').pop() ?? '', ['get', 'node', 'localkube', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
  assert.equal(node2.stdout, 'True', `the new localkube's node is Ready: ${node2.stderr}`);

  // down: nothing left behind.
  const recorded = (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { sysctls: Record<string, string> }).sysctls;
  const tDown = Date.now();
  const d = await runLocalkubeCli(['down', '--dir', dir], 300_000);
  rmSync(crashed, { recursive: true, force: true });
  t.diagnostic(`localkube down in ${String(Date.now() - tDown)} ms`);
  assert.equal(d.code, 0, `down reported leftovers:\n${d.stderr}`);
  assert.deepEqual(stackProcesses(dir), [], 'no process of the stack left');
  assert.ok(!existsSync('/sys/class/net/cni0'), 'cni0 removed');
  assert.ok(!existsSync('/sys/class/net/lkube0'), 'lkube0 removed');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));
  assert.deepEqual(mounts, [], 'no mount under the state dir');
  assert.ok(!existsSync(dir), 'state dir removed');
  const cgroups = readdirSync('/sys/fs/cgroup').filter((c) => existsSync(join('/sys/fs/cgroup', c, 'cairn-localkube')));
  assert.deepEqual(cgroups, [], 'no localkube cgroup left');
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    const chains = execFileSync(tool, [], { encoding: 'utf8' }).split('\n').filter((l) => /^:(KUBE-|CNI-)/.test(l));
    assert.deepEqual(chains, [], `no kube or CNI chain left (${tool})`);
  }
  // Sysctls put back to what up recorded (kubelet changes vm.overcommit_memory, kernel.panic, ...).
  for (const [k, v] of Object.entries(recorded)) assert.equal(readFileSync(`/proc/sys/${k}`, 'utf8').trim(), v, `sysctl ${k} put back`);
});
