// Reads a bbolt database (etcd's backend file format), written from bbolt's published on-disk layout:
//
// page    = header {id u64, flags u16, count u16, overflow u32} (16 bytes, little-endian) + data;
//           a page with overflow n spans n+1 consecutive pages. flags: 0x01 branch, 0x02 leaf,
//           0x04 meta, 0x10 freelist.
// meta    = at offset 16 of pages 0 and 1: magic u32 (0xED0CDAED), version u32 (2), page size u32,
//           flags u32, root bucket {root pgid u64, sequence u64}, freelist pgid u64, high-water pgid
//           u64, txid u64, checksum u64 = FNV-1a 64 of the 56 bytes before it. The valid meta with
//           the larger txid is current.
// branch  = count elements of {pos u32, ksize u32, pgid u64} (16 bytes); the key lies at
//           element address + pos.
// leaf    = count elements of {flags u32, pos u32, ksize u32, vsize u32} (16 bytes); key at element
//           address + pos, value right after it; flags 0x01 = the value is a bucket.
// bucket  = value {root pgid u64, sequence u64}; root 0 = an inline bucket: a leaf page (header and
//           elements) follows in the value itself.
//
// Validation at the gate: every offset, length and page id is checked against the file before it is
// used, and page references are followed at most once per walk (a cycle is damage), so a damaged file
// is a BoltError naming what is wrong, never an exception from a Buffer read or an endless loop.
// A file is read page by page as it is walked (PageSource), so a large bucket is never whole in memory.
import { readSync } from 'node:fs';

export const BOLT_MAGIC = 0xed0cdaed;
export const BOLT_VERSION = 2;
export const PAGE_HEADER_BYTES = 16;
export const ELEMENT_BYTES = 16;
export const BUCKET_HEADER_BYTES = 16;
export const META_BYTES = 64;
export const META_CHECKSUM_AT = 56;

export const PAGE_BRANCH = 0x01;
export const PAGE_LEAF = 0x02;
export const PAGE_META = 0x04;
export const PAGE_FREELIST = 0x10;
export const LEAF_BUCKET = 0x01;

/** The deepest B+tree (and nesting of buckets) a walk follows before calling the file damaged. */
const DEPTH_MAX = 64;

/** A bbolt file that cannot be read: the message names the file and what is wrong in it. */
export class BoltError extends Error {
  override readonly name = 'BoltError';
}

