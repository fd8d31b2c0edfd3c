// etcd's KV applier semantics (E server/etcdserver/apply.go and txn.go): how a Range, Put,
// DeleteRange, Txn and Compaction request become reads and writes on the MVCC store, and what the
// responses carry. Request *validation* (empty keys, txn op counts, duplicate keys) happens earlier,
// in api/validate.ts; here we raise only what etcd raises at apply time.
import type {
  Compare,
  CompactionRequest,
  CompactionResponseInit,
  DeleteRangeRequest,
  DeleteRangeResponseInit,
  PutRequest,
  PutResponseInit,
  RangeRequest,
  RangeResponseInit,
  RequestOp,
  ResponseOpInit,
  TxnRequest,
  TxnResponseInit,
} from '../../proto/gen/etcdserverpb.js';
import { Compare_CompareResult, Compare_CompareTarget, RangeRequest_SortOrder, RangeRequest_SortTarget } from '../../proto/gen/etcdserverpb.js';
import type { KeyValue } from '../../proto/gen/mvccpb.js';
import { ClientError } from '../base/errors.js';
import { compareBytes, keyRange } from '../base/bytes.js';
import type { KvStore, RangeSource, WriteTxn } from '../mvcc/index.js';

/** Whether a lease id is granted (the lease service plugs in here). */
export type LeaseLookup = (id: bigint) => boolean;

/** No lease service yet (issue 3): no lease id is ever granted, so every non-zero id is "not found". */
export const NO_LEASES: LeaseLookup = () => false;

/** A client error raised after the transaction had already changed something: the whole apply batch must be redone. */
export class MidTxnError extends Error {
  override readonly name = 'MidTxnError';
  constructor(readonly error: ClientError) {
    super(error.message, { cause: error });
  }
}

type Kv = KeyValue;

function cmpNum(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const SORTERS: Record<number, (a: Kv, b: Kv) => number> = {
  [RangeRequest_SortTarget.KEY]: (a, b) => compareBytes(a.key, b.key),
  [RangeRequest_SortTarget.VERSION]: (a, b) => cmpNum(a.version, b.version),
  [RangeRequest_SortTarget.CREATE]: (a, b) => cmpNum(a.createRevision, b.createRevision),
  [RangeRequest_SortTarget.MOD]: (a, b) => cmpNum(a.modRevision, b.modRevision),
  [RangeRequest_SortTarget.VALUE]: (a, b) => compareBytes(a.value, b.value),
};

function hasFilters(r: RangeRequest): boolean {
  return r.minModRevision !== 0 || r.maxModRevision !== 0 || r.minCreateRevision !== 0 || r.maxCreateRevision !== 0;
}

function passesFilters(r: RangeRequest, kv: Kv): boolean {
  if (r.maxModRevision !== 0 && kv.modRevision > r.maxModRevision) return false;
  if (r.minModRevision !== 0 && kv.modRevision < r.minModRevision) return false;
  if (r.maxCreateRevision !== 0 && kv.createRevision > r.maxCreateRevision) return false;
  if (r.minCreateRevision !== 0 && kv.createRevision < r.minCreateRevision) return false;
  return true;
}

function sortKvs(r: RangeRequest, kvs: Kv[]): void {
  let order = r.sortOrder;
  if (r.sortTarget !== RangeRequest_SortTarget.KEY && order === RangeRequest_SortOrder.NONE) order = RangeRequest_SortOrder.ASCEND;
  if (order === RangeRequest_SortOrder.NONE) return;
  const cmp = SORTERS[r.sortTarget];
  if (cmp === undefined) return;
  if (order === RangeRequest_SortOrder.ASCEND) kvs.sort(cmp);
  else if (order === RangeRequest_SortOrder.DESCEND) kvs.sort((a, b) => cmp(b, a));
}

/** Range (etcd applierV3backend.Range). header.revision = the read view's revision. */
export function applyRange(src: RangeSource, r: RangeRequest): RangeResponseInit & { header: { revision: number } } {
  const fetchAll = r.sortOrder !== RangeRequest_SortOrder.NONE || hasFilters(r);
  const limit = fetchAll ? 0 : r.limit > 0 ? r.limit + 1 : 0;
  const rr = src.range(keyRange(r.key, r.rangeEnd), r.revision, limit, r.countOnly);
  let kvs = hasFilters(r) ? rr.kvs.filter((kv) => passesFilters(r, kv)) : rr.kvs;
  sortKvs(r, kvs);
  let more = false;
  if (r.limit > 0 && kvs.length > r.limit) {
    kvs = kvs.slice(0, r.limit);
    more = true;
  }
  if (r.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: Buffer.alloc(0) }));
  return { header: { revision: rr.rev }, kvs, more, count: rr.count };
}

