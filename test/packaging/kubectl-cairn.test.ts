// The kubectl plugin kubectl-cairn (operator/cli/) on localkube, against a 3-member cluster the
// operator runs, invoked as users do: `kubectl cairn ...` with operator/cli/bin/kubectl-cairn on PATH
// (kubectl's plugin discovery). The plugin reaches the members only through the Kubernetes API
// (port-forward); the test itself writes its data through the client Service.
//   status (members, leader, versions, db size, alarms, and the last backup once an on-demand
//   EtcdBackup to localkube's SeaweedFS succeeded), members (ids as in status),
//   compact (the old revision then refused), defrag (followers first, leader last, smaller
//   databases, progress), snapshot (a verified file: size = n*512 + 32, trailer = SHA-256 of the data,
//   accepted by `cairn snapshot status`, progress), move-leader (the target leads), alarm list|disarm
//   (a NOSPACE alarm raised through the API while the cluster is paused is listed, shown by status,
//   disarmed), and a missing cluster / bad usage refused with exit 1 / 2.
// Under CI=true a missing localkube prerequisite fails the test with the reason (skipOrFail).
// test-file-timeout: 10 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AlarmRequest_AlarmAction, AlarmType, MaintenanceService } from '../../proto/gen/etcdserverpb.js';
import { EtcdAdmin, fromHex } from '../../operator/etcd/index.js';
import { localkube, localkubeMissing, type LocalKube } from '../harness/localkube.js';
import { pollUntil } from '../harness/poll.js';
import { skipOrFail } from '../harness/prereq.js';
import { REPO_ROOT } from '../harness/procs.js';
import { S3_BUCKET, S3_ENDPOINT, S3_KEYS } from '../../hack/localkube/layout.js';

type Obj = Record<string, unknown>;
interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A PATH dir holding kubectl-cairn (as npm's bin link would). */
function pluginPath(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'kubectl-cairn-')), 'bin');
  mkdirSync(dir);
  symlinkSync(join(REPO_ROOT, 'operator', 'cli', 'bin', 'kubectl-cairn'), join(dir, 'kubectl-cairn'));
  return dir;
}

/** Runs a command to its exit, collecting its output (SIGKILL after timeoutMs). */
function runCommand(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** `kubectl cairn ...`: kubectl finds the plugin on PATH. */
function kubectlCairn(lk: LocalKube, binDir: string, args: readonly string[]): Promise<Run> {
  return runCommand(lk.kubectlPath, ['cairn', ...args], { ...process.env, PATH: `${binDir}:${process.env['PATH'] ?? ''}`, KUBECONFIG: lk.kubeconfig });
}

/** Raises an alarm on a member through the etcd API (Maintenance.Alarm ACTIVATE), as the server would. */
function activateAlarm(endpoint: string, memberId: string): Promise<void> {
  const client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
  const m = MaintenanceService.Alarm;
  return new Promise<void>((resolve, reject) => {
    client.makeUnaryRequest(
      m.path,
      (x: object) => m.encodeRequest(x),
      (b: Buffer) => m.decodeResponse(b),
      { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: fromHex(memberId), alarm: AlarmType.NOSPACE },
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err) => (err === null ? resolve() : reject(err)),
    );
  }).finally(() => client.close());
}

