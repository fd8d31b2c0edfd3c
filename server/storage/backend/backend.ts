// The only importer of `lmdb`. One LMDB environment (one file) with named tables; writes happen in
// synchronous transactions that commit without their own fsync: durability comes from the WAL, and
// `flush()` makes LMDB durable before the WAL may forget what it holds.
import { open, type RootDatabase, type Database } from 'lmdb';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { StorageFault } from '../../base/errors.js';

export interface Table {
  get(key: Uint8Array): Buffer | undefined;
  put(key: Uint8Array, value: Uint8Array): void;
  del(key: Uint8Array): void;
  /** Entries with start <= key < end (end undefined = to the last key), in key order. Buffers are valid until the next read. */
  entries(start: Uint8Array, end: Uint8Array | undefined): Iterable<{ key: Buffer; value: Buffer }>;
}

/** A table whose keys hold many sorted values (LMDB dupsort): one small record per value. */
export interface DupTable {
  add(key: Uint8Array, value: Uint8Array): void;
  remove(key: Uint8Array, value: Uint8Array): void;
  /** The key's smallest value (LMDB's first duplicate), or undefined when the key has none. */
  first(key: Uint8Array): Buffer | undefined;
  /** The key's values in value order, or reversed. Buffers are valid until the next read. */
  values(key: Uint8Array, reverse: boolean): Iterable<Buffer>;
  /** Distinct keys in [start, end) in byte order; end undefined = to the last key. Fresh buffers. */
  keys(start: Uint8Array, end: Uint8Array | undefined): Iterable<Buffer>;
}

const TABLES = ['meta', 'rev', 'lease', 'members', 'alarm', 'authUsers', 'authRoles'] as const;
export type TableName = (typeof TABLES)[number];
const DUP_TABLES = ['index', 'leaseKeys'] as const;
export type DupTableName = (typeof DUP_TABLES)[number];

const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);

function dupTable(get: () => Database<Buffer, Buffer>): DupTable {
  return {
    add: (key, value) => {
      get().putSync(view(key), view(value));
    },
    remove: (key, value) => {
      get().removeSync(view(key), view(value));
    },
    first: (key) => get().getBinary(view(key)),
    values: (key, reverse) => get().getValues(view(key), { reverse }),
    keys: (start, end) => {
      const opts = end === undefined ? { start: Buffer.from(start) } : { start: Buffer.from(start), end: Buffer.from(end) };
      return get().getKeys(opts).map((k) => Buffer.from(k));
    },
  };
}

function table(get: () => Database<Buffer, Buffer>): Table {
  return {
    get: (key) => get().getBinary(view(key)),
    put: (key, value) => {
      get().putSync(view(key), view(value));
    },
    del: (key) => {
      get().removeSync(view(key));
    },
    entries: (start, end) => {
      const opts = end === undefined ? { start: Buffer.from(start) } : { start: Buffer.from(start), end: Buffer.from(end) };
      return get().getRange(opts).map(({ key, value }) => ({ key, value }));
    },
  };
}

// LMDB's native code trusts its meta pages; a damaged one can crash the process. So before opening we
// check that at least one of the two meta pages (pages 0 and 1) carries LMDB's magic and meta flag.
/** LMDB's page size as lmdb-js builds it here (its meta pages record it; see LmdbMeta.pageBytes). */
export const LMDB_PAGE_BYTES = 4096;

// Meta pages 0 and 1 of the mdb.master format lmdb-js builds: a 24-byte page header (pgno u64, txnid
// u64, pad u16, flags u16, lower/upper u16), then MDB_meta: magic u32, version u32, address u64,
// mapsize u64, two MDB_db records of 48 bytes (FREE_DBI's md_pad holds the page size; md_root is the
// last u64 of each), then last_pg u64 and txnid u64. All little-endian.
const PAGE_FLAGS_AT = 18;
const P_META = 0x08;
const META_AT = 24;
const MAGIC_AT = META_AT;
const LMDB_MAGIC = 0xbeefc0de;
const PSIZE_AT = META_AT + 24;
const FREE_ROOT_AT = META_AT + 24 + 40;
const MAIN_ROOT_AT = META_AT + 24 + 48 + 40;
const LAST_PG_AT = META_AT + 24 + 96;
const TXNID_AT = LAST_PG_AT + 8;

