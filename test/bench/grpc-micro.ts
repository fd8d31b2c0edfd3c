// Micro-benchmark of the gRPC transport alone: a no-op unary /etcdserverpb.KV/Range (empty
// RangeResponse) served by server/api/grpc ("lean"), by @grpc/grpc-js ("grpcjs"), and by a bare
// node:http2 responder that writes the same bytes with no gRPC logic at all ("bare", the ceiling).
// Load comes from etcd's own `benchmark` tool, which shares this machine's CPUs with the server, so
// req/s is partly the tool's limit; the server's CPU time per call (from /proc) is the steadier
// measure of the transport's cost. Run by hand, not a test:
//
//   npx tsc -p tsconfig.json && node dist/test/bench/grpc-micro.js
//
// Environment (optional): GRPC_MICRO_KINDS (default lean,grpcjs,bare), GRPC_MICRO_TOTAL (50000),
// GRPC_MICRO_CONNS (16), GRPC_MICRO_CLIENTS (256), GRPC_MICRO_ROUNDS (2), GRPC_MICRO_PIN (1: with
// taskset, the server runs on CPU 0 and the load tool on the others, so they do not trade cores),
// CAIRN_BENCH_TOOL (default ~/.cache/cairn/bin/etcd-benchmark-v3.6.8).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { cpus, homedir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { GrpcServer } from '../../server/api/grpc/index.js';
import { parseToolOutput } from './report.js';

const RANGE_PATH = '/etcdserverpb.KV/Range';
const EMPTY = Buffer.alloc(0);
const KINDS = ['lean', 'grpcjs', 'bare'] as const;
type Kind = (typeof KINDS)[number];
const SERVER_READY_MS_MAX = 10_000;

function isKind(s: string): s is Kind {
  return (KINDS as readonly string[]).includes(s);
}

// ---------- the three servers (child process side) ----------

async function serveLean(): Promise<number> {
  const server = new GrpcServer({ maxReceiveMessageBytes: 2 * 1024 * 1024, maxSendMessageBytes: 2 ** 31 - 1 });
  server.unary(RANGE_PATH, () => EMPTY);
  return server.listen('127.0.0.1', 0);
}

function serveGrpcJs(): Promise<number> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 2 * 1024 * 1024 });
  const identity = (b: Buffer): Buffer => b;
  server.addService(
    {
      Range: {
        path: RANGE_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { Range: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, EMPTY) },
  );
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err === null ? resolve(port) : reject(err)));
  });
}

function serveBare(): Promise<number> {
  const server = http2.createServer({ settings: { initialWindowSize: 4 * 1024 * 1024 } });
  const frame = Buffer.alloc(5);
  const headers = { ':status': 200, 'content-type': 'application/grpc' };
  const trailers = { 'grpc-status': '0' };
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      stream.respond(headers, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end(frame);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
}

async function serve(kind: Kind): Promise<void> {
  const port = kind === 'lean' ? await serveLean() : kind === 'grpcjs' ? await serveGrpcJs() : await serveBare();
  process.once('SIGTERM', () => process.exit(0)); // a clean exit, so that --cpu-prof writes its profile
  process.stdout.write(`PORT ${port}\n`);
}

// ---------- the driver ----------

interface Server {
  readonly port: number;
  /** CPU time (user + system) the server process has used so far, in ms (Linux /proc). */
  cpuMs(): number | undefined;
  stop(): void;
}

const CLOCK_TICKS_PER_S = 100;

function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return undefined;
  }
}

function startServer(kind: Kind): Promise<Server> {
  const argv = [process.execPath, fileURLToPath(import.meta.url), 'serve', kind];
  const cmd = pinned() ? ['taskset', '-c', '0', ...argv] : argv;
  const child = spawn(cmd[0] ?? process.execPath, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} server not ready`)), SERVER_READY_MS_MAX);
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), cpuMs: () => processCpuMs(child.pid), stop: () => child.kill('SIGKILL') });
      }
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited ${String(code)}`)));
  });
}

function envNumber(name: string, dflt: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? dflt : Number(v);
}

function pinned(): boolean {
  return process.env['GRPC_MICRO_PIN'] === '1' && cpus().length > 1;
}

function runTool(tool: string, port: number, total: number): string {
  const args = [
    `--endpoints=127.0.0.1:${port}`,
    `--conns=${envNumber('GRPC_MICRO_CONNS', 16)}`,
    `--clients=${envNumber('GRPC_MICRO_CLIENTS', 256)}`,
    'range',
    'k',
    '--consistency=s',
    `--total=${total}`,
  ];
  const cmd = pinned() ? ['taskset', '-c', `1-${Math.max(1, cpus().length - 1)}`, tool, ...args] : [tool, ...args];
  const r = spawnSync(cmd[0] ?? tool, cmd.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  return (r.stdout ?? '') + (r.status === 0 ? '' : `\n(exit ${String(r.status)}: ${r.stderr ?? ''})`);
}

async function drive(): Promise<void> {
  const tool = process.env['CAIRN_BENCH_TOOL'] ?? join(homedir(), '.cache', 'cairn', 'bin', 'etcd-benchmark-v3.6.8');
  const kinds = (process.env['GRPC_MICRO_KINDS'] ?? KINDS.join(',')).split(',').filter(isKind);
  const total = envNumber('GRPC_MICRO_TOTAL', 50_000);
  const rounds = envNumber('GRPC_MICRO_ROUNDS', 2);
  console.log(`no-op unary ${RANGE_PATH}; ${total} requests, conns=${envNumber('GRPC_MICRO_CONNS', 16)}, clients=${envNumber('GRPC_MICRO_CLIENTS', 256)}`);
  for (let round = 1; round <= rounds; round++) {
    for (const kind of kinds) {
      const server = await startServer(kind);
      try {
        runTool(tool, server.port, Math.min(10_000, total)); // warm-up (JIT, connections)
        const cpu0 = server.cpuMs();
        const out = runTool(tool, server.port, total);
        const cpu1 = server.cpuMs();
        const cpuUsPerCall = cpu0 === undefined || cpu1 === undefined ? undefined : ((cpu1 - cpu0) * 1000) / total;
        const cpuCell = cpuUsPerCall === undefined ? '' : `  server CPU ${cpuUsPerCall.toFixed(1)} µs/call (${(1e6 / cpuUsPerCall).toFixed(0)} calls per CPU-second)`;
        const r = parseToolOutput(out);
        if (typeof r === 'string') console.log(`round ${round} ${kind.padEnd(6)} ERROR ${r}\n${out.slice(-500)}`);
        else {
          const errs = r.errorCount > 0 ? ` errors=${r.errorCount} (${r.firstError ?? ''})` : '';
          console.log(`round ${round} ${kind.padEnd(6)} ${r.reqPerSec.toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms${cpuCell}${errs}`);
        }
      } finally {
        server.stop();
      }
    }
  }
}

const [mode, kindArg] = process.argv.slice(2);
if (mode === 'serve' && kindArg !== undefined && isKind(kindArg)) await serve(kindArg);
else await drive();