function currentKv(src: RangeSource, key: Buffer): Kv | undefined {
  return src.range(keyRange(key, Buffer.alloc(0)), 0, 0, false).kvs[0];
}

/** Put (etcd applierV3backend.Put); `leases` is checked only for a Put outside a Txn (a Txn pre-checks). */
export function applyPut(txn: WriteTxn, p: PutRequest, leases: LeaseLookup | undefined): PutResponseInit {
  if (leases !== undefined && p.lease !== 0n && !leases(p.lease)) throw new ClientError('leaseNotFound');
  const prev = p.ignoreValue || p.ignoreLease || p.prevKv ? currentKv(txn, p.key) : undefined;
  if ((p.ignoreValue || p.ignoreLease) && prev === undefined) throw new ClientError('keyNotFound');
  const value = p.ignoreValue && prev !== undefined ? prev.value : p.value;
  const lease = p.ignoreLease && prev !== undefined ? prev.lease : p.lease;
  const rev = txn.put(p.key, value, lease);
  return { header: { revision: rev }, prevKv: p.prevKv ? prev : undefined };
}

/** DeleteRange (etcd applierV3backend.DeleteRange). */
export function applyDeleteRange(txn: WriteTxn, dr: DeleteRangeRequest): DeleteRangeResponseInit {
  const range = keyRange(dr.key, dr.rangeEnd);
  const prevKvs = dr.prevKv ? txn.range(range, 0, 0, false).kvs : [];
  const [deleted, rev] = txn.deleteRange(range);
  return { header: { revision: rev }, deleted, prevKvs };
}

/** Compaction (etcd applierV3backend.Compaction): header.revision = current revision. */
export function applyCompaction(store: KvStore, c: CompactionRequest): CompactionResponseInit {
  store.compact(c.revision);
  return { header: { revision: store.currentRev } };
}

// ---- Txn ----

