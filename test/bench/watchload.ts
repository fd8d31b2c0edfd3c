// The bench's watch load driver (run by run.ts as its own node process, so its CPU is not the
// server's): W watchers on the prefix "/bench/" spread over S Watch streams, one HTTP/2 connection
// each, and puts under that prefix from one more connection. Each put's value carries its send
// time (performance.now(), float64 LE) and a sequence number, so every delivered event yields one
// latency sample (put sent -> event received by the driver) with no clock shared across processes.
//
// Phases (each measured separately, printed as one JSON line, see loadlib.ts DriverOutput):
//   watch-steady-R  open loop, one phase per rate R in `--rates`: R puts/s for `--seconds` s; then
//                   wait until every event arrived (at most `--drain-ms`).
//   watch-max       puts as fast as the server acks them, `--max-in-flight` unacked, for
//                   `--max-seconds` s; then wait until every event arrived (at most `--drain-ms`).
//                   Events pile up faster than any server here delivers them, so this measures the
//                   catch-up delivery rate (etcd then sends batches of events read from storage).
// A phase's rate = events delivered / (last event or put - first put), summed over all watchers.
//
// The machine has 2 CPUs: this driver (one node thread, at most one core) competes with the server
// under test, and at high fan-out the driver's own receive loop can be the limit. Each phase reports
// the driver's and the server's CPU (cores) so a reader can tell which side was saturated. The hot
// path decodes nothing but the event values' first 12 bytes (loadlib.ts has the raw gRPC client).
//
//   node dist/test/bench/watchload.js --endpoint 127.0.0.1:2379 [--server-pid N] [--watchers 1000]
//     [--streams 10] [--rates 200,1000] [--seconds 5] [--max-in-flight 16] [--max-seconds 3]
//     [--value-bytes 32] [--drain-ms 20000]
import type { ClientHttp2Session } from 'node:http2';
import { encodeRequest } from '../harness/client.js';
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
  unaryRaw,
  waitFor,
} from './loadlib.js';
import type { DriverPhase, RawStream } from './loadlib.js';

const PREFIX = '/bench/';
const PREFIX_END = '/bench0';
const WATCH_PATH = '/etcdserverpb.Watch/Watch';
const PUT_PATH = '/etcdserverpb.KV/Put';
/** Distinct keys the puts cycle over. */
const KEYS = 1000;
/** Bytes of the value used by the driver: float64 send time + uint32 sequence number. */
const STAMP_BYTES = 12;
/** Puts awaiting their ack, at most (open loop): past it the steady phase falls behind its rate. */
const PUTS_UNACKED_MAX = 4096;
/** Sequence numbers per run, at most (the per-put delivery counters are preallocated). */
const SEQ_MAX = 1 << 21;
const WARMUP_PUTS = 20;
const WARMUP_ROUNDS = 10;
const SETUP_TIMEOUT_MS = 30_000;

interface Params {
  readonly endpoint: string;
  readonly serverPid: number | undefined;
  readonly watchers: number;
  readonly streams: number;
  readonly rates: readonly number[];
  readonly seconds: number;
  readonly maxInFlight: number;
  readonly maxSeconds: number;
  readonly valueBytes: number;
  readonly drainMs: number;
}

