// A bbolt database written page by page, in file order, without ever holding more than one page per
// B+tree level: what Maintenance.Snapshot streams and `cairn snapshot export` writes (the layout is
// in reader.ts).
//
// bbolt's meta pages come first in the file and name the root bucket's page and the number of pages,
// which are known only once every bucket is laid out; so a database is written in two passes over
// the same sources (which must yield the same records both times: an immutable copy):
//   planBolt   the layout: every page id, from the records' sizes alone (no page is built);
//   boltPages  the pages, in file order: meta 0, meta 1, the (empty) freelist at page 2, then each
//              bucket's tree in name order, then the root bucket's tree. It checks that the layout
//              is the planned one (else the sources changed between the passes: an Error).
// A tree is built bottom-up as its sorted records arrive: a leaf is written when the next record
// would not fit in its page (a record larger than a page gets a leaf of its own, with overflow pages),
// and its first key and page id go to the branch level above, which is written the same way; the
// last pages of each level are written when the bucket ends. Leaf and branch pages are filled up to
// a page (bbolt's own writes fill to half: it splits and merges them as usual when it later writes).
// A bucket whose records fit in a quarter page is stored inline in its parent's leaf (bbolt's rule).
// Deterministic: the same records give the same bytes.
import {
  BOLT_MAGIC,
  BOLT_VERSION,
  BUCKET_HEADER_BYTES,
  ELEMENT_BYTES,
  LEAF_BUCKET,
  META_CHECKSUM_AT,
  PAGE_BRANCH,
  PAGE_FREELIST,
  PAGE_HEADER_BYTES,
  PAGE_LEAF,
  PAGE_META,
  fnv1a64,
} from './reader.js';

export interface BoltRecord {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/**
 * A top-level bucket: its name and its records in strictly ascending key order (byte order). The
 * buffers may be reused by the source after the next record is asked for (they are copied).
 * `records` is called once per pass and must yield the same records each time.
 */
export interface BoltSource {
  readonly name: string;
  records(): Iterable<BoltRecord>;
}

export const DEFAULT_PAGE_BYTES = 4096;
/** The first page a tree may use: 0 and 1 are the meta pages, 2 the freelist. */
const FIRST_DATA_PAGE = 3;
const FREELIST_PAGE = 2;
const COUNT_MAX = 0xffff;

interface Bucket {
  readonly name: Buffer;
  /** Page id of the bucket's root, 0 when inline. */
  readonly root: number;
  /** The bucket's value in the root bucket: its header, and the leaf if inline (undefined when planning). */
  readonly value: Buffer | undefined;
  readonly valueBytes: number;
  readonly records: number;
}

export interface BoltPlan {
  readonly pageBytes: number;
  /** bbolt's high-water mark: pages in the file. */
  readonly pages: number;
  readonly root: number;
  readonly buckets: readonly { readonly name: string; readonly root: number; readonly records: number }[];
  readonly records: number;
  /** Bytes of the database (pages * pageBytes). */
  readonly bytes: number;
}

/** Page ids in file order; in the writing pass, the pages themselves. */
class Pages {
  next = FIRST_DATA_PAGE;
  readonly out: Buffer[] = [];
  constructor(
    readonly pageBytes: number,
    readonly writing: boolean,
  ) {}

  /** Takes the next id for a page of `bytes` (with overflow pages when more than one page); fills it when writing. */
  add(bytes: number, fill: (page: Buffer) => void): number {
    const n = Math.max(1, Math.ceil(bytes / this.pageBytes));
    const id = this.next;
    this.next += n;
    if (this.writing) {
      const page = Buffer.alloc(n * this.pageBytes);
      fill(page);
      page.writeBigUInt64LE(BigInt(id), 0);
      page.writeUInt32LE(n - 1, 12);
      this.out.push(page);
    }
    return id;
  }
}

interface Elem {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly flags: number;
}

interface Child {
  readonly key: Buffer;
  readonly page: number;
}

interface Level {
  children: Child[];
  bytes: number;
  written: number;
}

/** Writes a leaf page image (elements, then keys and values) at `at` of `b`. */
function fillLeaf(b: Buffer, at: number, elems: readonly Elem[]): void {
  b.writeUInt16LE(PAGE_LEAF, at + 8);
  b.writeUInt16LE(elems.length, at + 10);
  let data = at + PAGE_HEADER_BYTES + elems.length * ELEMENT_BYTES;
  for (let i = 0; i < elems.length; i++) {
    const e = elems[i] as Elem;
    const el = at + PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    b.writeUInt32LE(e.flags, el);
    b.writeUInt32LE(data - el, el + 4);
    b.writeUInt32LE(e.key.length, el + 8);
    b.writeUInt32LE(e.value.length, el + 12);
    e.key.copy(b, data);
    data += e.key.length;
    e.value.copy(b, data);
    data += e.value.length;
  }
}

function fillBranch(b: Buffer, children: readonly Child[]): void {
  b.writeUInt16LE(PAGE_BRANCH, 8);
  b.writeUInt16LE(children.length, 10);
  let data = PAGE_HEADER_BYTES + children.length * ELEMENT_BYTES;
  for (let i = 0; i < children.length; i++) {
    const c = children[i] as Child;
    const el = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    b.writeUInt32LE(data - el, el);
    b.writeUInt32LE(c.key.length, el + 4);
    b.writeBigUInt64LE(BigInt(c.page), el + 8);
    c.key.copy(b, data);
    data += c.key.length;
  }
}

/** One B+tree built bottom-up from records in ascending key order. */
class Tree {
  /** The open leaf: its elements (kept only when writing), count, bytes and first key. */
  private elems: Elem[] = [];
  private count = 0;
  private bytes = PAGE_HEADER_BYTES;
  private first: Buffer | undefined;
  private prev: Buffer | undefined;
  /** Branch levels: levels[0] holds the leaves written so far (not yet under a branch page). */
  private readonly levels: Level[] = [];
  records = 0;

