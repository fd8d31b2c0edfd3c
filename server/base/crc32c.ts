// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): Go's crc32.MakeTable(crc32.Castagnoli),
// which etcd uses for HashKV and etcdutl for `snapshot status`. node:zlib's crc32 is IEEE only.
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** The CRC-32C of `b` continuing from `prev` (a previous result; 0 to start). */
export function crc32c(b: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (let i = 0; i < b.length; i++) c = (TABLE[(c ^ (b[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
