// The admin rows of the bench (`--only admin`): for etcd and for Cairn in turn, a fresh single
// member is filled with ~1 GiB of data (64 KiB random values, 32 puts in flight over 4 connections),
// then, timed one after the other:
//   snapshot   `etcdctl snapshot save` of the whole database (MB/s = snapshot file bytes / seconds)
//   defrag     `etcdctl defrag` of the full database (nothing to free: the cost of rewriting ~1 GiB)
//   defrag-½   delete half of the keys, compact (physical), `etcdctl defrag` again (the file shrinks)
// Both servers run with --quota-backend-bytes 8 GiB so the fill never trips the quota.
// CAIRN_BENCH_ADMIN_BYTES sets the fill size (default 1 GiB).
import { statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, grpcFrame, unaryRawAsync } from './loadlib.js';
import { encodeRequest, decodeResponse } from '../harness/client.js';
import { runEtcdctl, type ServerOpts, type ServerProc } from '../harness/procs.js';

export const VALUE_BYTES = 64 * 1024;
const IN_FLIGHT = 32;
const CONNECTIONS = 4;
export const QUOTA_FLAG = '--quota-backend-bytes=8589934592';
const CTL_TIMEOUT_MS = 20 * 60_000;

export interface AdminFigures {
  readonly fillBytes: number;
  readonly fillSeconds: number;
  readonly dbBytesAfterFill: number;
  readonly snapshotBytes: number;
  readonly snapshotSeconds: number;
  readonly defragFullSeconds: number;
  readonly dbBytesAfterDefragFull: number;
  readonly defragHalfSeconds: number;
  readonly dbBytesBeforeDefragHalf: number;
  readonly dbBytesAfterDefragHalf: number;
  readonly peakRssMiB: number;
}

function keyOf(i: number): string {
  return `/admin/${String(i).padStart(7, '0')}`;
}

export async function status(endpoint: string): Promise<{ dbSize: number; revision: number }> {
  const s = await connect(endpoint);
  try {
    const out = decodeResponse('Maintenance', 'Status', await unaryRawAsync(s, '/etcdserverpb.Maintenance/Status', grpcFrame(encodeRequest('Maintenance', 'Status', {}))));
    const header = out['header'] as Record<string, unknown> | undefined;
    return { dbSize: Number(out['dbSize']), revision: Number(header?.['revision']) };
  } finally {
    s.close();
  }
}

export async function fill(endpoint: string, keys: number): Promise<void> {
  const sessions = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(endpoint)));
  const value = randomBytes(VALUE_BYTES);
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const s = sessions[w % CONNECTIONS];
    if (s === undefined) throw new Error('no session');
    for (;;) {
      const i = next++;
      if (i >= keys) return;
      // A different value per key (first bytes) so no layer can deduplicate them.
      value.writeUInt32BE(i, 0);
      await unaryRawAsync(s, '/etcdserverpb.KV/Put', grpcFrame(encodeRequest('KV', 'Put', { key: Buffer.from(keyOf(i)), value })));
    }
  };
  try {
    await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
  } finally {
    for (const s of sessions) s.close();
  }
}