  constructor(
    private readonly pages: Pages,
    private readonly what: string,
  ) {}

  add(key: Uint8Array, value: Uint8Array | undefined, valueBytes: number, flags: number): void {
    const k = Buffer.from(key);
    if (this.prev !== undefined && Buffer.compare(this.prev, k) >= 0) {
      throw new Error(`bbolt writer: ${this.what}: key 0x${k.toString('hex')} does not follow 0x${this.prev.toString('hex')} (keys must be strictly ascending)`);
    }
    this.prev = k;
    const size = ELEMENT_BYTES + k.length + valueBytes;
    if (this.count > 0 && (this.bytes + size > this.pages.pageBytes || this.count >= COUNT_MAX)) this.closeLeaf();
    if (this.count === 0) this.first = k;
    if (this.pages.writing) this.elems.push({ key: k, value: Buffer.from(value ?? new Uint8Array(0)), flags });
    this.count++;
    this.bytes += size;
    this.records++;
  }

  private closeLeaf(): void {
    const elems = this.elems;
    const id = this.pages.add(this.bytes, (p) => fillLeaf(p, 0, elems));
    this.push(0, this.first ?? Buffer.alloc(0), id);
    this.elems = [];
    this.count = 0;
    this.bytes = PAGE_HEADER_BYTES;
    this.first = undefined;
  }

  private writeBranch(level: Level): number {
    const children = level.children;
    level.written++;
    return this.pages.add(level.bytes, (p) => fillBranch(p, children));
  }

  private push(i: number, key: Buffer, page: number): void {
    let level = this.levels[i];
    if (level === undefined) {
      level = { children: [], bytes: PAGE_HEADER_BYTES, written: 0 };
      this.levels[i] = level;
    }
    const size = ELEMENT_BYTES + key.length;
    if (level.children.length > 0 && (level.bytes + size > this.pages.pageBytes || level.children.length >= COUNT_MAX)) {
      const first = (level.children[0] as Child).key;
      const id = this.writeBranch(level);
      level.children = [];
      level.bytes = PAGE_HEADER_BYTES;
      this.push(i + 1, first, id);
    }
    level.children.push({ key, page });
    level.bytes += size;
  }

  /** bbolt's inline rule: one leaf (never split) of at most a quarter page. */
  inlineBytes(): number | undefined {
    return this.levels.length === 0 && this.bytes <= this.pages.pageBytes / 4 ? this.bytes : undefined;
  }

  /** The open leaf as an inline bucket's page (id 0), when writing. */
  inlineLeaf(): Buffer {
    const b = Buffer.alloc(this.bytes);
    fillLeaf(b, 0, this.elems);
    return b;
  }

