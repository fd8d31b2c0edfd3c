// Cairn on etcd's unix:// and unixs:// client URLs, as Kubernetes' integration framework starts
// "etcd" (k8s test/integration/framework/etcd.go RunCustomEtcd): the exact command line, readiness
// = a connection on the socket, then the real etcdctl and HTTP/1.1 over the socket file. etcd's
// rules (3.6: embed.resolveURL, transport.NewUnixListener): the socket file is host + path of the
// URL; a stale socket is replaced at start; the file goes at stop; unixs is TLS on the socket.
// etcd 3.4 (the Debian oracle) takes only unix://host:port URLs (a file named "host:port" in the
// working directory): that form is compared side by side with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import * as http2 from 'node:http2';
import { connect } from 'node:net';
import { join } from 'node:path';
import { etcdBin, etcdctlBin } from '../harness/bins.js';
import { CAIRN_MAIN, freePort, tempDir, trackChild } from '../harness/procs.js';
import { makeCa } from '../harness/certs.js';
import { pollUntil } from '../harness/poll.js';
import { loadConfig } from '../../server/config/index.js';
import { unixSocketPath } from '../../server/api/listen.js';

/** How long a server may take to open its socket (the kube framework waits 30 s). */
const START_TIMEOUT_MS = 30_000;
/** RunCustomEtcd sends SIGTERM and kills etcd after 5 s. */
const KUBE_STOP_GRACE_MS = 5_000;

/** RunCustomEtcd's arguments for a data dir (the socket is <dataDir>/etcd.sock), then its custom flags. */
function kubeArgs(dataDir: string, custom: readonly string[]): string[] {
  return [
    '--data-dir', dataDir,
    '--listen-client-urls', `unix://${join(dataDir, 'etcd.sock')}`,
    '--advertise-client-urls', 'http://127.0.0.111:0',
    '--listen-peer-urls', 'http://127.0.0.1:0',
    '-log-level', 'warn',
    '--quota-backend-bytes', String(8 * 1024 * 1024 * 1024),
    ...custom,
  ];
}

/** How a process ended: its exit code, or 'SIGTERM' etc. when a signal ended it (etcd 3.4 re-raises SIGTERM). */
type Ending = number | NodeJS.Signals | null;

interface Proc {
  readonly child: ChildProcess;
  /** stdout so far. */
  stdout(): string;
  /** stderr so far, split into lines. */
  stderr(): string[];
  /** Resolves once the process is gone. */
  readonly exit: Promise<Ending>;
  /** SIGTERM; resolves with how the process ended and how long that took. */
  stop(): Promise<{ code: Ending; ms: number }>;
  kill9(): Promise<void>;
}

