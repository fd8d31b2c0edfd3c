// A user's merged key permissions and the checks on them, as etcd's range_perm_cache.go: every
// permission of every role becomes an interval; a point request (no range_end) needs one interval
// that holds the key, a range request needs intervals that cover all of [key, range_end) without a
// gap. Pure: no storage, no clock.
//
// Interval ends follow etcd's "bytes affine" order: an EMPTY byte string sorts after every other one
// (it stands for +infinity), so a permission or request whose range_end is "\0" (from key) ends at
// +infinity. A point is [key, key + "\0").
import { Permission_Type, type Permission } from '../../proto/gen/authpb.js';

/** etcd's Permission_Type values. */
export const PERM_READ = Permission_Type.READ;
export const PERM_WRITE = Permission_Type.WRITE;
export const PERM_READWRITE = Permission_Type.READWRITE;

const INFINITY = Buffer.alloc(0);

/** etcd's BytesAffineComparable: bytes order, with the empty string above everything. */
export function affineCompare(a: Uint8Array, b: Uint8Array): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return Buffer.compare(a, b);
}

export interface Interval {
  readonly begin: Buffer;
  /** Exclusive; empty = +infinity. */
  readonly end: Buffer;
}

function pointOf(key: Uint8Array): Interval {
  const end = Buffer.alloc(key.length + 1);
  end.set(key, 0);
  return { begin: Buffer.from(key), end };
}

/** The interval a stored permission grants (etcd's getMergedPerms). */
export function permissionInterval(p: Pick<Permission, 'key' | 'rangeEnd'>): Interval {
  if (p.rangeEnd.length === 0) return pointOf(p.key);
  const fromKey = p.rangeEnd.length === 1 && p.rangeEnd[0] === 0;
  return { begin: Buffer.from(p.key), end: fromKey ? INFINITY : Buffer.from(p.rangeEnd) };
}

function overlaps(a: Interval, b: Interval): boolean {
  return affineCompare(a.begin, b.end) < 0 && affineCompare(b.begin, a.end) < 0;
}

/** Intervals sorted by begin (then end), for the contiguity walk of `covers`. */
export class IntervalSet {
  private readonly list: Interval[] = [];
  private sorted = true;

  add(ivl: Interval): void {
    this.list.push(ivl);
    this.sorted = false;
  }

  get size(): number {
    return this.list.length;
  }

  private ordered(): readonly Interval[] {
    if (!this.sorted) {
      this.list.sort((x, y) => affineCompare(x.begin, y.begin) || affineCompare(x.end, y.end));
      this.sorted = true;
    }
    return this.list;
  }

  /** Some interval overlaps `ivl` (etcd's IntervalTree.Intersects). */
  intersects(ivl: Interval): boolean {
    for (const x of this.ordered()) if (overlaps(x, ivl)) return true;
    return false;
  }

  /** The intervals overlapping `ivl`, taken together without a gap, cover it (etcd's IntervalTree.Contains). */
  covers(ivl: Interval): boolean {
    let minBegin: Buffer | undefined = undefined;
    let maxEnd: Buffer = INFINITY;
    for (const x of this.ordered()) {
      if (!overlaps(x, ivl)) continue;
      if (minBegin === undefined) {
        minBegin = x.begin;
        maxEnd = x.end;
        continue;
      }
      if (affineCompare(maxEnd, x.begin) < 0) return false;
      if (affineCompare(x.end, maxEnd) > 0) maxEnd = x.end;
    }
    return minBegin !== undefined && affineCompare(maxEnd, ivl.end) >= 0 && affineCompare(minBegin, ivl.begin) <= 0;
  }
}

/** A user's read and write permissions over all its roles (etcd's unifiedRangePermissions). */
export class MergedPermissions {
  readonly read = new IntervalSet();
  readonly write = new IntervalSet();

  addAll(perms: readonly Permission[]): void {
    for (const p of perms) {
      const ivl = permissionInterval(p);
      if (p.permType === PERM_READ || p.permType === PERM_READWRITE) this.read.add(ivl);
      if (p.permType === PERM_WRITE || p.permType === PERM_READWRITE) this.write.add(ivl);
    }
  }

  /** etcd's checkKeyPoint / checkKeyInterval for a request's key and range_end. */
  permits(key: Uint8Array, rangeEnd: Uint8Array, type: typeof PERM_READ | typeof PERM_WRITE): boolean {
    const set = type === PERM_READ ? this.read : this.write;
    if (rangeEnd.length === 0) return set.intersects(pointOf(key));
    const fromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    return set.covers({ begin: Buffer.from(key), end: fromKey ? INFINITY : Buffer.from(rangeEnd) });
  }
}
