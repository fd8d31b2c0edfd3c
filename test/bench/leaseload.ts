// The bench's lease load driver (run by run.ts as its own node process, so its CPU is not the
// server's). etcd's `benchmark lease-keepalive` grants one lease per client and opens a new stream
// for every keepalive (KeepAliveOnce), so it cannot express "many leases kept alive over a few
// streams", which is what a real client (one LeaseKeepAlive stream per client, many leases) does.
//
// Phases (printed as one JSON line, see loadlib.ts DriverOutput):
//   lease-grant      grants `--leases` leases (TTL `--ttl` s), `--grant-in-flight` calls at a time,
//                    over one HTTP/2 connection. Rate = grants/s.
//   lease-keepalive  `--streams` LeaseKeepAlive streams, one HTTP/2 connection each; stream s keeps
//                    the leases i with i % streams == s alive, cycling over them, `--in-flight`
//                    requests outstanding per stream, for `--seconds` s. The server answers a stream's
//                    requests in order, so each answer is matched to the oldest outstanding request
//                    (and its ID checked). Rate = keepalives answered/s; an answer with TTL <= 0 (lease
//                    not found) or the wrong ID counts as an error.
//
// The machine has 2 CPUs: the driver competes with the server; requests are encoded once up front
// and answers are read with a few byte comparisons (loadlib.ts has the raw gRPC client).
//
//   node dist/test/bench/leaseload.js --endpoint 127.0.0.1:2379 [--server-pid N] [--leases 10000]
//     [--ttl 600] [--grant-in-flight 64] [--streams 4] [--in-flight 64] [--seconds 10]
import type { ClientHttp2Session } from 'node:http2';
import { decodeResponse, encodeRequest } from '../harness/client.js';
import {
  CpuMeter,
  Histogram,
  connect,
  errorText,
  grpcFrame,
  intArg,
  openStream,
  parseArgs,
  printOutput,
  readVarint,
  skipField,
  skipVarint,
  unaryRaw,
  waitFor,
} from './loadlib.js';
import type { DriverPhase, RawStream } from './loadlib.js';

const GRANT_PATH = '/etcdserverpb.Lease/LeaseGrant';
const KEEPALIVE_PATH = '/etcdserverpb.Lease/LeaseKeepAlive';
/** A keepalive request frame: 5-byte gRPC header, tag 0x08, the ID's varint. */
const KEEPALIVE_ID_OFFSET = 6;
const DRAIN_MS = 10_000;
const GRANT_TIMEOUT_MS = 120_000;

interface Params {
  readonly endpoint: string;
  readonly serverPid: number | undefined;
  readonly leases: number;
  readonly ttl: number;
  readonly grantInFlight: number;
  readonly streams: number;
  readonly inFlight: number;
  readonly seconds: number;
}

function readParams(): Params {
  const a = parseArgs(process.argv.slice(2));
  const endpoint = a.get('endpoint');
  if (endpoint === undefined) throw new Error('--endpoint host:port is required');
  const pid = a.get('server-pid');
  return {
    endpoint,
    serverPid: pid === undefined ? undefined : Number(pid),
    leases: intArg(a, 'leases', 10_000),
    ttl: intArg(a, 'ttl', 600),
    grantInFlight: intArg(a, 'grant-in-flight', 64),
    streams: intArg(a, 'streams', 4),
    inFlight: intArg(a, 'in-flight', 64),
    seconds: intArg(a, 'seconds', 10),
  };
}

function idString(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  throw new Error(`LeaseGrant response ID is ${JSON.stringify(v)}`);
}

