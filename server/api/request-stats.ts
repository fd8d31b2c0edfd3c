// etcd's "request stats" log line for a slow unary request (etcd 3.6 v3rpc/interceptor.go
// logUnaryRequestStats): written at warn when a call took longer than --warning-unary-request-duration,
// at debug for every call when the log level is debug (as etcd, which then logs even slow calls at
// debug). The fields are etcd's, with its values:
// - "start time" as etcd's zap encoder writes times, "time spent" as Go prints a time.Duration;
// - KV methods: request and response sizes in bytes (a request's as etcd re-encodes it: a field a
//   client sent at its default value does not count), counts (Range: the response's count; Put: one
//   request; DeleteRange: the keys deleted; Txn: the ops of the branch taken and their sizes), and the
//   request as gogo/golang protobuf's CompactTextString prints it, values redacted to their sizes
//   (etcd's NewLoggablePutRequest / NewLoggableTxnRequest). A KV call that failed has no response:
//   its response fields are 0 (etcd's handler returned a typed nil), and a failed Txn logs no request;
// - every other method: -1 for counts and sizes and no content, as etcd's default case.
// Only slow calls get here: nothing in this file runs on the path of a call under the threshold.
import {
  decodeDeleteRangeRequest,
  decodeDeleteRangeResponse,
  decodePutRequest,
  decodeRangeRequest,
  decodeRangeResponse,
  decodeTxnRequest,
  decodeTxnResponse,
  encodeDeleteRangeRequest,
  encodePutRequest,
  encodeRangeRequest,
  encodeRequestOp,
  KVService,
  type Compare,
  type DeleteRangeRequest,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
} from '../../proto/gen/etcdserverpb.js';
import type { Logger } from '../base/log.js';
import type { SlowUnaryCall, SlowUnaryOptions } from './grpc/index.js';

/** --warning-unary-request-duration and whether the log level is debug (every call is then logged). */
export interface RequestStatsOptions {
  readonly warnAfterMs: number;
  readonly debug: boolean;
}

/** The gRPC server's slowUnary option that writes etcd's "request stats" lines to `log`. */
export function requestStatsLogger(log: Logger, opts: RequestStatsOptions): SlowUnaryOptions {
  if (opts.debug) return { thresholdMs: -1, report: (call) => log.debug('request stats', requestStats(call)) };
  return { thresholdMs: opts.warnAfterMs, report: (call) => log.warn('request stats', requestStats(call)) };
}

interface Measures {
  readonly requestCount: number;
  readonly requestSize: number;
  readonly responseCount: number;
  readonly responseSize: number;
  readonly content: string;
}

const NOT_KV: Measures = { requestCount: -1, requestSize: -1, responseCount: -1, responseSize: -1, content: '' };

/** etcd's fields, in its order. */
export function requestStats(call: SlowUnaryCall): Record<string, unknown> {
  const m = measures(call);
  return {
    'start time': goTimestamp(call.startedAtMs),
    'time spent': goDuration(call.tookMs * 1e6),
    remote: call.remote,
    'response type': call.path,
    'request count': m.requestCount,
    'request size': m.requestSize,
    'response count': m.responseCount,
    'response size': m.responseSize,
    'request content': m.content,
  };
}

function measures(call: SlowUnaryCall): Measures {
  const { request, response } = call;
  switch (call.path) {
    case KVService.Range.path: {
      const r = decodeRangeRequest(request);
      return { requestCount: 0, requestSize: encodeRangeRequest(r).length, responseCount: response === undefined ? 0 : decodeRangeResponse(response).count, responseSize: response?.length ?? 0, content: rangeText(r) };
    }
    case KVService.Put.path: {
      const r = decodePutRequest(request);
      return { requestCount: 1, requestSize: encodePutRequest(r).length, responseCount: 0, responseSize: response?.length ?? 0, content: putText(r) };
    }
    case KVService.DeleteRange.path: {
      const r = decodeDeleteRangeRequest(request);
      return { requestCount: 0, requestSize: encodeDeleteRangeRequest(r).length, responseCount: response === undefined ? 0 : decodeDeleteRangeResponse(response).deleted, responseSize: response?.length ?? 0, content: deleteText(r) };
    }
    case KVService.Txn.path: {
      if (response === undefined) return { requestCount: 0, requestSize: 0, responseCount: 0, responseSize: 0, content: '' };
      const r = decodeTxnRequest(request);
      const ops = decodeTxnResponse(response).succeeded ? r.success : r.failure;
      return { requestCount: ops.length, requestSize: ops.reduce((n, op) => n + encodeRequestOp(op).length, 0), responseCount: 0, responseSize: response.length, content: txnText(r) };
    }
    default:
      return NOT_KV;
  }
}

// ---------- protobuf's compact text format (golang/gogo protobuf CompactTextString) ----------
// Each field set is `name:value ` (a trailing space); a proto3 scalar at its zero value is left out,
// a oneof member never; bytes are quoted with \n \r \t \" \\ escaped and other bytes outside
// 0x20-0x7e as three octal digits; enums by name.

const SORT_ORDERS = ['NONE', 'ASCEND', 'DESCEND'];
const SORT_TARGETS = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const COMPARE_RESULTS = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'];
const COMPARE_TARGETS = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'];