/** FNV-1a, 64 bits (bbolt's meta checksum). */
export function fnv1a64(b: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const x of b) {
    h ^= BigInt(x);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

export interface BoltMeta {
  readonly page: number;
  readonly pageBytes: number;
  readonly flags: number;
  readonly root: bigint;
  readonly sequence: bigint;
  readonly freelist: bigint;
  /** One past the last page in use (bbolt's pgid high-water mark). */
  readonly pages: bigint;
  readonly txid: bigint;
}

export interface BoltEntry {
  readonly key: Buffer;
  readonly value: Buffer;
  /** The value is a nested bucket's header (use Bucket.bucket to open it). */
  readonly isBucket: boolean;
}

type MetaResult = { ok: true; meta: BoltMeta } | { ok: false; why: string };

/** Where the file's bytes come from: memory (tests, small files) or a file read page by page. */
export interface PageSource {
  /** Bytes of database (a snapshot's SHA-256 trailer excluded). */
  readonly size: number;
  /** Exactly `length` bytes at `at` (the caller checked the range). */
  read(at: number, length: number): Buffer;
}

class BufferSource implements PageSource {
  constructor(private readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  read(at: number, length: number): Buffer {
    return this.buf.subarray(at, at + length);
  }
}

class FileSource implements PageSource {
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly name: string,
  ) {}
  read(at: number, length: number): Buffer {
    const b = Buffer.allocUnsafe(length);
    for (let got = 0; got < length; ) {
      const n = readSync(this.fd, b, got, length - got, at + got);
      if (n === 0) throw new BoltError(`${this.name}: is truncated: it ended while being read (at byte ${at + got})`);
      got += n;
    }
    return b;
  }
}

function parseMetaAt(src: PageSource, page: number, pageBytes: number): MetaResult {
  const at = page * pageBytes;
  if (at + PAGE_HEADER_BYTES + META_BYTES > src.size) return { ok: false, why: `meta page ${page} lies past the end of the file (${src.size} bytes)` };
  const buf = src.read(at, PAGE_HEADER_BYTES + META_BYTES);
  const flags = buf.readUInt16LE(8);
  const m = PAGE_HEADER_BYTES;
  const magic = buf.readUInt32LE(m);
  if (magic !== BOLT_MAGIC) return { ok: false, why: `meta page ${page} has bad magic 0x${magic.toString(16)} (want 0x${BOLT_MAGIC.toString(16)})` };
  if ((flags & PAGE_META) === 0) return { ok: false, why: `meta page ${page} has page flags 0x${flags.toString(16)}, not a meta page` };
  const version = buf.readUInt32LE(m + 4);
  if (version !== BOLT_VERSION) return { ok: false, why: `meta page ${page} has version ${version} (want ${BOLT_VERSION})` };
  const want = buf.readBigUInt64LE(m + META_CHECKSUM_AT);
  const got = fnv1a64(buf.subarray(m, m + META_CHECKSUM_AT));
  if (want !== got) return { ok: false, why: `meta page ${page} has a bad checksum (stored 0x${want.toString(16)}, computed 0x${got.toString(16)})` };
  const size = buf.readUInt32LE(m + 8);
  if (size < 1024 || size > 65536 || (size & (size - 1)) !== 0) return { ok: false, why: `meta page ${page} has an invalid page size ${size}` };
  return {
    ok: true,
    meta: {
      page,
      pageBytes: size,
      flags: buf.readUInt32LE(m + 12),
      root: buf.readBigUInt64LE(m + 16),
      sequence: buf.readBigUInt64LE(m + 24),
      freelist: buf.readBigUInt64LE(m + 32),
      pages: buf.readBigUInt64LE(m + 40),
      txid: buf.readBigUInt64LE(m + 48),
    },
  };
}

/** A bucket: its B+tree root (a page id) or, for an inline bucket, the leaf page held in its value. */
export class Bucket {
  constructor(
    private readonly db: BoltDb,
    readonly path: string,
    private readonly root: bigint,
    private readonly inline: Buffer | undefined,
    private readonly depth: number,
  ) {}

  /** Every entry in key order, read as the walk goes (a large bucket is never whole in memory). */
  *iterate(): Generator<BoltEntry> {
    if (this.inline !== undefined) {
      const out: BoltEntry[] = [];
      this.db.readLeaf(this.inline, 0, `inline bucket ${this.path}`, out);
      yield* out;
    } else {
      yield* this.db.walk(this.root, this.path);
    }
  }

  /** Every entry in key order. */
  entries(): BoltEntry[] {
    return [...this.iterate()];
  }

  get(key: Uint8Array): BoltEntry | undefined {
    const k = Buffer.from(key);
    for (const e of this.iterate()) if (e.key.equals(k)) return e;
    return undefined;
  }

  /** The nested bucket `name`, or undefined when there is none (an entry that is not a bucket is damage). */
  bucket(name: string | Uint8Array): Bucket | undefined {
    const key = typeof name === 'string' ? Buffer.from(name) : Buffer.from(name);
    const e = this.get(key);
    if (e === undefined) return undefined;
    const path = `${this.path}/${key.toString('latin1')}`;
    if (!e.isBucket) throw new BoltError(`${this.db.name}: ${path} is a key, not a bucket`);
    return this.db.openBucket(e.value, path, this.depth + 1);
  }
}

export class BoltDb {
  readonly meta: BoltMeta;
  readonly pageBytes: number;

  private constructor(
    private readonly src: PageSource,
    readonly name: string,
  ) {
    this.meta = BoltDb.pickMeta(src, name);
    this.pageBytes = this.meta.pageBytes;
    const need = this.meta.pages * BigInt(this.pageBytes);
    if (need > BigInt(src.size)) {
      throw new BoltError(`${name}: is truncated: its meta page says ${this.meta.pages} pages (${need} bytes) but the file holds ${src.size} bytes`);
    }
    if (this.meta.pages < 4n) throw new BoltError(`${name}: its meta page says ${this.meta.pages} pages; a bbolt database has at least 4`);
    if (this.meta.root < 2n || this.meta.root >= this.meta.pages) throw new BoltError(`${name}: root bucket page ${this.meta.root} out of range (2..${this.meta.pages - 1n})`);
  }

  /** A database held in memory; checks the meta pages. */
  static open(buf: Buffer, name: string): BoltDb {
    return new BoltDb(new BufferSource(buf), name);
  }

  /**
   * The database in the first `bytes` bytes of the open file `fd`, read page by page as it is walked
   * (the caller closes fd); checks the meta pages.
   */
  static openFile(fd: number, bytes: number, name: string): BoltDb {
    return new BoltDb(new FileSource(fd, bytes, name), name);
  }

  /** Bytes of database according to its meta page (bbolt's tx.Size()). */
  get sizeBytes(): number {
    return Number(this.meta.pages) * this.pageBytes;
  }

  private static pickMeta(src: PageSource, name: string): BoltMeta {
    if (src.size < PAGE_HEADER_BYTES + META_BYTES) throw new BoltError(`${name}: ${src.size} bytes is too short for a bbolt database`);
    const m0 = parseMetaAt(src, 0, 4096);
    const size = m0.ok ? m0.meta.pageBytes : 4096;
    const m1 = parseMetaAt(src, 1, size);
    const good = [m0, m1].flatMap((m) => (m.ok ? [m.meta] : []));
    const [a, b] = good;
    if (a === undefined) {
      const why = [m0, m1].map((m) => (m.ok ? '' : m.why)).join('; ');
      throw new BoltError(`${name}: not a valid bbolt database: ${why}`);
    }
    return b !== undefined && b.txid > a.txid ? b : a;
  }

  get root(): Bucket {
    return new Bucket(this, '', this.meta.root, undefined, 0);
  }

  bucket(name: string): Bucket | undefined {
    return this.root.bucket(name);
  }

  /** A bucket from its header value (inline when its root is 0). */
  openBucket(value: Buffer, path: string, depth: number): Bucket {
    if (depth > DEPTH_MAX) throw new BoltError(`${this.name}: buckets nested deeper than ${DEPTH_MAX} at ${path}`);
    if (value.length < BUCKET_HEADER_BYTES) throw new BoltError(`${this.name}: bucket ${path} has a ${value.length}-byte header (want ${BUCKET_HEADER_BYTES})`);
    const root = value.readBigUInt64LE(0);
    if (root === 0n) {
      const page = value.subarray(BUCKET_HEADER_BYTES);
      if (page.length < PAGE_HEADER_BYTES) throw new BoltError(`${this.name}: inline bucket ${path} is ${page.length} bytes, shorter than a page header`);
      return new Bucket(this, path, 0n, Buffer.from(page), depth);
    }
    this.checkPageId(root, path);
    return new Bucket(this, path, root, undefined, depth);
  }

  private checkPageId(id: bigint, where: string): void {
    if (id < 2n || id >= this.meta.pages) throw new BoltError(`${this.name}: ${where || 'root bucket'} refers to page ${id}, out of range (2..${this.meta.pages - 1n})`);
  }

  /** The bytes of page `id` with its overflow pages, bounds-checked. */
  page(id: bigint, where: string): Buffer {
    this.checkPageId(id, where);
    const at = Number(id) * this.pageBytes;
    const head = this.src.read(at, PAGE_HEADER_BYTES);
    const hdrId = head.readBigUInt64LE(0);
    if (hdrId !== id) throw new BoltError(`${this.name}: page ${id} (${where || 'root bucket'}) has id ${hdrId} in its header`);
    const overflow = head.readUInt32LE(12);
    const end = id + 1n + BigInt(overflow);
    if (end > this.meta.pages) throw new BoltError(`${this.name}: page ${id} has ${overflow} overflow pages, past the last page ${this.meta.pages - 1n}`);
    return this.src.read(at, (overflow + 1) * this.pageBytes);
  }

  /**
   * The entries of the subtree at page `id` in key order, read page by page (depth-first; one page per
   * level held). A page reached twice in one walk is damage (a cycle), so a walk ends.
   */
  *walk(id: bigint, where: string): Generator<BoltEntry> {
    const what = where || 'root bucket';
    const seen = new Uint8Array(Math.ceil(Number(this.meta.pages) / 8));
    const stack: { page: Buffer; pid: bigint; next: number; count: number }[] = [];
    const enter = (pid: bigint): BoltEntry[] | undefined => {
      if (stack.length >= DEPTH_MAX) throw new BoltError(`${this.name}: B+tree of ${what} deeper than ${DEPTH_MAX} pages`);
      this.checkPageId(pid, where);
      const n = Number(pid);
      if (((seen[n >> 3] as number) & (1 << (n & 7))) !== 0) throw new BoltError(`${this.name}: page ${pid} is reached twice in ${what} (a cycle)`);
      seen[n >> 3] = (seen[n >> 3] as number) | (1 << (n & 7));
      const p = this.page(pid, where);
      const flags = p.readUInt16LE(8);
      if ((flags & PAGE_LEAF) !== 0) {
        const out: BoltEntry[] = [];
        this.readLeaf(p, 0, `page ${pid}`, out);
        return out;
      }
      if ((flags & PAGE_BRANCH) === 0) throw new BoltError(`${this.name}: page ${pid} in ${what} has flags 0x${flags.toString(16)}, neither branch nor leaf`);
      const count = p.readUInt16LE(10);
      if (PAGE_HEADER_BYTES + count * ELEMENT_BYTES > p.length) throw new BoltError(`${this.name}: branch page ${pid} claims ${count} elements, more than fit in it`);
      stack.push({ page: p, pid, next: 0, count });
      return undefined;
    };
    const leaf = enter(id);
    if (leaf !== undefined) {
      yield* leaf;
      return;
    }
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { page: Buffer; pid: bigint; next: number; count: number };
      if (top.next >= top.count) {
        stack.pop();
        continue;
      }
      const el = PAGE_HEADER_BYTES + top.next * ELEMENT_BYTES;
      top.next++;
      const child = enter(top.page.readBigUInt64LE(el + 8));
      if (child !== undefined) yield* child;
    }
  }

  /** Appends a leaf page's entries (the page at `at` in `p`: a file page or an inline bucket's value). */
  readLeaf(p: Buffer, at: number, what: string, out: BoltEntry[]): void {
    const flags = p.readUInt16LE(at + 8);
    const count = p.readUInt16LE(at + 10);
    if (count === 0 && p.length - at < PAGE_HEADER_BYTES) return;
    if ((flags & PAGE_LEAF) === 0) throw new BoltError(`${this.name}: ${what} has flags 0x${flags.toString(16)}, not a leaf`);
    const elems = at + PAGE_HEADER_BYTES;
    if (elems + count * ELEMENT_BYTES > p.length) throw new BoltError(`${this.name}: leaf ${what} claims ${count} elements, more than fit in it`);
    for (let i = 0; i < count; i++) {
      const el = elems + i * ELEMENT_BYTES;
      const eflags = p.readUInt32LE(el);
      const k = el + p.readUInt32LE(el + 4);
      const ksize = p.readUInt32LE(el + 8);
      const vsize = p.readUInt32LE(el + 12);
      if (k + ksize + vsize > p.length) throw new BoltError(`${this.name}: leaf ${what} element ${i} (key ${ksize} + value ${vsize} bytes) runs past the page`);
      out.push({ key: p.subarray(k, k + ksize), value: p.subarray(k + ksize, k + ksize + vsize), isBucket: (eflags & LEAF_BUCKET) !== 0 });
    }
  }
}

/** Is this buffer's first page a bbolt meta page (by its magic)? */
export function looksLikeBolt(head: Buffer): boolean {
  return head.length >= PAGE_HEADER_BYTES + 4 && head.readUInt32LE(PAGE_HEADER_BYTES) === BOLT_MAGIC;
}