/** Grants p.leases leases; their keepalive request frames, and the phase's figures. */
async function grant(p: Params, session: ClientHttp2Session): Promise<{ frames: Buffer[]; phase: DriverPhase }> {
  const req = grpcFrame(encodeRequest('Lease', 'LeaseGrant', { TTL: String(p.ttl) }));
  const frames: Buffer[] = [];
  const hist = new Histogram();
  const cpu = new CpuMeter(p.serverPid);
  const t0 = performance.now();
  let sent = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`granting ${p.leases} leases: ${done} done within ${GRANT_TIMEOUT_MS} ms`)), GRANT_TIMEOUT_MS);
    const one = (): void => {
      const at = performance.now();
      sent += 1;
      unaryRaw(session, GRANT_PATH, req, (err, msg) => {
        done += 1;
        hist.addMs(performance.now() - at);
        if (err !== undefined || msg === undefined) {
          errors += 1;
          firstError ??= err;
        } else {
          try {
            const r = decodeResponse('Lease', 'LeaseGrant', msg);
            const e = r['error'];
            if (typeof e === 'string' && e !== '') throw new Error(e);
            frames.push(grpcFrame(encodeRequest('Lease', 'LeaseKeepAlive', { ID: idString(r['ID']) })));
          } catch (e) {
            errors += 1;
            firstError ??= errorText(e);
          }
        }
        if (sent < p.leases) one();
        else if (done === p.leases) {
          clearTimeout(timer);
          resolve();
        }
      });
    };
    for (let i = 0; i < Math.min(p.grantInFlight, p.leases); i++) one();
  });
  const seconds = (performance.now() - t0) / 1000;
  const c = cpu.read();
  return {
    frames,
    phase: {
      name: 'lease-grant',
      rate: frames.length / seconds,
      p50Ms: hist.quantileMs(0.5),
      p99Ms: hist.quantileMs(0.99),
      count: frames.length,
      expected: p.leases,
      errorCount: errors,
      firstError,
      seconds,
      driverCores: c.driverCores,
      serverCores: c.serverCores,
      extra: { inFlight: p.grantInFlight, ttl: p.ttl },
    },
  };
}

/** One LeaseKeepAlive stream and its outstanding requests (a ring, oldest first). */
class KeepAliveStream {
  private readonly sentAt: Float64Array;
  private readonly frameOf: Int32Array;
  private head = 0;
  private outstanding = 0;
  private next = 0;
  private readonly toSend: Buffer[] = [];
  private stream: RawStream | undefined;
  ended: string | undefined;
  sending = true;

  constructor(
    private readonly frames: readonly Buffer[],
    private readonly inFlight: number,
    private readonly stats: KeepAliveStats,
  ) {
    this.sentAt = new Float64Array(inFlight);
    this.frameOf = new Int32Array(inFlight);
  }

  get idle(): boolean {
    return this.outstanding === 0;
  }

  open(session: ClientHttp2Session): void {
    this.stream = openStream(
      session,
      KEEPALIVE_PATH,
      this.onMessage,
      (why) => {
        this.ended ??= why;
      },
      this.flush,
    );
  }

  /** Queues requests up to the in-flight limit (written by flush). */
  fill(): void {
    const now = performance.now();
    while (this.sending && this.outstanding < this.inFlight && this.frames.length > 0) {
      const i = this.next;
      this.next = (this.next + 1) % this.frames.length;
      const slot = (this.head + this.outstanding) % this.inFlight;
      this.sentAt[slot] = now;
      this.frameOf[slot] = i;
      this.outstanding += 1;
      const f = this.frames[i];
      if (f !== undefined) this.toSend.push(f);
    }
  }

  readonly flush = (): void => {
    this.fill();
    if (this.toSend.length === 0) return;
    const bytes = this.toSend.length === 1 ? this.toSend[0] : Buffer.concat(this.toSend);
    this.toSend.length = 0;
    if (bytes !== undefined) this.stream?.write(bytes);
  };

  /** LeaseKeepAliveResponse {header 1, ID 2, TTL 3}: checks ID and TTL > 0. */
  private readonly onMessage = (buf: Buffer, start: number, end: number): void => {
    if (this.outstanding === 0) {
      this.stats.error('an answer with no request outstanding');
      return;
    }
    const slot = this.head;
    this.head = (this.head + 1) % this.inFlight;
    this.outstanding -= 1;
    const now = performance.now();
    let idStart = -1;
    let idEnd = -1;
    let ttl = 0;
    let o = start;
    while (o < end && o >= 0) {
      const tag = buf[o] ?? 0;
      o += 1;
      if (tag === 0x10) {
        idStart = o;
        o = skipVarint(buf, o);
        idEnd = o;
      } else if (tag === 0x18) {
        const v = readVarint(buf, o);
        // A negative TTL is a 10-byte varint: larger than any real TTL.
        ttl = v.next - o > 9 ? -1 : v.value;
        o = v.next;
      } else o = skipField(buf, o, tag & 7);
    }
    const frame = this.frames[this.frameOf[slot] ?? -1];
    if (frame === undefined || idStart < 0 || !sameBytes(buf, idStart, idEnd, frame, KEEPALIVE_ID_OFFSET, frame.length)) {
      this.stats.error('answer for another lease ID than the oldest outstanding request');
    } else if (ttl <= 0) {
      this.stats.error(`lease not found (TTL ${ttl})`);
    }
    this.stats.answered(now - (this.sentAt[slot] ?? now), now);
  };

