// Writes a bbolt database from a set of top-level buckets, following bbolt's published layout (see
// reader.ts for the formats): page 0 and 1 meta pages (txid 1 and 2, FNV-1a 64 checksums), page 2 an
// empty freelist, then each bucket's B+tree (leaf pages filled up to a page, an element larger than
// a page in a leaf of its own with overflow pages; branch levels above as needed), then the root
// bucket's tree. A bucket small enough (bbolt's rule: under a quarter page, no nested buckets) is
// stored inline in its parent's leaf.
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
  readonly key: Buffer;
  readonly value: Buffer;
}

/** A top-level bucket: its name and its records (any order; sorted here, keys must be distinct). */
export interface BoltBucketInput {
  readonly name: string;
  readonly records: readonly BoltRecord[];
}

interface LeafElem {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly flags: number;
}

class PageSink {
  readonly pages: Buffer[] = [];
  /** Next page id (0-2 are the meta pages and the freelist). */
  next = 3;
  constructor(readonly pageBytes: number) {}

  /** Appends a page (with its overflow) of `bytes` (padded to whole pages); returns its id. */
  add(build: (id: number) => Buffer): number {
    const id = this.next;
    const raw = build(id);
    const n = Math.max(1, Math.ceil(raw.length / this.pageBytes));
    const page = Buffer.alloc(n * this.pageBytes);
    raw.copy(page);
    page.writeUInt32LE(n - 1, 12);
    this.pages.push(page);
    this.next += n;
    return id;
  }
}

function leafBytes(elems: readonly LeafElem[]): number {
  let n = PAGE_HEADER_BYTES + elems.length * ELEMENT_BYTES;
  for (const e of elems) n += e.key.length + e.value.length;
  return n;
}

/** A leaf page image (header id = `id`; 0 for an inline bucket). */
function leafImage(id: number, elems: readonly LeafElem[]): Buffer {
  const b = Buffer.alloc(leafBytes(elems));
  b.writeBigUInt64LE(BigInt(id), 0);
  b.writeUInt16LE(PAGE_LEAF, 8);
  b.writeUInt16LE(elems.length, 10);
  let data = PAGE_HEADER_BYTES + elems.length * ELEMENT_BYTES;
  elems.forEach((e, i) => {
    const el = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    b.writeUInt32LE(e.flags, el);
    b.writeUInt32LE(data - el, el + 4);
    b.writeUInt32LE(e.key.length, el + 8);
    b.writeUInt32LE(e.value.length, el + 12);
    e.key.copy(b, data);
    data += e.key.length;
    e.value.copy(b, data);
    data += e.value.length;
  });
  return b;
}

function branchImage(id: number, children: readonly { key: Buffer; page: number }[]): Buffer {
  let n = PAGE_HEADER_BYTES + children.length * ELEMENT_BYTES;
  for (const c of children) n += c.key.length;
  const b = Buffer.alloc(n);
  b.writeBigUInt64LE(BigInt(id), 0);
  b.writeUInt16LE(PAGE_BRANCH, 8);
  b.writeUInt16LE(children.length, 10);
  let data = PAGE_HEADER_BYTES + children.length * ELEMENT_BYTES;
  children.forEach((c, i) => {
    const el = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    b.writeUInt32LE(data - el, el);
    b.writeUInt32LE(c.key.length, el + 4);
    b.writeBigUInt64LE(BigInt(c.page), el + 8);
    c.key.copy(b, data);
    data += c.key.length;
  });
  return b;
}

/** Splits sorted elements into groups that fill a page each (a lone oversize element gets its own). */
function chunk<T>(items: readonly T[], size: (t: T) => number, pageBytes: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = PAGE_HEADER_BYTES;
  for (const it of items) {
    const s = size(it);
    if (cur.length > 0 && (bytes + s > pageBytes || cur.length >= 0xffff)) {
      out.push(cur);
      cur = [];
      bytes = PAGE_HEADER_BYTES;
    }
    cur.push(it);
    bytes += s;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Writes a B+tree of sorted elements; returns its root page id. */
function writeTree(sink: PageSink, elems: readonly LeafElem[]): number {
  const groups = chunk(elems, (e) => ELEMENT_BYTES + e.key.length + e.value.length, sink.pageBytes);
  if (groups.length === 0) groups.push([]);
  let level = groups.map((g) => ({ key: g[0]?.key ?? Buffer.alloc(0), page: sink.add((id) => leafImage(id, g)) }));
  while (level.length > 1) {
    const up = chunk(level, (c) => ELEMENT_BYTES + c.key.length, sink.pageBytes);
    level = up.map((g) => ({ key: g[0]?.key ?? Buffer.alloc(0), page: sink.add((id) => branchImage(id, g)) }));
  }
  const root = level[0];
  if (root === undefined) throw new Error('bbolt writer: empty tree level');
  return root.page;
}

function sorted(records: readonly BoltRecord[]): LeafElem[] {
  const elems = records.map((r) => ({ key: r.key, value: r.value, flags: 0 })).sort((a, b) => Buffer.compare(a.key, b.key));
  for (let i = 1; i < elems.length; i++) {
    const a = elems[i - 1];
    const b = elems[i];
    if (a !== undefined && b !== undefined && a.key.equals(b.key)) throw new Error(`bbolt writer: duplicate key 0x${a.key.toString('hex')}`);
  }
  return elems;
}

/** A bucket's value in its parent: {root, sequence 0}, followed by the leaf page if inline. */
function bucketValue(sink: PageSink, records: readonly BoltRecord[]): Buffer {
  const elems = sorted(records);
  const header = Buffer.alloc(BUCKET_HEADER_BYTES);
  const inlineBytes = BUCKET_HEADER_BYTES + leafBytes(elems);
  if (inlineBytes <= sink.pageBytes / 4) return Buffer.concat([header, leafImage(0, elems)]);
  header.writeBigUInt64LE(BigInt(writeTree(sink, elems)), 0);
  return header;
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
  b.writeBigUInt64LE(2n, m + 32);
  b.writeBigUInt64LE(BigInt(pages), m + 40);
  b.writeBigUInt64LE(BigInt(txid), m + 48);
  b.writeBigUInt64LE(fnv1a64(b.subarray(m, m + META_CHECKSUM_AT)), m + META_CHECKSUM_AT);
  return b;
}

/** The bytes of a bbolt database holding `buckets` (top level; nested buckets are not needed by etcd). */
export function writeBolt(buckets: readonly BoltBucketInput[], pageBytes = 4096): Buffer {
  const sink = new PageSink(pageBytes);
  const rootElems: LeafElem[] = buckets.map((bk) => ({ key: Buffer.from(bk.name), value: bucketValue(sink, bk.records), flags: LEAF_BUCKET }));
  rootElems.sort((a, b) => Buffer.compare(a.key, b.key));
  const root = writeTree(sink, rootElems);
  const pages = sink.next;
  const freelist = Buffer.alloc(pageBytes);
  freelist.writeBigUInt64LE(2n, 0);
  freelist.writeUInt16LE(PAGE_FREELIST, 8);
  return Buffer.concat([metaPage(0, pageBytes, root, pages, 1), metaPage(1, pageBytes, root, pages, 2), freelist, ...sink.pages]);
}
