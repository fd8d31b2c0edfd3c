// The client port's `:authority` rewrite (server/api/h2authority.ts): etcdctl 3.4's per-endpoint
// commands send `:authority: http://host:port`, which nghttp2 resets (PROTOCOL_ERROR) before node
// runs any code; the probe/rewrite makes it `http:--host:port` on those connections only.
// Unit level: Huffman codes against RFC 7541, the HPACK block scan over every representation, the
// frame filter fed one byte at a time and in random splits (DESIGN style 14). In process: a raw
// grpc-go-like client (with a dynamic-table reference on its second request) through the probe into
// node:http2, the same client refused by node:http2 without the probe, node's own client (raw hand-over,
// also when it idles first), PINGs during the probe. Real processes: etcdctl endpoint
// status/hashkv/health on one Cairn, with --cluster on three, over TLS, and a normal client alongside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  ClientFrameFilter,
  EMPTY_SETTINGS,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FRAME_CONTINUATION,
  FRAME_HEADERS,
  FRAME_PING,
  FRAME_SETTINGS,
  HUFFMAN_EOS,
  frame,
  huffmanCode,
  huffmanDecode,
  huffmanEncode,
  probeAuthority,
  rewriteHeaderBlock,
  rewriteSlashes,
  type Handover,
} from '../../server/api/h2authority.js';
import { HTTP2_PREFACE } from '../../server/api/listen.js';
import { makeCa } from '../harness/certs.js';
import { EtcdClient } from '../harness/client.js';
import { withCluster } from '../harness/cluster.js';
import { pollUntil } from '../harness/poll.js';
import { etcdctlTlsArgs, runEtcdctl, startCairn } from '../harness/procs.js';

// ---------- HPACK building blocks (test side) ----------

function hpackInt(prefixBits: number, flags: number, v: number): Buffer {
  const max = 2 ** prefixBits - 1;
  if (v < max) return Buffer.from([flags | v]);
  const out = [flags | max];
  let rest = v - max;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(s: Buffer, huffman: boolean): Buffer {
  const body = huffman ? huffmanEncode(s) : s;
  return Buffer.concat([hpackInt(7, huffman ? 0x80 : 0, body.length), body]);
}

type Kind = 'incremental' | 'without' | 'never';
const KIND: Record<Kind, { flags: number; prefix: number }> = {
  incremental: { flags: 0x40, prefix: 6 },
  without: { flags: 0x00, prefix: 4 },
  never: { flags: 0x10, prefix: 4 },
};

/** A literal field: name by static index, or by a literal name string. */
function literal(kind: Kind, name: number | { name: string; huffman: boolean }, value: string, huffman: boolean): Buffer {
  const k = KIND[kind];
  const head =
    typeof name === 'number'
      ? hpackInt(k.prefix, k.flags, name)
      : Buffer.concat([hpackInt(k.prefix, k.flags, 0), hpackString(Buffer.from(name.name, 'latin1'), name.huffman)]);
  return Buffer.concat([head, hpackString(Buffer.from(value, 'latin1'), huffman)]);
}

const indexed = (i: number): Buffer => hpackInt(7, 0x80, i);
const sizeUpdate = (n: number): Buffer => hpackInt(5, 0x20, n);

/** The header block of a grpc-go-like request with this authority (Huffman as Go's encoder would choose). */
function requestBlock(authority: string, path = '/etcdserverpb.Maintenance/Status'): Buffer {
  return Buffer.concat([
    indexed(3), // :method POST
    indexed(6), // :scheme http
    literal('incremental', 4, path, true), // :path
    literal('incremental', 1, authority, true), // :authority
    literal('incremental', 31, 'application/grpc', true), // content-type
    literal('incremental', { name: 'te', huffman: false }, 'trailers', false),
  ]);
}

/** HEADERS (optionally padded, with priority) + CONTINUATIONs carrying `block` cut at `cuts`. */
function headerFrames(stream: number, block: Buffer, cuts: number[], opts: { padded?: number | undefined; priority?: boolean; endStream?: boolean } = {}): Buffer {
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < block.length).sort((a, b) => a - b), block.length];
  const frames: Buffer[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const frag = block.subarray(bounds[i], bounds[i + 1]);
    const last = i + 2 === bounds.length;
    if (i === 0) {
      let flags = (last ? FLAG_END_HEADERS : 0) | (opts.endStream === true ? 1 : 0);
      const parts: Buffer[] = [];
      if (opts.padded !== undefined) {
        flags |= FLAG_PADDED;
        parts.push(Buffer.from([opts.padded]));
      }
      if (opts.priority === true) {
        flags |= FLAG_PRIORITY;
        parts.push(Buffer.from([0, 0, 0, 0, 15]));
      }
      parts.push(frag, Buffer.alloc(opts.padded ?? 0));
      frames.push(frame(FRAME_HEADERS, flags, stream, Buffer.concat(parts)));
    } else frames.push(frame(FRAME_CONTINUATION, last ? FLAG_END_HEADERS : 0, stream, frag));
  }
  return Buffer.concat(frames);
}

