// Command-line flags, ETCD_* environment variables and --config-file, with etcd's names and defaults
// (E server/etcdmain/config.go, help.go). Precedence as etcd: a config file, when given, replaces
// flags and environment; otherwise a flag beats its ETCD_<NAME> variable, which beats the default.
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import {
  DEFAULT_LIMITS,
  ELECTION_TIMEOUT_MS,
  HEARTBEAT_INTERVAL_MS,
  SNAPSHOT_CATCHUP_ENTRIES_DEFAULT,
  SNAPSHOT_COUNT_DEFAULT,
  WAL_SEGMENT_BYTES,
  WAL_SEGMENT_BYTES_MIN,
  WATCHERS_MAX,
  WATCHERS_PER_STREAM_MAX,
  WATCH_PROGRESS_NOTIFY_INTERVAL_MIN_MS,
  WATCH_PROGRESS_NOTIFY_INTERVAL_MS,
} from '../base/limits.js';
import { isLevel, type Level } from '../base/log.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Kind = 'string' | 'int' | 'bool' | 'urls' | 'duration';

interface FlagSpec {
  readonly kind: Kind;
  readonly def: string;
  readonly help: string;
}

const FLAGS: Record<string, FlagSpec> = {
  name: { kind: 'string', def: 'default', help: 'Human-readable name for this member.' },
  'data-dir': { kind: 'string', def: '', help: 'Path to the data directory (default "${name}.cairn").' },
  'wal-dir': { kind: 'string', def: '', help: 'Path to the dedicated WAL directory (default "<data-dir>/member/wal").' },
  'listen-client-urls': { kind: 'urls', def: 'http://localhost:2379', help: 'List of URLs to listen on for client traffic.' },
  'advertise-client-urls': { kind: 'urls', def: 'http://localhost:2379', help: 'List of this member\'s client URLs to advertise to the public.' },
  'listen-peer-urls': { kind: 'urls', def: 'http://localhost:2380', help: 'List of URLs to listen on for peer traffic.' },
  'initial-advertise-peer-urls': { kind: 'urls', def: 'http://localhost:2380', help: 'List of this member\'s peer URLs to advertise to the rest of the cluster.' },
  'initial-cluster': { kind: 'string', def: 'default=http://localhost:2380', help: 'Initial cluster configuration for bootstrapping (name=peer-url pairs, comma separated).' },
  'initial-cluster-state': { kind: 'string', def: 'new', help: 'Initial cluster state (\'new\' or \'existing\').' },
  'initial-cluster-token': { kind: 'string', def: 'etcd-cluster', help: 'Initial cluster token for the etcd cluster during bootstrap.' },
  'snapshot-catchup-entries': { kind: 'int', def: String(SNAPSHOT_CATCHUP_ENTRIES_DEFAULT), help: 'Number of entries for a slow follower to catch up after compacting the raft log entries.' },
  'experimental-snapshot-catchup-entries': { kind: 'int', def: String(SNAPSHOT_CATCHUP_ENTRIES_DEFAULT), help: 'Number of entries for a slow follower to catch up after compacting the raft log entries (etcd 3.5 name).' },
  'max-request-bytes': { kind: 'int', def: String(DEFAULT_LIMITS.requestBytesMax), help: 'Maximum client request size in bytes the server will accept.' },
  'max-txn-ops': { kind: 'int', def: String(DEFAULT_LIMITS.txnOpsMax), help: 'Maximum number of operations permitted in a transaction.' },
  'quota-backend-bytes': { kind: 'int', def: String(DEFAULT_LIMITS.backendQuotaBytes), help: 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).' },
  'wal-segment-bytes': { kind: 'int', def: String(WAL_SEGMENT_BYTES), help: 'Cairn only: size at which a WAL segment file is closed and a new one started (etcd: 64 MB fixed).' },
  'snapshot-count': { kind: 'int', def: String(SNAPSHOT_COUNT_DEFAULT), help: 'Number of committed transactions between releases of WAL segments already held by the backend.' },
  'heartbeat-interval': { kind: 'int', def: String(HEARTBEAT_INTERVAL_MS), help: 'Time (in milliseconds) of a heartbeat interval (with --election-timeout, sets the minimum lease TTL as in etcd).' },
  'election-timeout': { kind: 'int', def: String(ELECTION_TIMEOUT_MS), help: 'Time (in milliseconds) for an election to timeout (the minimum lease TTL is ceil(1.5 x this)).' },
  'experimental-watch-progress-notify-interval': { kind: 'duration', def: '10m0s', help: 'Duration of periodic watch progress notifications (etcd 3.4/3.5 name).' },
  'watch-progress-notify-interval': { kind: 'duration', def: '10m0s', help: 'Duration of periodic watch progress notifications (etcd 3.6 name; the same setting).' },
  'max-watchers-per-stream': { kind: 'int', def: String(WATCHERS_PER_STREAM_MAX), help: 'Cairn only: most watchers one Watch stream may hold (etcd has no limit).' },
  'max-watchers': { kind: 'int', def: String(WATCHERS_MAX), help: 'Cairn only: most watchers the server holds over all streams (etcd has no limit).' },
  'log-level': { kind: 'string', def: 'info', help: 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.' },
  logger: { kind: 'string', def: 'zap', help: 'Currently only supports \'zap\' for structured logging.' },
  'log-outputs': { kind: 'string', def: 'default', help: 'Specify \'stdout\' or \'stderr\' to skip journald logging even when running under systemd, or list of comma separated output targets.' },
  'log-format': { kind: 'string', def: 'json', help: 'Configures log format. Only supports json.' },
  'config-file': { kind: 'string', def: '', help: 'Path to the server configuration file (YAML; keys are flag names).' },
  version: { kind: 'bool', def: 'false', help: 'Print the version and exit.' },
  help: { kind: 'bool', def: 'false', help: 'Show this help and exit.' },
};

export interface Config {
  readonly name: string;
  readonly dataDir: string;
  readonly walDir: string;
  readonly listenClientUrls: readonly URL[];
  readonly advertiseClientUrls: readonly URL[];
  readonly listenPeerUrls: readonly URL[];
  readonly initialAdvertisePeerUrls: readonly URL[];
  readonly initialCluster: string;
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly snapshotCatchupEntries: number;
  readonly requestBytesMax: number;
  readonly txnOpsMax: number;
  readonly quotaBackendBytes: number;
  readonly snapshotCount: number;
  readonly walSegmentBytes: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly watchProgressNotifyIntervalMs: number;
  readonly watchersPerStreamMax: number;
  readonly watchersMax: number;
  readonly logLevel: Level;
  readonly logOutputs: readonly string[];
  readonly showVersion: boolean;
  readonly showHelp: boolean;
}

function envName(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Splits argv into flag -> raw value, etcd/Go style: -f, --f, --f=v, --f v; booleans take no separate value. */
export function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
    if (m === null) throw new ConfigError(`'${arg}' is not a valid flag`);
    const name = m[1] as string;
    const spec = FLAGS[name];
    if (spec === undefined) throw new ConfigError(`flag provided but not defined: -${name}`);
    if (out.has(name)) throw new ConfigError(`flag --${name} given more than once`);
    let value = m[2];
    if (value === undefined) {
      if (spec.kind === 'bool') value = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new ConfigError(`flag needs an argument: -${name}`);
        value = next;
        i++;
      }
    }
    out.set(name, value);
  }
  return out;
}

