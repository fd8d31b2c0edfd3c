// Our generated codecs against an independent implementation (protobufjs reflection) on random
// messages of every type: protobufjs encodes, we decode and re-encode, and the bytes must be
// identical (canonical order), and protobufjs must read our bytes back to the same object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { REPO_ROOT } from '../harness/procs.js';
import * as etcd from '../../proto/gen/etcdserverpb.js';
import * as mvcc from '../../proto/gen/mvccpb.js';
import * as auth from '../../proto/gen/authpb.js';
import { Reader, Writer, ProtoDecodeError } from '../../proto/wire.js';

const protoDir = join(REPO_ROOT, 'proto', 'etcd');
const root = new protobuf.Root();
root.resolvePath = (_o: string, t: string): string => (t.startsWith('/') ? t : join(protoDir, t));
root.loadSync(['kv.proto', 'auth.proto', 'rpc.proto'].map((f) => join(protoDir, f)), { keepCase: true });
root.resolveAll();

type Codec = { encode: (m: never) => Buffer; decode: (b: Uint8Array) => unknown };
const modules: Record<string, Record<string, unknown>> = { etcdserverpb: etcd, mvccpb: mvcc, authpb: auth };

function codecFor(t: protobuf.Type): Codec {
  const pkg = t.fullName.split('.')[1] as string;
  const name = t.fullName.split('.').slice(2).join('_');
  const mod = modules[pkg];
  const encode = mod?.[`encode${name}`];
  const decode = mod?.[`decode${name}`];
  assert.ok(typeof encode === 'function' && typeof decode === 'function', `codec for ${t.fullName}`);
  return { encode: encode as Codec['encode'], decode: decode as Codec['decode'] };
}

const allTypes: protobuf.Type[] = [];
function collect(ns: protobuf.NamespaceBase): void {
  for (const n of ns.nestedArray) {
    if (n instanceof protobuf.Type) {
      allTypes.push(n);
      collect(n);
    } else if (n instanceof protobuf.Namespace) collect(n);
  }
}
collect(root);