function launch(cmd: string, args: readonly string[], cwd?: string): Proc {
  const child = spawn(cmd, [...args], { cwd, env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  let gone = false;
  const exit = new Promise<Ending>((res) =>
    child.once('exit', (code, signal) => {
      gone = true;
      res(code ?? signal);
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err.split('\n').filter((l) => l !== ''),
    exit,
    stop: async () => {
      const t0 = Date.now();
      if (!gone) child.kill('SIGTERM');
      const code = await exit;
      return { code, ms: Date.now() - t0 };
    },
    kill9: async () => {
      if (!gone) child.kill('SIGKILL');
      await exit;
    },
  };
}

const cairn = (args: readonly string[], cwd?: string): Proc => launch(process.execPath, [CAIRN_MAIN, ...args], cwd);

function canConnect(path: string): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** RunCustomEtcd's readiness: a unix connection to the socket succeeds. Fails early if the server exits. */
async function waitSocket(p: Proc, path: string): Promise<void> {
  let exited = false;
  void p.exit.then(() => (exited = true));
  await pollUntil(
    `a connection on ${path}`,
    async () => {
      if (exited) throw new Error(`server exited before serving ${path}:\n${p.stderr().slice(-20).join('\n')}`);
      return canConnect(path);
    },
    START_TIMEOUT_MS,
    50,
  );
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, [...args], { cwd: opts.cwd, env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

/** etcdctl against one endpoint; the run must succeed. */
async function ctl(endpoint: string, args: readonly string[], opts: { cwd?: string; tls?: readonly string[] } = {}): Promise<string> {
  const r = await run(etcdctlBin(), [`--endpoints=${endpoint}`, '--dial-timeout=5s', '--command-timeout=10s', ...(opts.tls ?? []), ...args], opts);
  assert.equal(r.code, 0, `etcdctl ${args.join(' ')} on ${endpoint} failed: ${r.stderr}`);
  return r.stdout;
}

/** GET over HTTP/1.1 on the socket file. */
function httpGet(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ socketPath, path, method: 'GET', headers: { host: 'localhost' } }, (resp) => {
      let body = '';
      resp.setEncoding('utf8').on('data', (d: string) => (body += d));
      resp.on('end', () => res({ status: resp.statusCode ?? 0, body }));
    });
    req.on('error', rej);
    req.end();
  });
}

/** GET over HTTP/2 (prior knowledge) on the socket file, with the :authority Go's clientv3 3.6 sends there (the file's base name). */
function http2Get(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const session = http2.connect('http://etcd.sock', { createConnection: () => connect(socketPath) });
    session.on('error', rej);
    const req = session.request({ ':path': path, ':method': 'GET' });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      session.close();
      res({ status, body });
    });
    req.on('error', rej);
    req.end();
  });
}

function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

test('unixSocketPath: host + path of the URL, percent-decoded, as etcd listens', () => {
  const cases: [string, string][] = [
    ['unix:///tmp/a.sock', '/tmp/a.sock'],
    ['unixs:///tmp/b.sock', '/tmp/b.sock'],
    ['unix://localhost:2379', 'localhost:2379'],
    ['unix://etcd.sock', 'etcd.sock'],
    ['unix://dir/etcd.sock', 'dir/etcd.sock'],
    ['unix:/tmp/c.sock', '/tmp/c.sock'],
    ['unix:///tmp/my%20sock', '/tmp/my sock'],
  ];
  for (const [url, path] of cases) assert.equal(unixSocketPath(new URL(url)), path, url);
  for (const bad of ['unix://', 'unix:', 'unix:rel.sock', 'unix:///tmp/%00x', 'unix:///tmp/%zz', `unix:///tmp/${'s'.repeat(120)}`]) {
    assert.throws(() => unixSocketPath(new URL(bad)), Error, bad);
  }
});

test("RunCustomEtcd's command line parses: a unix listen URL, port 0 on the advertised and peer URLs", () => {
  const cfg = loadConfig(kubeArgs('/tmp/kube-x', ['--watch-progress-notify-interval=1s']), {});
  assert.deepEqual(cfg.listenClientUrls.map((u) => u.href), ['unix:///tmp/kube-x/etcd.sock']);
  assert.deepEqual(cfg.advertiseClientUrls.map((u) => [u.hostname, u.port]), [['127.0.0.111', '0']]);
  assert.deepEqual(cfg.listenPeerUrls.map((u) => [u.hostname, u.port]), [['127.0.0.1', '0']]);
  assert.equal(cfg.logLevel, 'warn');
  assert.equal(cfg.quotaBackendBytes, 8589934592);
  assert.equal(cfg.watchProgressNotifyIntervalMs, 1000);
  assert.equal(loadConfig(kubeArgs('/tmp/kube-x', ['--experimental-watch-progress-notify-interval=1s']), {}).watchProgressNotifyIntervalMs, 1000);
  // etcd lets a unix URL be advertised only as unix://host:port.
  assert.deepEqual(loadConfig(['--listen-client-urls', 'unix://localhost:1', '--advertise-client-urls', 'unix://localhost:1'], {}).advertiseClientUrls.map((u) => u.host), ['localhost:1']);
});

