// etcd's buckets in a bbolt database (etcd's server/storage/schema), decoded into plain data:
//   key        rev (8-byte BE main, '_', 8-byte BE sub[, 't' for a tombstone]) -> mvccpb.KeyValue
//   meta       scheduledCompactRev / finishedCompactRev -> rev bytes (17); consistent_index, term ->
//              uint64 BE; confState -> JSON; storageVersion -> "3.6.0" (3.6 only)
//   lease      lease id (int64 BE) -> leasepb.Lease {1 ID int64, 2 TTL int64, 3 RemainingTTL int64}
//   auth       authEnabled -> 1 byte; authRevision -> uint64 BE
//   authUsers  name -> authpb.User; authRoles: name -> authpb.Role
//   alarm      etcdserverpb.AlarmMember -> empty
//   members, members_removed, cluster: not carried over (a restore names the new members).
import { decodeKeyValue, type KeyValue } from '../../../proto/gen/mvccpb.js';
import { decodeRole, decodeUser, type Role, type User } from '../../../proto/gen/authpb.js';
import { Reader } from '../../../proto/wire.js';
import { decodeAlarmMember } from '../../../proto/gen/etcdserverpb.js';
import { BoltError, type BoltDb, type Bucket } from './reader.js';

export const REV_BYTES = 17;
export const TOMBSTONE_REV_BYTES = 18;

export interface EtcdRevision {
  readonly main: number;
  readonly sub: number;
  readonly tombstone: boolean;
  readonly kv: KeyValue;
}

export interface EtcdLease {
  readonly id: bigint;
  readonly ttl: number;
  readonly remainingTtl: number;
}

export interface EtcdData {
  /** Every stored revision in revision order (etcd's revision markers excepted: see topRevision). */
  readonly revisions: readonly EtcdRevision[];
  /**
   * The newest revision in the key bucket, counting the empty records `etcdutl snapshot restore
   * --bump-revision` writes to move the revision (they hold no key, so they are not revisions of any).
   */
  readonly topRevision: number;
  /** The alarm bucket: etcdserverpb.AlarmMember keys. */
  readonly alarms: readonly { memberId: bigint; alarm: number }[];
  /** -1 when never compacted. */
  readonly scheduledCompactRev: number;
  readonly finishedCompactRev: number;
  readonly leases: readonly EtcdLease[];
  readonly authEnabled: boolean;
  readonly authRevision: number;
  readonly users: readonly { name: string; raw: Buffer; user: User }[];
  readonly roles: readonly { name: string; raw: Buffer; role: Role }[];
  readonly consistentIndex: bigint;
  readonly term: bigint;
  readonly storageVersion: string | undefined;
}

function safe(n: bigint, what: string, name: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new BoltError(`${name}: ${what} ${n} is past 2^53`);
  return Number(n);
}

export function parseRev(k: Buffer, name: string): { main: number; sub: number; tombstone: boolean } {
  const tomb = k.length === TOMBSTONE_REV_BYTES;
  if ((k.length !== REV_BYTES && !tomb) || k[8] !== 0x5f || (tomb && k[17] !== 0x74)) {
    throw new BoltError(`${name}: key bucket holds a key of ${k.length} bytes (0x${k.toString('hex')}) that is not a revision`);
  }
  return { main: safe(k.readBigUInt64BE(0), 'revision', name), sub: safe(k.readBigUInt64BE(9), 'sub revision', name), tombstone: tomb };
}

