// Canonical forms of requests and responses for the differential test: bytes become
// escaped strings, header ids/term become "0" or "<nonzero>", gRPC codes get names.
import type { CallResult, Msg } from '../harness/client.js';
import { statusName } from '../harness/client.js';

/** Printable ASCII as is (backslash doubled), every other byte as \xNN. Injective. */
export function escapeBytes(buf: Uint8Array): string {
  let s = '';
  for (const x of buf) {
    if (x === 0x5c) s += '\\\\';
    else if (x >= 0x20 && x < 0x7f) s += String.fromCharCode(x);
    else s += `\\x${x.toString(16).padStart(2, '0')}`;
  }
  return s;
}

const HEADER_ID_FIELDS: ReadonlySet<string> = new Set(['cluster_id', 'member_id', 'raft_term']);

/**
 * A JSON-safe copy: Buffers → escaped strings; in every `header` object, cluster_id,
 * member_id and raft_term → "0" or "<nonzero>" (both servers must agree on which headers
 * carry them: etcd fills the top-level header only, nested txn headers carry zeros).
 */
export function canon(v: unknown, inHeader = false): unknown {
  if (Buffer.isBuffer(v)) return escapeBytes(v);
  if (v instanceof Uint8Array) return escapeBytes(v);
  if (Array.isArray(v)) return v.map((x) => canon(x));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (inHeader && HEADER_ID_FIELDS.has(k)) out[k] = x === '0' || x === 0 ? '0' : '<nonzero>';
      else out[k] = canon(x, k === 'header');
    }
    return out;
  }
  return v;
}

export type CanonResult = { ok: true; value: unknown } | { ok: false; code: string; details: string };

export function canonResult(r: CallResult<Msg>): CanonResult {
  if (r.ok) return { ok: true, value: canon(r.value) };
  return { ok: false, code: statusName(r.code), details: r.details };
}

/** The path of the first difference between two canonical values, or undefined if equal. */
export function firstDiff(a: unknown, b: unknown, path = '$'): string | undefined {
  if (a === b) return undefined;
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (i >= a.length || i >= b.length) return `${path}.length (${a.length} vs ${b.length})`;
      const d = firstDiff(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort();
    for (const k of keys) {
      if (!(k in ra)) return `${path}.${k} (missing in reference)`;
      if (!(k in rb)) return `${path}.${k} (missing in target)`;
      const d = firstDiff(ra[k], rb[k], `${path}.${k}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return `${path} (${JSON.stringify(a)} vs ${JSON.stringify(b)})`;
}

/** JSON with strings over 200 characters cut (reports name the first difference separately). */
export function short(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'string' && x.length > 200 ? `${x.slice(0, 60)}…(${x.length} chars)` : x));
}

/** A request as JSON with bytes as escaped strings (long ones cut). */
export function requestJson(req: unknown): string {
  return short(canon(req));
}

/** An integer from the environment, or dflt when unset. */
export function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}