function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) out.push(bytes.subarray(bounds[i], bounds[i + 1]));
  return out;
}

function filterAll(chunks: Buffer[]): { out: Buffer; f: ClientFrameFilter; pings: Buffer[] } {
  const f = new ClientFrameFilter({ dropSettingsAcks: 1, answerPings: true });
  const out: Buffer[] = [];
  const pings: Buffer[] = [];
  for (const c of chunks) {
    out.push(...f.push(c));
    pings.push(...f.takePings());
  }
  return { out: Buffer.concat(out), f, pings };
}

// ---------- Huffman ----------

test('huffman: codes match RFC 7541 Appendix B (spot checks) and the C.4.1 example', () => {
  const rfc: Array<[number, number, number]> = [
    [0, 0x1ff8, 13], [9, 0xffffea, 24], [10, 0x3ffffffc, 30], [32, 0x14, 6], [45, 0x16, 6], [47, 0x18, 6],
    [48, 0x0, 5], [58, 0x5c, 7], [92, 0x7fff0, 19], [97, 0x3, 5], [126, 0x1ffd, 13], [127, 0xffffffc, 28],
    [128, 0xfffe6, 20], [200, 0x3ffffe2, 26], [255, 0x3ffffee, 26], [HUFFMAN_EOS, 0x3fffffff, 30],
  ];
  for (const [sym, code, bits] of rfc) assert.deepEqual(huffmanCode(sym), { code, bits }, `symbol ${sym}`);
  assert.equal(huffmanEncode(Buffer.from('www.example.com')).toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
  assert.equal(huffmanDecode(Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex'))?.toString(), 'www.example.com');
});

test('huffman: any bytes round-trip; bad padding and EOS are refused', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    assert.deepEqual(huffmanDecode(huffmanEncode(bytes)), Buffer.from(bytes));
  }));
  assert.equal(huffmanDecode(Buffer.from([0x00])), undefined, "'0' + 3 zero bits of padding");
  assert.equal(huffmanDecode(Buffer.from([0xff, 0xff, 0xff, 0xff])), undefined, 'EOS inside');
  assert.equal(huffmanDecode(Buffer.from([0x1f, 0xff])), undefined, "'0' + 11 bits of padding");
});

test('rewriteSlashes: "/" becomes "-" in raw and Huffman strings, length kept, other bytes untouched', () => {
  fc.assert(fc.property(fc.array(fc.oneof(fc.constant(0x2f), fc.integer({ min: 0, max: 255 })), { maxLength: 48 }), fc.boolean(), (arr, huff) => {
    const s = Buffer.from(arr);
    const want = Buffer.from(arr.map((c) => (c === 0x2f ? 0x2d : c)));
    const enc = huff ? huffmanEncode(s) : Buffer.from(s);
    const n = rewriteSlashes(enc, 0, enc.length, huff);
    assert.equal(n, arr.filter((c) => c === 0x2f).length);
    assert.deepEqual(enc, huff ? huffmanEncode(want) : want);
  }));
});

// ---------- HPACK block scan ----------

