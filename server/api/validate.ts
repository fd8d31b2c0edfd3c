// Request checks done before anything is proposed (E v3rpc/key.go: checkRangeRequest,
// checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals). Pure functions.
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../../proto/gen/etcdserverpb.js';
import { RangeRequest_SortOrder, RangeRequest_SortTarget } from '../../proto/gen/etcdserverpb.js';
import { ClientError } from '../base/errors.js';
import { KEY_BYTES_MAX } from '../base/limits.js';

const SORT_ORDERS = new Set<number>(Object.values(RangeRequest_SortOrder));
const SORT_TARGETS = new Set<number>(Object.values(RangeRequest_SortTarget));

function checkKey(key: Uint8Array): void {
  if (key.length === 0) throw new ClientError('emptyKey');
}

/** Keys we would store must fit LMDB's key limit (a Cairn limit; etcd has none). */
function checkStoredKey(key: Uint8Array): void {
  checkKey(key);
  if (key.length > KEY_BYTES_MAX) throw new ClientError('keyTooLarge');
}

export function checkRangeRequest(r: RangeRequest): void {
  checkKey(r.key);
  if (!SORT_ORDERS.has(r.sortOrder) || !SORT_TARGETS.has(r.sortTarget)) throw new ClientError('invalidSortOption');
}

export function checkPutRequest(r: PutRequest): void {
  checkStoredKey(r.key);
  if (r.ignoreValue && r.value.length !== 0) throw new ClientError('valueProvided');
  if (r.ignoreLease && r.lease !== 0n) throw new ClientError('leaseProvided');
}

export function checkDeleteRequest(r: DeleteRangeRequest): void {
  checkKey(r.key);
}

function checkRequestOp(op: RequestOp, txnOpsMax: number): void {
  if (op.requestRange !== undefined) return checkRangeRequest(op.requestRange);
  if (op.requestPut !== undefined) return checkPutRequest(op.requestPut);
  if (op.requestDeleteRange !== undefined) return checkDeleteRequest(op.requestDeleteRange);
  if (op.requestTxn !== undefined) return checkTxnOps(op.requestTxn, txnOpsMax);
  throw new ClientError('keyNotFound');
}

function checkTxnOps(r: TxnRequest, txnOpsMax: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > txnOpsMax) throw new ClientError('tooManyOps');
  for (const c of r.compare) checkKey(c.key);
  for (const op of r.success) checkRequestOp(op, txnOpsMax - opc);
  for (const op of r.failure) checkRequestOp(op, txnOpsMax - opc);
}

// ---- duplicate-key rule (checkIntervals) ----
// Intervals compare byte strings where an empty end means +infinity (etcd's StringAffineComparable).
// A delete's interval is [key, range_end) with range_end taken literally (no "\0" => "to the end"
// conversion), or the point [key, key+"\0") when range_end is empty.

interface Interval {
  readonly begin: Buffer;
  readonly end: Buffer;
}

function affineLess(a: Buffer, b: Buffer): boolean {
  if (a.length === 0) return false;
  if (b.length === 0) return true;
  return Buffer.compare(a, b) < 0;
}

function pointInterval(k: Uint8Array): Interval {
  const begin = Buffer.from(k);
  return { begin, end: Buffer.concat([begin, Buffer.alloc(1)]) };
}

function intersects(dels: readonly Interval[], k: Uint8Array): boolean {
  const p = pointInterval(k);
  return dels.some((iv) => affineLess(iv.begin, p.end) && affineLess(p.begin, iv.end));
}

const ALL: Interval = { begin: Buffer.alloc(1), end: Buffer.alloc(0) };

function clip(iv: Interval): Interval | undefined {
  const begin = affineLess(iv.begin, ALL.begin) ? ALL.begin : iv.begin;
  const end = iv.end;
  return affineLess(begin, end) ? { begin, end } : undefined;
}

function checkIntervals(reqs: readonly RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of reqs) {
    const d = op.requestDeleteRange;
    if (d === undefined) continue;
    dels.push(d.rangeEnd.length !== 0 ? { begin: Buffer.from(d.key), end: Buffer.from(d.rangeEnd) } : pointInterval(d.key));
  }
  const puts = new Set<string>();
  for (const op of reqs) {
    const t = op.requestTxn;
    if (t === undefined) continue;
    const then = checkIntervals(t.success);
    const other = checkIntervals(t.failure);
    for (const k of then.puts) {
      if (puts.has(k) || intersects(dels, Buffer.from(k, 'latin1'))) throw new ClientError('duplicateKey');
      puts.add(k);
    }
    for (const k of other.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw new ClientError('duplicateKey');
      if (intersects(dels, Buffer.from(k, 'latin1'))) throw new ClientError('duplicateKey');
      puts.add(k);
    }
    for (const iv of [...then.dels, ...other.dels]) {
      const c = clip(iv);
      if (c !== undefined) dels.push(c);
    }
  }
  for (const op of reqs) {
    const p = op.requestPut;
    if (p === undefined) continue;
    const k = Buffer.from(p.key).toString('latin1');
    if (puts.has(k) || intersects(dels, p.key)) throw new ClientError('duplicateKey');
    puts.add(k);
  }
  return { puts, dels };
}

export function checkTxnRequest(r: TxnRequest, txnOpsMax: number): void {
  checkTxnOps(r, txnOpsMax);
  checkIntervals(r.success);
  checkIntervals(r.failure);
}
