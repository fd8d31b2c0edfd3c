// localkube up and down: a one-node Kubernetes of real processes on this machine (no Docker engine).
// up: backing store (1-member Cairn, or etcd 3.6) -> kube-apiserver -> containerd -> images
// imported -> controller-manager, scheduler, kubelet, kube-proxy, CoreDNS (on the host, serving the
// kube-dns Service), local-path-provisioner (on the host; classes local-path (default) and
// local-nvme) -> node Ready -> crds/ and operator/manifests/ applied -> operator Available.
// down: everything stopped and every trace removed (see host.ts).
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { kubeBins, runKubectl, type KubectlRun } from '../../test/harness/kube.js';
import { pollUntil } from '../../test/harness/poll.js';
import { REPO_ROOT } from '../../test/harness/procs.js';
import * as host from './host.js';
import {
  CAIRN_IMAGE, COREDNS_READY, HOST_IF, HOST_PATHS, NODE_IP, NODE_NAME, POD_IF, SERVICE_CIDR, STORE_CLIENT_PORT,
  STORE_PEER_PORT, S3_BUCKET, S3_ENDPOINT, paths, type Paths, type State, type Store,
} from './layout.js';
import * as render from './render.js';
import { ensureBucket, s3SecretJson, weedArgs, weedBinary, S3_READY_TIMEOUT_MS } from './s3.js';

export interface UpOpts {
  readonly dir: string;
  readonly store: Store;
  /** Image to build and import (default localhost/cairn:dev); skipped when image is false. */
  readonly image?: boolean;
  readonly readyTimeoutMs?: number;
}