test('header block: every literal form of :authority is rewritten, nothing else is', () => {
  const auth = 'http://127.0.0.1:2379';
  const fixed = 'http:--127.0.0.1:2379';
  const long = `https://${'a'.repeat(200)}/x`; // lengths past the 7-bit prefix
  const cases: Array<{ block: Buffer; want: Buffer; authorities: number; slashes: number }> = [];
  for (const kind of ['incremental', 'without', 'never'] as const) {
    for (const huff of [false, true]) {
      for (const name of [1, { name: ':authority', huffman: false }, { name: ':authority', huffman: true }] as const) {
        const before = [sizeUpdate(4096), indexed(3), literal(kind, 4, '/etcdserverpb.KV/Range', huff), literal('without', { name: 'x-path', huffman: huff }, '/a/b', huff)];
        cases.push({
          block: Buffer.concat([...before, literal(kind, name, auth, huff), indexed(62), literal(kind, name, long, huff)]),
          want: Buffer.concat([...before, literal(kind, name, fixed, huff), indexed(62), literal(kind, name, long.replace(/\//g, '-'), huff)]),
          authorities: 2,
          slashes: 5,
        });
      }
    }
  }
  // ':authority' spelled otherwise, or another static name, is not an authority
  const other = Buffer.concat([literal('without', { name: ':authorityx', huffman: false }, auth, false), literal('without', 2, 'a/b', false)]);
  cases.push({ block: other, want: Buffer.from(other), authorities: 0, slashes: 0 });
  for (const c of cases) {
    const r = rewriteHeaderBlock(c.block);
    assert.deepEqual(r, { authorities: c.authorities, slashes: c.slashes, malformed: false });
    assert.deepEqual(c.block, c.want);
  }
});

test('header block: truncated or garbage blocks report malformed and stay in bounds', () => {
  const block = requestBlock('http://127.0.0.1:1');
  for (let n = 0; n < block.length; n++) {
    const copy = Buffer.from(block.subarray(0, n));
    const r = rewriteHeaderBlock(copy);
    assert.equal(copy.length, n);
    if (r.malformed) assert.ok(n > 0);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
    const b = Buffer.from(bytes);
    rewriteHeaderBlock(b);
    assert.equal(b.length, bytes.length);
  }));
  assert.equal(rewriteHeaderBlock(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).malformed, true, 'integer overflow');
});

// ---------- the frame filter ----------

const CLIENT_SETTINGS = frame(FRAME_SETTINGS, 0, 0, Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0, 0x40, 0, 0]));
const WINDOW = frame(0x8, 0, 0, Buffer.from([0, 0x0e, 0xff, 0x01]));
const ACK = frame(FRAME_SETTINGS, FLAG_ACK, 0);
const PING = frame(FRAME_PING, 0, 0, Buffer.from('12345678'));
const DATA = frame(0x0, 1, 1, Buffer.from([0, 0, 0, 0, 2, 8, 1]));

/** A grpc-go-like client stream after the preface, and what must come out of the filter. */
function clientStream(authority: string, cuts: number[], padded: number | undefined): { input: Buffer; want: Buffer } {
  const block1 = requestBlock(authority);
  const block2 = Buffer.concat([indexed(3), indexed(6), indexed(63), indexed(62), literal('without', 1, authority, false)]);
  const fixed = authority.replace(/\//g, '-');
  const opts = { padded, priority: true };
  const input = Buffer.concat([CLIENT_SETTINGS, WINDOW, PING, ACK, headerFrames(1, block1, cuts, opts), DATA, ACK, headerFrames(3, block2, [3], {})]);
  const want = Buffer.concat([
    CLIENT_SETTINGS, WINDOW,
    headerFrames(1, requestBlock(fixed), cuts, opts), DATA, ACK,
    headerFrames(3, Buffer.concat([indexed(3), indexed(6), indexed(63), indexed(62), literal('without', 1, fixed, false)]), [3], {}),
  ]);
  return { input, want };
}

test('frame filter: one byte at a time, the ACK and PING are taken out and both blocks rewritten', () => {
  const { input, want } = clientStream('http://127.0.0.1:41500', [7, 30], 3);
  const bytes = Array.from(input, (_, i) => input.subarray(i, i + 1));
  const { out, f, pings } = filterAll(bytes);
  assert.deepEqual(out, want);
  assert.deepEqual(pings, [Buffer.from('12345678')]);
  assert.equal(f.headerBlocks, 2);
  assert.equal(f.slashBlocks, 2);
  assert.equal(f.acksDropped, 1);
  assert.equal(f.held().length, 0);
});

test('frame filter: random splits of the stream and of the header block give the same bytes', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(400), { maxLength: 10 }), fc.array(fc.nat(60), { maxLength: 4 }), fc.option(fc.nat(20), { nil: undefined }), fc.boolean(), (cuts, blockCuts, padded, slash) => {
      const auth = slash ? 'https://10.0.0.7:2379' : '10.0.0.7:2379';
      const { input, want } = clientStream(auth, blockCuts, padded);
      const { out, f } = filterAll(splitAt(input, cuts));
      assert.deepEqual(out, want);
      assert.equal(f.slashBlocks, slash ? 2 : 0);
    }),
  );
});

