// `cairn`: the offline tool (etcdutl's counterpart) — `cairn snapshot restore|status`, `cairn version`,
// `cairn help`. Logs and progress go to stderr as JSON lines; results to stdout. Exit codes: 0 done,
// 1 refused or failed ("Error: ..." on stderr, as etcdutl), 2 a command line it does not understand.
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createLogger, stderrSink, type Logger } from '../base/log.js';
import { SnapshotError, exportBolt, restoreSnapshot, snapshotStatus } from '../snap/index.js';
import { CAIRN_VERSION, ETCD_COMPAT_VERSION } from '../version.js';
import { UsageError, flagUsage, parseArgs, type FlagSpecs } from './args.js';
import { formatStatus, isWriteOut, WRITE_OUT_FORMATS } from './print.js';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

interface Io {
  out(s: string): void;
  err(s: string): void;
  logger: Logger;
}

const RESTORE_FLAGS: FlagSpecs = {
  'data-dir': { kind: 'string', def: '', help: 'Path to the output data directory (default "<name>.cairn")' },
  'wal-dir': { kind: 'string', def: '', help: 'Path to the WAL directory (default "<data-dir>/member/wal")' },
  'initial-cluster': { kind: 'string', def: 'default=http://localhost:2380', help: 'Initial cluster configuration for restore bootstrap' },
  'initial-cluster-token': { kind: 'string', def: 'etcd-cluster', help: 'Initial cluster token for the cluster during restore bootstrap' },
  'initial-advertise-peer-urls': { kind: 'string', def: 'http://localhost:2380', help: "List of this member's peer URLs to advertise to the rest of the cluster" },
  name: { kind: 'string', def: 'default', help: 'Human-readable name for this member' },
  'skip-hash-check': { kind: 'bool', def: 'false', help: 'Ignore snapshot integrity hash value (required if copied from data directory)' },
  'bump-revision': { kind: 'uint', def: '0', help: 'How much to increase the latest revision after restore' },
  'mark-compacted': { kind: 'bool', def: 'false', help: 'Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)' },
  'initial-memory-map-size': { kind: 'uint', def: '0', help: "Accepted for etcdutl compatibility and ignored (LMDB's map size is fixed)" },
  help: { kind: 'bool', def: 'false', help: 'help for restore', short: 'h' },
};

const STATUS_FLAGS: FlagSpecs = {
  'write-out': { kind: 'string', def: 'simple', help: `Output format: ${WRITE_OUT_FORMATS.join(', ')}`, short: 'w' },
  help: { kind: 'bool', def: 'false', help: 'help for status', short: 'h' },
};

const EXPORT_FLAGS: FlagSpecs = {
  format: { kind: 'string', def: 'bbolt', help: 'Output format: bbolt (an etcd 3.6 snapshot file, for etcdutl snapshot status|restore)' },
  help: { kind: 'bool', def: 'false', help: 'help for export', short: 'h' },
};

const EXPORT_USAGE = `Exports a Cairn snapshot file (or a stopped member's data dir) as an etcd snapshot file: an etcd 3.6
bbolt database with the SHA-256 trailer \`etcdctl snapshot save\` writes, which \`etcdutl snapshot status\`
and \`etcdutl snapshot restore\` accept (keys with their history, compaction, leases, auth).

Usage:
  cairn snapshot export --format bbolt <cairn-snapshot-or-data-dir> <out.db>

Flags:
${flagUsage(EXPORT_FLAGS)}
`;

const HELP_FLAGS: FlagSpecs = {
  help: { kind: 'bool', def: 'false', help: 'help', short: 'h' },
  version: { kind: 'bool', def: 'false', help: 'print the version and exit' },
};

const USAGE = `cairn: offline tool for Cairn data (the counterpart of etcdutl)

Usage:
  cairn snapshot restore <filename> [flags]   Restores a snapshot into a data dir for a new cluster member
  cairn snapshot status <filename> [-w simple|table|json|fields]
                                              Prints a snapshot file's hash, revision, total keys and size
  cairn snapshot export --format bbolt <snapshot-or-data-dir> <out.db>
                                              Writes an etcd (bbolt) snapshot file of Cairn's data
  cairn version                               Prints the version
  cairn help                                  Prints this help

Take a snapshot with \`etcdctl snapshot save <filename>\` against a Cairn member. \`snapshot restore\`
also takes etcd's own (bbolt) snapshots, from etcd 3.4 to 3.6.
Run \`cairn snapshot restore --help\` for the restore flags.
`;

const RESTORE_USAGE = `Restores a snapshot (from \`etcdctl snapshot save\` against Cairn) to a data dir for a member of a NEW cluster

Usage:
  cairn snapshot restore <filename> [flags]

Flags:
${flagUsage(RESTORE_FLAGS)}
`;

const STATUS_USAGE = `Gets the status of a snapshot file. With -w simple it prints a comma-separated list:
hash, revision, total keys, total size.

Usage:
  cairn snapshot status <filename> [flags]

Flags:
${flagUsage(STATUS_FLAGS)}
`;

function str(flags: ReadonlyMap<string, string>, name: string): string {
  return flags.get(name) ?? '';
}

