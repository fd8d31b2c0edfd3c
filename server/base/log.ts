// Structured JSON logs, one event per line on stderr, shaped like etcd's zap output
// ({"level","ts","caller","msg", ...fields}) so that harnesses which wait for etcd's lines work.

export type Level = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3, fatal: 4 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export type LogSink = (line: string) => void;

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, cause: value.cause instanceof Error ? value.cause.message : value.cause };
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return value;
}

export function createLogger(level: Level, sink: LogSink, caller = 'cairn'): Logger {
  const min = RANK[level];
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[lvl] < min) return;
    const rec = { level: lvl, ts: new Date().toISOString(), caller, msg, ...fields };
    sink(JSON.stringify(rec, replacer) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (component) => createLogger(level, sink, `${caller}/${component}`),
  };
}

export const stderrSink: LogSink = (line) => {
  process.stderr.write(line);
};

export function isLevel(s: string): s is Level {
  return s in RANK;
}