/** Go's text-format quoting of a bytes or string field. */
export function quoteBytes(b: Uint8Array): string {
  let out = '"';
  for (const c of b) {
    if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += `\\${c.toString(8).padStart(3, '0')}`;
  }
  return `${out}"`;
}

const bytesField = (name: string, b: Uint8Array): string => (b.length === 0 ? '' : `${name}:${quoteBytes(b)} `);
const intField = (name: string, v: number | bigint): string => (v === 0 || v === 0n ? '' : `${name}:${v} `);
const boolField = (name: string, v: boolean): string => (v ? `${name}:true ` : '');
const enumField = (name: string, v: number, names: readonly string[]): string => (v === 0 ? '' : `${name}:${names[v] ?? v} `);
const oneofField = (name: string, v: number | bigint | undefined): string => (v === undefined ? '' : `${name}:${v} `);

export function rangeText(r: RangeRequest): string {
  return (
    bytesField('key', r.key) +
    bytesField('range_end', r.rangeEnd) +
    intField('limit', r.limit) +
    intField('revision', r.revision) +
    enumField('sort_order', r.sortOrder, SORT_ORDERS) +
    enumField('sort_target', r.sortTarget, SORT_TARGETS) +
    boolField('serializable', r.serializable) +
    boolField('keys_only', r.keysOnly) +
    boolField('count_only', r.countOnly) +
    intField('min_mod_revision', r.minModRevision) +
    intField('max_mod_revision', r.maxModRevision) +
    intField('min_create_revision', r.minCreateRevision) +
    intField('max_create_revision', r.maxCreateRevision)
  );
}

function deleteText(r: DeleteRangeRequest): string {
  return bytesField('key', r.key) + bytesField('range_end', r.rangeEnd) + boolField('prev_kv', r.prevKv);
}

/** etcd's loggablePutRequest: the value replaced by its size. */
function putText(r: PutRequest): string {
  return bytesField('key', r.key) + intField('value_size', r.value.length) + intField('lease', r.lease) + boolField('prev_kv', r.prevKv) + boolField('ignore_value', r.ignoreValue) + boolField('ignore_lease', r.ignoreLease);
}

/** A Compare; a value compare as etcd's loggableValueCompare (the value replaced by its size). */
function compareText(c: Compare): string {
  const head = enumField('result', c.result, COMPARE_RESULTS) + enumField('target', c.target, COMPARE_TARGETS) + bytesField('key', c.key);
  if (c.value !== undefined) return head + intField('value_size', c.value.length) + bytesField('range_end', c.rangeEnd);
  return head + oneofField('version', c.version) + oneofField('create_revision', c.createRevision) + oneofField('mod_revision', c.modRevision) + oneofField('lease', c.lease) + bytesField('range_end', c.rangeEnd);
}

/** etcd's requestOpStringer: puts and nested txns redacted, other ops as RequestOp.String(). */
function opText(op: RequestOp): string {
  if (op.requestPut !== undefined) return `request_put:<${putText(op.requestPut)}>`;
  if (op.requestTxn !== undefined) return `request_txn:<${txnText(op.requestTxn)}>`;
  if (op.requestRange !== undefined) return `request_range:<${rangeText(op.requestRange)}> `;
  if (op.requestDeleteRange !== undefined) return `request_delete_range:<${deleteText(op.requestDeleteRange)}> `;
  return '';
}

/** etcd's txnRequestStringer. */
export function txnText(t: TxnRequest): string {
  return `compare:<${t.compare.map(compareText).join(' ')}> success:<${t.success.map(opText).join(' ')}> failure:<${t.failure.map(opText).join(' ')}>`;
}

// ---------- Go's time formats ----------

/** A duration in nanoseconds as Go's time.Duration.String() prints it (zap's StringDurationEncoder). */
export function goDuration(nanos: number): string {
  const ns = Math.round(nanos);
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  let u = Math.abs(ns);
  if (u < 1e3) return `${sign}${u}ns`;
  if (u < 1e6) return `${sign}${decimal(u, 3)}µs`;
  if (u < 1e9) return `${sign}${decimal(u, 6)}ms`;
  const h = Math.floor(u / 3.6e12);
  u -= h * 3.6e12;
  const m = Math.floor(u / 6e10);
  u -= m * 6e10;
  const s = `${decimal(u, 9)}s`;
  return sign + (h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s);
}

/** v / 10^digits with the fraction's trailing zeros dropped (Go's fmtFrac). */
function decimal(v: number, digits: number): string {
  const unit = 10 ** digits;
  const whole = Math.floor(v / unit);
  const frac = v - whole * unit;
  return frac === 0 ? `${whole}` : `${whole}.${String(frac).padStart(digits, '0').replace(/0+$/, '')}`;
}

/** A time as etcd's zap encoder writes it: "2006-01-02T15:04:05.000000Z0700", local time. */
export function goTimestamp(epochMs: number): string {
  const whole = Math.floor(epochMs);
  const micros = Math.min(999, Math.round((epochMs - whole) * 1000));
  const offsetMin = -new Date(whole).getTimezoneOffset();
  const local = new Date(whole + offsetMin * 60_000).toISOString();
  const abs = Math.abs(offsetMin);
  const zone = offsetMin === 0 ? 'Z' : `${offsetMin < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
  return `${local.slice(0, 23)}${String(micros).padStart(3, '0')}${zone}`;
}