test('kubectl cairn on localkube against an operator-managed 3-member cluster', { timeout: 10 * 60_000 }, async (t) => {
  const missing = localkubeMissing();
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return;
  }
  const lk = await localkube();
  const ns = `kc-${randomBytes(3).toString('hex')}`;
  const bin = pluginPath();
  await lk.createNamespace(ns);
  t.after(async () => {
    await lk.kubectl(['delete', 'namespace', ns, '--wait=false']);
  });
  const cairn = async (args: readonly string[]): Promise<Run> => kubectlCairn(lk, bin, [...args, '-n', ns]);
  const cairnOk = async (args: readonly string[]): Promise<Run> => {
    const r = await cairn(args);
    assert.equal(r.code, 0, `kubectl cairn ${args.join(' ')}\n${r.stdout}${r.stderr}`);
    return r;
  };
  const statusJson = async (): Promise<Obj> => JSON.parse((await cairnOk(['status', 'kc', '-o', 'json'])).stdout) as Obj;
  const membersOf = (s: Obj): Obj[] => s['members'] as Obj[];
  const leaderOf = (s: Obj): string => String(membersOf(s).find((m) => m['leader'] === true)?.['name']);

  const t0 = Date.now();
  await lk.apply(
    JSON.stringify({
      apiVersion: 'cairn.dev/v1alpha1',
      kind: 'EtcdCluster',
      metadata: { name: 'kc', namespace: ns },
      spec: { replicas: 3, storage: { data: { size: '256Mi' }, wal: { size: '256Mi' }, reclaimPolicy: 'Delete' } },
    }),
  );
  await lk.waitJsonpath({ namespace: ns, resource: 'etcdcluster/kc', jsonpath: '{.status.readyMembers}/{.status.phase}', pred: (v) => v === '3/3/Running', what: 'kc 3/3 Running', timeoutMs: 300_000 });
  t.diagnostic(`3-member cluster Running: ${String(Date.now() - t0)} ms`);
  const ip = (await lk.kubectlOk(['get', 'service', '-n', ns, 'kc-client', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const endpoint = `${ip}:2379`;

  await t.test('status: three healthy members, one leader, versions, db size, no alarms, no backup', async () => {
    const s = await statusJson();
    assert.equal(s['phase'], 'Running');
    const ms = membersOf(s);
    assert.deepEqual(ms.map((m) => m['name']), ['kc-0', 'kc-1', 'kc-2']);
    assert.equal(ms.filter((m) => m['leader'] === true).length, 1, 'one leader');
    for (const m of ms) {
      assert.equal(m['healthy'], true, JSON.stringify(m));
      assert.equal(m['version'], 'dev', 'the image tag the operator reports');
      assert.match(String(m['apiVersion']), /^3\.\d+\.\d+$/, "etcd's API version from Status");
      assert.ok(Number(m['dbSize']) > 0);
      assert.match(String(m['id']), /^[0-9a-f]+$/);
    }
    assert.deepEqual(s['alarms'], []);
    assert.equal(s['lastBackup'], null);
    const text = (await cairnOk(['status', 'kc'])).stdout;
    for (const m of ms) assert.match(text, new RegExp(`^${String(m['name'])}\\s+${String(m['id'])}\\s+(leader|follower)\\s+yes\\s+dev`, 'm'), text);
    assert.match(text, /^Alarms: none$/m);
    assert.match(text, /^Last backup: none$/m);
  });

  await t.test('members: the ids status shows, no learner', async () => {
    const s = await statusJson();
    const listed = JSON.parse((await cairnOk(['members', 'kc', '-o', 'json'])).stdout) as Obj[];
    const byName = (rows: Obj[]): Array<[unknown, unknown]> => rows.map((m): [unknown, unknown] => [m['name'], m['id']]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    assert.deepEqual(byName(listed), byName(membersOf(s)));
    assert.ok(listed.every((m) => m['learner'] === false));
  });

  // History to compact and free pages to defragment: 100 keys of 4 KiB, each written three times.
  const admin = new EtcdAdmin(endpoint, 10_000);
  try {
    for (let round = 0; round < 3; round++) for (let i = 0; i < 100; i++) await admin.put(`k/${String(i)}`, randomBytes(2048).toString('hex'));
  } finally {
    admin.close();
  }

  let compactedAt = 0;
  await t.test('compact: at the current revision; a revision before it is then refused', async () => {
    const rev = Number(membersOf(await statusJson())[0]?.['revision']);
    assert.ok(rev >= 300, `revision ${String(rev)} after 300 writes`);
    const c = JSON.parse((await cairnOk(['compact', 'kc', '-o', 'json'])).stdout) as Obj;
    compactedAt = Number(c['revision']);
    assert.ok(compactedAt >= rev);
    const again = await cairn(['compact', 'kc', '--revision', String(compactedAt - 1)]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /required revision has been compacted/);
  });

  await t.test('defrag: every member, followers first and the leader last, each database smaller; progress on stderr', async () => {
    const leader = leaderOf(await statusJson());
    const r = await cairnOk(['defrag', 'kc', '-o', 'json']);
    const rows = JSON.parse(r.stdout) as Obj[];
    assert.deepEqual(rows.map((x) => x['member']).sort(), ['kc-0', 'kc-1', 'kc-2']);
    assert.equal(rows[2]?.['member'], leader, 'the leader last');
    for (const x of rows) assert.ok(Number(x['dbSizeAfter']) < Number(x['dbSizeBefore']), `${String(x['member'])}: ${String(x['dbSizeBefore'])} -> ${String(x['dbSizeAfter'])}`);
    t.diagnostic(`defrag: ${rows.map((x) => `${String(x['member'])} ${String(x['dbSizeBefore'])} -> ${String(x['dbSizeAfter'])} B in ${String(x['ms'])} ms`).join(', ')}`);
    assert.equal(r.stderr.split('\n').filter((l) => l.includes('"progress":"defrag:')).length, 6, `a line before and after each member:\n${r.stderr}`);
  });

  await t.test('snapshot: a verified local file (n*512 + 32 bytes, trailer = SHA-256 of the data) with progress', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kc-snap-')), 'kc.db');
    const r = await cairnOk(['snapshot', 'kc', file, '-o', 'json']);
    const res = JSON.parse(r.stdout) as Obj;
    const bytes = readFileSync(file);
    assert.equal(bytes.length, res['bytes']);
    assert.equal(statSync(file).size % 512, 32, "etcd's snapshot size rule");
    const data = bytes.subarray(0, bytes.length - 32);
    assert.equal(createHash('sha256').update(data).digest('hex'), bytes.subarray(bytes.length - 32).toString('hex'), 'trailer = SHA-256 of the data');
    assert.equal(createHash('sha256').update(bytes).digest('hex'), res['sha256']);
    assert.ok(Number(res['revision']) >= compactedAt);
    assert.match(r.stderr, /"progress":"snapshot: from kc-\d/);
    assert.match(r.stderr, /"progress":"snapshot: .* written to .*, verified"/);
    const st = await runCommand(process.execPath, [join(REPO_ROOT, 'dist', 'server', 'ctl', 'main.js'), 'snapshot', 'status', file, '-w', 'json']);
    assert.equal(st.code, 0, `cairn snapshot status accepts it: ${st.stderr}`);
    assert.match(st.stdout, /"revision":\s*\d+/, st.stdout);
  });

  await t.test('move-leader: the named follower leads', async () => {
    const s = await statusJson();
    const target = String(membersOf(s).find((m) => m['leader'] !== true)?.['name']);
    const r = await cairnOk(['move-leader', 'kc', target]);
    assert.match(r.stdout, new RegExp(`leadership moved from ${leaderOf(s)} to ${target}`));
    await pollUntil(`${target} leads`, async () => leaderOf(await statusJson()) === target, 20_000, 250);
  });

  await t.test("status: the last backup (an on-demand EtcdBackup to localkube's S3) as the operator recorded it", async () => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's3', namespace: ns }, stringData: { AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey } };
    await lk.apply(JSON.stringify(secret));
    const destination = { s3: { bucket: S3_BUCKET, prefix: `kubectl-cairn/${ns}/`, endpoint: S3_ENDPOINT, forcePathStyle: true, credentialsSecretRef: { name: 's3' } } };
    await lk.apply(JSON.stringify({ apiVersion: 'cairn.dev/v1alpha1', kind: 'EtcdBackup', metadata: { name: 'kc-now', namespace: ns }, spec: { clusterName: 'kc', destination } }));
    await lk.waitJsonpath({ namespace: ns, resource: 'etcdbackup/kc-now', jsonpath: '{.status.phase}', pred: (v) => v === 'Succeeded' || v === 'Failed', what: 'EtcdBackup kc-now finished', timeoutMs: 180_000 });
    const b = JSON.parse(await lk.kubectlOk(['get', 'etcdbackup', '-n', ns, 'kc-now', '-o', 'json'])) as Obj;
    const bs = b['status'] as Obj;
    assert.equal(bs['phase'], 'Succeeded', JSON.stringify(bs));
    let last: Obj | null = null;
    await pollUntil('the cluster status names the backup', async () => {
      last = (await statusJson())['lastBackup'] as Obj | null;
      return last !== null && last['name'] === 'kc-now';
    }, 60_000, 500);
    assert.deepEqual(last, { name: 'kc-now', uri: bs['uri'], time: bs['completionTime'], revision: bs['revision'], size: bs['size'] });
    assert.match((await cairnOk(['status', 'kc'])).stdout, new RegExp(`^Last backup: kc-now at ${String(bs['completionTime'])} \\(revision ${String(bs['revision'])}, .*, ${String(bs['uri'])}\\)$`, 'm'));
  });

  await t.test('alarm list|disarm: a NOSPACE alarm raised while the cluster is paused is listed, in status, then disarmed', async () => {
    assert.equal((await cairnOk(['alarm', 'list', 'kc'])).stdout.trim(), 'no alarms');
    // Paused: the operator's own NOSPACE remediation (compact, defrag, disarm) stays out of the way.
    await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'kc', '--type=merge', '-p', '{"spec":{"paused":true}}']);
    await lk.waitJsonpath({ namespace: ns, resource: 'etcdcluster/kc', jsonpath: '{.status.phase}', pred: (v) => v === 'Paused', what: 'kc Paused' });
    const member = membersOf(await statusJson()).find((m) => m['name'] === 'kc-1');
    assert.ok(member !== undefined);
    await activateAlarm(endpoint, String(member['id']));
    const listed = JSON.parse((await cairnOk(['alarm', 'list', 'kc', '-o', 'json'])).stdout) as Obj[];
    assert.deepEqual(listed, [{ member: 'kc-1', memberId: member['id'], alarm: 'NOSPACE' }]);
    assert.match((await cairnOk(['status', 'kc'])).stdout, new RegExp(`^Alarms: NOSPACE on kc-1 \\(${String(member['id'])}\\)$`, 'm'));
    assert.match((await cairnOk(['alarm', 'disarm', 'kc'])).stdout, /^disarmed NOSPACE on kc-1/m);
    assert.equal((await cairnOk(['alarm', 'list', 'kc'])).stdout.trim(), 'no alarms');
    await lk.kubectlOk(['patch', 'etcdcluster', '-n', ns, 'kc', '--type=merge', '-p', '{"spec":{"paused":false}}']);
  });

  await t.test('a missing cluster fails with exit 1 naming it; bad usage exits 2', async () => {
    const r = await cairn(['status', 'nope']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`EtcdCluster ${ns}/nope not found`));
    const u = await cairn(['snapshot', 'kc']);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /snapshot takes CLUSTER FILE/);
    const v = await cairn(['frobnicate', 'kc']);
    assert.equal(v.code, 2);
    assert.match(v.stderr, /unknown command frobnicate/);
  });
});