test('the exact RunCustomEtcd command line: etcdctl put/get/watch/endpoint status and HTTP on the socket; the file goes at stop', async () => {
  const dataDir = tempDir('cairn-unix-kube-');
  const sock = join(dataDir, 'etcd.sock');
  const ep = `unix://${sock}`;
  const p = cairn(kubeArgs(dataDir, ['--watch-progress-notify-interval=1s']));
  try {
    await waitSocket(p, sock);
    assert.ok(isSocket(sock), 'the socket file is in the data dir');
    assert.equal(await ctl(ep, ['put', 'k', 'v1']), 'OK\n');
    assert.equal(await ctl(ep, ['put', 'k', 'v2']), 'OK\n');
    assert.equal(await ctl(ep, ['get', 'k']), 'k\nv2\n');

    // A watch from revision 1 replays both puts, then gets a live one.
    const watch = launch(etcdctlBin(), [`--endpoints=${ep}`, '--dial-timeout=5s', 'watch', 'k', '--rev=1']);
    try {
      await pollUntil('the replayed watch events', () => Promise.resolve(watch.stdout() === 'PUT\nk\nv1\nPUT\nk\nv2\n'), 15_000);
      assert.equal(await ctl(ep, ['put', 'k', 'v3']), 'OK\n');
      await pollUntil('the live watch event', () => Promise.resolve(watch.stdout().endsWith('PUT\nk\nv3\n')), 15_000);
      assert.equal(watch.stdout(), 'PUT\nk\nv1\nPUT\nk\nv2\nPUT\nk\nv3\n');
    } finally {
      await watch.kill9();
    }

    const status = JSON.parse(await ctl(ep, ['endpoint', 'status', '-w', 'json'])) as { Endpoint: string; Status: { header: { member_id: number }; leader: number; version: string } }[];
    assert.equal(status.length, 1);
    assert.equal(status[0]?.Endpoint, ep);
    assert.equal(status[0]?.Status.leader, status[0]?.Status.header.member_id, 'the single member leads');
    assert.match(status[0]?.Status.version ?? '', /^3\.6\./);
    const members = JSON.parse(await ctl(ep, ['member', 'list', '-w', 'json'])) as { members: { clientURLs: string[] }[] };
    assert.deepEqual(members.members.map((m) => m.clientURLs), [['http://127.0.0.111:0']]);

    // The HTTP side of the client port (sniffed as on TCP): /health and the gateway.
    const health = await httpGet(sock, '/health');
    assert.equal(health.status, 200);
    assert.equal((JSON.parse(health.body) as { health: string }).health, 'true');
    assert.equal((await httpGet(sock, '/version')).status, 200);
    const h2 = await http2Get(sock, '/health');
    assert.equal(h2.status, 200);
    assert.equal((JSON.parse(h2.body) as { health: string }).health, 'true');

    // -log-level warn: only JSON lines at warn or above (the framework parses them as JSON).
    for (const line of p.stderr()) {
      const level = (JSON.parse(line) as { level?: unknown }).level;
      assert.ok(level === 'warn' || level === 'error', `unexpected log line at -log-level warn: ${line}`);
    }
  } finally {
    const { code, ms } = await p.stop();
    assert.equal(code, 'SIGTERM', `Cairn re-raises SIGTERM after its shutdown, as etcd: ${p.stderr().join('\n')}`);
    assert.ok(ms < KUBE_STOP_GRACE_MS, `stopped in ${ms} ms (the framework kills after ${KUBE_STOP_GRACE_MS} ms)`);
  }
  assert.ok(!existsSync(sock), 'the socket file is removed at stop');
  assert.ok(existsSync(join(dataDir, 'member')), 'the data dir stays');
});

