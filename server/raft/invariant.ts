// Assertions for states the algorithm makes impossible: a failure is a bug (in raft or in the host's use of
// it, e.g. a storage that lost what a Ready asked it to keep), never an expected condition.

export function invariant(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(`raft: invariant violated: ${what}`);
}

/** Sum of the entries' data bytes: the measure of maxSizePerMsg, maxUncommittedEntriesBytes and storage limits. */
export function payloadBytes(entries: readonly { readonly data: Uint8Array }[]): number {
  let n = 0;
  for (const e of entries) n += e.data.byteLength;
  return n;
}

/** The longest prefix of entries within maxBytes of data, but always at least one entry. */
export function limitBytes<T extends { readonly data: Uint8Array }>(entries: readonly T[], maxBytes: number): readonly T[] {
  if (entries.length <= 1) return entries;
  let size = 0;
  let n = 0;
  for (const e of entries) {
    size += e.data.byteLength;
    if (n > 0 && size > maxBytes) break;
    n++;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
