// `snapshot status` output exactly as etcdctl 3.4 / etcdutl print a DBStatus: -w simple (default),
// table, json, fields.
import type { SnapshotStatus } from '../snap/index.js';

export const WRITE_OUT_FORMATS = ['simple', 'table', 'json', 'fields'] as const;
export type WriteOut = (typeof WRITE_OUT_FORMATS)[number];

export function isWriteOut(s: string): s is WriteOut {
  return (WRITE_OUT_FORMATS as readonly string[]).includes(s);
}

const SI_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'] as const;

/** Go's %.0f of a value with one decimal (tenths = value * 10): exact halves round to even. */
function goRound(tenths: number): string {
  const whole = Math.floor(tenths / 10);
  const frac = tenths - whole * 10;
  return String(frac > 5 || (frac === 5 && whole % 2 === 1) ? whole + 1 : whole);
}

/** go-humanize's Bytes (SI, base 1000): "20 kB", "2.1 MB", "9 B". */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const e = Math.min(Math.floor(Math.log(n) / Math.log(1000)), SI_UNITS.length - 1);
  const tenths = Math.floor((n / 1000 ** e) * 10 + 0.5);
  return `${tenths < 100 ? (tenths / 10).toFixed(1) : goRound(tenths)} ${SI_UNITS[e] ?? 'B'}`;
}

/** olekukonko/tablewriter's default table: centred headers, right-aligned cells (etcdctl's SetAlignment). */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const centre = (s: string, w: number): string => {
    const gap = w - s.length;
    const left = Math.floor(gap / 2);
    return ' '.repeat(left) + s + ' '.repeat(gap - left);
  };
  const head = `|${header.map((h, i) => ` ${centre(h, widths[i] ?? 0)} `).join('|')}|`;
  const body = rows.map((r) => `|${r.map((c, i) => ` ${c.padStart(widths[i] ?? 0)} `).join('|')}|`);
  return [line, head, line, ...body, line].join('\n') + '\n';
}

export function formatStatus(s: SnapshotStatus, w: WriteOut): string {
  const hashHex = s.hash.toString(16);
  // a bbolt snapshot: etcdutl 3.6's columns (with the storage version); a Cairn LMDB file: etcdctl 3.4's
  const v = s.version;
  switch (w) {
    case 'simple':
      return `${hashHex}, ${s.revision}, ${s.totalKey}, ${humanizeBytes(s.totalSize)}${v !== undefined ? `, ${v}` : ''}\n`;
    case 'table':
      return v !== undefined
        ? renderTable(['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE', 'VERSION'], [[hashHex, String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize), v]])
        : renderTable(['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'], [[hashHex, String(s.revision), String(s.totalKey), humanizeBytes(s.totalSize)]]);
    case 'json':
      return `${JSON.stringify({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize, ...(v !== undefined ? { version: v } : {}) })}\n`;
    case 'fields':
      return `"Hash" : ${s.hash}\n"Revision" : ${s.revision}\n"Keys" : ${s.totalKey}\n"Size" : ${s.totalSize}\n${v !== undefined ? `"Version" : ${v}\n` : ''}`;
  }
}