/** What an LMDB meta page says about its database. */
export interface LmdbMeta {
  readonly pageBytes: number;
  readonly lastPage: bigint;
  readonly txnId: bigint;
  /** Root pages of the free list and the main database (P_INVALID 2^64-1 when empty). */
  readonly roots: readonly bigint[];
}

/**
 * Meta page `page` (0 or 1) of an LMDB file whose first 2 x LMDB_PAGE_BYTES are in `buf`, or
 * undefined when it lacks LMDB's meta flag or magic.
 */
export function parseLmdbMeta(buf: Buffer, page: number): LmdbMeta | undefined {
  const b = page * LMDB_PAGE_BYTES;
  if ((buf.readUInt16LE(b + PAGE_FLAGS_AT) & P_META) === 0 || buf.readUInt32LE(b + MAGIC_AT) !== LMDB_MAGIC) return undefined;
  return {
    pageBytes: buf.readUInt32LE(b + PSIZE_AT),
    lastPage: buf.readBigUInt64LE(b + LAST_PG_AT),
    txnId: buf.readBigUInt64LE(b + TXNID_AT),
    roots: [buf.readBigUInt64LE(b + FREE_ROOT_AT), buf.readBigUInt64LE(b + MAIN_ROOT_AT)],
  };
}

function checkHeader(path: string): void {
  if (!existsSync(path)) return;
  const size = statSync(path).size;
  if (size === 0) return;
  const buf = Buffer.alloc(2 * LMDB_PAGE_BYTES);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  if (size < buf.length || (parseLmdbMeta(buf, 0) === undefined && parseLmdbMeta(buf, 1) === undefined)) {
    throw new StorageFault(`backend: cannot open LMDB file ${path}: both meta pages are damaged (no LMDB magic); restore this member from a snapshot or its peers`);
  }
}

interface LmdbStats {
  readonly pageSize: number;
  readonly treeBranchPageCount: number;
  readonly treeLeafPageCount: number;
  readonly overflowPages: number;
}

interface Env {
  readonly root: RootDatabase;
  readonly dbs: Record<TableName | DupTableName, Database<Buffer, Buffer>>;
}