test('frame filter: bytes passed + held at any cut are the input minus the taken-out frames (the raw hand-over)', () => {
  const { input } = clientStream('127.0.0.1:2379', [5, 20], undefined);
  fc.assert(
    fc.property(fc.array(fc.nat(input.length), { maxLength: 6 }), fc.nat(input.length), (cuts, end) => {
      const prefix = input.subarray(0, end);
      const f = new ClientFrameFilter({ dropSettingsAcks: 1, answerPings: true });
      const out: Buffer[] = [];
      for (const c of splitAt(prefix, cuts)) out.push(...f.push(c));
      // reference: whole frames before `end`, minus the first ACK and PINGs, then the rest as is
      const expect: Buffer[] = [];
      let at = 0;
      let acks = 1;
      while (at + 9 <= end) {
        const len = input.readUIntBE(at, 3);
        if (at + 9 + len > end) break;
        const fr = input.subarray(at, at + 9 + len);
        const drop = (fr[3] === FRAME_SETTINGS && fr[4] === FLAG_ACK && acks-- > 0) || fr[3] === FRAME_PING;
        if (!drop) expect.push(fr);
        at += 9 + len;
      }
      expect.push(input.subarray(at, end));
      assert.deepEqual(Buffer.concat([...out, f.held()]), Buffer.concat(expect));
    }),
  );
});

test('frame filter: an interleaved frame inside a header block passes unchanged (nghttp2 judges it)', () => {
  const block = requestBlock('http://x:1');
  const input = Buffer.concat([headerFrames(1, block, [10]).subarray(0, 9 + 10), WINDOW]);
  const { out, f } = filterAll([input]);
  assert.deepEqual(out, input);
  assert.equal(f.headerBlocks, 0);
});

// ---------- in process: the probe in front of node:http2 ----------

interface Rig {
  port: number;
  handovers: Array<Handover['kind']>;
  authorities: string[];
  close(): Promise<void>;
}

/** A net server that reads the preface and probes, in front of a plain node:http2 server (probe: false = none). */
async function rig(probe: boolean, probeMs = 2000): Promise<Rig> {
  const h2 = http2.createServer();
  const authorities: string[] = [];
  const handovers: Array<Handover['kind']> = [];
  const sockets = new Set<net.Socket>();
  h2.on('stream', (stream, headers) => {
    authorities.push(String(headers[':authority']));
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    if (!probe) {
      h2.emit('connection', socket);
      return;
    }
    let got = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (got.length < HTTP2_PREFACE.length) return;
      socket.off('data', onData);
      probeAuthority(socket, got, (h) => {
        handovers.push(h.kind);
        h2.emit('connection', h.kind === 'raw' ? h.socket : h.stream);
      }, probeMs);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  const port = typeof a === 'object' && a !== null ? a.port : 0;
  return {
    port,
    handovers,
    authorities,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
      h2.close();
    },
  };
}

interface RawResult {
  frames: Array<{ type: number; flags: number; stream: number; payload: Buffer }>;
}

/**
 * A grpc-go-like client: preface + SETTINGS + WINDOW_UPDATE (+ a PING), waits for the server's
 * SETTINGS, ACKs every SETTINGS, then sends two requests (the second's :authority by dynamic index).
 */
function rawClient(port: number, authority: string, until: (r: RawResult) => boolean): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const res: RawResult = { frames: [] };
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`raw client: no answer; frames ${JSON.stringify(res.frames.map((f) => [f.type, f.flags, f.stream]))}`));
    }, 10_000);
    s.on('connect', () => s.write(Buffer.concat([HTTP2_PREFACE, CLIENT_SETTINGS, WINDOW, PING])));
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        const f = { type: buf[3] ?? 0, flags: buf[4] ?? 0, stream: buf.readUInt32BE(5), payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        res.frames.push(f);
        if (f.type === FRAME_SETTINGS && (f.flags & FLAG_ACK) === 0) {
          s.write(ACK);
          if (!sent) {
            sent = true;
            // GET /, :authority by reference to the dynamic table (newest first: te, content-type, :authority)
            const second = Buffer.concat([indexed(2), indexed(6), indexed(4), indexed(64)]);
            s.write(Buffer.concat([headerFrames(1, requestBlock(authority, '/x'), [11], { endStream: true }), headerFrames(3, second, [], { endStream: true })]));
          }
        }
      }
      if (until(res)) {
        clearTimeout(timer);
        s.destroy();
        resolve(res);
      }
    });
    s.on('error', () => undefined);
  });
}

