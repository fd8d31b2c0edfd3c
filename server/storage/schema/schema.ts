// The only code that builds or parses LMDB keys and records.
//
// rev table:   key = main revision (8 bytes BE) + sub revision (8 bytes BE)
//              value = flags (1 byte: bit 0 tombstone) + CRC-32 of the rest (4 bytes BE) + mvccpb.KeyValue
// index table (LMDB dupsort): key = the user key (raw bytes, so LMDB's order is etcd's byte order);
//              one value per revision of the key, 37 bytes, NEWEST FIRST (so a plain get returns the
//              newest): ~main (uint64 BE, bits inverted), ~sub (uint32 BE, bits inverted), flags (1 byte),
//              create revision (float64 BE), version (float64 BE), lease (int64 BE)
// lease table: key = lease id (int64 BE) -> granted TTL in seconds (float64 BE)
// leaseKeys table (LMDB dupsort): key = lease id (int64 BE) -> the user keys attached to it
// meta table:  fixed names -> 8-byte float64 BE numbers (applied index, current and compacted revisions)
//              or 8-byte big-endian unsigned ids.
import { crc32 } from 'node:zlib';
import { decodeKeyValue, encodeKeyValue, type KeyValue, type KeyValueInit } from '../../../proto/gen/mvccpb.js';
import { decodeRole, decodeUser, encodeRole, encodeUser, type Role, type RoleInit, type User, type UserInit } from '../../../proto/gen/authpb.js';
import { StorageFault } from '../../base/errors.js';

export interface Rev {
  readonly main: number;
  readonly sub: number;
}

export const TOMBSTONE = 1;

export function revKey(main: number, sub: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeUInt32BE(Math.floor(main / 4294967296), 0);
  b.writeUInt32BE(main >>> 0, 4);
  b.writeUInt32BE(Math.floor(sub / 4294967296), 8);
  b.writeUInt32BE(sub >>> 0, 12);
  return b;
}

export function parseRevKey(b: Buffer): Rev {
  if (b.length !== 16) throw new StorageFault(`schema: rev key of ${b.length} bytes`);
  return { main: b.readUInt32BE(0) * 4294967296 + b.readUInt32BE(4), sub: b.readUInt32BE(8) * 4294967296 + b.readUInt32BE(12) };
}

export interface RevRecord {
  readonly tombstone: boolean;
  readonly kv: KeyValue;
}

export function encodeRevRecord(kv: KeyValueInit, tombstone: boolean): Buffer {
  const body = encodeKeyValue(kv);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = tombstone ? TOMBSTONE : 0;
  out.writeUInt32BE(crc32(body), 1);
  body.copy(out, 5);
  return out;
}

export function decodeRevRecord(b: Buffer, where: string): RevRecord {
  if (b.length < 5) throw new StorageFault(`schema: rev record at ${where} is ${b.length} bytes`);
  const body = b.subarray(5);
  const want = b.readUInt32BE(1);
  const got = crc32(body);
  if (want !== got) throw new StorageFault(`schema: corrupt rev record at ${where}: crc ${got} != ${want}`);
  return { tombstone: ((b[0] as number) & TOMBSTONE) !== 0, kv: decodeKeyValue(body) };
}

export interface IndexEntry {
  readonly main: number;
  readonly sub: number;
  readonly tombstone: boolean;
  /** create_revision of the key's incarnation (0 for a tombstone). */
  readonly create: number;
  /** version of the key at this revision (0 for a tombstone). */
  readonly version: number;
  /** The lease the key is attached to at this revision (0n = none, and for a tombstone). */
  readonly lease: bigint;
}

const INDEX_ENTRY_BYTES = 37;

export function encodeIndexEntry(e: IndexEntry): Buffer {
  const b = Buffer.allocUnsafe(INDEX_ENTRY_BYTES);
  b.writeUInt32BE(~Math.floor(e.main / 4294967296) >>> 0, 0);
  b.writeUInt32BE(~e.main >>> 0, 4);
  b.writeUInt32BE(~e.sub >>> 0, 8);
  b[12] = e.tombstone ? TOMBSTONE : 0;
  b.writeDoubleBE(e.create, 13);
  b.writeDoubleBE(e.version, 21);
  b.writeBigInt64BE(e.lease, 29);
  return b;
}

export function decodeIndexEntry(b: Buffer, key: Uint8Array): IndexEntry {
  if (b.length !== INDEX_ENTRY_BYTES) {
    throw new StorageFault(`schema: corrupt index entry for key ${JSON.stringify(Buffer.from(key).toString('latin1'))}: ${b.length} bytes`);
  }
  return {
    main: (~b.readUInt32BE(0) >>> 0) * 4294967296 + (~b.readUInt32BE(4) >>> 0),
    sub: ~b.readUInt32BE(8) >>> 0,
    tombstone: ((b[12] as number) & TOMBSTONE) !== 0,
    create: b.readDoubleBE(13),
    version: b.readDoubleBE(21),
    lease: b.readBigInt64BE(29),
  };
}