export async function ctl(endpoint: string, args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await runEtcdctl(['--endpoints', endpoint, '--command-timeout=1200s', '--dial-timeout=10s', ...args], { timeoutMs: CTL_TIMEOUT_MS });
  if (r.exit !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.exit}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function unary(endpoint: string, service: string, method: string, req: object): Promise<void> {
  const s = await connect(endpoint);
  try {
    await unaryRawAsync(s, `/etcdserverpb.${service}/${method}`, grpcFrame(encodeRequest(service, method, req)));
  } finally {
    s.close();
  }
}

/** Runs the admin rows against one freshly started server; `start` gets the data dir to use. */
export async function runAdmin(label: string, start: (opts: ServerOpts) => Promise<ServerProc>, dir: string, fillBytes: number): Promise<AdminFigures> {
  const dataDir = join(dir, `cairn-bench-admin-${label}-${process.pid}`);
  rmSync(dataDir, { recursive: true, force: true });
  const proc = await start({ dataDir, extraArgs: [QUOTA_FLAG], readyTimeoutMs: 60_000 });
  const snapFile = join(dir, `cairn-bench-admin-${label}-${process.pid}.snap`);
  const say = (m: string): void => {
    process.stderr.write(`bench: admin ${label}: ${m}\n`);
  };
  try {
    const keys = Math.max(1, Math.round(fillBytes / VALUE_BYTES));
    let t0 = process.hrtime.bigint();
    await fill(proc.endpoint, keys);
    const fillSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const afterFill = await status(proc.endpoint);
    say(`filled ${keys} x ${VALUE_BYTES} B in ${fillSeconds.toFixed(1)} s; db ${(afterFill.dbSize / 2 ** 20).toFixed(0)} MiB`);

    const snapshotSeconds = await ctl(proc.endpoint, ['snapshot', 'save', snapFile]);
    const snapshotBytes = statSync(snapFile).size;
    rmSync(snapFile, { force: true });
    rmSync(`${snapFile}.part`, { force: true });
    say(`snapshot ${(snapshotBytes / 2 ** 20).toFixed(0)} MiB in ${snapshotSeconds.toFixed(2)} s`);

    const defragFullSeconds = await ctl(proc.endpoint, ['defrag']);
    const afterDefragFull = await status(proc.endpoint);
    say(`defrag (full db) in ${defragFullSeconds.toFixed(2)} s; db ${(afterDefragFull.dbSize / 2 ** 20).toFixed(0)} MiB`);

    await unary(proc.endpoint, 'KV', 'DeleteRange', { key: Buffer.from(keyOf(0)), range_end: Buffer.from(keyOf(Math.floor(keys / 2))) });
    const rev = (await status(proc.endpoint)).revision;
    await unary(proc.endpoint, 'KV', 'Compact', { revision: rev, physical: true });
    const beforeHalf = await status(proc.endpoint);
    t0 = process.hrtime.bigint();
    const defragHalfSeconds = await ctl(proc.endpoint, ['defrag']);
    const afterHalf = await status(proc.endpoint);
    say(`defrag (half deleted) in ${defragHalfSeconds.toFixed(2)} s; db ${(beforeHalf.dbSize / 2 ** 20).toFixed(0)} -> ${(afterHalf.dbSize / 2 ** 20).toFixed(0)} MiB`);
    return {
      fillBytes: keys * VALUE_BYTES,
      fillSeconds,
      dbBytesAfterFill: afterFill.dbSize,
      snapshotBytes,
      snapshotSeconds,
      defragFullSeconds,
      dbBytesAfterDefragFull: afterDefragFull.dbSize,
      defragHalfSeconds,
      dbBytesBeforeDefragHalf: beforeHalf.dbSize,
      dbBytesAfterDefragHalf: afterHalf.dbSize,
      peakRssMiB: proc.peakRssKb() / 1024,
    };
  } finally {
    await proc.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(snapFile, { force: true });
  }
}

/** The admin table: one line per figure, etcd beside Cairn, ratio = how many times faster Cairn is. */
export function formatAdminTable(etcd: AdminFigures | string, cairn: AdminFigures | string): string {
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const mbps = (b: number, s: number): number => b / 1e6 / s;
  type Row = [string, (f: AdminFigures) => string, (f: AdminFigures) => number, 'higher' | 'lower'];
  const rows: Row[] = [
    ['fill (puts of 64 KiB), MB/s', (f) => `${mbps(f.fillBytes, f.fillSeconds).toFixed(1)}`, (f) => mbps(f.fillBytes, f.fillSeconds), 'higher'],
    ['db size after fill', (f) => mib(f.dbBytesAfterFill), (f) => f.dbBytesAfterFill, 'lower'],
    ['snapshot save, MB/s', (f) => `${mbps(f.snapshotBytes, f.snapshotSeconds).toFixed(1)} (${mib(f.snapshotBytes)} in ${f.snapshotSeconds.toFixed(2)} s)`, (f) => mbps(f.snapshotBytes, f.snapshotSeconds), 'higher'],
    ['defrag of the full db, s', (f) => `${f.defragFullSeconds.toFixed(2)} (-> ${mib(f.dbBytesAfterDefragFull)})`, (f) => f.defragFullSeconds, 'lower'],
    ['defrag after deleting half, s', (f) => `${f.defragHalfSeconds.toFixed(2)} (${mib(f.dbBytesBeforeDefragHalf)} -> ${mib(f.dbBytesAfterDefragHalf)})`, (f) => f.defragHalfSeconds, 'lower'],
    ['peak RSS', (f) => mib(f.peakRssMiB * 2 ** 20), (f) => f.peakRssMiB, 'lower'],
  ];
  const lines = ['| figure | etcd | cairn | cairn vs etcd |', '|---|---|---|---|'];
  for (const [name, show, value, better] of rows) {
    const e = typeof etcd === 'string' ? etcd : show(etcd);
    const c = typeof cairn === 'string' ? cairn : show(cairn);
    let ratio = '';
    if (typeof etcd !== 'string' && typeof cairn !== 'string') {
      const r = better === 'higher' ? value(cairn) / value(etcd) : value(etcd) / value(cairn);
      ratio = `${r.toFixed(2)}x${better === 'lower' ? ' (etcd/cairn)' : ''}`;
    }
    lines.push(`| ${name} | ${e} | ${c} | ${ratio} |`);
  }
  return lines.join('\n');
}
