// Shared by the bench's own load drivers (watchload.ts, leaseload.ts): a bare gRPC client on
// node:http2 (pre-encoded request bytes in, raw response message bytes out, no per-message
// decoding or object allocation beyond the Buffer slices), a few protobuf wire-format readers, a
// log-bucketed latency histogram, CPU accounting, and the one JSON line a driver prints.
//
// Why not @grpc/grpc-js on the hot path: the drivers run on the same 2 CPUs as the server under
// test, and a watch fan-out delivers hundreds of thousands of small messages per second; grpc-js
// spends a few microseconds and several objects on each one, node:http2 plus a length-prefix loop
// much less. Setup requests are still encoded with proto-loader (test/harness/client.ts).
import * as http2 from 'node:http2';
import { readFileSync } from 'node:fs';

// ---- gRPC over node:http2 ----

const GRPC_HEADER_BYTES = 5;
/** Receive window of each connection and stream: large, so flow control is not what limits a run. */
const WINDOW_BYTES = 32 * 1024 * 1024;
/** node:http2's per-session memory cap, MB. */
const SESSION_MEMORY_MB = 256;
const CONNECT_TIMEOUT_MS = 10_000;

/** A gRPC length-prefixed frame around one message. */
export function grpcFrame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(GRPC_HEADER_BYTES + msg.length);
  out[0] = 0;
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, GRPC_HEADER_BYTES);
  return out;
}

