// Shared plumbing of the snapshot tests: running the `cairn` tool (server/bin/cairn), filling a
// server with a workload that has history (overwrites, deletes, leases, a compaction), reading every
// key, and counting an LMDB file's records independently of server/snap.
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { open } from 'lmdb';
import { REPO_ROOT, runEtcdctl, tempDir } from '../harness/procs.js';
import type { EtcdClient, Msg } from '../harness/client.js';
import { pool } from '../harness/poll.js';
import type { TestContext } from 'node:test';
import { etcd36Bin, etcdctl36Bin, etcdctlBin } from '../harness/bins.js';
import { missingPrerequisite, skipOrFail } from '../harness/prereq.js';

export const CAIRN_BIN = join(REPO_ROOT, 'server', 'bin', 'cairn');

export interface ToolRun {
  readonly exit: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const TOOL_TIMEOUT_MS = 60_000;

/** Runs `cairn <args>` (the bin wrapper, as an operator would) and collects its output. */
export function runCairn(args: readonly string[], opts: { cwd?: string } = {}): Promise<ToolRun> {
  return new Promise((res, rej) => {
    const child = spawn(CAIRN_BIN, [...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), TOOL_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ exit: code, stdout, stderr });
    });
  });
}

/** `etcdctl snapshot save` against one endpoint; asserts success. */
export async function saveSnapshot(endpoint: string, file: string): Promise<void> {
  const r = await runEtcdctl([`--endpoints=${endpoint}`, '--command-timeout=60s', 'snapshot', 'save', file], { timeoutMs: 90_000 });
  assert.equal(r.exit, 0, `etcdctl snapshot save failed: ${r.stderr}`);
  assert.match(r.stdout, /Snapshot saved at/);
}

export function ok(r: { ok: true; value: Msg } | { ok: false; code: number; details: string }, what: string): Msg {
  if (!r.ok) assert.fail(`${what}: code ${r.code} ${r.details}`);
  return r.value;
}

export function headerRev(m: Msg): number {
  return Number((m['header'] as Msg | undefined)?.['revision'] ?? NaN);
}

export function clusterIdOf(m: Msg): string {
  const id = (m['header'] as Msg | undefined)?.['cluster_id'];
  return typeof id === 'string' ? id : '';
}

const b = (s: string): Buffer => Buffer.from(s);


export interface Workload {
  /** Revision after the workload. */
  readonly revision: number;
  readonly compactRevision: number;
  readonly leases: readonly { id: string; ttl: number; keys: number }[];
  readonly liveKeys: number;
}

/**
 * `keys` keys written in Txn batches of 100, 200 single overwrites, two leases with keys attached,
 * a range delete and single deletes, a physical compaction in the middle, and writes after it.
 */
export async function fillWorkload(c: EtcdClient, keys: number): Promise<Workload> {
  const name = (i: number): string => `key/${String(i).padStart(5, '0')}`;
  const leaseIds = ['4660', '22136'];
  const leaseTtls = [600, 900];
  for (let i = 0; i < leaseIds.length; i++) ok(await c.unary('Lease', 'LeaseGrant', { ID: leaseIds[i], TTL: String(leaseTtls[i]) }), 'LeaseGrant');
  const batches: number[][] = [];
  for (let i = 0; i < keys; i += 100) batches.push(Array.from({ length: Math.min(100, keys - i) }, (_, j) => i + j));
  await pool(batches, 4, async (batch) => {
    const success = batch.map((i) => ({ request_put: { key: b(name(i)), value: b(`v${i}-`.repeat(8)) } }));
    ok(await c.txn({ success }), 'Txn');
  });
  const overwrites = Array.from({ length: 200 }, (_, i) => (i * 7) % keys);
  await pool(overwrites, 16, async (i) => {
    ok(await c.put({ key: b(name(i)), value: b(`overwritten ${i}`) }), 'Put');
  });
  const mid = headerRev(ok(await c.range({ key: b('key/'), limit: '1' }), 'Range'));
  const leaseKeys = [50, 10];
  for (let l = 0; l < leaseIds.length; l++) {
    const n = leaseKeys[l] ?? 0;
    await pool(Array.from({ length: n }, (_, i) => i), 8, async (i) => {
      ok(await c.put({ key: b(`lease${l}/${i}`), value: b('attached'), lease: leaseIds[l] }), 'Put with lease');
    });
  }
  ok(await c.deleteRange({ key: b(name(100)), range_end: b(name(200)) }), 'DeleteRange');
  for (let i = 300; i < 320; i++) ok(await c.deleteRange({ key: b(name(i)) }), 'Delete');
  ok(await c.compact({ revision: String(mid), physical: true }), 'Compact');
  await pool(Array.from({ length: 50 }, (_, i) => i), 8, async (i) => {
    ok(await c.put({ key: b(`after/${i}`), value: b(`after compaction ${i}`) }), 'Put');
  });
  const last = ok(await c.range({ key: b('\0'), range_end: b('\0'), count_only: true }), 'Range count');
  return {
    revision: headerRev(last),
    compactRevision: mid,
    leases: leaseIds.map((id, i) => ({ id, ttl: leaseTtls[i] ?? 0, keys: leaseKeys[i] ?? 0 })),
    liveKeys: Number(last['count']),
  };
}