export const META = {
  appliedIndex: Buffer.from('appliedIndex'),
  appliedTerm: Buffer.from('appliedTerm'),
  currentRev: Buffer.from('currentRev'),
  compactRev: Buffer.from('compactRev'),
  /** Revision of the compaction whose physical removal is unfinished (absent when none). */
  compactPhysicalRev: Buffer.from('compactPhysicalRev'),
  /** The next user key that physical compaction visits. */
  compactPhysicalFrom: Buffer.from('compactPhysicalFrom'),
  clusterId: Buffer.from('clusterId'),
  memberId: Buffer.from('memberId'),
  schemaVersion: Buffer.from('schemaVersion'),
  /** Set (to 1) once this member applied its own removal: it must never serve or rejoin again. */
  removed: Buffer.from('removed'),
  /** The snapshot index this database was installed from (a received snapshot), if any. */
  installedSnapshot: Buffer.from('installedSnapshot'),
  /** 1 while auth is enabled (etcd's authEnabled in the auth bucket). */
  authEnabled: Buffer.from('authEnabled'),
  /** The auth store's revision: bumped by every auth change (etcd's authRevision). */
  authRevision: Buffer.from('authRevision'),
} as const;

export const SCHEMA_VERSION = 4;

/** members table: key = member id (uint64 BE) -> JSON {name, peerURLs, clientURLs, isLearner}; removed ids keep {removed: true}. */
export interface MemberRecord {
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
  readonly removed: boolean;
}

export function memberKey(id: bigint): Buffer {
  return encodeId(id);
}

export function parseMemberKey(b: Buffer): bigint {
  if (b.length !== 8) throw new StorageFault(`schema: member key of ${b.length} bytes`);
  return b.readBigUInt64BE(0);
}

export function encodeMemberRecord(m: MemberRecord): Buffer {
  return Buffer.from(JSON.stringify({ name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner, removed: m.removed }));
}

export function decodeMemberRecord(b: Buffer, id: bigint): MemberRecord {
  let v: unknown;
  try {
    v = JSON.parse(b.toString('utf8'));
  } catch (err) {
    throw new StorageFault(`schema: corrupt member record for ${id.toString(16)}`, { cause: err });
  }
  const o = v as Partial<Record<keyof MemberRecord, unknown>>;
  const strs = (x: unknown): x is string[] => Array.isArray(x) && x.every((e) => typeof e === 'string');
  if (typeof v !== 'object' || v === null || typeof o.name !== 'string' || !strs(o.peerURLs) || !strs(o.clientURLs) || typeof o.isLearner !== 'boolean' || typeof o.removed !== 'boolean') {
    throw new StorageFault(`schema: corrupt member record for ${id.toString(16)}`);
  }
  return { name: o.name, peerURLs: o.peerURLs, clientURLs: o.clientURLs, isLearner: o.isLearner, removed: o.removed };
}

export function encodeNum(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeDoubleBE(n, 0);
  return b;
}

export function decodeNum(b: Buffer | undefined, fallback: number): number {
  if (b === undefined) return fallback;
  if (b.length !== 8) throw new StorageFault(`schema: meta number of ${b.length} bytes`);
  return b.readDoubleBE(0);
}

export function encodeId(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(id, 0);
  return b;
}

export function decodeId(b: Buffer | undefined): bigint | undefined {
  if (b === undefined) return undefined;
  if (b.length !== 8) throw new StorageFault(`schema: meta id of ${b.length} bytes`);
  return b.readBigUInt64BE(0);
}

/** A lease id as a key of the lease and leaseKeys tables (int64 big-endian). */
export function leaseKey(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(id, 0);
  return b;
}

export function parseLeaseKey(b: Buffer): bigint {
  if (b.length !== 8) throw new StorageFault(`schema: lease key of ${b.length} bytes`);
  return b.readBigInt64BE(0);
}

/** A lease record: the granted TTL in seconds. */
export function encodeLeaseRecord(ttlSeconds: number): Buffer {
  return encodeNum(ttlSeconds);
}

export function decodeLeaseRecord(b: Buffer, id: bigint): number {
  if (b.length !== 8) throw new StorageFault(`schema: corrupt lease record for lease ${id}: ${b.length} bytes`);
  return b.readDoubleBE(0);
}

/** alarm table: key = member id (uint64 BE) + alarm type (uint32 BE) -> empty (etcd's alarm bucket holds AlarmMember). */
export function alarmKey(memberId: bigint, alarm: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64BE(memberId, 0);
  b.writeUInt32BE(alarm, 8);
  return b;
}

export function parseAlarmKey(b: Buffer): { memberId: bigint; alarm: number } {
  if (b.length !== 12) throw new StorageFault(`schema: alarm key of ${b.length} bytes (want 12)`);
  return { memberId: b.readBigUInt64BE(0), alarm: b.readUInt32BE(8) };
}

// ---- auth (owned by the auth helper) ----
// authUsers table: key = user name (UTF-8) -> authpb.User; authRoles table: key = role name (UTF-8)
// -> authpb.Role (etcd's authUsers / authRoles buckets hold the same messages under the same keys).

export function authNameKey(name: string): Buffer {
  return Buffer.from(name, 'utf8');
}

export function parseAuthNameKey(b: Buffer): string {
  return b.toString('utf8');
}

export function encodeAuthUserRecord(u: UserInit): Buffer {
  return encodeUser(u);
}

export function decodeAuthUserRecord(b: Buffer, name: string): User {
  try {
    return decodeUser(b);
  } catch (err) {
    throw new StorageFault(`schema: corrupt auth user record for ${JSON.stringify(name)}`, { cause: err });
  }
}

export function encodeAuthRoleRecord(r: RoleInit): Buffer {
  return encodeRole(r);
}

export function decodeAuthRoleRecord(b: Buffer, name: string): Role {
  try {
    return decodeRole(b);
  } catch (err) {
    throw new StorageFault(`schema: corrupt auth role record for ${JSON.stringify(name)}`, { cause: err });
  }
}