const answered = (r: RawResult): boolean => [1, 3].every((id) => r.frames.some((f) => f.stream === id && (f.type === FRAME_HEADERS || f.type === 0x3))) || r.frames.some((f) => f.type === 0x7);

test('in process: node:http2 alone resets a "/" authority with PROTOCOL_ERROR (why the probe exists)', async () => {
  const r = await rig(false);
  try {
    const res = await rawClient(r.port, 'http://127.0.0.1:41500', answered);
    const rst = res.frames.find((f) => f.type === 0x3 && f.stream === 1);
    assert.ok(rst, 'RST_STREAM on stream 1');
    assert.equal(rst.payload.readUInt32BE(0), 1, 'PROTOCOL_ERROR');
  } finally {
    await r.close();
  }
});

test('in process: through the probe the same client is served, authority "http:--…" on both requests', async () => {
  const r = await rig(true);
  try {
    const res = await rawClient(r.port, 'http://127.0.0.1:41500', answered);
    assert.deepEqual(res.frames.slice(0, 1).map((f) => [f.type, f.flags, f.payload.length]), [[FRAME_SETTINGS, 0, 0]], 'the probe speaks first: empty SETTINGS');
    assert.ok(res.frames.some((f) => f.type === FRAME_PING && f.flags === FLAG_ACK && f.payload.toString() === '12345678'), 'PING answered');
    assert.deepEqual(res.frames.filter((f) => f.type === 0x3 || f.type === 0x7).map((f) => [f.type, f.stream, f.payload.toString('hex')]), [], 'no RST_STREAM, no GOAWAY');
    assert.deepEqual(r.authorities, ['http:--127.0.0.1:41500', 'http:--127.0.0.1:41500']);
    assert.deepEqual(r.handovers, ['rewrite']);
  } finally {
    await r.close();
  }
});