function openEnv(path: string, mapBytes: number): Env {
  mkdirSync(dirname(path), { recursive: true });
  checkHeader(path);
  try {
    const root = open({ path, noSync: true, mapSize: mapBytes, maxDbs: 16, keyEncoding: 'binary', encoding: 'binary' });
    const dbs = {} as Record<TableName | DupTableName, Database<Buffer, Buffer>>;
    for (const name of TABLES) dbs[name] = root.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary' });
    for (const name of DUP_TABLES) dbs[name] = root.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary', dupSort: true });
    return { root, dbs };
  } catch (err) {
    throw new StorageFault(`backend: cannot open LMDB file ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Writes into the LMDB file at `path` (not open elsewhere) and makes it durable before returning: a
 * received snapshot gets this member's own records (its identity) before it replaces the database, so
 * no crash can leave the sender's identity in place.
 */
async function rewriteFile(path: string, mapBytes: number, fn: (t: (name: TableName) => Table) => void): Promise<void> {
  const env = openEnv(path, mapBytes);
  try {
    env.root.transactionSync(() => fn((name) => table(() => env.dbs[name])));
    await new Promise<void>((resolve, reject) => {
      (env.root as unknown as { sync(cb: (err: unknown) => void): void }).sync((err: unknown) => {
        if (err) reject(new StorageFault(`backend: fsync of ${path} failed`, { cause: err }));
        else resolve();
      });
    });
  } finally {
    await env.root.close();
  }
}

export class Backend {
  private env: Env;
  private readonly tables = {} as Record<TableName, Table>;
  private readonly dupTables = {} as Record<DupTableName, DupTable>;

  private constructor(
    readonly path: string,
    private readonly mapBytes: number,
  ) {
    this.env = openEnv(path, mapBytes);
    for (const name of TABLES) this.tables[name] = table(() => this.env.dbs[name]);
    for (const name of DUP_TABLES) this.dupTables[name] = dupTable(() => this.env.dbs[name]);
  }

  static open(path: string, mapBytes: number): Backend {
    return new Backend(path, mapBytes);
  }

  /**
   * Replaces the whole database with the LMDB file at `from` (a snapshot received from the leader):
   * closes the environment, renames the file over ours (atomic), syncs the directory and reopens.
   * Table handles stay valid. Nothing may read or write in between (the caller holds them off).
   */
  async replaceWith(from: string, keep?: (incoming: (name: TableName) => Table) => void): Promise<void> {
    if (keep !== undefined) await rewriteFile(from, this.mapBytes, keep);
    await this.env.root.close();
    renameSync(from, this.path);
    rmSync(`${this.path}-lock`, { force: true });
    const dir = openSync(dirname(this.path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.env = openEnv(this.path, this.mapBytes);
  }

  /**
   * A consistent copy of the database at `to` (one read transaction). `compact` drops free pages and
   * renumbers the rest (defragmentation); otherwise the copy is page for page, which is faster.
   */
  backup(to: string, compact: boolean): Promise<void> {
    return this.env.root.backup(to, compact);
  }

  /** A compacting copy of the database beside it (defragmentation), fsynced, handed to `use` (which may move it), then removed. */
  async withCompactCopy(use: (path: string) => Promise<void>): Promise<void> {
    const tmp = join(dirname(this.path), `defrag-${process.hrtime.bigint().toString(36)}.mdb`);
    try {
      await this.backup(tmp, true);
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      await use(tmp);
    } finally {
      rmSync(tmp, { force: true });
      rmSync(`${tmp}-lock`, { force: true });
    }
  }

  /**
   * Bytes of pages holding data: the two meta pages plus every page of every table and of LMDB's
   * free list itself (etcd's size in use: the file's size less its free pages). The backend quota
   * counts this, not the file: a write transaction copies every page it changes and LMDB reuses a
   * freed page only once no snapshot can still see it, so the file carries several pages it will
   * reuse before growing (a fresh member's file is 13 pages with 6 holding data: a 13-page quota,
   * which etcd's 5-page bbolt file passes, would refuse the first put).
   */
  sizeInUseBytes(): number {
    const pages = (st: { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number }): number => st.treeBranchPageCount + st.treeLeafPageCount + st.overflowPages;
    const root = this.env.root.getStats() as LmdbStats & { free?: LmdbStats };
    let n = 2 + pages(root) + (root.free !== undefined ? pages(root.free) : 0);
    for (const db of Object.values(this.env.dbs)) n += pages(db.getStats() as LmdbStats);
    return n * root.pageSize;
  }

  /** Read transactions this process holds open on the file now (LMDB's reader table: a slot with a txn id). */
  openReadTxns(): number {
    const pid = String(process.pid);
    let n = 0;
    for (const line of this.env.root.readerList().split('\n')) {
      const [who, , txn] = line.trim().split(/\s+/);
      if (who === pid && txn !== undefined && txn !== '-') n++;
    }
    return n;
  }

  /** CRC-32 (IEEE) over the names, keys and values of the given tables, in key order. */
  hash(tables: readonly TableName[], dupTables: readonly DupTableName[]): number {
    let h = 0;
    for (const name of [...tables, ...dupTables]) {
      h = crc32(Buffer.from(name), h);
      for (const { key, value } of this.env.dbs[name].getRange({})) h = crc32(value, crc32(key, h));
    }
    return h >>> 0;
  }

  static exists(path: string): boolean {
    return existsSync(path);
  }

  table(name: TableName): Table {
    return this.tables[name];
  }

  dupTable(name: DupTableName): DupTable {
    return this.dupTables[name];
  }

  /** Runs fn in one write transaction; a throw aborts every change fn made. */
  write<T>(fn: () => T): T {
    return this.env.root.transactionSync(fn);
  }

  /** Makes the next reads in this process see every transaction committed so far (by any process). */
  renewReads(): void {
    this.env.root.resetReadTxn();
  }

  /** Forces everything committed so far to disk. */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => {
      (this.env.root as unknown as { sync(cb: (err: unknown) => void): void }).sync((err: unknown) => {
        if (err) reject(new StorageFault(`backend: fsync of ${this.path} failed`, { cause: err }));
        else resolve();
      });
    });
  }

  sizeBytes(): number {
    return statSync(this.path).size;
  }

  close(): Promise<void> {
    return this.env.root.close();
  }
}