const t0 = Date.now();
export function progress(step: string, extra: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ localkube: step, s: Number(((Date.now() - t0) / 1000).toFixed(1)), ...extra })}\n`);
}

// ---------- state ----------

export function readState(dir: string): State | undefined {
  const f = paths(dir).state;
  if (!existsSync(f)) return undefined;
  return JSON.parse(readFileSync(f, 'utf8')) as State;
}

function writeState(s: State): void {
  writeFileSync(paths(s.dir).state, `${JSON.stringify(s, null, 2)}\n`);
}

/** Up and every recorded process alive. */
export function isUp(dir: string): boolean {
  const s = readState(dir);
  return s !== undefined && s.ready && Object.values(s.procs).every((p) => host.alive(p));
}

// ---------- binaries ----------

interface Bins {
  readonly dir: string;
  bin(name: string): string;
}

function installBins(): Bins {
  const out = execFileSync('bash', [join(REPO_ROOT, 'hack', 'install-localkube.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 << 20,
  });
  const dir = out.trim().split('\n').pop() ?? '';
  return { dir, bin: (n) => join(dir, 'bin', n) };
}

/** Runs hack/image.sh with args; resolves with its stdout lines (progress goes to the log file). */
function imageScript(args: readonly string[], logFile: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(REPO_ROOT, 'hack', 'image.sh'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => {
      writeFileSync(logFile, err, { flag: 'a' });
      if (code === 0) resolve(out.trim().split('\n'));
      else reject(new Error(`hack/image.sh ${args.join(' ')} failed (exit ${String(code)}):\n${err.split('\n').slice(-30).join('\n')}`));
    });
  });
}

// ---------- PKI ----------

function openssl(args: readonly string[]): void {
  host.run('openssl', args);
}

function issue(p: Paths, name: string, subj: string, sans: readonly string[]): void {
  const key = join(p.pki, `${name}.key`);
  const csr = join(p.pki, `${name}.csr`);
  const ext = join(p.pki, `${name}.ext`);
  writeFileSync(
    ext,
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
      '',
    ].join('\n'),
  );
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subj]);
  openssl([
    'x509', '-req', '-in', csr, '-CA', join(p.pki, 'ca.crt'), '-CAkey', join(p.pki, 'ca.key'),
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '3650', '-out', join(p.pki, `${name}.crt`), '-extfile', ext,
  ]);
}

interface Tokens {
  readonly admin: string;
  readonly kcm: string;
  readonly scheduler: string;
  readonly kubelet: string;
  readonly proxy: string;
}

function makePki(p: Paths): Tokens {
  mkdirSync(p.pki, { recursive: true });
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(p.pki, 'ca.key'),
    '-out', join(p.pki, 'ca.crt'), '-days', '3650', '-subj', '/CN=localkube-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  issue(p, 'apiserver', '/CN=kube-apiserver', [
    `IP:${NODE_IP}`, 'IP:10.96.0.1', 'IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local',
  ]);
  issue(p, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', []);
  issue(p, 'kubelet', `/CN=${NODE_NAME}`, [`IP:${NODE_IP}`, `DNS:${NODE_NAME}`]);
  const sa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  writeFileSync(join(p.pki, 'sa.pub'), sa.publicKey);
  writeFileSync(join(p.pki, 'sa.key'), sa.privateKey, { mode: 0o600 });
  const tok = (): string => randomBytes(24).toString('hex');
  const t: Tokens = { admin: tok(), kcm: tok(), scheduler: tok(), kubelet: tok(), proxy: tok() };
  writeFileSync(
    join(p.pki, 'tokens.csv'),
    [
      `${t.admin},admin,admin-uid,"system:masters"`,
      `${t.kcm},system:kube-controller-manager,kcm-uid`,
      `${t.scheduler},system:kube-scheduler,scheduler-uid`,
      `${t.kubelet},system:node:${NODE_NAME},node-uid,"system:nodes"`,
      `${t.proxy},system:kube-proxy,proxy-uid`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return t;
}

function writeConfigs(p: Paths, t: Tokens): void {
  mkdirSync(p.conf, { recursive: true });
  mkdirSync(p.cniConfDir, { recursive: true });
  const ca = join(p.pki, 'ca.crt');
  const kc = (user: string, token: string): string => render.kubeconfig(render.APISERVER_URL, ca, user, token);
  writeFileSync(p.kubeconfig, kc('admin', t.admin), { mode: 0o600 });
  writeFileSync(join(p.conf, 'admin.kubeconfig'), kc('admin', t.admin), { mode: 0o600 });
  writeFileSync(join(p.conf, 'kcm.kubeconfig'), kc('system:kube-controller-manager', t.kcm), { mode: 0o600 });
  writeFileSync(join(p.conf, 'scheduler.kubeconfig'), kc('system:kube-scheduler', t.scheduler), { mode: 0o600 });
  writeFileSync(join(p.conf, 'kubelet.kubeconfig'), kc(`system:node:${NODE_NAME}`, t.kubelet), { mode: 0o600 });
  writeFileSync(join(p.conf, 'kube-proxy.kubeconfig'), kc('system:kube-proxy', t.proxy), { mode: 0o600 });
  writeFileSync(join(p.conf, 'containerd.toml'), render.containerdToml(p));
  writeFileSync(join(p.cniConfDir, '10-localkube.conflist'), render.cniConflist(p));
  writeFileSync(join(p.conf, 'kubelet.yaml'), render.kubeletYaml(p));
  writeFileSync(join(p.conf, 'kube-proxy.yaml'), render.kubeProxyYaml(p));
  writeFileSync(join(p.conf, 'Corefile'), render.corefile(p));
  writeFileSync(join(p.conf, 'resolv.conf'), '# pods get the cluster DNS only (kubelet clusterDNS)\n');
}

// ---------- readiness probes ----------

function httpStatus(url: string, opts: { ca?: Buffer; token?: string } = {}): Promise<number> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      {
        timeout: 3_000,
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
        ...(opts.token !== undefined ? { headers: { authorization: `Bearer ${opts.token}` } } : {}),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

class Stack {
  readonly p: Paths;
  constructor(readonly state: State) {
    this.p = paths(state.dir);
  }

  start(name: string, cmd: string, args: readonly string[], env: Record<string, string> = {}): void {
    const rec = host.startDaemon(cmd, args, join(this.p.logs, `${name}.log`), env);
    this.state.procs[name] = rec;
    writeState(this.state);
  }

  /** Waits for cond; fails early (with the log tail) when the named component has exited. */
  async waitFor(what: string, component: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    await pollUntil(
      what,
      async () => {
        const rec = this.state.procs[component];
        if (rec !== undefined && !host.alive(rec)) throw new Error(`${component} exited during start; log tail:\n${this.logTail(component)}`);
        return cond();
      },
      timeoutMs,
      100,
    );
  }

  logTail(component: string, n = 30): string {
    try {
      return readFileSync(join(this.p.logs, `${component}.log`), 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '(no log)';
    }
  }

  kubectl(args: readonly string[], stdin?: string, timeoutMs = 60_000): Promise<KubectlRun> {
    return runKubectl(this.p.kubeconfig, args, { ...(stdin !== undefined ? { stdin } : {}), timeoutMs });
  }

  async kubectlOk(args: readonly string[], stdin?: string, timeoutMs = 60_000): Promise<string> {
    const r = await this.kubectl(args, stdin, timeoutMs);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${String(r.code)}\n${r.stderr}`);
    return r.stdout;
  }

  /** ctr images import, off the event loop (a 200 MiB image takes seconds to unpack). */
  ctrImport(archive: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('ctr', ['--address', this.p.containerdSock, '-n', 'k8s.io', 'images', 'import', archive], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ctr images import ${archive}: exit ${String(code)}\n${err}`))));
    });
  }
}

// ---------- up ----------

/** SeaweedFS (S3 for backups), its bucket and the Secret with its keys in namespace default. Also
 * added to a localkube that was started before it existed (`up` on a running one). */
async function startS3(s: Stack, dir: string): Promise<void> {
  s.start('seaweedfs', weedBinary(), weedArgs(dir));
  await s.waitFor('SeaweedFS S3 with its bucket', 'seaweedfs', ensureBucket, S3_READY_TIMEOUT_MS);
  await s.kubectlOk(['apply', '-f', '-'], s3SecretJson());
  progress('s3 ready', { endpoint: S3_ENDPOINT, bucket: S3_BUCKET });
}

export async function up(opts: UpOpts): Promise<string> {
  const p = paths(opts.dir);
  if (process.getuid?.() !== 0) throw new Error('localkube needs root (network, mounts, cgroups, containerd)');
  const existing = readState(opts.dir);
  if (existing !== undefined) {
    if (isUp(opts.dir)) {
      if (existing.procs['seaweedfs'] === undefined) await startS3(new Stack(existing), opts.dir);
      progress('already up', { kubeconfig: existing.kubeconfig });
      return existing.kubeconfig;
    }
    progress('found a partial or stopped localkube: taking it down first');
    await down({ dir: opts.dir, keepLogs: false });
  }
  if (host.linkExists(HOST_IF) || host.linkExists(POD_IF)) await clearCrashed();
  writeFileSync(OWNER_FILE, `${opts.dir}\n`);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 180_000;
  progress('installing (cached after the first time)');
  const bins = installBins();
  const kb = kubeBins();
  mkdirSync(p.logs, { recursive: true });
  mkdirSync(p.run, { recursive: true });
  const imageLog = join(p.logs, 'image.log');
  // The image builds while the control plane starts (layers cached: seconds when nothing changed).
  const imageBuild = opts.image === false ? undefined : imageScript(['--tag', CAIRN_IMAGE, '--no-import', '--dir', opts.dir], imageLog);
  imageBuild?.catch(() => undefined); // awaited below; a rejection before then must not go unhandled
  const baseImage = imageScript(['--base-only'], imageLog);
  baseImage.catch(() => undefined);
  const pauseImage = imageScript(['--pause', bins.bin('pause')], imageLog);
  pauseImage.catch(() => undefined);

  const state: State = {
    dir: opts.dir,
    store: opts.store,
    startedAtMs: Date.now(),
    sysctls: host.readSysctls(),
    createdPaths: HOST_PATHS.filter((x) => !existsSync(x)),
    nftTables: host.nftTables(),
    procs: {},
    kubeconfig: p.kubeconfig,
    ready: false,
  };
  writeState(state);
  const s = new Stack(state);
  try {
    host.writeSysctl('net/ipv4/ip_forward', '1');
    host.writeSysctl('net/bridge/bridge-nf-call-iptables', '1');
    host.setupNetwork(render.nftRules());
    host.createCgroupRoot();
    const tokens = makePki(p);
    writeConfigs(p, tokens);
    mkdirSync(join(p.volumes, 'local-path'), { recursive: true });
    mkdirSync(join(p.volumes, 'local-nvme'), { recursive: true });
    progress('configured');

    // backing store
    const storeUrl = `http://127.0.0.1:${String(STORE_CLIENT_PORT)}`;
    const peerUrl = `http://127.0.0.1:${String(STORE_PEER_PORT)}`;
    const storeArgs = [
      '--name', 'localkube', '--data-dir', join(p.storeData, 'data'),
      '--listen-client-urls', storeUrl, '--advertise-client-urls', storeUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `localkube=${peerUrl}`, '--initial-cluster-state', 'new',
    ];
    if (opts.store === 'cairn') {
      const main = join(REPO_ROOT, 'dist', 'server', 'main.js');
      if (!existsSync(main)) throw new Error(`${main} missing: build with npx tsc -p tsconfig.json`);
      s.start('store', process.execPath, [main, ...storeArgs]);
    } else {
      s.start('store', kb.etcd, [...storeArgs, '--logger=zap', '--log-outputs=stderr']);
    }
    await s.waitFor(`${opts.store} /health`, 'store', async () => (await httpStatus(`${storeUrl}/health`)) === 200, 30_000);
    progress('store ready', { store: opts.store });

    // containerd (independent of the apiserver: starts meanwhile)
    s.start('containerd', 'containerd', ['--config', join(p.conf, 'containerd.toml')]);

    const ca = readFileSync(join(p.pki, 'ca.crt'));
    s.start('kube-apiserver', kb.apiserver, [
      `--etcd-servers=${storeUrl}`,
      `--bind-address=${NODE_IP}`,
      `--advertise-address=${NODE_IP}`,
      '--secure-port=6443',
      `--tls-cert-file=${join(p.pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(p.pki, 'apiserver.key')}`,
      `--client-ca-file=${join(p.pki, 'ca.crt')}`,
      `--cert-dir=${join(p.pki, 'apiserver-certs')}`,
      `--token-auth-file=${join(p.pki, 'tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--allow-privileged=true',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(p.pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(p.pki, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--kubelet-client-certificate=${join(p.pki, 'apiserver-kubelet-client.crt')}`,
      `--kubelet-client-key=${join(p.pki, 'apiserver-kubelet-client.key')}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
      '--v=1',
    ]);
    await s.waitFor(
      'kube-apiserver /readyz',
      'kube-apiserver',
      async () => (await httpStatus(`${render.APISERVER_URL}/readyz`, { ca, token: tokens.admin })) === 200,
      90_000,
    );
    progress('kube-apiserver ready');

    await s.waitFor('containerd', 'containerd', () => Promise.resolve(host.tryRun('ctr', ['--address', p.containerdSock, 'version'])), 30_000);
    // Imports run while the node starts: the pause image before any pod, the helper (base) image
    // before any volume, the Cairn image before the operator.
    const pauseImport = pauseImage.then((l) => s.ctrImport(l[l.length - 1] ?? ''));
    pauseImport.catch(() => undefined);
    const baseLines = await baseImage;
    const baseName = baseLines[baseLines.length - 2] ?? '';
    const baseImport = s.ctrImport(baseLines[baseLines.length - 1] ?? '');
    baseImport.catch(() => undefined);
    const cairnImport = imageBuild?.then(async (l) => {
      await s.ctrImport(l[l.length - 1] ?? '');
      progress('image imported', { image: CAIRN_IMAGE });
    });
    cairnImport?.catch(() => undefined);
    progress('containerd ready', { helper: baseName });

    writeFileSync(join(p.conf, 'bootstrap.yaml'), render.bootstrapYaml(p, baseName));
    await s.kubectlOk(['apply', '-f', join(p.conf, 'bootstrap.yaml')]);
    const conf = (f: string): string => join(p.conf, f);
    s.start('kube-controller-manager', bins.bin('kube-controller-manager'), [
      `--kubeconfig=${conf('kcm.kubeconfig')}`,
      `--authentication-kubeconfig=${conf('kcm.kubeconfig')}`,
      `--authorization-kubeconfig=${conf('kcm.kubeconfig')}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      `--service-account-private-key-file=${join(p.pki, 'sa.key')}`,
      `--root-ca-file=${join(p.pki, 'ca.crt')}`,
      `--cluster-signing-cert-file=${join(p.pki, 'ca.crt')}`,
      `--cluster-signing-key-file=${join(p.pki, 'ca.key')}`,
      '--use-service-account-credentials=true',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allocate-node-cidrs=false',
      '--v=1',
    ]);
    s.start('kube-scheduler', bins.bin('kube-scheduler'), [
      `--kubeconfig=${conf('scheduler.kubeconfig')}`,
      `--authentication-kubeconfig=${conf('scheduler.kubeconfig')}`,
      `--authorization-kubeconfig=${conf('scheduler.kubeconfig')}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '--v=1',
    ]);
    s.start('kubelet', bins.bin('kubelet'), [
      `--config=${conf('kubelet.yaml')}`,
      `--kubeconfig=${conf('kubelet.kubeconfig')}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      `--root-dir=${p.kubeletRoot}`,
      `--cert-dir=${join(p.kubeletRoot, 'pki')}`,
      '--v=1',
    ]);
    s.start('kube-proxy', bins.bin('kube-proxy'), [`--config=${conf('kube-proxy.yaml')}`, '--v=1']);
    s.start('coredns', bins.bin('coredns'), ['-conf', conf('Corefile')]);
    s.start('local-path-provisioner', bins.bin('local-path-provisioner'), [
      '--debug', 'start',
      `--kubeconfig=${conf('admin.kubeconfig')}`,
      '--provisioner-name=rancher.io/local-path',
      '--namespace=kube-system',
      '--configmap-name=local-path-config',
      '--service-account-name=local-path-provisioner',
      `--helper-image=${baseName}`,
    ]);
    progress('node components started');

    await s.waitFor(
      'node Ready',
      'kubelet',
      async () => {
        const r = await s.kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], undefined, 10_000);
        return r.code === 0 && r.stdout.trim() === 'True';
      },
      readyTimeoutMs,
    );
    progress('node Ready');
    await s.waitFor('CoreDNS ready', 'coredns', async () => (await httpStatus(`http://${COREDNS_READY}/ready`)) === 200, 60_000);
    await s.waitFor(
      'the default ServiceAccount',
      'kube-controller-manager',
      async () => (await s.kubectl(['get', 'serviceaccount', 'default', '-n', 'default'], undefined, 10_000)).code === 0,
      60_000,
    );
    progress('cluster DNS and controllers ready');

    await pauseImport;
    await baseImport;
    await cairnImport;
    await applyProjectManifests(s, readyTimeoutMs, opts.image !== false);
    await startS3(s, opts.dir);
    state.ready = true;
    writeState(state);
    progress('up', { kubeconfig: p.kubeconfig, kubectl: kb.kubectl, ms: Date.now() - state.startedAtMs });
    return p.kubeconfig;
  } catch (e) {
    writeState(state);
    throw e;
  }
}

function yamlFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** crds/*.yaml, then operator/manifests/*.yaml (unless withOperator is false); waits for the
 * operator Deployment to be Available. */
async function applyProjectManifests(s: Stack, timeoutMs: number, withOperator: boolean): Promise<void> {
  const crds = yamlFiles(join(REPO_ROOT, 'crds'));
  for (const f of crds) await s.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', f]);
  if (crds.length > 0) {
    // (kubectl wait fails at once on a CRD whose status has no conditions yet: poll instead.)
    await pollUntil(
      'every CRD Established',
      async () => {
        const r = await s.kubectl(['get', 'crd', '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}']);
        const st = r.stdout.split('\n').filter((l) => l !== '');
        return r.code === 0 && st.length > 0 && st.every((x) => x === 'True');
      },
      60_000,
      200,
    );
    progress('CRDs established', { files: crds.length });
  }
  // The operator runs the Cairn image: without it (--no-image) only the CRDs are applied.
  const manifests = withOperator ? yamlFiles(join(REPO_ROOT, 'operator', 'manifests')) : [];
  if (manifests.length === 0) return;
  for (const f of manifests) await s.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', f]);
  progress('operator manifests applied', { files: manifests.length });
  const r = await s.kubectl(
    ['wait', '-n', 'cairn-system', '--for=condition=Available', 'deployment/cairn-operator', `--timeout=${String(Math.round(timeoutMs / 1000))}s`],
    undefined,
    timeoutMs + 10_000,
  );
  if (r.code !== 0) {
    const pods = await s.kubectl(['get', 'pods', '-n', 'cairn-system', '-o', 'wide']);
    const logs = await s.kubectl(['logs', '-n', 'cairn-system', 'deployment/cairn-operator', '--tail=30']);
    throw new Error(`operator Deployment cairn-system/cairn-operator not Available: ${r.stderr}\n${pods.stdout}\n${logs.stdout}${logs.stderr}`);
  }
  progress('operator Available');
}

