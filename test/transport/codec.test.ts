// The message codec and the connection framing, without sockets: round trips, every way of
// chunking the byte stream (DESIGN.md style 14), and malformed input.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { AssertionFailure } from '../../server/base/index.js';
import type { Message } from '../../server/raft/types.js';
import { decodeMessage, encodeMessage } from '../../server/transport/codec.js';
import { PeerProtocolError } from '../../server/transport/errors.js';
import {
  type Frame,
  FrameDecoder,
  HELLO_BYTES,
  decodeHello,
  encodeFrame,
  encodeHello,
  frameTypes,
  purposes,
} from '../../server/transport/frame.js';
import { checkHello } from '../../server/transport/inbound.js';
import { appMsg, arbMessage, checkProperty } from './fixtures.js';

test('codec: every message round-trips exactly', () => {
  checkProperty(
    'message round trip',
    fc.property(arbMessage, (m) => {
      const bytes = encodeMessage(m);
      assert.deepStrictEqual(decodeMessage(bytes), m);
    }),
    500,
  );
});

test('codec: a cut or extended encoding is refused', () => {
  checkProperty(
    'truncation',
    fc.property(arbMessage, fc.nat(), (m, cut) => {
      const bytes = encodeMessage(m);
      const at = cut % bytes.length;
      assert.throws(() => decodeMessage(bytes.subarray(0, at)), PeerProtocolError);
      assert.throws(() => decodeMessage(Buffer.concat([bytes, Buffer.from([0])])), PeerProtocolError);
    }),
  );
});

test('codec: local-only types are never encoded; bad codes and numbers past 2^53 are refused', () => {
  const m = appMsg(1n, 2n, 7);
  assert.throws(() => encodeMessage({ ...m, type: 'hup' }), AssertionFailure);
  assert.throws(() => encodeMessage({ ...m, term: -1 }), AssertionFailure);
  assert.throws(() => encodeMessage({ ...m, index: 2 ** 53 }), AssertionFailure);
  const good = encodeMessage(m);
  const badType = Buffer.from(good);
  badType[0] = 0;
  assert.throws(() => decodeMessage(badType), /unknown message type code 0/);
  badType[0] = 99;
  assert.throws(() => decodeMessage(badType), /unknown message type code 99/);
  const badFlags = Buffer.from(good);
  badFlags[1] = 0x80;
  assert.throws(() => decodeMessage(badFlags), /unknown message flags/);
  const bigTerm = Buffer.from(good);
  bigTerm.writeUInt32BE(0x0020_0000, 18); // term's high word: 2^53
  assert.throws(() => decodeMessage(bigTerm), /beyond 2\^53/);
  const badEntryType = Buffer.from(good);
  // fixed header 62 bytes (incl. the context length) + context (0) + entry count (4) + entry index (8) + term (8)
  badEntryType[62 + 4 + 16] = 7;
  assert.throws(() => decodeMessage(badEntryType), /unknown entry type code 7/);
  const hugeCount = Buffer.from(good);
  hugeCount.writeUInt32BE(0xffff_ffff, 62);
  assert.throws(() => decodeMessage(hugeCount), /count exceeds message/);
});

// ---------- framing ----------

const arbFrame: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...Object.values(frameTypes).filter((t) => t !== frameTypes.hello)),
  payload: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
});

const arbHello = fc.record({
  version: fc.nat(0xffff),
  purpose: fc.nat(0xff),
  clusterId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  from: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  to: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
}).map((h) => ({ ...h }));

/** Feeds `bytes` to the decoder in chunks of the given sizes (cycled; 0 sizes count as 1). */
function decodeInChunks(d: FrameDecoder, bytes: Buffer, sizes: readonly number[]): Frame[] {
  const out: Frame[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length] ?? 1);
    // copy each chunk so that the decoder cannot rely on the chunks being views of one buffer
    out.push(...d.push(Buffer.from(bytes.subarray(at, at + n))));
    at += n;
  }
  return out;
}

const plain = (frames: readonly Frame[]): { type: number; payload: string }[] => frames.map((f) => ({ type: f.type, payload: f.payload.toString('hex') }));

test('framing: a hello then frames decode the same in any chunking, one byte at a time included', () => {
  checkProperty(
    'frame chunking',
    fc.property(arbHello, fc.array(arbFrame, { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 10 }), (h, frames, sizes) => {
      const bytes = Buffer.concat([encodeHello(h), ...frames.map((f) => encodeFrame(f.type, f.payload))]);
      for (const split of [sizes, [1], [bytes.length]]) {
        const d = new FrameDecoder(true);
        const got = decodeInChunks(d, bytes, split);
        assert.equal(d.failure, undefined);
        assert.equal(d.buffered, 0);
        const [hello, ...rest] = got;
        assert.equal(hello?.type, frameTypes.hello);
        assert.deepStrictEqual(decodeHello(hello?.payload ?? Buffer.alloc(0)), h);
        assert.deepStrictEqual(plain(rest), plain(frames));
      }
    }),
  );
});