function compareKv(c: Compare, kv: Kv): boolean {
  let result = 0;
  switch (c.target) {
    case Compare_CompareTarget.VALUE:
      result = compareBytes(kv.value, c.value ?? Buffer.alloc(0));
      break;
    case Compare_CompareTarget.CREATE:
      result = cmpNum(kv.createRevision, c.createRevision ?? 0);
      break;
    case Compare_CompareTarget.MOD:
      result = cmpNum(kv.modRevision, c.modRevision ?? 0);
      break;
    case Compare_CompareTarget.VERSION:
      result = cmpNum(kv.version, c.version ?? 0);
      break;
    case Compare_CompareTarget.LEASE: {
      const want = c.lease ?? 0n;
      result = kv.lease < want ? -1 : kv.lease > want ? 1 : 0;
      break;
    }
    default:
      break;
  }
  switch (c.result) {
    case Compare_CompareResult.EQUAL:
      return result === 0;
    case Compare_CompareResult.NOT_EQUAL:
      return result !== 0;
    case Compare_CompareResult.GREATER:
      return result > 0;
    case Compare_CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

const ZERO_KV: Kv = { key: Buffer.alloc(0), createRevision: 0, modRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n };

function applyCompare(src: RangeSource, c: Compare): boolean {
  let kvs: Kv[];
  try {
    kvs = src.range(keyRange(c.key, c.rangeEnd), 0, 0, false).kvs;
  } catch (err) {
    if (err instanceof ClientError) return false;
    throw err;
  }
  if (kvs.length === 0) return c.target === Compare_CompareTarget.VALUE ? false : compareKv(c, ZERO_KV);
  return kvs.every((kv) => compareKv(c, kv));
}

/** Every compare of the txn and of the nested txns on the chosen path, evaluated before any op runs. */
function compareToPath(src: RangeSource, rt: TxnRequest, path: boolean[]): void {
  const ok = rt.compare.every((c) => applyCompare(src, c));
  path.push(ok);
  for (const op of ok ? rt.success : rt.failure) if (op.requestTxn !== undefined) compareToPath(src, op.requestTxn, path);
}

export function isTxnReadOnly(rt: TxnRequest): boolean {
  const ro = (ops: readonly RequestOp[]): boolean =>
    ops.every((op) => op.requestPut === undefined && op.requestDeleteRange === undefined && (op.requestTxn === undefined || isTxnReadOnly(op.requestTxn)));
  return ro(rt.success) && ro(rt.failure);
}

interface Cursor {
  i: number;
}

function chosen(rt: TxnRequest, path: readonly boolean[], cur: Cursor): { ok: boolean; ops: RequestOp[] } {
  const ok = path[cur.i++] === true;
  return { ok, ops: ok ? rt.success : rt.failure };
}

type Check = (src: RangeSource, op: RequestOp) => void;

function checkRequests(src: RangeSource, rt: TxnRequest, path: readonly boolean[], cur: Cursor, f: Check): void {
  const { ops } = chosen(rt, path, cur);
  for (const op of ops) {
    if (op.requestTxn !== undefined) checkRequests(src, op.requestTxn, path, cur, f);
    else f(src, op);
  }
}

function checkPut(leases: LeaseLookup): Check {
  return (src, op) => {
    const p = op.requestPut;
    if (p === undefined) return;
    if ((p.ignoreValue || p.ignoreLease) && currentKv(src, p.key) === undefined) throw new ClientError('keyNotFound');
    if (p.lease !== 0n && !leases(p.lease)) throw new ClientError('leaseNotFound');
  };
}

const checkRange: Check = (src, op) => {
  const r = op.requestRange;
  if (r === undefined || r.revision === 0) return;
  if (r.revision > src.readRev()) throw new ClientError('futureRev');
  if (r.revision < src.firstRev()) throw new ClientError('compacted');
};

function execTxn(src: RangeSource, write: WriteTxn | undefined, rt: TxnRequest, path: readonly boolean[], cur: Cursor): TxnResponseInit {
  const { ok, ops } = chosen(rt, path, cur);
  const responses: ResponseOpInit[] = [];
  for (const op of ops) responses.push(execOp(src, write, op, path, cur));
  return { header: {}, succeeded: ok, responses };
}

function execOp(src: RangeSource, write: WriteTxn | undefined, op: RequestOp, path: readonly boolean[], cur: Cursor): ResponseOpInit {
  if (op.requestRange !== undefined) return { responseRange: applyRange(write ?? src, op.requestRange) };
  if (op.requestTxn !== undefined) return { responseTxn: execTxn(src, write, op.requestTxn, path, cur) };
  if (write === undefined) throw new ClientError('badRequest', 'write op in a read-only txn');
  try {
    if (op.requestPut !== undefined) return { responsePut: applyPut(write, op.requestPut, undefined) };
    if (op.requestDeleteRange !== undefined) return { responseDeleteRange: applyDeleteRange(write, op.requestDeleteRange) };
  } catch (err) {
    if (err instanceof ClientError && write.changes > 0) throw new MidTxnError(err);
    throw err;
  }
  throw new ClientError('keyNotFound');
}

/**
 * Txn (etcd applierV3backend.Txn). For a read-only txn pass `begin` = undefined; for a write txn
 * `begin` opens the write transaction (inside the caller's LMDB transaction).
 */
export function applyTxn(store: KvStore, rt: TxnRequest, leases: LeaseLookup, begin: (() => WriteTxn) | undefined): TxnResponseInit & { header: { revision: number } } {
  const view = store.beginRead();
  const path: boolean[] = [];
  compareToPath(view, rt, path);
  if (begin !== undefined) checkRequests(view, rt, path, { i: 0 }, checkPut(leases));
  checkRequests(view, rt, path, { i: 0 }, checkRange);
  if (begin === undefined) {
    const resp = execTxn(view, undefined, rt, path, { i: 0 });
    return { ...resp, header: { revision: view.readRev() } };
  }
  const txn = begin();
  const resp = execTxn(txn, txn, rt, path, { i: 0 });
  const rev = txn.readRev();
  txn.end();
  return { ...resp, header: { revision: rev } };
}