// ---------- down ----------

export interface DownOpts {
  readonly dir: string;
  readonly keepLogs: boolean;
}

export interface DownReport {
  readonly leftovers: string[];
}

const STOP_ORDER = [
  'local-path-provisioner', 'kubelet', 'coredns', 'kube-proxy', 'kube-scheduler', 'kube-controller-manager',
  'containerd', 'kube-apiserver', 'store',
] as const;

/** Stops everything of the localkube in dir and removes every trace; idempotent. */
export async function down(opts: DownOpts): Promise<DownReport> {
  const p = paths(opts.dir);
  const state = readState(opts.dir);
  const procs = state?.procs ?? {};
  const kubelet = procs['kubelet'];
  // Everything is thrown away after this, so nothing gets long to drain: 3 s, then SIGKILL.
  if (kubelet !== undefined) await host.stopDaemon(kubelet, 3_000);
  // Container processes (their cgroups are under CGROUP_ROOT), then the shims of our containerd.
  for (const pid of host.podPids()) process.kill(pid, 'SIGKILL');
  for (const pid of host.pidsWithCmdline(['containerd-shim', p.containerdSock])) process.kill(pid, 'SIGKILL');
  for (const name of STOP_ORDER) {
    const rec = procs[name];
    if (rec !== undefined) await host.stopDaemon(rec, 3_000);
  }
  for (const [name, rec] of Object.entries(procs)) if (!(STOP_ORDER as readonly string[]).includes(name)) await host.stopDaemon(rec, 3_000);
  // Daemons the state file does not know (it was lost, or up died before recording them): every one
  // names the state dir on its command line.
  for (const pid of host.pidsWithCmdline([opts.dir])) await host.stopDaemon({ pid, start: host.startOf(pid) ?? '' }, 3_000);
  progress('processes stopped');
  const proxyBin = join(installedDir(), 'bin', 'kube-proxy');
  if (existsSync(proxyBin)) host.tryRun(proxyBin, ['--cleanup']);
  host.removeKubeChains();
  const mounted = host.unmountUnder(opts.dir);
  host.teardownNetwork();
  if (state?.nftTables !== undefined) host.removeEmptyNewNftTables(state.nftTables);
  const cgroups = host.removeCgroups();
  host.removeContainerLogLinks(p.podLogs);
  // Host paths the components created (none of them existed before up).
  for (const x of state?.createdPaths ?? []) host.removeCreatedPath(x);
  const sysctlsLeft = state === undefined ? [] : host.restoreSysctls(state.sysctls);
  if (existsSync(opts.dir)) {
    if (opts.keepLogs) {
      for (const e of readdirSync(opts.dir)) if (e !== 'logs') rmSync(join(opts.dir, e), { recursive: true, force: true });
    } else rmSync(opts.dir, { recursive: true, force: true });
  }
  const leftovers = [
    ...mounted.map((m) => `mount ${m}`),
    ...cgroups.map((c) => `cgroup ${c}`),
    ...sysctlsLeft.map((k) => `sysctl ${k}`),
    ...host.kubeChains().map((c) => `iptables chain ${c}`),
    ...[HOST_IF, POD_IF].filter((l) => host.linkExists(l)).map((l) => `link ${l}`),
  ];
  if (leftovers.length === 0 && recordedDir() === opts.dir) rmSync(OWNER_FILE, { force: true });
  progress('down', { leftovers });
  return { leftovers };
}