function readParams(): Params {
  const a = parseArgs(process.argv.slice(2));
  const endpoint = a.get('endpoint');
  if (endpoint === undefined) throw new Error('--endpoint host:port is required');
  const pid = a.get('server-pid');
  const p: Params = {
    endpoint,
    serverPid: pid === undefined ? undefined : Number(pid),
    watchers: intArg(a, 'watchers', 1000),
    streams: intArg(a, 'streams', 10),
    rates: (a.get('rates') ?? '200,1000').split(',').map((r) => {
      const n = Number(r);
      if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--rates must list positive integers, got ${JSON.stringify(r)}`);
      return n;
    }),
    seconds: intArg(a, 'seconds', 5),
    maxInFlight: intArg(a, 'max-in-flight', 16),
    maxSeconds: intArg(a, 'max-seconds', 3),
    valueBytes: intArg(a, 'value-bytes', 32),
    drainMs: intArg(a, 'drain-ms', 20_000),
  };
  if (p.valueBytes < STAMP_BYTES || p.valueBytes > 127) throw new Error(`--value-bytes must be ${STAMP_BYTES}..127`);
  if (p.watchers >= 0xffff) throw new Error('--watchers must be below 65535');
  return p;
}

/** Measurements of one phase, filled by the receive loop and the put issuers. */
class Phase {
  readonly hist = new Histogram();
  readonly putHist = new Histogram();
  events = 0;
  puts = 0;
  putsAcked = 0;
  putErrors = 0;
  firstError: string | undefined;
  /** Puts whose events have not all arrived yet. */
  undelivered = 0;
  lastEventAt = 0;
  lastPutAt = 0;
  readonly startedAt = performance.now();
  readonly cpu: CpuMeter;
  constructor(
    readonly name: string,
    readonly firstSeq: number,
    serverPid: number | undefined,
  ) {
    this.cpu = new CpuMeter(serverPid);
  }
}

class WatchLoad {
  private readonly streams: RawStream[] = [];
  private readonly sessions: ClientHttp2Session[] = [];
  private putSession: ClientHttp2Session | undefined;
  private readonly keyBytes: Buffer[] = [];
  /** Events received per put sequence number. */
  private readonly delivered = new Uint16Array(SEQ_MAX);
  private nextSeq = 0;
  private phase: Phase | undefined;
  /** Called after each put's ack or failure. */
  private onPutDone: (() => void) | undefined;
  private created = 0;
  private canceled = 0;
  private cancelReason = '';
  private streamEnd: string | undefined;
  /** Events outside any phase, or whose value is not one of ours. */
  private strayEvents = 0;
  private lateEvents = 0;
  private putsUnacked = 0;

  constructor(private readonly p: Params) {
    for (let i = 0; i < KEYS; i++) this.keyBytes.push(Buffer.from(`${PREFIX}${String(i).padStart(6, '0')}`));
  }

  // ---- receive side (the hot path) ----

  private readonly onMessage = (buf: Buffer, start: number, end: number): void => {
    let o = start;
    while (o < end) {
      const tag = buf[o] ?? 0;
      o += 1;
      const field = tag >> 3;
      const wt = tag & 7;
      if (field === 11 && wt === 2) {
        const l = readVarint(buf, o);
        this.onEvent(buf, l.next, l.next + l.value);
        o = l.next + l.value;
      } else if (field === 3 && wt === 0) {
        if (buf[o] !== 0) this.created += 1;
        o += 1;
      } else if (field === 4 && wt === 0) {
        if (buf[o] !== 0) this.canceled += 1;
        o += 1;
      } else if (field === 6 && wt === 2) {
        const l = readVarint(buf, o);
        this.cancelReason ||= buf.toString('utf8', l.next, l.next + l.value);
        o = l.next + l.value;
      } else {
        o = skipField(buf, o, wt);
        if (o < 0) return;
      }
    }
  };

  /** Event bytes buf[start, end): finds kv (2) -> value (5) and records the sample. */
  private onEvent(buf: Buffer, start: number, end: number): void {
    let o = start;
    while (o < end) {
      const tag = buf[o] ?? 0;
      o += 1;
      if (tag === 0x12) {
        const l = readVarint(buf, o);
        this.onKv(buf, l.next, l.next + l.value);
        return;
      }
      o = skipField(buf, o, tag & 7);
      if (o < 0) return;
    }
  }

  private onKv(buf: Buffer, start: number, end: number): void {
    let o = start;
    while (o < end) {
      const tag = buf[o] ?? 0;
      o += 1;
      if (tag === 0x2a) {
        const l = readVarint(buf, o);
        if (l.value < STAMP_BYTES) break;
        this.sample(buf.readDoubleLE(l.next), buf.readUInt32LE(l.next + 8));
        return;
      }
      o = skipField(buf, o, tag & 7);
      if (o < 0) break;
    }
    this.strayEvents += 1;
  }

  private sample(sentAt: number, seq: number): void {
    const ph = this.phase;
    if (ph === undefined || seq >= SEQ_MAX) {
      this.strayEvents += 1;
      return;
    }
    if (seq < ph.firstSeq) {
      this.lateEvents += 1;
      return;
    }
    const now = performance.now();
    ph.hist.addMs(now - sentAt);
    ph.events += 1;
    ph.lastEventAt = now;
    const n = (this.delivered[seq] ?? 0) + 1;
    this.delivered[seq] = n;
    if (n === this.p.watchers) ph.undelivered -= 1;
  }

  // ---- puts ----

  private putFrame(seq: number, sentAt: number): Buffer {
    const key = this.keyBytes[seq % KEYS] ?? Buffer.alloc(0);
    const msgLen = 2 + key.length + 2 + this.p.valueBytes;
    const b = Buffer.alloc(5 + msgLen);
    b.writeUInt32BE(msgLen, 1);
    let o = 5;
    b[o++] = 0x0a;
    b[o++] = key.length;
    o += key.copy(b, o);
    b[o++] = 0x12;
    b[o++] = this.p.valueBytes;
    b.writeDoubleLE(sentAt, o);
    b.writeUInt32LE(seq, o + 8);
    return b;
  }

  /** Sends one put in the current phase; false when out of sequence numbers. */
  private issuePut(ph: Phase): boolean {
    const session = this.putSession;
    if (session === undefined || this.nextSeq >= SEQ_MAX) return false;
    const seq = this.nextSeq++;
    const sentAt = performance.now();
    ph.puts += 1;
    ph.undelivered += 1;
    ph.lastPutAt = sentAt;
    this.putsUnacked += 1;
    unaryRaw(session, PUT_PATH, this.putFrame(seq, sentAt), (err) => {
      this.putsUnacked -= 1;
      if (err === undefined) {
        ph.putsAcked += 1;
        ph.putHist.addMs(performance.now() - sentAt);
      } else {
        ph.putErrors += 1;
        ph.firstError ??= `put: ${err}`;
        // Its events will never come: stop waiting for them.
        if ((this.delivered[seq] ?? 0) < this.p.watchers) {
          this.delivered[seq] = this.p.watchers;
          ph.undelivered -= 1;
        }
      }
      this.onPutDone?.();
    });
    return true;
  }

  // ---- setup ----

  async setup(): Promise<void> {
    const { p } = this;
    // The hand-made PutRequest must be what proto-loader makes of the same fields.
    const sample = this.putFrame(7, 1.5);
    const key = this.keyBytes[7] ?? Buffer.alloc(0);
    const value = sample.subarray(sample.length - p.valueBytes);
    if (!grpcFrame(encodeRequest('KV', 'Put', { key, value })).equals(sample)) throw new Error('putFrame encodes a different PutRequest');
    const create = grpcFrame(
      encodeRequest('Watch', 'Watch', { create_request: { key: Buffer.from(PREFIX), range_end: Buffer.from(PREFIX_END) } }),
    );
    for (let s = 0; s < p.streams; s++) {
      const session = await connect(p.endpoint);
      this.sessions.push(session);
      const stream = openStream(session, WATCH_PATH, this.onMessage, (why) => {
        this.streamEnd ??= why;
      });
      this.streams.push(stream);
      const n = Math.floor(p.watchers / p.streams) + (s < p.watchers % p.streams ? 1 : 0);
      stream.write(Buffer.concat(Array.from({ length: n }, () => create)));
    }
    this.putSession = await connect(p.endpoint);
    await waitFor(
      () => this.created + this.canceled >= p.watchers || this.streamEnd !== undefined,
      SETUP_TIMEOUT_MS,
      `creating ${p.watchers} watchers (${this.created} created)`,
    );
    if (this.streamEnd !== undefined) throw new Error(`setup: ${this.streamEnd}`);
    if (this.canceled > 0) throw new Error(`${this.canceled} of ${p.watchers} watch creates canceled: ${this.cancelReason}`);
    // Warm-up: events must flow before anything is measured, and a JIT-compiled server (Cairn)
    // gets its delivery path compiled: rounds of puts, each round delivered before the next.
    const warm = new Phase('warmup', this.nextSeq, undefined);
    this.phase = warm;
    for (let round = 0; round < WARMUP_ROUNDS; round++) {
      for (let i = 0; i < WARMUP_PUTS; i++) this.issuePut(warm);
      await waitFor(
        () => (warm.undelivered === 0 && this.putsUnacked === 0) || this.streamEnd !== undefined,
        SETUP_TIMEOUT_MS,
        `warm-up: events of ${WARMUP_PUTS} puts to ${p.watchers} watchers (${warm.events} arrived)`,
      );
      if (warm.firstError !== undefined) throw new Error(`warm-up: ${warm.firstError}`);
    }
    const ended = this.ended();
    if (ended !== undefined) throw new Error(`warm-up: ${ended}`);
  }

  // ---- phases ----

  /** Why a watch stream ended, if one did (a method: the compiler must not narrow it across awaits). */
  private ended(): string | undefined {
    return this.streamEnd;
  }

  /** Waits until the phase's events all arrived, the drain time passed, or a stream ended. */
  private async drain(ph: Phase): Promise<void> {
    try {
      await waitFor(() => (ph.undelivered === 0 && this.putsUnacked === 0) || this.streamEnd !== undefined, this.p.drainMs, 'drain');
    } catch {
      // Reported as missing events.
    }
  }

  private result(ph: Phase, extra: Record<string, number>): DriverPhase {
    const cpu = ph.cpu.read();
    const elapsedS = (Math.max(ph.lastEventAt, ph.lastPutAt) - ph.startedAt) / 1000;
    const expected = ph.puts * this.p.watchers - ph.putErrors * this.p.watchers;
    let firstError = ph.firstError;
    let errorCount = ph.putErrors;
    if (this.streamEnd !== undefined) {
      errorCount += 1;
      firstError ??= `watch stream: ${this.streamEnd}`;
    }
    if (ph.events < expected) firstError ??= `${expected - ph.events} of ${expected} events never arrived`;
    return {
      name: ph.name,
      rate: elapsedS > 0 ? ph.events / elapsedS : 0,
      p50Ms: ph.hist.quantileMs(0.5),
      p99Ms: ph.hist.quantileMs(0.99),
      count: ph.events,
      expected,
      errorCount,
      firstError,
      seconds: elapsedS,
      driverCores: cpu.driverCores,
      serverCores: cpu.serverCores,
      extra: {
        ...extra,
        puts: ph.puts,
        putsPerSec: elapsedS > 0 ? ph.putsAcked / elapsedS : 0,
        putP50Ms: ph.putHist.quantileMs(0.5),
        putP99Ms: ph.putHist.quantileMs(0.99),
        strayEvents: this.strayEvents,
        lateEvents: this.lateEvents,
      },
    };
  }

  /** Open loop at `rate` puts/s for p.seconds s. */
  async steady(rate: number): Promise<DriverPhase> {
    const { p } = this;
    const ph = new Phase(`watch-steady-${rate}`, this.nextSeq, p.serverPid);
    this.phase = ph;
    const total = rate * p.seconds;
    let sent = 0;
    let behind = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(total, Math.floor(((performance.now() - ph.startedAt) * rate) / 1000) + 1);
        while (sent < due) {
          if (this.putsUnacked >= PUTS_UNACKED_MAX) {
            behind += 1;
            break;
          }
          if (!this.issuePut(ph)) {
            sent = total;
            break;
          }
          sent += 1;
        }
        if (sent >= total || this.streamEnd !== undefined) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    await this.drain(ph);
    return this.result(ph, { targetPutsPerSec: rate, ticksAtUnackedCap: behind });
  }

  /**
   * Puts as fast as the server acknowledges them, p.maxInFlight unacknowledged, for p.maxSeconds s;
   * then every event must arrive (at most p.drainMs). The server may fall behind with its events
   * (etcd then sends them in batches from storage): the rate is what it delivered until it caught up.
   */
  async max(): Promise<DriverPhase> {
    const { p } = this;
    const ph = new Phase('watch-max', this.nextSeq, p.serverPid);
    this.phase = ph;
    const endAt = ph.startedAt + p.maxSeconds * 1000;
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.onPutDone = undefined;
        resolve();
      };
      // Also ends the phase when acks stop coming.
      const timer = setTimeout(finish, p.maxSeconds * 1000);
      const refill = (): void => {
        if (performance.now() >= endAt || this.streamEnd !== undefined) {
          finish();
          return;
        }
        while (this.putsUnacked < p.maxInFlight) {
          if (!this.issuePut(ph)) {
            finish();
            return;
          }
        }
      };
      this.onPutDone = refill;
      refill();
    });
    await this.drain(ph);
    return this.result(ph, { inFlight: p.maxInFlight });
  }

  close(): void {
    for (const s of this.streams) s.close();
    for (const s of this.sessions) s.destroy();
    this.putSession?.destroy();
  }
}

async function main(): Promise<void> {
  const p = readParams();
  const load = new WatchLoad(p);
  const phases: DriverPhase[] = [];
  try {
    await load.setup();
    process.stderr.write(`watchload: ${p.watchers} watchers on ${p.streams} streams ready\n`);
    for (const rate of p.rates) phases.push(await load.steady(rate));
    phases.push(await load.max());
    printOutput({ phases });
  } catch (e) {
    printOutput({ error: errorText(e), phases });
    process.exitCode = 1;
  } finally {
    load.close();
  }
}

if (process.env['NODE_TEST_CONTEXT'] !== undefined) {
  console.log('watchload: a bench driver, not a test (run.ts starts it)');
} else {
  main().catch((e: unknown) => {
    printOutput({ error: errorText(e), phases: [] });
    process.exitCode = 1;
  });
}
