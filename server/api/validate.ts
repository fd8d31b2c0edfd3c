// Request checks done before anything is proposed (E v3rpc/key.go: checkRangeRequest,
// checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals) and MemberAdd's peer URLs
// (E pkg/types/urls.go NewURLs). Pure functions.
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../../proto/gen/etcdserverpb.js';
import { RangeRequest_SortOrder, RangeRequest_SortTarget } from '../../proto/gen/etcdserverpb.js';
import { ClientError } from '../base/errors.js';
import { KEY_BYTES_MAX } from '../base/limits.js';
import { isIPv6 } from 'node:net';

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

// ---- member peer URLs (etcd's types.NewURLs, which MemberAdd applies; Go's net/url + net.SplitHostPort) ----
// Accepted: scheme http, https, unix or unixs (any case), "//", an optional userinfo, a host with a
// port (the port's digits may be empty, as Go allows "host:"), no path; a query and fragment are
// kept. The normal form is Go's url.String(): the scheme lower-cased, the rest as given.
// Cairn refuses a few forms etcd takes (and rewrites), none of which a peer needs: a host with '%'
// escapes or non-ASCII characters (incl. IPv6 zones "%25..."), brackets around something not IPv6,
// userinfo or a fragment with characters Go re-escapes. (Checked against Go's net/url on 20,000
// generated URLs: every URL accepted here is accepted by Go with the same normal form.)

const PEER_URL_SCHEMES = new Set(['http', 'https', 'unix', 'unixs']);
/** Go's strings.TrimSpace (unicode.IsSpace): JS trim() minus U+FEFF. */
const GO_SPACE = '[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const GO_TRIM = new RegExp(`^${GO_SPACE}+|${GO_SPACE}+$`, 'g');
const CONTROL_BYTE = /[\u0000-\u001f\u007f]/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
/** Host characters Go's url.Parse accepts unescaped (shouldEscape(c, encodeHost) == false), plus ':' for the port. */
const HOST_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:[\]<>"]*$/;
/** Userinfo Go's url.String() writes back unchanged: user, optionally ":" password. */
const USERINFO = /^[A-Za-z0-9\-._~$&+,;=]*(:[A-Za-z0-9\-._~$&+,;=]*)?$/;
/** A fragment Go's url.String() writes back unchanged (validEncoded for encodeFragment). */
const FRAGMENT = /^([A-Za-z0-9\-._~!$&'()*+,;=:@[\]/?]|%[0-9A-Fa-f]{2})*$/;

/** Go's net.SplitHostPort succeeds (the host part may be empty, the port too). */
function splitsHostPort(hostport: string): boolean {
  const colon = hostport.lastIndexOf(':');
  if (colon < 0) return false;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0 || close + 1 !== colon) return false;
    return !hostport.slice(1, close).includes('[') && !hostport.slice(close + 1).includes('[') && !hostport.slice(close + 1).includes(']');
  }
  const host = hostport.slice(0, colon);
  return !host.includes(':') && !hostport.includes('[') && !hostport.includes(']');
}

/**
 * Go's parseHost: a bracketed host ends at its last ']' and holds an IPv6 address (Go 1.19, which
 * etcd 3.4 was built with, took any text there; later Go refuses it, as we do); the port after it
 * (or after the last ':') is digits.
 */
function validHost(host: string): boolean {
  if (!HOST_CHARS.test(host)) return false;
  let colonPort: string;
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0 || !isIPv6(host.slice(1, close))) return false;
    colonPort = host.slice(close + 1);
  } else {
    const colon = host.lastIndexOf(':');
    colonPort = colon < 0 ? '' : host.slice(colon);
  }
  return colonPort === '' || /^:[0-9]*$/.test(colonPort);
}

/** One peer URL in Go's url.String() form, or undefined when etcd's NewURLs (or Cairn, see above) refuses it. */
export function normalizePeerUrl(raw: string): string | undefined {
  const s = raw.replace(GO_TRIM, '');
  if (CONTROL_BYTE.test(s)) return undefined;
  const hash = s.indexOf('#');
  const fragment = hash < 0 ? '' : s.slice(hash + 1);
  const beforeHash = hash < 0 ? s : s.slice(0, hash);
  if (!FRAGMENT.test(fragment)) return undefined;
  const m = SCHEME.exec(beforeHash);
  const scheme = m?.[1]?.toLowerCase();
  if (m === null || scheme === undefined || !PEER_URL_SCHEMES.has(scheme)) return undefined;
  let rest = beforeHash.slice(m[0].length);
  const q = rest.indexOf('?');
  const query = q < 0 ? undefined : rest.slice(q + 1);
  if (q >= 0) rest = rest.slice(0, q);
  // An authority and nothing after it: a path (even "/") is refused, as is an opaque "http:host:1".
  if (!rest.startsWith('//') || rest.indexOf('/', 2) >= 0) return undefined;
  const authority = rest.slice(2);
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const host = authority.slice(at + 1);
  if (userinfo !== undefined && !USERINFO.test(userinfo)) return undefined;
  if (!validHost(host) || !splitsHostPort(host)) return undefined;
  const user = userinfo === undefined ? '' : `${userinfo}@`;
  return `${scheme}://${user}${host}${query === undefined ? '' : `?${query}`}${fragment === '' ? '' : `#${fragment}`}`;
}

/**
 * MemberAdd's peer URLs: at least one, each valid; returned normalised and sorted (byte order of the
 * normal form), as etcd stores and reports them. Throws ClientError invalidPeerUrls.
 */
export function checkPeerUrls(urls: readonly string[]): string[] {
  if (urls.length === 0) throw new ClientError('invalidPeerUrls');
  const out = urls.map((u) => {
    const n = normalizePeerUrl(u);
    if (n === undefined) throw new ClientError('invalidPeerUrls');
    return n;
  });
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}
