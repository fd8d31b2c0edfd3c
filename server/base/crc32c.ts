/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8, no dependency: Go's
 * crc32.MakeTable(crc32.Castagnoli), which etcd uses for WAL records and HashKV and etcdutl for
 * `snapshot status` (node:zlib's crc32 is IEEE only).
 * `crc32c(b, crc32c(a)) === crc32c(concat(a, b))`, which is what makes chaining work:
 * each record's CRC is seeded with the previous record's CRC.
 */

const castagnoliReflected = 0x82f63b78;
const sliceCount = 8;

function buildTables(): Uint32Array {
  const table = new Uint32Array(256 * sliceCount);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ castagnoliReflected : c >>> 1;
    table[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let s = 1; s < sliceCount; s++) {
      const prev = table[(s - 1) * 256 + n] ?? 0;
      table[s * 256 + n] = ((prev >>> 8) ^ (table[prev & 0xff] ?? 0)) >>> 0;
    }
  }
  return table;
}

const t = buildTables();

/** CRC-32C of `data`, continuing from `seed` (the CRC of the bytes before it; 0 to start). */
export function crc32c(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const lo =
      (crc ^ ((data[i] ?? 0) | ((data[i + 1] ?? 0) << 8) | ((data[i + 2] ?? 0) << 16) | ((data[i + 3] ?? 0) << 24))) >>> 0;
    crc =
      (t[7 * 256 + (lo & 0xff)] ?? 0) ^
      (t[6 * 256 + ((lo >>> 8) & 0xff)] ?? 0) ^
      (t[5 * 256 + ((lo >>> 16) & 0xff)] ?? 0) ^
      (t[4 * 256 + (lo >>> 24)] ?? 0) ^
      (t[3 * 256 + (data[i + 4] ?? 0)] ?? 0) ^
      (t[2 * 256 + (data[i + 5] ?? 0)] ?? 0) ^
      (t[256 + (data[i + 6] ?? 0)] ?? 0) ^
      (t[data[i + 7] ?? 0] ?? 0);
  }
  for (; i < n; i++) crc = (t[(crc ^ (data[i] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  return ~crc >>> 0;
}