test('a stale socket (left by a killed server) is replaced at start; a non-socket file at the path is refused and kept', async () => {
  const dataDir = tempDir('cairn-unix-stale-');
  const sock = join(dataDir, 'etcd.sock');
  const ep = `unix://${sock}`;
  const first = cairn(kubeArgs(dataDir, []));
  try {
    await waitSocket(first, sock);
    assert.equal(await ctl(ep, ['put', 'survivor', 'yes']), 'OK\n');
  } finally {
    await first.kill9();
  }
  assert.ok(isSocket(sock), 'SIGKILL leaves the socket file behind');
  assert.equal(await canConnect(sock), false, 'nobody listens on it');

  const second = cairn(kubeArgs(dataDir, ['--experimental-watch-progress-notify-interval=1s']));
  try {
    await waitSocket(second, sock);
    assert.equal(await ctl(ep, ['get', 'survivor', '--print-value-only']), 'yes\n');
  } finally {
    assert.equal((await second.stop()).code, 'SIGTERM', 'Cairn re-raises SIGTERM after its shutdown, as etcd');
  }
  assert.ok(!existsSync(sock));

  // Not a socket: left alone, and the start fails saying why.
  const other = tempDir('cairn-unix-file-');
  const file = join(other, 'etcd.sock');
  writeFileSync(file, 'precious');
  const third = cairn(['--data-dir', join(other, 'data'), '--listen-client-urls', `unix://${file}`, '--listen-peer-urls', 'http://127.0.0.1:0', '-log-level', 'warn']);
  assert.equal(await third.exit, 1);
  assert.match(third.stderr().join('\n'), /cannot listen on unix socket .*etcd\.sock: the path exists and is not a socket/);
  assert.equal(readFileSync(file, 'utf8'), 'precious');
});

test('unixs: TLS on the socket file (etcdctl with --cacert, HTTPS /health)', async () => {
  const dir = tempDir('cairn-unixs-');
  const sock = join(dir, 'etcd.sock');
  const ca = makeCa('unixs-ca');
  // etcdctl checks the server certificate against the endpoint's "host", here the socket path.
  const server = ca.issue('server', { sans: ['IP:127.0.0.1', 'DNS:localhost', `DNS:${sock}`] });
  const p = cairn(['--data-dir', join(dir, 'data'), '--listen-client-urls', `unixs://${sock}`, '--advertise-client-urls', 'https://127.0.0.1:0', '--listen-peer-urls', 'http://127.0.0.1:0', '--cert-file', server.certFile, '--key-file', server.keyFile, '-log-level', 'warn']);
  try {
    await waitSocket(p, sock);
    const tls = ['--cacert', ca.caFile];
    assert.equal(await ctl(`unixs://${sock}`, ['put', 'sk', 'sv'], { tls }), 'OK\n');
    assert.equal(await ctl(`unixs://${sock}`, ['get', 'sk', '--print-value-only'], { tls }), 'sv\n');
    // Cleartext on a unixs socket gets nowhere.
    const plain = await run(etcdctlBin(), [`--endpoints=unix://${sock}`, '--dial-timeout=2s', '--command-timeout=3s', 'get', 'sk']);
    assert.notEqual(plain.code, 0);
    const curl = await run('curl', ['-sS', '--cacert', ca.caFile, '--unix-socket', sock, 'https://localhost/health']);
    assert.equal(curl.code, 0, curl.stderr);
    assert.equal((JSON.parse(curl.stdout) as { health: string }).health, 'true');
  } finally {
    assert.equal((await p.stop()).code, 'SIGTERM', 'Cairn re-raises SIGTERM after its shutdown, as etcd');
  }
  assert.ok(!existsSync(sock));
});

