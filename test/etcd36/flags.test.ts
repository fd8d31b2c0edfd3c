// etcd 3.6.8's command line, checked mechanically against the real binary (bins.ts 'etcd-3.6'):
// - every flag its --help lists is a Cairn flag, and its default value as etcd prints it is
//   accepted; a flag refused at some values (server/config/compat.ts REFUSED) is refused with a
//   message naming it, never at etcd's default; flags with no effect are named in a warning;
// - a flag given twice is accepted (last one wins), as etcd;
// - --feature-gates: etcd's gate names, and etcd's exact error text and exit status 2 for unknown
//   gates and bad values (both binaries run);
// - `gateway` and `grpc-proxy` are refused with exit status 2 and a reason;
// - --auto-tls: both servers write a self-signed certificate under <data-dir>/fixtures/client with
//   the same shape (curve, signature, CA, key usage, SANs), and serve https with it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { ConfigError, flagTable, loadConfig, NO_EFFECT, REFUSED, FEATURE_GATES } from '../../server/config/index.js';
import { refBinOrSkip } from '../harness/bins.js';
import { CAIRN_MAIN, startCairn, startEtcd, startTarget, tempDir, type ServerProc } from '../harness/procs.js';

/** etcd 3.6.8's path, or undefined after skipOrFail. */
const etcd36 = (t: TestContext): string | undefined => refBinOrSkip(t, 'etcd-3.6');

/** The flags of `etcd --help`: name -> default as printed ('' when none is printed). */
function etcdFlags(bin: string): Map<string, string> {
  const out = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  const flags = new Map<string, string>();
  for (const m of `${out.stdout}${out.stderr}`.matchAll(/^ {2}--([a-z0-9-]+)(?: '([^']*)'| (\S+))?$/gm)) {
    flags.set(m[1] ?? '', m[2] ?? m[3] ?? '');
  }
  return flags;
}

const ARGS_BASE: string[] = [];