/** Opens one HTTP/2 connection (one TCP connection) to host:port and waits until it is up. */
export function connect(endpoint: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${endpoint}`, {
      settings: { initialWindowSize: WINDOW_BYTES, enablePush: false },
      maxSessionMemory: SESSION_MEMORY_MB,
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no HTTP/2 connection to ${endpoint} within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    session.once('error', (e: Error) => {
      clearTimeout(timer);
      reject(e);
    });
    session.once('connect', () => {
      clearTimeout(timer);
      session.setLocalWindowSize(WINDOW_BYTES);
      session.on('error', () => {
        // Reported through the streams that fail with it.
      });
      resolve(session);
    });
  });
}

function requestHeaders(path: string): http2.OutgoingHttpHeaders {
  return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' };
}

/** The grpc-status of a finished call, and its message, from response headers or trailers. */
function statusOf(headers: http2.IncomingHttpHeaders | undefined): { code: number; message: string } | undefined {
  const s = headers?.['grpc-status'];
  if (s === undefined) return undefined;
  const m = headers?.['grpc-message'];
  const message = typeof m === 'string' ? decodeURIComponent(m) : '';
  return { code: Number(s), message };
}

/**
 * Splits an HTTP/2 DATA byte stream into gRPC messages. `onMessage(buf, start, end)` sees each
 * message's bytes as buf[start, end) and must not keep `buf`.
 */
export class FrameSplitter {
  private rest: Buffer | undefined;
  constructor(private readonly onMessage: (buf: Buffer, start: number, end: number) => void) {}

  push(chunk: Buffer): void {
    const buf = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = undefined;
    let off = 0;
    const len = buf.length;
    while (off + GRPC_HEADER_BYTES <= len) {
      const msgLen = buf.readUInt32BE(off + 1);
      const end = off + GRPC_HEADER_BYTES + msgLen;
      if (end > len) break;
      this.onMessage(buf, off + GRPC_HEADER_BYTES, end);
      off = end;
    }
    if (off < len) this.rest = Buffer.from(buf.subarray(off));
  }
}

export interface RawStream {
  /** Writes pre-framed bytes (one or more gRPC frames). */
  write(framed: Buffer): void;
  close(): void;
  /** Set once the stream failed or ended: why. */
  readonly ended: string | undefined;
}

/**
 * Opens a bidi stream on `session`; messages go to onMessage, the end (any reason) to onEnd, and
 * onChunk (if given) runs after each received chunk's messages (to batch the writes they caused).
 */
export function openStream(
  session: http2.ClientHttp2Session,
  path: string,
  onMessage: (buf: Buffer, start: number, end: number) => void,
  onEnd: (why: string) => void,
  onChunk?: () => void,
): RawStream {
  const req = session.request(requestHeaders(path), { endStream: false });
  const splitter = new FrameSplitter(onMessage);
  let ended: string | undefined;
  let status: { code: number; message: string } | undefined;
  const finish = (why: string): void => {
    if (ended !== undefined) return;
    ended = why;
    onEnd(why);
  };
  req.on('response', (h: http2.IncomingHttpHeaders) => {
    status = statusOf(h) ?? status;
  });
  req.on('trailers', (h: http2.IncomingHttpHeaders) => {
    status = statusOf(h) ?? status;
  });
  req.on('data', (chunk: Buffer) => {
    splitter.push(chunk);
    onChunk?.();
  });
  req.on('error', (e: Error) => finish(`stream error: ${e.message}`));
  req.on('close', () =>
    finish(status === undefined ? `stream closed (HTTP/2 code ${req.rstCode ?? 0})` : `grpc-status ${status.code} ${status.message}`),
  );
  return {
    write: (framed) => {
      if (ended === undefined) req.write(framed);
    },
    close: () => req.close(),
    get ended() {
      return ended;
    },
  };
}

/**
 * One unary call with a pre-framed request. cb gets the response message bytes, or an error string
 * (gRPC status, stream error).
 */
export function unaryRaw(
  session: http2.ClientHttp2Session,
  path: string,
  framed: Buffer,
  cb: (err: string | undefined, msg: Buffer | undefined) => void,
): void {
  const req = session.request(requestHeaders(path), { endStream: false });
  let msg: Buffer | undefined;
  let status: { code: number; message: string } | undefined;
  let done = false;
  const splitter = new FrameSplitter((buf, start, end) => {
    msg ??= Buffer.from(buf.subarray(start, end));
  });
  req.on('response', (h: http2.IncomingHttpHeaders) => {
    status = statusOf(h) ?? status;
  });
  req.on('trailers', (h: http2.IncomingHttpHeaders) => {
    status = statusOf(h) ?? status;
  });
  req.on('data', (chunk: Buffer) => splitter.push(chunk));
  req.on('error', (e: Error) => {
    if (done) return;
    done = true;
    cb(`stream error: ${e.message}`, undefined);
  });
  req.on('close', () => {
    if (done) return;
    done = true;
    if (status === undefined) cb(`stream closed without grpc-status (HTTP/2 code ${req.rstCode ?? 0})`, undefined);
    else if (status.code !== 0) cb(`grpc-status ${status.code}: ${status.message}`, undefined);
    else if (msg === undefined) cb('no response message', undefined);
    else cb(undefined, msg);
  });
  req.end(framed);
}

/** unaryRaw as a promise. */
export function unaryRawAsync(session: http2.ClientHttp2Session, path: string, framed: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    unaryRaw(session, path, framed, (err, msg) => (err === undefined && msg !== undefined ? resolve(msg) : reject(new Error(err)))),
  );
}

// ---- protobuf wire format (only what the drivers read) ----

/** Offset just past the varint at buf[off]. */
export function skipVarint(buf: Buffer, off: number): number {
  let o = off;
  while ((buf[o] ?? 0) & 0x80) o += 1;
  return o + 1;
}

/** A varint below 2^53 as a number, and the offset past it. */
export function readVarint(buf: Buffer, off: number): { value: number; next: number } {
  let value = 0;
  let mul = 1;
  let o = off;
  for (;;) {
    const b = buf[o] ?? 0;
    o += 1;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: o };
    mul *= 128;
  }
}

/** Offset past the field value of wire type `wt` starting at buf[off]; -1 for an unknown wire type. */
export function skipField(buf: Buffer, off: number, wt: number): number {
  switch (wt) {
    case 0:
      return skipVarint(buf, off);
    case 1:
      return off + 8;
    case 2: {
      const { value, next } = readVarint(buf, off);
      return next + value;
    }
    case 5:
      return off + 4;
    default:
      return -1;
  }
}

/** The bytes of a varint encoding of a non-negative integer below 2^53. */
export function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

// ---- latency histogram ----

/** Buckets per doubling: ~2.2% resolution. */
const BUCKETS_PER_OCTAVE = 32;
/** Covers 1 µs .. 2^31 µs (~36 min). */
const BUCKETS = 32 * BUCKETS_PER_OCTAVE + 1;

/** Latencies in microseconds, log-bucketed (constant memory however many samples). */
export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;

  addMs(ms: number): void {
    const us = ms * 1000;
    const i = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * BUCKETS_PER_OCTAVE) + 1);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count += 1;
  }

  /** The q-quantile (0..1) in ms: the geometric middle of its bucket; NaN when empty. */
  quantileMs(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return i === 0 ? 0.0005 : 2 ** ((i - 0.5) / BUCKETS_PER_OCTAVE) / 1000;
    }
    return Number.NaN;
  }
}

// ---- CPU accounting ----

const CLOCK_TICKS_PER_S = 100;

/** CPU seconds (user + system) the process `pid` used so far; undefined when unreadable. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / CLOCK_TICKS_PER_S : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds this process used so far. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Measures both CPU clocks over an interval: cores used (1.0 = one core busy all the time). */
export class CpuMeter {
  private readonly t0 = performance.now();
  private readonly own0 = ownCpuSeconds();
  private readonly server0: number | undefined;
  constructor(private readonly serverPid: number | undefined) {
    this.server0 = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
  }

  read(): { driverCores: number; serverCores: number | undefined } {
    const wall = (performance.now() - this.t0) / 1000;
    const own = ownCpuSeconds() - this.own0;
    const s1 = this.serverPid === undefined ? undefined : processCpuSeconds(this.serverPid);
    const server = s1 === undefined || this.server0 === undefined ? undefined : s1 - this.server0;
    return { driverCores: wall > 0 ? own / wall : 0, serverCores: server === undefined || wall <= 0 ? undefined : server / wall };
  }
}

// ---- output and arguments ----

/**
 * What a driver prints, as one JSON line on stdout (parsed by report.ts parseDriverOutput).
 * `error` set: the run failed before measuring anything.
 */
export interface DriverOutput {
  readonly error?: string;
  readonly phases: readonly DriverPhase[];
}

/** One measured phase of a driver run. */
export interface DriverPhase {
  readonly name: string;
  /** Operations per second over the phase (events delivered, keepalives answered). */
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Operations measured. */
  readonly count: number;
  /** Operations expected (count < expected: some never arrived). */
  readonly expected: number;
  readonly errorCount: number;
  readonly firstError: string | undefined;
  readonly seconds: number;
  /** Driver and server CPU, in cores, over the phase. */
  readonly driverCores: number;
  readonly serverCores: number | undefined;
  /** Phase-specific figures, e.g. the put rate achieved. */
  readonly extra: Readonly<Record<string, number>>;
}

export function printOutput(out: DriverOutput): void {
  process.stdout.write(`${JSON.stringify(out, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))}\n`);
}

/** `--name value` pairs from argv into a map; throws on a stray argument. */
export function parseArgs(argv: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i] ?? '';
    const v = argv[i + 1];
    if (!k.startsWith('--') || v === undefined) throw new Error(`bad arguments near ${JSON.stringify(k)}: expected --name value pairs`);
    m.set(k.slice(2), v);
  }
  return m;
}

export function intArg(args: Map<string, string>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Resolves when cond() holds (polled every pollMs) or rejects at the deadline. */
export function waitFor(cond: () => boolean, timeoutMs: number, what: string, pollMs = 5): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (performance.now() > deadline) reject(new Error(`${what}: not done within ${timeoutMs} ms`));
      else setTimeout(tick, pollMs);
    };
    tick();
  });
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A bench setting from the environment: trimmed, undefined when unset or blank. */
export function envString(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** A positive-integer bench setting from the environment (dflt when unset). */
export function envPositiveInt(name: string, dflt: number): number {
  const v = envString(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}