/** The state dir of the last localkube `up` on this machine (machine-wide, as its interfaces are). */
const OWNER_FILE = '/run/cairn-localkube.dir';

function recordedDir(): string | undefined {
  try {
    const d = readFileSync(OWNER_FILE, 'utf8').trim();
    return d === '' ? undefined : d;
  } catch {
    return undefined;
  }
}

/** State dirs of localkubes whose traces are on this machine: the one recorded at `up`, and those
 * the mounts name (the kubelet's root and containerd's state live in the state dir). */
export function tracedDirs(): string[] {
  const dirs = new Set<string>();
  const rec = recordedDir();
  if (rec !== undefined) dirs.add(rec);
  for (const m of host.mountPoints()) {
    const hit = /^(\/.+?)\/(?:kubelet|containerd\/(?:state|root))(?:\/|$)/.exec(m);
    const d = hit?.[1];
    if (d !== undefined && existsSync(paths(d).pki)) dirs.add(d);
  }
  return [...dirs];
}

/**
 * Traces of a localkube whose processes are all gone (the machine's processes were killed, or it
 * crashed) have no one left to take them down, and its interfaces would refuse every later `up`.
 * Each traced state dir that no live process names (every daemon of a running localkube names its
 * state dir) is taken down as `down` would; one that a process names is running: refused.
 */