type Rnd = () => number;
function prng(seed: number): Rnd {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function randomInt64(r: Rnd, unsigned: boolean): string {
  const pick = r();
  if (pick < 0.3) return String(Math.floor(r() * 300));
  if (pick < 0.6) return String(Math.floor(r() * 2 ** 53));
  const big = (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
  return String(unsigned ? big : BigInt.asIntN(64, big));
}

function isBigField(name: string): boolean {
  return /(^|_)(id|ID)$|ID$|^lease$|^leader$|^memberID$|^targetID$/.test(name);
}

function scalar(f: protobuf.Field, r: Rnd): unknown {
  if (f.resolvedType instanceof protobuf.Enum) {
    const vals = Object.values(f.resolvedType.values);
    return r() < 0.9 ? vals[Math.floor(r() * vals.length)] : Math.floor(r() * 50);
  }
  switch (f.type) {
    case 'bytes':
      return Buffer.from(Array.from({ length: Math.floor(r() * (r() < 0.1 ? 300 : 8)) }, () => Math.floor(r() * 256)));
    case 'string':
      return Array.from({ length: Math.floor(r() * 6) }, () => String.fromCodePoint(r() < 0.8 ? 97 + Math.floor(r() * 26) : 0x3b1 + Math.floor(r() * 20))).join('');
    case 'bool':
      return r() < 0.5;
    case 'int32':
      return Math.floor(r() * 2 ** 31) * (r() < 0.2 ? -1 : 1);
    case 'uint32':
      return Math.floor(r() * 2 ** 32);
    case 'int64':
    case 'uint64': {
      // Non-id 64-bit fields are numbers in our codecs: exact only within 2^53.
      if (!isBigField(f.name)) return String(Math.floor(r() * 2 ** 53) * (f.type === 'int64' && r() < 0.2 ? -1 : 1));
      return randomInt64(r, f.type === 'uint64');
    }
    default:
      throw new Error(`scalar ${f.type}`);
  }
}

function isDefault(v: unknown): boolean {
  return v === 0 || v === '0' || v === '' || v === false || (Buffer.isBuffer(v) && v.length === 0);
}

function randomObject(t: protobuf.Type, r: Rnd, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const oneofChoice = new Map<string, string>();
  for (const of of t.oneofsArray) {
    const opts = of.fieldsArray.map((f) => f.name);
    if (r() < 0.8) oneofChoice.set(of.name, opts[Math.floor(r() * opts.length)] as string);
  }
  for (const f of t.fieldsArray) {
    if (f.partOf !== null && oneofChoice.get(f.partOf.name) !== f.name) continue;
    if (f.partOf === null && r() < 0.3) continue;
    const nested = f.resolvedType instanceof protobuf.Type ? f.resolvedType : undefined;
    if (nested !== undefined && depth > 3) continue;
    const one = (): unknown => (nested !== undefined ? randomObject(nested, r, depth + 1) : scalar(f, r));
    const v = f.repeated ? Array.from({ length: Math.floor(r() * 4) }, one) : one();
    // proto3 writes no default scalar outside a oneof; protobufjs would write one it was handed.
    if (f.partOf === null && !f.repeated && nested === undefined && isDefault(v)) continue;
    o[f.name] = v;
  }
  return o;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, bytes: String, defaults: false, oneofs: false };

test('every generated codec agrees with protobufjs, byte for byte, on random messages', () => {
  assert.ok(allTypes.length > 100, `found ${allTypes.length} message types`);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), (seed) => {
      try {
        checkSeed(seed);
      } catch (err) {
        throw new Error(`seed ${seed}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }),
    { numRuns: 60 },
  );
});

function checkSeed(seed: number): void {
  {
    {
      const r = prng(seed);
      for (const t of allTypes) {
        const codec = codecFor(t);
        const ref = t.encode(t.fromObject(randomObject(t, r, 0))).finish();
        const ours = codec.decode(ref);
        const again = codec.encode(ours as never);
        assert.deepEqual(
          t.toObject(t.decode(again), TO_OBJECT),
          t.toObject(t.decode(ref), TO_OBJECT),
          `${t.fullName} (seed ${seed}): re-encoded message differs`,
        );
        assert.equal(Buffer.compare(Buffer.from(again), Buffer.from(ref)), 0, `${t.fullName} (seed ${seed}): bytes differ from protobufjs`);
      }
    }
  }
}

test('ids keep all 64 bits; revisions, negative numbers and packed enums decode exactly', () => {
  const h = etcd.decodeResponseHeader(etcd.encodeResponseHeader({ clusterId: 0xfedcba9876543210n, memberId: 1n, revision: 2 ** 53 - 1, raftTerm: 7 }));
  assert.equal(h.clusterId, 0xfedcba9876543210n);
  assert.equal(h.revision, 2 ** 53 - 1);
  const w = etcd.decodeWatchCreateRequest(etcd.encodeWatchCreateRequest({ key: Buffer.from('a'), startRevision: -5, filters: [0, 1], watchId: -1n }));
  assert.equal(w.startRevision, -5);
  assert.equal(w.watchId, -1n);
  assert.deepEqual(w.filters, [0, 1]);
  const c = etcd.decodeCompare(etcd.encodeCompare({ key: Buffer.from('k'), target: 2, modRevision: 0 }));
  assert.equal(c.modRevision, 0, 'a oneof member set to zero is present on the wire');
  assert.equal(c.version, undefined);
});

test('truncated or malformed input raises ProtoDecodeError, never a wrong message', () => {
  const good = etcd.encodeTxnRequest({ success: [{ requestPut: { key: Buffer.from('k'), value: Buffer.alloc(200, 1) } }] });
  for (let cut = 1; cut < good.length; cut++) {
    assert.throws(() => etcd.decodeTxnRequest(good.subarray(0, cut)), ProtoDecodeError, `cut at ${cut}`);
  }
  assert.throws(() => etcd.decodeRangeRequest(Buffer.from([0x00])), ProtoDecodeError);
  assert.throws(() => etcd.decodeRangeRequest(Buffer.from([0x0f, 0x00])), ProtoDecodeError);
  assert.throws(() => etcd.decodeRangeRequest(Buffer.from([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), ProtoDecodeError);
});

test('the writer grows and shifts long nested lengths correctly', () => {
  const w = new Writer(1);
  const mark = w.beginLength();
  for (let i = 0; i < 20000; i++) w.uint32(300);
  w.endLength(mark);
  const r = new Reader(w.finish());
  const end = r.nestedEnd();
  let n = 0;
  while (r.pos < end) {
    assert.equal(r.uint32(), 300);
    n++;
  }
  assert.equal(n, 20000);
});