test('framing: a stream of message frames decodes to the same messages in random splits', () => {
  checkProperty(
    'message stream chunking',
    fc.property(fc.array(arbMessage, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }), (msgs, sizes) => {
      const bytes = Buffer.concat(msgs.map((m) => encodeFrame(frameTypes.msg, encodeMessage(m))));
      const got: Message[] = decodeInChunks(new FrameDecoder(false), bytes, sizes).map((f) => decodeMessage(f.payload));
      assert.deepStrictEqual(got, msgs);
    }),
    100,
  );
});

test('framing: malformed input stops the decoder with a reason, after the good frames', () => {
  // bad magic is seen at the first wrong byte
  const junk = new FrameDecoder(true);
  assert.deepEqual(junk.push(Buffer.from('G')), []);
  assert.equal(junk.failure, 'bad magic');
  assert.deepEqual(junk.push(encodeHello({ version: 1, purpose: 1, clusterId: 1n, from: 1n, to: 2n })), [], 'nothing after a failure');

  // an oversized length is refused from the header alone, without waiting for the bytes
  const big = new FrameDecoder(false, 1024);
  const good = encodeFrame(frameTypes.ping, Buffer.alloc(8));
  const header = Buffer.alloc(5);
  header.writeUInt32BE(1025, 0);
  header.writeUInt8(frameTypes.msg, 4);
  const got = big.push(Buffer.concat([good, header]));
  assert.equal(got.length, 1, 'the frame before the fault is still delivered');
  assert.match(big.failure ?? '', /exceeds the limit of 1024/);

  const unknown = new FrameDecoder(false);
  const bad = encodeFrame(frameTypes.ping, Buffer.alloc(8));
  bad.writeUInt8(200, 4);
  for (const b of bad) unknown.push(Buffer.from([b]));
  assert.equal(unknown.failure, 'unknown frame type 200');

  const helloInStream = new FrameDecoder(false);
  helloInStream.push(encodeFrame(frameTypes.hello));
  assert.equal(helloInStream.failure, 'unknown frame type 0');

  const reserved = new FrameDecoder(true);
  const h = encodeHello({ version: 1, purpose: 1, clusterId: 1n, from: 1n, to: 2n });
  h[11] = 1;
  reserved.push(h);
  assert.match(reserved.failure ?? '', /reserved/);
  assert.equal(HELLO_BYTES, 36);
});

test('hello: accepted and refused as specified', () => {
  const removed = new Set([9n]);
  const isRemoved = (id: bigint): boolean => removed.has(id);
  const hello = { version: 1, purpose: purposes.stream, clusterId: 0xabcn, from: 5n, to: 2n };
  assert.deepEqual(checkHello(hello, 2n, 0xabcn, isRemoved), { ok: true, purpose: 'stream', anonymous: false });
  assert.deepEqual(checkHello({ ...hello, from: 77n }, 2n, 0xabcn, isRemoved), { ok: true, purpose: 'stream', anonymous: false }, 'unknown senders are accepted');
  const mismatch = checkHello({ ...hello, clusterId: 0xdefn }, 2n, 0xabcn, isRemoved);
  assert.deepEqual(mismatch, { ok: false, code: 'clusterMismatch', text: 'cluster ID mismatch (local=abc, remote=def)' });
  assert.equal(checkHello({ ...hello, to: 3n }, 2n, 0xabcn, isRemoved).ok, false);
  assert.deepEqual(
    (({ ok, ...r }) => ({ ok, code: 'code' in r ? r.code : '' }))(checkHello({ ...hello, to: 3n }, 2n, 0xabcn, isRemoved)),
    { ok: false, code: 'memberMismatch' },
  );
  const rem = checkHello({ ...hello, from: 9n }, 2n, 0xabcn, isRemoved);
  assert.ok(!rem.ok && rem.code === 'removed' && rem.text.startsWith('removed'));
  // A removed sender dialling a URL that now belongs to another member hears 'removed', not a mismatch.
  const remElsewhere = checkHello({ ...hello, from: 9n, to: 3n }, 2n, 0xabcn, isRemoved);
  assert.ok(!remElsewhere.ok && remElsewhere.code === 'removed', JSON.stringify(remElsewhere));
  const v = checkHello({ ...hello, version: 2 }, 2n, 0xabcn, isRemoved);
  assert.ok(!v.ok && v.code === 'version');
  const p = checkHello({ ...hello, purpose: 9 }, 2n, 0xabcn, isRemoved);
  assert.ok(!p.ok && p.code === 'badHello');
  // anonymous: only request connections with to = 0 and cluster 0 (or ours)
  const anon = { version: 1, purpose: purposes.request, clusterId: 0n, from: 0n, to: 0n };
  assert.deepEqual(checkHello(anon, 2n, 0xabcn, isRemoved), { ok: true, purpose: 'request', anonymous: true });
  assert.deepEqual(checkHello({ ...anon, clusterId: 0xabcn }, 2n, 0xabcn, isRemoved), { ok: true, purpose: 'request', anonymous: true });
  assert.equal(checkHello({ ...anon, clusterId: 0x1n }, 2n, 0xabcn, isRemoved).ok, false);
  assert.equal(checkHello({ ...anon, purpose: purposes.stream }, 2n, 0xabcn, isRemoved).ok, false);
  // a member that does not know its cluster yet refuses every non-anonymous hello
  assert.equal(checkHello(hello, 2n, 0n, isRemoved).ok, false);
});