test('unix://localhost:N is a socket file "localhost:N" in the working directory, side by side with etcd 3.4', async () => {
  const name = `localhost:${await freePort()}`; // only a file name: nothing binds this port
  const ep = `unix://${name}`;
  const outputs: Record<string, string[]> = {};
  for (const kind of ['etcd', 'cairn'] as const) {
    const cwd = tempDir(`cairn-unix-cwd-${kind}-`);
    mkdirSync(join(cwd, 'data'));
    const args = ['--data-dir', join(cwd, 'data', kind), '--listen-client-urls', ep, '--advertise-client-urls', ep, '--listen-peer-urls', 'http://127.0.0.1:0', '--log-level', 'warn'];
    const p = kind === 'etcd' ? launch(etcdBin(), [...args, '--logger=zap'], cwd) : cairn(args, cwd);
    const sock = join(cwd, name);
    const seen: string[] = [];
    try {
      await waitSocket(p, sock);
      seen.push(await ctl(ep, ['put', 'a', '1'], { cwd }));
      seen.push(await ctl(ep, ['get', 'a'], { cwd }));
      seen.push(await ctl(ep, ['member', 'list', '-w', 'json'], { cwd }));
      const health = await run(etcdctlBin(), [`--endpoints=${ep}`, '--dial-timeout=5s', 'endpoint', 'health'], { cwd }); // etcdctl 3.4 reports on stderr
      seen.push(`${String(health.code)} ${health.stderr.replace(/took = \S+/, 'took = <t>')}`);
      const status = JSON.parse(await ctl(ep, ['endpoint', 'status', '-w', 'json'], { cwd })) as { Endpoint: string }[];
      seen.push(JSON.stringify(status.map((s) => s.Endpoint)));
      seen.push(String((JSON.parse((await httpGet(sock, '/health')).body) as { health: string }).health));
    } finally {
      // etcd 3.4 re-raises SIGTERM after its shutdown, and so does Cairn.
      assert.equal((await p.stop()).code, 'SIGTERM', `${kind}: ${p.stderr().join('\n')}`);
    }
    seen.push(`socket left: ${String(existsSync(sock))}`);
    outputs[kind] = seen;
  }
  assert.deepEqual(outputs['cairn'], outputs['etcd']);
  const members = JSON.parse(outputs['etcd']?.[2] ?? '{}') as { members?: { clientURLs: string[] }[] };
  assert.deepEqual(members.members?.map((m) => m.clientURLs), [[ep]], 'the advertised unix URL is what clients see');
  assert.equal(outputs['etcd']?.at(-1), 'socket left: false');
});

test('bad unix URLs are refused before anything starts, with a clear error', async () => {
  const dir = tempDir('cairn-unix-bad-');
  const dataDir = join(dir, 'data');
  const cases: [string[], RegExp][] = [
    [['--listen-client-urls', 'unix://'], /--listen-client-urls: "unix:\/\/" names no socket file/],
    [['--listen-client-urls', 'unix:etcd.sock'], /names no socket file/],
    [['--listen-client-urls', `unix:///tmp/${'s'.repeat(120)}`], /the socket path is 125 bytes long, a unix socket address holds at most 107/],
    [['--listen-client-urls', `unixs://${join(dir, 's.sock')}`], /has a unixs URL \(TLS on a unix socket\) but no --cert-file\/--key-file/],
    [['--listen-client-urls', `unix://${join(dir, 's.sock')}`, '--advertise-client-urls', `unix://${join(dir, 's.sock')}`], /--advertise-client-urls "unix:\/\/\/.*s\.sock" must be "host:port"/],
    [['--listen-client-urls', `unix://${join(dir, 's.sock')}`, '--listen-peer-urls', `unix://${join(dir, 'p.sock')}`], /--listen-peer-urls "unix:\/\/\/.*p\.sock" must be "host:port" \(as in etcd, a unix peer URL has the form unix:\/\/name:port/],
  ];
  for (const [flags, message] of cases) {
    const r = await run(process.execPath, [CAIRN_MAIN, '--data-dir', dataDir, ...flags]);
    assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /^cairn-server: error verifying flags, /);
  }
  assert.ok(!existsSync(dataDir), 'no data dir was made');
});