function wrap<T>(name: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BoltError) throw err;
    throw new BoltError(`${name}: ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

export function decodeLease(b: Buffer): EtcdLease {
  const r = new Reader(b);
  let id = 0n;
  let ttl = 0;
  let remainingTtl = 0;
  while (r.pos < b.length) {
    const tag = r.uint32();
    const wt = tag & 7;
    const field = tag >>> 3;
    if (wt !== 0) {
      r.skip(wt);
      continue;
    }
    if (field === 1) id = r.bigint64();
    else if (field === 2) ttl = r.int64();
    else if (field === 3) remainingTtl = r.int64();
    else r.skip(wt);
  }
  return { id, ttl, remainingTtl };
}

function leaves(b: Bucket | undefined): { key: Buffer; value: Buffer }[] {
  return b === undefined ? [] : b.entries().filter((e) => !e.isBucket);
}

function metaRev(meta: Bucket | undefined, key: string, name: string): number {
  const e = meta?.get(Buffer.from(key));
  if (e === undefined) return -1;
  if (e.value.length < 8) throw new BoltError(`${name}: meta/${key} is ${e.value.length} bytes (want a revision)`);
  return safe(e.value.readBigUInt64BE(0), `meta/${key}`, name);
}

function metaU64(meta: Bucket | undefined, key: string, name: string): bigint {
  const e = meta?.get(Buffer.from(key));
  if (e === undefined) return 0n;
  if (e.value.length !== 8) throw new BoltError(`${name}: meta/${key} is ${e.value.length} bytes (want 8)`);
  return e.value.readBigUInt64BE(0);
}

/** etcd's buckets but the key bucket's revisions; `revisions` walks the key bucket page by page and returns the top revision. */
export interface EtcdStream {
  readonly data: Omit<EtcdData, 'revisions' | 'topRevision'>;
  /** Every stored revision in revision order (checked as it goes); returns the newest revision, markers included. */
  revisions(): Generator<EtcdRevision, number>;
}

/** Decodes etcd's small buckets at once and its key bucket on demand. Refuses a database without etcd's `key` and `meta` buckets. */
export function readEtcdStream(db: BoltDb): EtcdStream {
  const name = db.name;
  const keyBucket = db.bucket('key');
  const meta = db.bucket('meta');
  if (keyBucket === undefined || meta === undefined) throw new BoltError(`${name}: a bbolt database without etcd's "key" and "meta" buckets (not an etcd snapshot)`);
  function* revisions(): Generator<EtcdRevision, number> {
    let last = -1;
    let lastSub = -1;
    for (const e of (keyBucket as Bucket).iterate()) {
      if (e.isBucket) throw new BoltError(`${name}: key bucket holds a nested bucket`);
      const r = parseRev(e.key, name);
      if (r.main < last || (r.main === last && r.sub <= lastSub)) throw new BoltError(`${name}: key bucket out of order at revision ${r.main}_${r.sub}`);
      last = r.main;
      lastSub = r.sub;
      // etcdutl's --bump-revision marker: an empty value at the bumped revision
      if (e.value.length === 0 && !r.tombstone) continue;
      const kv = wrap(name, `revision ${r.main}_${r.sub}`, () => decodeKeyValue(e.value));
      if (kv.key.length === 0) throw new BoltError(`${name}: revision ${r.main}_${r.sub} holds a KeyValue without a key`);
      yield { ...r, kv };
    }
    return Math.max(last, 0);
  }
  const alarms = leaves(db.bucket('alarm')).map((e) => {
    const a = wrap(name, `alarm 0x${e.key.toString('hex')}`, () => decodeAlarmMember(e.key));
    return { memberId: a.memberID, alarm: a.alarm };
  });
  const leases = leaves(db.bucket('lease')).map((e) => wrap(name, `lease 0x${e.key.toString('hex')}`, () => decodeLease(e.value)));
  const auth = db.bucket('auth');
  const enabled = auth?.get(Buffer.from('authEnabled'));
  const authRev = auth?.get(Buffer.from('authRevision'));
  const users = leaves(db.bucket('authUsers')).map((e) => {
    const n = e.key.toString('utf8');
    return { name: n, raw: Buffer.from(e.value), user: wrap(name, `user ${JSON.stringify(n)}`, () => decodeUser(e.value)) };
  });
  const roles = leaves(db.bucket('authRoles')).map((e) => {
    const n = e.key.toString('utf8');
    return { name: n, raw: Buffer.from(e.value), role: wrap(name, `role ${JSON.stringify(n)}`, () => decodeRole(e.value)) };
  });
  const sv = meta.get(Buffer.from('storageVersion'));
  return {
    data: {
      alarms,
      scheduledCompactRev: metaRev(meta, 'scheduledCompactRev', name),
      finishedCompactRev: metaRev(meta, 'finishedCompactRev', name),
      leases,
      authEnabled: enabled !== undefined && enabled.value.length === 1 && enabled.value[0] === 1,
      authRevision: authRev !== undefined && authRev.value.length === 8 ? safe(authRev.value.readBigUInt64BE(0), 'authRevision', name) : 0,
      users,
      roles,
      consistentIndex: metaU64(meta, 'consistent_index', name),
      term: metaU64(meta, 'term', name),
      storageVersion: sv?.value.toString('utf8'),
    },
    revisions,
  };
}

/** Decodes etcd's buckets, every revision in memory (tests, small files). */
export function readEtcd(db: BoltDb): EtcdData {
  const s = readEtcdStream(db);
  const revisions: EtcdRevision[] = [];
  const it = s.revisions();
  let r = it.next();
  while (r.done !== true) {
    revisions.push(r.value);
    r = it.next();
  }
  return { ...s.data, revisions, topRevision: r.value };
}
