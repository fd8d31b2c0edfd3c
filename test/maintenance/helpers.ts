// Shared plumbing of the maintenance tests: canonical forms of Maintenance responses (ids, sizes and
// revisions that legitimately differ between two servers replaced by placeholders), etcdctl runs
// reduced to comparable outcomes, and small gRPC helpers that fail loudly.
import assert from 'node:assert/strict';
import { statusName } from '../harness/client.js';
import type { CallResult, EtcdClient, Msg } from '../harness/client.js';
import { runEtcdctl } from '../harness/procs.js';
import { join } from 'node:path';
import { open } from 'lmdb';
import { decodeRevRecord, encodeRevRecord, parseRevKey } from '../../server/storage/schema/index.js';

export function ok(r: CallResult<Msg>, what: string): Msg {
  if (!r.ok) assert.fail(`${what}: ${statusName(r.code)} ${r.details}`);
  return r.value;
}

export function obj(v: unknown): Msg {
  return typeof v === 'object' && v !== null ? (v as Msg) : {};
}

export function headerOf(m: Msg): Msg {
  return obj(m['header']);
}

export function headerRev(m: Msg): number {
  return Number(headerOf(m)['revision'] ?? NaN);
}

/** A failed call as "CODE_NAME: details", a successful one as "OK". */
export function outcome(r: CallResult<Msg>): string {
  return r.ok ? 'OK' : `${statusName(r.code)}: ${r.details}`;
}

const NONZERO = '<nonzero>';

/**
 * A JSON-safe canonical copy of a decoded response: header ids, term and revision become "0" or
 * "<nonzero>" (a header that is absent stays null, so presence is compared); member ids in alarm
 * lists become "<self>" when they are the server's own id; Buffers become lengths.
 */
export function canonMsg(v: unknown, selfId: string, key = '', vary: readonly string[] = []): unknown {
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  if (Array.isArray(v)) {
    const items = v.map((x) => canonMsg(x, selfId, '', vary));
    // etcd lists alarms from a Go map: in no particular order.
    return key === 'alarms' ? items.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) : items;
  }
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (key === 'header' && ['cluster_id', 'member_id', 'raft_term', 'revision'].includes(k)) out[k] = x === '0' || x === 0 ? '0' : NONZERO;
      else if (k === 'memberID') out[k] = x === selfId ? '<self>' : x;
      else if (vary.includes(k)) out[k] = x === '0' || x === 0 ? '0' : NONZERO;
      else out[k] = canonMsg(x, selfId, k, vary);
    }
    return out;
  }
  return v;
}

/** canonResult with `vary` fields (values that legitimately differ) reduced to "0" / "<nonzero>". */
export function canonResult(r: CallResult<Msg>, selfId: string, vary: readonly string[] = []): unknown {
  return r.ok ? { ok: canonMsg(r.value, selfId, '', vary) } : { error: `${statusName(r.code)}: ${r.details}` };
}

/** An etcdctl run reduced to exit code, stdout (ids replaced) and its "Error:" lines. */
export interface CtlOutcome {
  readonly exit: number | null;
  readonly stdout: string;
  readonly errors: string;
}

export async function ctl(endpoint: string, args: readonly string[], replace: ReadonlyMap<string, string> = new Map()): Promise<CtlOutcome> {
  const r = await runEtcdctl([`--endpoints=${endpoint}`, '--command-timeout=30s', ...args], { timeoutMs: 60_000 });
  let stdout = r.stdout;
  for (const [from, to] of replace) stdout = stdout.split(from).join(to);
  // `alarm list` prints etcd's alarms in Go map order: sorted here.
  if (args[0] === 'alarm') stdout = stdout.split('\n').filter((l) => l !== '').sort().map((l) => `${l}\n`).join('');
  const errors = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('Error:'))
    .join('\n');
  return { exit: r.exit, stdout, errors };
}

/** Status of one server: member id (decimal), db size, in-use size, errors. */
export interface StatusInfo {
  readonly memberId: string;
  readonly clusterId: string;
  readonly revision: number;
  readonly dbSize: number;
  readonly dbSizeInUse: number;
  readonly errors: string[];
  readonly leader: string;
  readonly raw: Msg;
}

export async function statusOf(c: EtcdClient): Promise<StatusInfo> {
  const v = ok(await c.unary('Maintenance', 'Status', {}), 'Status');
  const h = headerOf(v);
  return {
    memberId: String(h['member_id']),
    clusterId: String(h['cluster_id']),
    revision: Number(h['revision']),
    dbSize: Number(v['dbSize']),
    dbSizeInUse: Number(v['dbSizeInUse']),
    errors: Array.isArray(v['errors']) ? v['errors'].map(String) : [],
    leader: String(v['leader']),
    raw: v,
  };
}

export interface HashKv {
  readonly hash: number;
  readonly compactRevision: number;
  readonly headerRevision: number;
}

export async function hashKvOf(c: EtcdClient, revision: number): Promise<HashKv> {
  const v = ok(await c.unary('Maintenance', 'HashKV', { revision: String(revision) }), `HashKV@${revision}`);
  return { hash: Number(v['hash']), compactRevision: Number(v['compact_revision']), headerRevision: headerRev(v) };
}

/** Compares two lists of labelled outcomes; returns one line per differing label. */
export function diffSteps(ref: ReadonlyArray<readonly [string, unknown]>, got: ReadonlyArray<readonly [string, unknown]>): string[] {
  const out: string[] = [];
  const n = Math.max(ref.length, got.length);
  for (let i = 0; i < n; i++) {
    const a = ref[i];
    const b = got[i];
    if (a === undefined || b === undefined || a[0] !== b[0]) {
      out.push(`step ${i}: labels differ (${String(a?.[0])} vs ${String(b?.[0])})`);
      continue;
    }
    const ja = JSON.stringify(a[1]);
    const jb = JSON.stringify(b[1]);
    if (ja !== jb) out.push(`${a[0]}:\n    etcd:  ${ja}\n    cairn: ${jb}`);
  }
  return out;
}

export { pool } from '../harness/poll.js';

/** Changes the newest value of `key` in a stopped member's LMDB file to `to` (same length). */
export async function corruptValue(dataDir: string, key: string, from: string, to: string): Promise<number> {
  assert.equal(from.length, to.length);
  const root = open({ path: join(dataDir, 'member', 'db.mdb'), keyEncoding: 'binary', encoding: 'binary', maxDbs: 16 });
  try {
    const rev = root.openDB<Buffer, Buffer>('rev', { keyEncoding: 'binary', encoding: 'binary' });
    let hit: { k: Buffer; main: number; record: Buffer } | undefined;
    for (const { key: k, value } of rev.getRange({})) {
      const r = decodeRevRecord(value, 'test');
      if (!r.tombstone && r.kv.key.toString() === key && r.kv.value.toString() === from) {
        const { main } = parseRevKey(k);
        if (hit === undefined || main > hit.main) hit = { k: Buffer.from(k), main, record: Buffer.from(value) };
      }
    }
    assert.ok(hit !== undefined, `no record of ${key}=${from} in ${dataDir}`);
    const r = decodeRevRecord(hit.record, 'test');
    const changed = encodeRevRecord({ ...r.kv, value: Buffer.from(to) }, false);
    assert.equal(changed.length, hit.record.length, 'the record keeps its length');
    await rev.put(hit.k, changed);
    // Well-formed: the store's own decoder accepts it.
    const back = rev.getBinary(hit.k);
    assert.ok(back !== undefined);
    assert.equal(decodeRevRecord(back, 'test').kv.value.toString(), to);
    return hit.main;
  } finally {
    await root.close();
  }
}