test('in process: a well-formed authority gets the raw socket; node\'s client, also after idling, is served', async () => {
  const r = await rig(true, 150);
  try {
    const res = await rawClient(r.port, '127.0.0.1:41500', answered);
    assert.equal(res.frames.filter((f) => f.type === 0x3 || f.type === 0x7).length, 0);
    assert.deepEqual(r.authorities, ['127.0.0.1:41500', '127.0.0.1:41500']);
    const get = async (s: http2.ClientHttp2Session): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = s.request({ ':path': '/' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
    const busy = http2.connect(`http://127.0.0.1:${r.port}`);
    assert.equal(await get(busy), 200);
    const idle = http2.connect(`http://127.0.0.1:${r.port}`);
    await pollUntil('idle connection handed over', () => Promise.resolve(r.handovers.length === 3), 5000);
    assert.equal(await get(idle), 200);
    assert.equal(await get(busy), 200);
    assert.deepEqual(r.handovers, ['raw', 'raw', 'raw']);
    busy.close();
    idle.close();
  } finally {
    await r.close();
  }
});

test('EMPTY_SETTINGS is a SETTINGS frame on stream 0 with no parameters', () => {
  assert.deepEqual(EMPTY_SETTINGS, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
});

// ---------- real processes ----------

const ok = (r: { exit: number | null; stdout: string; stderr: string }, what: string): string => {
  assert.equal(r.exit, 0, `${what}: ${r.stderr}`);
  return r.stdout + r.stderr;
};

async function endpointChecks(endpointArgs: string[], members: number, more: string[] = []): Promise<void> {
  const st = ok(await runEtcdctl([...endpointArgs, 'endpoint', 'status', ...more, '-w', 'json']), 'endpoint status');
  const rows = JSON.parse(st) as Array<{ Endpoint: string; Status: { header: { member_id: number } } }>;
  assert.equal(rows.length, members);
  for (const row of rows) assert.ok(row.Status.header.member_id !== 0, row.Endpoint);
  const hkv = ok(await runEtcdctl([...endpointArgs, 'endpoint', 'hashkv', ...more]), 'endpoint hashkv').trim().split('\n');
  assert.equal(hkv.length, members);
  for (const line of hkv) assert.match(line, /^https?:\/\/127\.0\.0\.1:\d+, \d+$/);
  const health = ok(await runEtcdctl([...endpointArgs, 'endpoint', 'health', ...more]), 'endpoint health').trim().split('\n');
  assert.equal(health.filter((l) => l.includes('is healthy')).length, members, health.join('\n'));
}

test('etcdctl endpoint status/hashkv/health against one Cairn; a normal client alongside', async () => {
  const c = await startCairn();
  try {
    await endpointChecks([`--endpoints=${c.clientUrl}`], 1);
    ok(await runEtcdctl([`--endpoints=${c.endpoint}`, 'put', 'k', 'v']), 'put');
    assert.equal(ok(await runEtcdctl([`--endpoints=${c.clientUrl}`, 'get', 'k', '--print-value-only']), 'get').trim(), 'v');
    const cl = new EtcdClient(c.endpoint);
    try {
      const r = await cl.unary('KV', 'Range', { key: Buffer.from('k') });
      assert.ok(r.ok);
    } finally {
      cl.close();
    }
  } finally {
    await c.stop();
  }
});

test('etcdctl endpoint status/hashkv/health --cluster on three Cairn members', async () => {
  await withCluster('cairn', { size: 3 }, async (cl) => {
    await endpointChecks([`--endpoints=${cl.endpoints()[0] ?? ''}`], 3, ['--cluster']);
  });
});

test('etcdctl endpoint status/hashkv/health over TLS (authority https://…)', async () => {
  const ca = makeCa();
  const server = ca.issue('server');
  const client = ca.issue('client', { cn: 'client' });
  const c = await startCairn({ tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.caFile, clientCertAuth: true } });
  try {
    const args = [`--endpoints=${c.clientUrl}`, ...etcdctlTlsArgs({ caFile: ca.caFile, certFile: client.certFile, keyFile: client.keyFile })];
    assert.match(c.clientUrl, /^https:/);
    await endpointChecks(args, 1);
    ok(await runEtcdctl([...args, 'put', 'tls', 'yes']), 'put over TLS');
  } finally {
    await c.stop();
  }
});

/** One gRPC call over TLS with an explicit (scheme-carrying) :authority; resolves to grpc-status and message. */
function callWithAuthority(url: string, authority: string, tlsFiles: { ca: string; cert: string; key: string }, path: string): Promise<{ status: string; message: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, { ca: readFileSync(tlsFiles.ca), cert: readFileSync(tlsFiles.cert), key: readFileSync(tlsFiles.key) });
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    let status = '';
    let message = '';
    const take = (h: http2.IncomingHttpHeaders): void => {
      if (typeof h['grpc-status'] === 'string') status = h['grpc-status'];
      if (typeof h['grpc-message'] === 'string') message = decodeURIComponent(h['grpc-message']);
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', () => undefined);
    req.on('error', reject);
    req.on('close', () => {
      session.close();
      resolve({ status, message });
    });
    req.end(Buffer.from([0, 0, 0, 0, 0])); // an empty message: HashKVRequest{}
  });
}

test('over TLS with auth on: a rewritten connection (authority https://…) keeps the client certificate\'s CN as the user', async () => {
  const ca = makeCa();
  const server = ca.issue('server');
  const root = ca.issue('root', { cn: 'root' });
  const alice = ca.issue('alice', { cn: 'alice' });
  const c = await startCairn({ tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.caFile, clientCertAuth: true } });
  try {
    const as = (who: { certFile: string; keyFile: string }): string[] => [`--endpoints=${c.clientUrl}`, ...etcdctlTlsArgs({ caFile: ca.caFile, certFile: who.certFile, keyFile: who.keyFile })];
    ok(await runEtcdctl([...as(root), 'user', 'add', 'root', '--no-password']), 'user add root');
    ok(await runEtcdctl([...as(root), 'user', 'grant-role', 'root', 'root']), 'grant root');
    ok(await runEtcdctl([...as(root), 'user', 'add', 'alice', '--no-password']), 'user add alice');
    ok(await runEtcdctl([...as(root), 'auth', 'enable']), 'auth enable');
    // etcdctl's own TLS dials send host:port; a client sending the scheme takes the rewritten path.
    const authority = c.clientUrl;
    const files = (who: { certFile: string; keyFile: string }): { ca: string; cert: string; key: string } => ({ ca: ca.caFile, cert: who.certFile, key: who.keyFile });
    assert.deepEqual(await callWithAuthority(c.clientUrl, authority, files(root), '/etcdserverpb.Maintenance/HashKV'), { status: '0', message: '' });
    const denied = await callWithAuthority(c.clientUrl, authority, files(alice), '/etcdserverpb.Maintenance/HashKV');
    assert.deepEqual(denied, { status: '7', message: 'etcdserver: permission denied' });
  } finally {
    await c.stop();
  }
});
