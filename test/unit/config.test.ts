// Flags, ETCD_* environment variables and --config-file, with etcd's names, defaults and precedence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError } from '../../server/config/index.js';
import { CAIRN_MAIN, startCairn, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';

test('defaults are etcd\'s (data dir named after the member)', () => {
  const c = loadConfig([], {});
  assert.equal(c.name, 'default');
  assert.equal(c.dataDir, 'default.cairn');
  assert.equal(c.walDir, '');
  assert.equal(c.requestBytesMax, 1572864);
  assert.equal(c.txnOpsMax, 128);
  assert.equal(c.quotaBackendBytes, 0);
  assert.equal(c.snapshotCount, 10000);
  assert.deepEqual(c.listenClientUrls.map((u) => u.host), ['localhost:2379']);
  assert.equal(loadConfig(['--name', 'm1'], {}).dataDir, 'm1.cairn');
});

test('flag forms: --f=v, --f v, -f v, bare booleans; a flag beats its ETCD_ variable', () => {
  const c = loadConfig(['--max-txn-ops=7', '-max-request-bytes', '2048', '--name', 'x', '--version'], { ETCD_MAX_TXN_OPS: '99', ETCD_WAL_DIR: '/w' });
  assert.equal(c.txnOpsMax, 7);
  assert.equal(c.requestBytesMax, 2048);
  assert.equal(c.name, 'x');
  assert.equal(c.showVersion, true);
  assert.equal(c.walDir, '/w', 'ETCD_WAL_DIR applies when the flag is absent');
  const multi = loadConfig(['--listen-client-urls', 'http://127.0.0.1:1,http://127.0.0.2:2'], {});
  assert.deepEqual(multi.listenClientUrls.map((u) => u.host), ['127.0.0.1:1', '127.0.0.2:2']);
});

test('bad flags and values are refused with clear messages', () => {
  assert.throws(() => loadConfig(['--no-such-flag'], {}), /flag provided but not defined: -no-such-flag/);
  assert.throws(() => loadConfig(['--max-txn-ops=abc'], {}), /invalid value "abc" for flag -max-txn-ops/);
  assert.throws(() => loadConfig(['--max-txn-ops'], {}), /flag needs an argument/);
  assert.throws(() => loadConfig(['--listen-client-urls', 'https://127.0.0.1:2379'], {}), /https URL but no --cert-file/);
  assert.throws(() => loadConfig(['--listen-client-urls', 'nonsense'], {}), ConfigError);
  assert.throws(() => loadConfig(['--log-level', 'loud'], {}), /invalid --log-level/);
  assert.equal(loadConfig(['--name', 'a', '--name', 'b'], {}).name, 'b', 'a flag given twice: the last one wins, as etcd (Go flag package)');
  assert.throws(() => loadConfig(['--wal-segment-bytes', '100'], {}), /--wal-segment-bytes must be at least 4096/);
});

test('a config file replaces flags and environment, as etcd\'s --config-file does', () => {
  const dir = tempDir('cairn-cfg');
  const file = join(dir, 'cairn.yaml');
  writeFileSync(file, 'name: from-file\nmax-txn-ops: 12\nlisten-client-urls: http://127.0.0.1:4001\n');
  const c = loadConfig(['--config-file', file, '--max-txn-ops', '3'], { ETCD_NAME: 'from-env' });
  assert.equal(c.name, 'from-file');
  assert.equal(c.txnOpsMax, 12);
  assert.equal(c.dataDir, 'from-file.cairn');
  writeFileSync(file, 'bogus-key: 1\n');
  assert.throws(() => loadConfig(['--config-file', file], {}), /unknown key 'bogus-key'/);
  assert.throws(() => loadConfig(['--config-file', join(dir, 'missing.yaml')], {}), /cannot read config file/);
});

test('config file: etcd\'s nested client-/peer-transport-security blocks set the TLS flags', () => {
  const dir = tempDir('cairn-cfg-tls');
  const file = join(dir, 'cairn.yaml');
  writeFileSync(
    file,
    [
      'listen-client-urls: https://127.0.0.1:4001',
      'listen-peer-urls: https://127.0.0.1:4002',
      'client-transport-security:',
      '  cert-file: /c.crt',
      '  key-file: /c.key',
      '  trusted-ca-file: /ca.crt',
      '  client-cert-auth: true',
      '  auto-tls: false',
      'peer-transport-security:',
      '  cert-file: /p.crt',
      '  key-file: /p.key',
      '',
    ].join('\n'),
  );
  const c = loadConfig(['--config-file', file], {});
  const none = { crlFile: '', allowedCns: [], allowedHostnames: [], autoTls: false, clientCertFile: '', clientKeyFile: '', skipClientSanVerify: false };
  assert.deepEqual(c.clientTls, { certFile: '/c.crt', keyFile: '/c.key', trustedCaFile: '/ca.crt', clientCertAuth: true, ...none });
  assert.deepEqual(c.peerTls, { certFile: '/p.crt', keyFile: '/p.key', trustedCaFile: '', clientCertAuth: false, ...none });
  writeFileSync(file, 'peer-transport-security:\n  auto-tls: true\n  allowed-cn: a,b\n');
  const auto = loadConfig(['--config-file', file], {});
  assert.equal(auto.peerTls?.autoTls, true, 'etcd\'s nested auto-tls is --peer-auto-tls');
  assert.deepEqual(auto.peerTls?.allowedCns, ['a', 'b']);
  writeFileSync(file, 'peer-transport-security:\n  bogus: 1\n');
  assert.throws(() => loadConfig(['--config-file', file], {}), /peer-transport-security.bogus' is not supported/);
});

test('auto compaction: etcd\'s retention forms (hours when unitless, a duration, a revision count)', () => {
  assert.equal(loadConfig([], {}).autoCompaction, undefined);
  assert.deepEqual(loadConfig(['--auto-compaction-retention', '1'], {}).autoCompaction, { mode: 'periodic', periodMs: 3_600_000 });
  assert.deepEqual(loadConfig(['--auto-compaction-retention', '90s'], {}).autoCompaction, { mode: 'periodic', periodMs: 90_000 });
  assert.deepEqual(loadConfig(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000'], {}).autoCompaction, { mode: 'revision', retentionRevs: 1000, checkIntervalMs: 300_000 });
  assert.throws(() => loadConfig(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '5m'], {}), /revision mode needs a revision count/);
  assert.throws(() => loadConfig(['--auto-compaction-mode', 'hourly'], {}), /unknown auto-compaction-mode/);
});

test('the server process exits 2 on an unknown flag and prints the flag', () => {
  const r = spawnSync(process.execPath, [CAIRN_MAIN, '--enable-v3-turbo'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /flag provided but not defined: -enable-v3-turbo/);
});

test('--version and --help print and exit 0', () => {
  const v = spawnSync(process.execPath, [CAIRN_MAIN, '--version'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(v.status, 0);
  // etcd's line first (etcd's e2e framework and scripts parse it), then Cairn's own version.
  assert.match(v.stdout, /^etcd Version: 3\.6\.\d+\ncairn Version: \d+\.\d+\.\d+\n/);
  const h = spawnSync(process.execPath, [CAIRN_MAIN, '--help'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--max-txn-ops/);
});

test('ETCD_* variables configure a running server (max txn ops enforced as configured)', async () => {
  const proc = await startCairn({ env: { ETCD_MAX_TXN_OPS: '2' } });
  const c = new EtcdClient(proc.endpoint);
  try {
    const put = (k: string): object => ({ request_put: { key: Buffer.from(k), value: Buffer.from('v') } });
    const ok = await c.txn({ success: [put('a'), put('b')] });
    assert.ok(ok.ok);
    const tooMany = await c.txn({ success: [put('a'), put('b'), put('c')] });
    assert.equal(tooMany.ok, false);
    if (!tooMany.ok) assert.equal(tooMany.details, 'etcdserver: too many operations in txn request');
    const ready = proc.stderrLines().map((l) => JSON.parse(l) as { msg: string; level: string });
    assert.ok(ready.some((l) => l.msg === 'ready to serve client requests' && l.level === 'info'), 'structured JSON readiness line');
  } finally {
    c.close();
    await proc.stop();
  }
});