function fromConfigFile(path: string): Map<string, string> {
  let doc: unknown;
  try {
    doc = yaml.load(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (doc === null || doc === undefined) return new Map();
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path}: expected a mapping of flag names to values`);
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(doc)) {
    if (FLAGS[k] === undefined) throw new ConfigError(`config file ${path}: unknown key '${k}'`);
    out.set(k, Array.isArray(v) ? v.map(String).join(',') : String(v));
  }
  return out;
}

function int(name: string, raw: string): number {
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`invalid value "${raw}" for flag -${name}: parse error`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`invalid value "${raw}" for flag -${name}: value out of range`);
  return n;
}

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("100ms", "1m30s", "10m0s"), in milliseconds. */
export function duration(name: string, raw: string): number {
  const s = raw.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let at = 0;
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (m === null) throw new ConfigError(`invalid value "${raw}" for flag -${name}: parse error`);
    ms += Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] ?? NaN);
    at = re.lastIndex;
  }
  if (s.length === 0 || !Number.isFinite(ms)) throw new ConfigError(`invalid value "${raw}" for flag -${name}: parse error`);
  return ms;
}

function bool(name: string, raw: string): boolean {
  if (/^(1|t|true)$/i.test(raw)) return true;
  if (/^(0|f|false)$/i.test(raw)) return false;
  throw new ConfigError(`invalid boolean value "${raw}" for -${name}`);
}

function urls(name: string, raw: string): URL[] {
  return raw.split(',').map((s) => {
    let u: URL;
    try {
      u = new URL(s.trim());
    } catch {
      throw new ConfigError(`invalid value "${raw}" for flag -${name}: "${s}" is not a URL`);
    }
    if (u.protocol === 'https:') throw new ConfigError(`--${name}: TLS (https) is not supported yet; use http`);
    if (u.protocol !== 'http:') throw new ConfigError(`--${name}: URL scheme must be http, got "${u.protocol}"`);
    if (u.port === '') throw new ConfigError(`--${name}: URL "${s}" needs a port`);
    return u;
  });
}

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const flags = parseArgs(argv);
  const file = flags.get('config-file') ?? env[envName('config-file')] ?? '';
  const given = file !== '' ? fromConfigFile(file) : flags;
  const raw = (name: string): string => {
    const spec = FLAGS[name];
    if (spec === undefined) throw new ConfigError(`internal: no flag ${name}`);
    const v = given.get(name) ?? (file === '' ? env[envName(name)] : undefined);
    return v ?? spec.def;
  };
  const name = raw('name');
  const logLevel = raw('log-level');
  if (!isLevel(logLevel) && logLevel !== 'panic') throw new ConfigError(`invalid --log-level "${logLevel}"`);
  if (raw('logger') !== 'zap') throw new ConfigError(`invalid --logger "${raw('logger')}": only 'zap' (structured JSON) is supported`);
  if (raw('log-format') !== 'json') throw new ConfigError(`invalid --log-format "${raw('log-format')}": only 'json' is supported`);
  const cfg: Config = {
    name,
    dataDir: raw('data-dir') !== '' ? raw('data-dir') : `${name}.cairn`,
    walDir: raw('wal-dir'),
    listenClientUrls: urls('listen-client-urls', raw('listen-client-urls')),
    advertiseClientUrls: urls('advertise-client-urls', raw('advertise-client-urls')),
    listenPeerUrls: urls('listen-peer-urls', raw('listen-peer-urls')),
    initialAdvertisePeerUrls: urls('initial-advertise-peer-urls', raw('initial-advertise-peer-urls')),
    initialCluster: initialCluster(given, env, file !== '', name, raw),
    initialClusterState: clusterState(raw('initial-cluster-state')),
    initialClusterToken: raw('initial-cluster-token'),
    snapshotCatchupEntries: int('snapshot-catchup-entries', given.has('snapshot-catchup-entries') || env[envName('snapshot-catchup-entries')] !== undefined ? raw('snapshot-catchup-entries') : raw('experimental-snapshot-catchup-entries')),
    requestBytesMax: int('max-request-bytes', raw('max-request-bytes')),
    txnOpsMax: int('max-txn-ops', raw('max-txn-ops')),
    quotaBackendBytes: int('quota-backend-bytes', raw('quota-backend-bytes')),
    snapshotCount: int('snapshot-count', raw('snapshot-count')),
    walSegmentBytes: int('wal-segment-bytes', raw('wal-segment-bytes')),
    heartbeatIntervalMs: int('heartbeat-interval', raw('heartbeat-interval')),
    electionTimeoutMs: int('election-timeout', raw('election-timeout')),
    watchProgressNotifyIntervalMs: progressInterval(given, env, file !== ''),
    watchersPerStreamMax: int('max-watchers-per-stream', raw('max-watchers-per-stream')),
    watchersMax: int('max-watchers', raw('max-watchers')),
    logLevel: logLevel === 'panic' ? 'fatal' : logLevel,
    logOutputs: raw('log-outputs').split(','),
    showVersion: bool('version', raw('version')),
    showHelp: bool('help', raw('help')),
  };
  if (cfg.requestBytesMax <= 0) throw new ConfigError('--max-request-bytes must be positive');
  if (cfg.txnOpsMax <= 0) throw new ConfigError('--max-txn-ops must be positive');
  if (cfg.snapshotCount <= 0) throw new ConfigError('--snapshot-count must be positive');
  if (cfg.heartbeatIntervalMs <= 0) throw new ConfigError('--heartbeat-interval must be positive');
  if (cfg.electionTimeoutMs < 5 * cfg.heartbeatIntervalMs) throw new ConfigError(`--election-timeout[${cfg.electionTimeoutMs}ms] should be at least as 5 times as --heartbeat-interval[${cfg.heartbeatIntervalMs}ms]`);
  if (cfg.watchersPerStreamMax <= 0 || cfg.watchersMax <= 0) throw new ConfigError('--max-watchers-per-stream and --max-watchers must be positive');
  if (cfg.walSegmentBytes < WAL_SEGMENT_BYTES_MIN) throw new ConfigError(`--wal-segment-bytes must be at least ${WAL_SEGMENT_BYTES_MIN}`);
  return cfg;
}

function clusterState(v: string): 'new' | 'existing' {
  if (v === 'new' || v === 'existing') return v;
  throw new ConfigError(`invalid value "${v}" for flag -initial-cluster-state: valid values are "new" or "existing"`);
}

/** etcd: without --initial-cluster, a member named other than "default" bootstraps as name=each advertised peer URL. */
function initialCluster(given: Map<string, string>, env: NodeJS.ProcessEnv, fromFile: boolean, name: string, raw: (n: string) => string): string {
  const set = given.has('initial-cluster') || (!fromFile && env[envName('initial-cluster')] !== undefined);
  if (set) return raw('initial-cluster');
  return raw('initial-advertise-peer-urls')
    .split(',')
    .map((u) => `${name}=${u.trim()}`)
    .join(',');
}

/** Either spelling of the progress-notify flag (the 3.6 name wins when both are given), floored at etcd's 100 ms. */
function progressInterval(given: Map<string, string>, env: NodeJS.ProcessEnv, fromFile: boolean): number {
  const pick = (name: string): string | undefined => given.get(name) ?? (fromFile ? undefined : env[envName(name)]);
  const rawNew = pick('watch-progress-notify-interval');
  const rawOld = pick('experimental-watch-progress-notify-interval');
  const ms = rawNew !== undefined ? duration('watch-progress-notify-interval', rawNew) : rawOld !== undefined ? duration('experimental-watch-progress-notify-interval', rawOld) : WATCH_PROGRESS_NOTIFY_INTERVAL_MS;
  return Math.max(ms, WATCH_PROGRESS_NOTIFY_INTERVAL_MIN_MS);
}

export function usage(): string {
  const lines = Object.entries(FLAGS).map(([k, s]) => `  --${k}${s.kind === 'bool' ? '' : ` '${s.def}'`}\n        ${s.help} (env ${envName(k)})`);
  return `Usage:\n\n  cairn-server [flags]\n\nFlags:\n${lines.join('\n')}\n`;
}