/** Every key at `rev` (0 = latest) as comparable strings, and the header revision (`metadata`: a token under auth). */
export async function allKvs(c: EtcdClient, rev = 0, serializable = false, metadata?: Record<string, string>): Promise<{ kvs: string[]; revision: number }> {
  const r = ok(await c.range({ key: b('\0'), range_end: b('\0'), revision: String(rev), serializable }, { timeoutMs: 30_000, ...(metadata !== undefined ? { metadata } : {}) }), `Range all at ${String(rev)}`);
  const kvs = ((r['kvs'] as Msg[] | undefined) ?? []).map((kv) =>
    JSON.stringify([
      (kv['key'] as Buffer).toString('latin1'),
      (kv['value'] as Buffer).toString('latin1'),
      kv['create_revision'],
      kv['mod_revision'],
      kv['version'],
      kv['lease'],
    ]),
  );
  return { kvs, revision: headerRev(r) };
}

/** Runs a reference tool (etcdctl, etcdutl) with ETCDCTL_API=3; never rejects. */
export function runTool(bin: string, args: readonly string[]): Promise<{ exit: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(bin, [...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 90_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      res({ exit: code, stdout, stderr });
    });
  });
}

/** root's token as call metadata. */
export async function rootLogin(c: EtcdClient, password: string): Promise<Record<string, string>> {
  return { token: String(ok(await c.unary('Auth', 'Authenticate', { name: 'root', password }), `Authenticate on ${c.endpoint}`)['token']) };
}

/** What a server under auth serves: every key at latest and at `rev`, leases with their keys, users with their roles, and the latest revision. */
export async function servedView(c: EtcdClient, rootPassword: string, rev: number): Promise<{ latest: string[]; historical: string[]; leases: unknown[]; users: unknown[]; revision: number }> {
  const md = await rootLogin(c, rootPassword);
  const ids = ((ok(await c.unary('Lease', 'LeaseLeases', {}, { metadata: md }), 'LeaseLeases')['leases'] as Msg[] | undefined) ?? []).map((l) => String(l['ID'])).sort();
  const leases = [];
  for (const id of ids) {
    const t = ok(await c.unary('Lease', 'LeaseTimeToLive', { ID: id, keys: true }, { metadata: md }), 'LeaseTimeToLive');
    leases.push([id, t['grantedTTL'], ((t['keys'] as Buffer[] | undefined) ?? []).map((k) => k.toString()).sort()]);
  }
  const users = [];
  for (const name of (ok(await c.unary('Auth', 'UserList', {}, { metadata: md }), 'UserList')['users'] as string[] | undefined) ?? []) {
    users.push([name, ok(await c.unary('Auth', 'UserGet', { name }, { metadata: md }), 'UserGet')['roles']]);
  }
  const latest = await allKvs(c, 0, false, md);
  return { latest: latest.kvs, historical: (await allKvs(c, rev, false, md)).kvs, leases, users, revision: latest.revision };
}

export async function hashKv(c: EtcdClient, rev: number): Promise<{ hash: number; compactRevision: number }> {
  const r = ok(await c.unary('Maintenance', 'HashKV', { revision: String(rev) }, { timeoutMs: 30_000 }), 'HashKV');
  return { hash: Number(r['hash']), compactRevision: Number(r['compact_revision']) };
}

/**
 * Records in every named table of a snapshot's LMDB data (each dupsort value counted), read with
 * the lmdb package directly: an independent count for `snapshot status`'s total keys.
 */
export async function countLmdbRecords(snapshotFile: string, dataBytes: number): Promise<number> {
  const dir = mkdtempSync(join(tempDir('cairn-snapcount-'), 'x'));
  const path = join(dir, 'db.mdb');
  copyFileSync(snapshotFile, path);
  truncateSync(path, dataBytes);
  const root = open({ path, readOnly: true, maxDbs: 16, keyEncoding: 'binary', encoding: 'binary' });
  try {
    let total = 0;
    const names = [...root.getKeys()].map((k) => Buffer.from(k as Uint8Array).toString('utf8'));
    for (const name of names) {
      const dup = name === 'index' || name === 'leaseKeys';
      const db = root.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary', dupSort: dup });
      for (const entry of db.getRange({})) {
        void entry;
        total++;
      }
    }
    return total;
  } finally {
    await root.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The JSON log lines of a tool run's stderr. */
export function logLines(stderr: string): Msg[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Msg);
}

/** The reference etcd of a version and its own etcdctl (3.4: Debian's on PATH, etcdBin undefined; 3.6:
 * the kube cache's); undefined after skipOrFail when missing. */
export function referenceEtcd(t: TestContext, ver: '3.4' | '3.6'): { etcdBin?: string; etcdctl: string } | undefined {
  let etcdBin: string | undefined;
  let etcdctl = '';
  const missing = missingPrerequisite(() => {
    if (ver === '3.6') {
      etcdBin = etcd36Bin();
      etcdctl = etcdctl36Bin();
    } else etcdctl = etcdctlBin();
  });
  if (missing !== undefined) {
    skipOrFail(t, missing);
    return undefined;
  }
  return { ...(etcdBin !== undefined ? { etcdBin } : {}), etcdctl };
}
