// A bbolt database from buckets held in memory (tests and small files): the records are sorted and
// handed to the streaming writer (stream.ts), which owns the layout.
import { boltBytes, DEFAULT_PAGE_BYTES } from './stream.js';

export interface BoltRecord {
  readonly key: Buffer;
  readonly value: Buffer;
}

/** A top-level bucket: its name and its records (any order; sorted here, keys must be distinct). */
export interface BoltBucketInput {
  readonly name: string;
  readonly records: readonly BoltRecord[];
}

/** The bytes of a bbolt database holding `buckets` (top level; nested buckets are not needed by etcd). */
export function writeBolt(buckets: readonly BoltBucketInput[], pageBytes = DEFAULT_PAGE_BYTES): Buffer {
  return boltBytes(
    buckets.map((b) => {
      const records = [...b.records].sort((x, y) => Buffer.compare(x.key, y.key));
      return { name: b.name, records: () => records };
    }),
    pageBytes,
  );
}
