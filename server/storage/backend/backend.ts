// The only importer of `lmdb`. One LMDB environment (one file) with named tables; writes happen in
// synchronous transactions that commit without their own fsync: durability comes from the WAL, and
// `flush()` makes LMDB durable before the WAL may forget what it holds.
import { open, type RootDatabase, type Database } from 'lmdb';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { StorageFault } from '../../base/errors.js';

export interface Entry {
  readonly key: Buffer;
  readonly value: Buffer;
}

export interface Table {
  get(key: Uint8Array): Buffer | undefined;
  put(key: Uint8Array, value: Uint8Array): void;
  del(key: Uint8Array): void;
  /** Keys in [start, end) in byte order; end undefined = to the last key. */
  range(start: Uint8Array, end: Uint8Array | undefined): Iterable<Entry>;
  /** The entry with the greatest key. */
  last(): Entry | undefined;
}

const TABLES = ['meta', 'index', 'rev'] as const;
export type TableName = (typeof TABLES)[number];

function table(db: Database<Buffer, Buffer>): Table {
  return {
    get: (key) => db.getBinary(Buffer.from(key.buffer, key.byteOffset, key.length)),
    put: (key, value) => {
      db.putSync(Buffer.from(key.buffer, key.byteOffset, key.length), Buffer.from(value.buffer, value.byteOffset, value.length));
    },
    del: (key) => {
      db.removeSync(Buffer.from(key.buffer, key.byteOffset, key.length));
    },
    range: (start, end) => {
      const opts = end === undefined ? { start: Buffer.from(start) } : { start: Buffer.from(start), end: Buffer.from(end) };
      return db.getRange(opts).map(({ key, value }) => ({ key: Buffer.from(key), value: Buffer.from(value) }));
    },
    last: () => {
      for (const { key, value } of db.getRange({ reverse: true, limit: 1 })) return { key: Buffer.from(key), value: Buffer.from(value) };
      return undefined;
    },
  };
}

export class Backend {
  private constructor(
    readonly path: string,
    private readonly env: RootDatabase,
    private readonly tables: Record<TableName, Table>,
  ) {}

  static open(path: string, mapBytes: number): Backend {
    mkdirSync(dirname(path), { recursive: true });
    let env: RootDatabase;
    try {
      env = open({ path, noSync: true, mapSize: mapBytes, maxDbs: 8, keyEncoding: 'binary', encoding: 'binary' });
      const tables = {} as Record<TableName, Table>;
      for (const name of TABLES) {
        tables[name] = table(env.openDB<Buffer, Buffer>(name, { keyEncoding: 'binary', encoding: 'binary' }));
      }
      return new Backend(path, env, tables);
    } catch (err) {
      throw new StorageFault(`backend: cannot open LMDB file ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  static exists(path: string): boolean {
    return existsSync(path);
  }

  table(name: TableName): Table {
    return this.tables[name];
  }

  /** Runs fn in one write transaction; a throw aborts every change fn made. */
  write<T>(fn: () => T): T {
    return this.env.transactionSync(fn);
  }

  /** Forces everything committed so far to disk. */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => {
      (this.env as unknown as { sync(cb: (err: unknown) => void): void }).sync((err: unknown) => {
        if (err) reject(new StorageFault(`backend: fsync of ${this.path} failed`, { cause: err }));
        else resolve();
      });
    });
  }

  sizeBytes(): number {
    return statSync(this.path).size;
  }

  close(): void {
    this.env.close();
  }
}