async function restoreCmd(argv: readonly string[], io: Io): Promise<number> {
  const p = parseArgs(argv, RESTORE_FLAGS);
  if (str(p.flags, 'help') === 'true') {
    io.out(RESTORE_USAGE);
    return EXIT_OK;
  }
  if (p.args.length !== 1) throw new UsageError('snapshot restore requires exactly one argument');
  const bump = Number(str(p.flags, 'bump-revision'));
  const mark = str(p.flags, 'mark-compacted') === 'true';
  if ((bump === 0 && mark) || (bump > 0 && !mark)) throw new UsageError('--mark-compacted required if --revision-bump > 0');
  if (!Number.isSafeInteger(bump)) throw new UsageError(`invalid argument "${str(p.flags, 'bump-revision')}" for "--bump-revision" flag: above 2^53`);
  await restoreSnapshot(
    {
      snapshotPath: p.args[0] ?? '',
      name: str(p.flags, 'name'),
      initialCluster: str(p.flags, 'initial-cluster'),
      initialClusterToken: str(p.flags, 'initial-cluster-token'),
      initialAdvertisePeerUrls: str(p.flags, 'initial-advertise-peer-urls').split(','),
      dataDir: str(p.flags, 'data-dir'),
      walDir: str(p.flags, 'wal-dir'),
      skipHashCheck: str(p.flags, 'skip-hash-check') === 'true',
      bumpRevision: bump,
      markCompacted: mark,
    },
    { logger: io.logger, nowMs: () => performance.now() },
  );
  return EXIT_OK;
}

async function statusCmd(argv: readonly string[], io: Io): Promise<number> {
  const p = parseArgs(argv, STATUS_FLAGS);
  if (str(p.flags, 'help') === 'true') {
    io.out(STATUS_USAGE);
    return EXIT_OK;
  }
  if (p.args.length !== 1) throw new UsageError('snapshot status requires exactly one argument');
  const w = str(p.flags, 'write-out');
  if (!isWriteOut(w)) throw new UsageError(`unsupported output format ${JSON.stringify(w)} (want ${WRITE_OUT_FORMATS.join(', ')})`);
  const st = await snapshotStatus(p.args[0] ?? '', { logger: io.logger, nowMs: () => performance.now(), tmpDir: tmpdir() });
  io.out(formatStatus(st, w));
  return EXIT_OK;
}

async function exportCmd(argv: readonly string[], io: Io): Promise<number> {
  const p = parseArgs(argv, EXPORT_FLAGS);
  if (str(p.flags, 'help') === 'true') {
    io.out(EXPORT_USAGE);
    return EXIT_OK;
  }
  if (str(p.flags, 'format') !== 'bbolt') throw new UsageError(`unsupported export format ${JSON.stringify(str(p.flags, 'format'))} (want bbolt)`);
  if (p.args.length !== 2) throw new UsageError('snapshot export requires two arguments: <cairn-snapshot-or-data-dir> <out.db>');
  const r = await exportBolt(p.args[0] ?? '', p.args[1] ?? '', { logger: io.logger, nowMs: () => performance.now(), tmpDir: tmpdir() });
  io.out(`Exported revision ${r.revision} (${r.revisions} stored revisions, compacted at ${r.compactRevision}) to ${p.args[1] ?? ''}\n`);
  return EXIT_OK;
}

function versionText(): string {
  return `cairn version: ${CAIRN_VERSION}\netcd version (compatible): ${ETCD_COMPAT_VERSION}\nAPI version: ${ETCD_COMPAT_VERSION.split('.').slice(0, 2).join('.')}\n`;
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === 'snapshot') {
    if (sub === 'restore') return restoreCmd(rest, io);
    if (sub === 'status') return statusCmd(rest, io);
    if (sub === 'export') return exportCmd(rest, io);
    if (sub === 'save') throw new UsageError('In order to download snapshot use: `etcdctl snapshot save ...`');
    if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
      io.out(USAGE);
      return EXIT_OK;
    }
    throw new UsageError(`unknown command "${sub}" for "cairn snapshot"`);
  }
  if (cmd === 'version') {
    parseArgs(argv.slice(1), {});
    io.out(versionText());
    return EXIT_OK;
  }
  if (cmd === 'help') {
    io.out(USAGE);
    return EXIT_OK;
  }
  if (cmd === undefined) {
    io.out(USAGE);
    return EXIT_OK;
  }
  if (cmd.startsWith('-')) {
    const p = parseArgs(argv, HELP_FLAGS);
    if (p.args.length > 0) throw new UsageError(`unknown command "${p.args[0] ?? ''}" for "cairn"`);
    io.out(str(p.flags, 'version') === 'true' ? versionText() : USAGE);
    return EXIT_OK;
  }
  throw new UsageError(`unknown command "${cmd}" for "cairn"`);
}

/** Runs the tool; returns the exit code. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`Error: ${err.message}\nRun 'cairn help' for usage.\n`);
      return EXIT_USAGE;
    }
    if (err instanceof SnapshotError) {
      io.err(`Error: ${err.message}\n`);
      return EXIT_ERROR;
    }
    const msg = err instanceof Error ? `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}` : String(err);
    io.err(`Error: ${msg}\n`);
    return EXIT_ERROR;
  }
}

const io: Io = {
  out: (s) => {
    process.stdout.write(s);
  },
  err: (s) => {
    process.stderr.write(s);
  },
  logger: createLogger('info', stderrSink, 'cairn/snapshot'),
};

process.exitCode = await run(process.argv.slice(2), io);