  close(): void {
    this.stream?.close();
  }
}

function sameBytes(a: Buffer, aStart: number, aEnd: number, b: Buffer, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false;
  for (let i = 0; i < aEnd - aStart; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

class KeepAliveStats {
  readonly hist = new Histogram();
  count = 0;
  errors = 0;
  firstError: string | undefined;
  lastAt = 0;

  answered(ms: number, at: number): void {
    this.hist.addMs(ms);
    this.count += 1;
    this.lastAt = at;
  }

  error(msg: string): void {
    this.errors += 1;
    this.firstError ??= msg;
  }
}

async function keepAlive(p: Params, frames: readonly Buffer[], sessions: ClientHttp2Session[]): Promise<DriverPhase> {
  const stats = new KeepAliveStats();
  const streams: KeepAliveStream[] = [];
  for (let s = 0; s < p.streams; s++) {
    const mine = frames.filter((_, i) => i % p.streams === s);
    const session = await connect(p.endpoint);
    sessions.push(session);
    const ks = new KeepAliveStream(mine, p.inFlight, stats);
    ks.open(session);
    streams.push(ks);
  }
  const cpu = new CpuMeter(p.serverPid);
  const t0 = performance.now();
  for (const ks of streams) ks.flush();
  const ended = (): boolean => streams.some((ks) => ks.ended !== undefined);
  try {
    await waitFor(() => ended(), p.seconds * 1000, 'keepalive phase', 50);
  } catch {
    // The phase's time is up (the usual way it ends).
  }
  for (const ks of streams) ks.sending = false;
  try {
    await waitFor(() => ended() || streams.every((ks) => ks.idle), DRAIN_MS, 'keepalive answers');
  } catch {
    stats.error('some keepalives were never answered');
  }
  const stop = streams.find((ks) => ks.ended !== undefined)?.ended;
  if (stop !== undefined) stats.error(`keepalive stream: ${stop}`);
  for (const ks of streams) ks.close();
  const seconds = (Math.max(stats.lastAt, t0) - t0) / 1000;
  const c = cpu.read();
  return {
    name: 'lease-keepalive',
    rate: seconds > 0 ? stats.count / seconds : 0,
    p50Ms: stats.hist.quantileMs(0.5),
    p99Ms: stats.hist.quantileMs(0.99),
    count: stats.count,
    expected: stats.count,
    errorCount: stats.errors,
    firstError: stats.firstError,
    seconds,
    driverCores: c.driverCores,
    serverCores: c.serverCores,
    extra: { leases: frames.length, streams: p.streams, inFlightPerStream: p.inFlight },
  };
}

async function main(): Promise<void> {
  const p = readParams();
  const sessions: ClientHttp2Session[] = [];
  const phases: DriverPhase[] = [];
  try {
    const grantSession = await connect(p.endpoint);
    sessions.push(grantSession);
    const g = await grant(p, grantSession);
    phases.push(g.phase);
    if (g.frames.length === 0) throw new Error(`grant: ${g.phase.firstError ?? 'no lease granted'}`);
    process.stderr.write(`leaseload: ${g.frames.length} leases granted\n`);
    phases.push(await keepAlive(p, g.frames, sessions));
    printOutput({ phases });
  } catch (e) {
    printOutput({ error: errorText(e), phases });
    process.exitCode = 1;
  } finally {
    for (const s of sessions) s.destroy();
  }
}

if (process.env['NODE_TEST_CONTEXT'] !== undefined) {
  console.log('leaseload: a bench driver, not a test (run.ts starts it)');
} else {
  main().catch((e: unknown) => {
    printOutput({ error: errorText(e), phases: [] });
    process.exitCode = 1;
  });
}
