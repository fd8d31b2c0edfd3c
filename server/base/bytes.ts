// Byte-string helpers for etcd's key-range conventions.

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** True when range_end is exactly one zero byte: "every key >= key". */
export function isFromKeyEnd(rangeEnd: Uint8Array): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

/**
 * A request's [key, range_end) as a scan: `end === undefined` means no upper bound, `single` means
 * the key alone. A range_end <= key selects nothing (empty).
 */
export interface KeyRange {
  readonly start: Buffer;
  readonly end: Buffer | undefined;
  readonly single: boolean;
}

export function keyRange(key: Uint8Array, rangeEnd: Uint8Array): KeyRange {
  const start = Buffer.from(key.buffer, key.byteOffset, key.length);
  if (rangeEnd.length === 0) return { start, end: undefined, single: true };
  if (isFromKeyEnd(rangeEnd)) return { start, end: undefined, single: false };
  return { start, end: Buffer.from(rangeEnd.buffer, rangeEnd.byteOffset, rangeEnd.length), single: false };
}

/** The range_end selecting every key with this prefix (clientv3's GetPrefixRangeEnd): one zero byte when none is greater. */
export function prefixEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export function rangeIsEmpty(r: KeyRange): boolean {
  return !r.single && r.end !== undefined && compareBytes(r.end, r.start) <= 0;
}

export function inRange(r: KeyRange, k: Uint8Array): boolean {
  if (r.single) return compareBytes(k, r.start) === 0;
  if (compareBytes(k, r.start) < 0) return false;
  return r.end === undefined || compareBytes(k, r.end) < 0;
}