async function clearCrashed(): Promise<void> {
  const dirs = tracedDirs();
  const live = dirs.filter((d) => host.pidsWithCmdline([d]).length > 0);
  if (live.length > 0) {
    throw new Error(`${HOST_IF} or ${POD_IF} exists and a localkube runs in ${live.join(', ')}: run \`npm run localkube -- down --dir ${live[0] ?? ''}\` first`);
  }
  for (const dir of dirs) {
    progress('taking down the traces of a localkube whose processes are gone', { dir });
    await down({ dir, keepLogs: true });
  }
  if (host.linkExists(HOST_IF) || host.linkExists(POD_IF)) {
    // Nothing names a state dir (up died before recording it): the machine-wide traces only.
    if (host.podPids().length > 0) throw new Error(`${HOST_IF} or ${POD_IF} exists and pods of an unknown localkube run (pids ${host.podPids().join(', ')})`);
    progress('taking down the machine-wide traces of an unknown localkube');
    host.removeKubeChains();
    host.teardownNetwork();
    host.removeCgroups();
  }
  const left = [HOST_IF, POD_IF].filter((l) => host.linkExists(l));
  if (left.length > 0) throw new Error(`could not remove ${left.join(', ')} left by an earlier localkube`);
}

function installedDir(): string {
  const cache = process.env['CAIRN_CACHE'] ?? join(process.env['HOME'] ?? '/root', '.cache', 'cairn');
  return join(cache, `localkube-${process.env['CAIRN_KUBE_VERSION'] ?? 'v1.34.4'}`);
}