test('every flag of etcd 3.6.8 --help is accepted by Cairn at etcd\'s default, or refused only at values it cannot honour, naming the flag', (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  const etcd = etcdFlags(bin);
  assert.ok(etcd.size > 120, `parsed ${etcd.size} flags from etcd --help`);
  const cairn = flagTable();
  const missing = [...etcd.keys()].filter((f) => !cairn.has(f));
  assert.deepEqual(missing, [], 'flags of etcd 3.6.8 that Cairn does not know');
  for (const [flag, def] of etcd) {
    if (['version', 'help', 'config-file'].includes(flag)) continue;
    const spec = cairn.get(flag);
    // etcd prints some defaults by name (math.MaxUint32) or not at all; a printed one must be accepted.
    if (spec === undefined || def === '' && spec.kind !== 'string') continue;
    try {
      loadConfig([...ARGS_BASE, `--${flag}=${def}`], {});
    } catch (err) {
      assert.fail(`--${flag}=${def} (etcd's default) refused: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  for (const [flag, refusal] of Object.entries(REFUSED)) {
    assert.ok(etcd.has(flag), `refusal list names --${flag}, which etcd 3.6.8 does not have`);
    const bad = ['true', 'false', '2', 'x', 'http://127.0.0.1:1', 'console'].find((v) => !refusal.ok(v) && (cairn.get(flag)?.kind !== 'bool' || /^(true|false)$/.test(v)) && (cairn.get(flag)?.kind !== 'int' || /^\d+$/.test(v)));
    assert.ok(bad !== undefined, `--${flag}: no refused value found`);
    assert.throws(() => loadConfig([`--${flag}=${bad}`], {}), (e: unknown) => e instanceof ConfigError && e.message.includes(`--${flag}=${bad} is not supported by Cairn: `) && e.message.length > `--${flag}=${bad} is not supported by Cairn: `.length + 10);
  }
  for (const flag of Object.keys(NO_EFFECT)) {
    assert.ok(etcd.has(flag), `no-effect list names --${flag}, which etcd 3.6.8 does not have`);
    const spec = cairn.get(flag);
    const other = spec?.kind === 'bool' ? (spec.def === 'true' ? 'false' : 'true') : spec?.kind === 'int' ? '7' : spec?.kind === 'duration' ? '7s' : 'write-only-drop-data';
    const cfg = loadConfig([`--${flag}=${flag === 'v2-deprecation' ? 'gone' : other}`], {});
    assert.deepEqual(cfg.noEffect.map((n) => n.flag), [flag], `--${flag} at a non-default value is named as having no effect`);
  }
  assert.deepEqual(Object.keys(FEATURE_GATES).sort(), [...(etcd.get('feature-gates') === undefined ? [] : spawnSync(bin, ['--help'], { encoding: 'utf8' }).stdout.matchAll(/^ {4}([A-Za-z]+)=true\|false/gm))].map((m) => m[1]).filter((g) => g !== 'AllAlpha' && g !== 'AllBeta').sort(), 'the same feature gates as etcd 3.6.8');
});

test('the 3.6 name and its --experimental-* alias set the same thing; the 3.6 name wins', () => {
  assert.equal(loadConfig(['--experimental-watch-progress-notify-interval=2s'], {}).watchProgressNotifyIntervalMs, 2000);
  assert.equal(loadConfig(['--watch-progress-notify-interval=3s', '--experimental-watch-progress-notify-interval=2s'], {}).watchProgressNotifyIntervalMs, 3000);
  assert.equal(loadConfig(['--corrupt-check-time=5s'], {}).corruptCheckTimeMs, 5000);
  assert.equal(loadConfig(['--snapshot-catchup-entries=7'], {}).snapshotCatchupEntries, 7);
  assert.equal(loadConfig(['--feature-gates=InitialCorruptCheck=true'], {}).initialCorruptCheck, true);
  assert.equal(loadConfig(['--experimental-initial-corrupt-check=true'], {}).initialCorruptCheck, true);
  assert.equal(loadConfig(['--experimental-initial-corrupt-check=true', '--feature-gates=InitialCorruptCheck=false'], {}).initialCorruptCheck, false, 'the gate wins');
  assert.equal(loadConfig(['--max-concurrent-streams=10'], {}).maxConcurrentStreams, 10);
  assert.equal(loadConfig(['--feature-gates=CompactHashCheck=true'], {}).compactHashCheck, true);
  assert.equal(loadConfig(['--experimental-compact-hash-check-enabled=true'], {}).compactHashCheck, true);
  assert.equal(loadConfig([], {}).compactHashCheck, false);
  assert.equal(loadConfig(['--experimental-compact-hash-check-time=2s'], {}).compactHashCheckTimeMs, 2000);
  assert.equal(loadConfig(['--compact-hash-check-time=3s', '--experimental-compact-hash-check-time=2s'], {}).compactHashCheckTimeMs, 3000);
  assert.equal(loadConfig([], {}).compactHashCheckTimeMs, 60_000);
  assert.equal(loadConfig(['--experimental-compaction-batch-limit=5'], {}).compactionBatchLimit, 5);
  assert.equal(loadConfig(['--compaction-batch-limit=0'], {}).compactionBatchLimit, undefined, 'etcd: 0 is the default');
  assert.equal(loadConfig([], {}).compactionBatchLimit, undefined);
  assert.equal(loadConfig(['--compaction-sleep-interval=1h'], {}).compactionSleepIntervalMs, 3_600_000);
  assert.equal(loadConfig(['--feature-gates=StopGRPCServiceOnDefrag=true'], {}).stopGrpcServiceOnDefrag, true);
  assert.equal(loadConfig(['--experimental-stop-grpc-service-on-defrag=true'], {}).stopGrpcServiceOnDefrag, true);
  assert.equal(loadConfig([], {}).stopGrpcServiceOnDefrag, false);
  assert.throws(() => loadConfig(['--feature-gates=SetMemberLocalAddr=true'], {}), /--feature-gates SetMemberLocalAddr=true is not supported by Cairn: /);
  assert.throws(() => loadConfig(['--feature-gates=AllAlpha=true'], {}), /is not supported by Cairn/);
  assert.equal(loadConfig(['--feature-gates=AllBeta=true,TxnModeWriteWithSharedBuffer=false'], {}).featureGates.get('TxnModeWriteWithSharedBuffer'), false);
});

/** Runs a binary with args and a fresh data dir as cwd; exit status and all output. */
function run(cmd: string, args: readonly string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, [...args], { encoding: 'utf8', cwd: tempDir('cairn-flags-'), timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('--feature-gates errors: etcd 3.6.8\'s text and exit status 2; a flag given twice is accepted by both', (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  for (const gates of ['Foo=true', 'CompactHashCheck=maybe', 'CompactHashCheck', 'InitialCorruptCheck=true,Bar=false']) {
    const e = run(bin, [`--feature-gates=${gates}`]);
    const c = run(process.execPath, [CAIRN_MAIN, `--feature-gates=${gates}`]);
    assert.equal(e.status, 2, `etcd exit status for ${gates}`);
    assert.equal(c.status, 2, `cairn exit status for ${gates}`);
    const line = /^invalid value .*$/m.exec(e.out)?.[0];
    assert.ok(line !== undefined, `etcd's message for ${gates}: ${e.out.slice(0, 200)}`);
    assert.ok(c.out.includes(line), `cairn says etcd's "${line}"; got ${c.out}`);
  }
  const e = run(bin, ['--name', 'a', '--name', 'a', '--version']);
  const c = run(process.execPath, [CAIRN_MAIN, '--name', 'a', '--name', 'a', '--version']);
  assert.equal(e.status, 0);
  assert.equal(c.status, 0);
});

test('etcd gateway and etcd grpc-proxy: refused with exit status 2 and a reason', () => {
  for (const sub of ['gateway', 'grpc-proxy']) {
    const c = run(process.execPath, [CAIRN_MAIN, sub, 'start']);
    assert.equal(c.status, 2);
    assert.match(c.out, new RegExp(`subcommand '${sub}' is not supported: .*etcd ${sub}`));
  }
});

interface CertShape {
  readonly curve: string;
  readonly ca: boolean;
  readonly subject: string;
  readonly issuer: string;
  readonly san: string;
  readonly keyUsage: readonly string[] | undefined;
  readonly days: number;
}

function shape(pem: string): CertShape {
  const c = new X509Certificate(pem);
  return {
    curve: c.publicKey.asymmetricKeyDetails?.namedCurve ?? '',
    ca: c.ca,
    subject: c.subject,
    issuer: c.issuer,
    san: c.subjectAltName ?? '',
    keyUsage: c.keyUsage,
    days: Math.round((Date.parse(c.validTo) - Date.parse(c.validFrom)) / 86_400_000),
  };
}

function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(`${url}/health`, { ca }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

test('--auto-tls: the same self-signed certificate shape as etcd 3.6.8, served over https', async (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  const servers: ServerProc[] = [];
  t.after(() => Promise.all(servers.map((s) => s.stop())));
  const shapes: CertShape[] = [];
  for (const kind of ['etcd', 'cairn'] as const) {
    const dataDir = tempDir(`cairn-autotls-${kind}-`);
    const s = await (kind === 'etcd' ? startEtcd({ etcdBin: bin, dataDir, extraArgs: ['--auto-tls'], tls: AUTO }) : startCairn({ dataDir, extraArgs: ['--auto-tls'], tls: AUTO }));
    servers.push(s);
    const pem = readFileSync(join(dataDir, 'fixtures', 'client', 'cert.pem'), 'utf8');
    shapes.push(shape(pem));
    assert.match(readFileSync(join(dataDir, 'fixtures', 'client', 'key.pem'), 'utf8'), /^-----BEGIN EC PRIVATE KEY-----/);
    assert.match(await httpsGet(s.clientUrl, pem), /"health":"true"/, `${kind}: /health over https with the generated certificate as CA`);
  }
  assert.deepEqual(shapes[1], shapes[0], 'Cairn\'s certificate has the shape of etcd\'s');
});

/** No certificate files: the harness passes none of --cert-file etc. but makes the client URL https. */
const AUTO = { certFile: '', keyFile: '' };

test('an https metrics URL without --cert-file/--key-file: etcd 3.6.8\'s message on both', (t) => {
  const bin = etcd36(t);
  if (bin === undefined) return;
  const args = ['--listen-metrics-urls', 'https://127.0.0.1:0'];
  const message = 'client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url';
  const e = run(bin, args);
  const c = run(process.execPath, [CAIRN_MAIN, ...args]);
  assert.ok(e.out.includes(message), `etcd: ${e.out.slice(-300)}`);
  assert.ok(c.out.includes(message), `cairn: ${c.out}`);
  assert.notEqual(c.status, 0);
});

test('deprecated flags: etcd 3.6.8\'s warnings on both; the start log names the catch-up entries and the enforced v2-deprecation', async (t) => {
  const etcdBin = etcd36(t);
  if (etcdBin === undefined) return;
  const extraArgs = ['--max-snapshots=10', '--experimental-snapshot-catchup-entries=1000', '--v2-deprecation=gone'];
  const wanted = [
    '--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.',
    "--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead.",
    '--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.',
    '"snapshot-catchup-entries":1000',
    '"v2-deprecation":"write-only"',
  ];
  for (const kind of ['etcd', 'cairn'] as const) {
    const s = await startTarget(kind, { extraArgs, ...(kind === 'etcd' ? { etcdBin } : {}) });
    try {
      const text = s.stderrLines().join('\n');
      for (const w of wanted) assert.ok(text.includes(w), `${kind} logs ${w}`);
    } finally {
      await s.stop();
    }
  }
});

test('--warning-unary-request-duration and its --experimental-* spelling together: refused as etcd 3.6 refuses them', () => {
  assert.throws(
    () => loadConfig(['--warning-unary-request-duration=1s', '--experimental-warning-unary-request-duration=1s'], {}),
    /^.*both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set\. Use only --warning-unary-request-duration$/,
  );
  assert.doesNotThrow(() => loadConfig(['--experimental-warning-unary-request-duration=1s'], {}));
});