  /** Writes the open pages of every level; returns the root's page id. */
  finish(): number {
    if (this.levels.length === 0) {
      const elems = this.elems;
      return this.pages.add(this.bytes, (p) => fillLeaf(p, 0, elems));
    }
    this.closeLeaf();
    for (let i = 0; ; i++) {
      const level = this.levels[i] as Level;
      if (level.written === 0 && this.levels[i + 1] === undefined) {
        if (level.children.length === 1) return (level.children[0] as Child).page;
        return this.writeBranch(level);
      }
      const first = (level.children[0] as Child).key;
      this.push(i + 1, first, this.writeBranch(level));
    }
  }
}

function metaPage(id: number, pageBytes: number, root: number, pages: number, txid: number): Buffer {
  const b = Buffer.alloc(pageBytes);
  b.writeBigUInt64LE(BigInt(id), 0);
  b.writeUInt16LE(PAGE_META, 8);
  const m = PAGE_HEADER_BYTES;
  b.writeUInt32LE(BOLT_MAGIC, m);
  b.writeUInt32LE(BOLT_VERSION, m + 4);
  b.writeUInt32LE(pageBytes, m + 8);
  b.writeUInt32LE(0, m + 12);
  b.writeBigUInt64LE(BigInt(root), m + 16);
  b.writeBigUInt64LE(0n, m + 24);
  b.writeBigUInt64LE(BigInt(FREELIST_PAGE), m + 32);
  b.writeBigUInt64LE(BigInt(pages), m + 40);
  b.writeBigUInt64LE(BigInt(txid), m + 48);
  b.writeBigUInt64LE(fnv1a64(b.subarray(m, m + META_CHECKSUM_AT)), m + META_CHECKSUM_AT);
  return b;
}

function freelistPage(pageBytes: number): Buffer {
  const b = Buffer.alloc(pageBytes);
  b.writeBigUInt64LE(BigInt(FREELIST_PAGE), 0);
  b.writeUInt16LE(PAGE_FREELIST, 8);
  return b;
}

function sortedSources(sources: readonly BoltSource[]): BoltSource[] {
  const out = [...sources].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  for (let i = 1; i < out.length; i++) if ((out[i - 1] as BoltSource).name === (out[i] as BoltSource).name) throw new Error(`bbolt writer: two buckets named ${JSON.stringify((out[i] as BoltSource).name)}`);
  return out;
}

/**
 * One pass over every source: the buckets (with their pages appended to `pages` as they are made, when
 * writing), then the root bucket. `each` is called after every record (the writer drains pages there).
 */
function* layout(sources: readonly BoltSource[], pages: Pages): Generator<void, { buckets: Bucket[]; root: number; records: number }> {
  const buckets: Bucket[] = [];
  let records = 0;
  for (const src of sortedSources(sources)) {
    const tree = new Tree(pages, `bucket ${JSON.stringify(src.name)}`);
    for (const r of src.records()) {
      tree.add(r.key, r.value, r.value.length, 0);
      if (pages.out.length > 0) yield;
    }
    records += tree.records;
    const inline = tree.inlineBytes();
    const name = Buffer.from(src.name);
    if (inline !== undefined) {
      const value = pages.writing ? Buffer.concat([Buffer.alloc(BUCKET_HEADER_BYTES), tree.inlineLeaf()]) : undefined;
      buckets.push({ name, root: 0, value, valueBytes: BUCKET_HEADER_BYTES + inline, records: tree.records });
    } else {
      const root = tree.finish();
      const header = Buffer.alloc(BUCKET_HEADER_BYTES);
      header.writeBigUInt64LE(BigInt(root), 0);
      buckets.push({ name, root, value: header, valueBytes: BUCKET_HEADER_BYTES, records: tree.records });
    }
    if (pages.out.length > 0) yield;
  }
  const rootTree = new Tree(pages, 'the root bucket');
  for (const b of buckets) rootTree.add(b.name, b.value, b.valueBytes, LEAF_BUCKET);
  const root = rootTree.finish();
  return { buckets, root, records };
}

/** The layout of the database holding `sources` (one pass over their records, nothing built). */
export function planBolt(sources: readonly BoltSource[], pageBytes = DEFAULT_PAGE_BYTES): BoltPlan {
  const pages = new Pages(pageBytes, false);
  const it = layout(sources, pages);
  let r = it.next();
  while (r.done !== true) r = it.next();
  const { buckets, root, records } = r.value;
  return { pageBytes, pages: pages.next, root, buckets: buckets.map((b) => ({ name: b.name.toString(), root: b.root, records: b.records })), records, bytes: pages.next * pageBytes };
}

/**
 * The database's pages in file order (each yielded buffer is one page with its overflow pages),
 * `plan.bytes` in all. Throws when the sources do not give the planned layout.
 */
export function* boltPages(sources: readonly BoltSource[], plan: BoltPlan): Generator<Buffer> {
  const { pageBytes } = plan;
  yield metaPage(0, pageBytes, plan.root, plan.pages, 1);
  yield metaPage(1, pageBytes, plan.root, plan.pages, 2);
  yield freelistPage(pageBytes);
  const pages = new Pages(pageBytes, true);
  const it = layout(sources, pages);
  let r = it.next();
  for (;;) {
    for (const p of pages.out.splice(0)) yield p;
    if (r.done === true) break;
    r = it.next();
  }
  const got = r.value;
  const same = got.root === plan.root && pages.next === plan.pages && got.buckets.length === plan.buckets.length && got.buckets.every((b, i) => b.root === plan.buckets[i]?.root && b.records === plan.buckets[i]?.records);
  if (!same) throw new Error(`bbolt writer: the records changed between the passes (planned ${plan.pages} pages with root ${plan.root}, wrote ${pages.next} with root ${got.root})`);
}

/** The whole database in one buffer (small databases and tests). */
export function boltBytes(sources: readonly BoltSource[], pageBytes = DEFAULT_PAGE_BYTES): Buffer {
  return Buffer.concat([...boltPages(sources, planBolt(sources, pageBytes))]);
}
