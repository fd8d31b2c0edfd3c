// JSON <-> protobuf for the gateway, with the conventions of etcd 3.4/3.5's grpc-gateway (v1,
// golang/protobuf jsonpb with OrigName): proto field names out; proto or lowerCamel names in;
// 64-bit integers as decimal strings (numbers or strings accepted in); bytes as standard base64;
// enums by name (numbers accepted in); zero values omitted; unknown input fields ignored; and Go's
// error texts for bad input. The schema is proto/etcd/*.proto, read at start with protobufjs.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { checkJson } from './json-scan.js';
import { goKind, parseJson, type JsonNode } from './json-tree.js';

/** A request body that cannot be decoded: the gateway answers InvalidArgument with this text. */
export class JsonDecodeError extends Error {
  override readonly name = 'JsonDecodeError';
}

const PROTO_FILES = ['kv.proto', 'auth.proto', 'rpc.proto', 'v3lock.proto', 'v3election.proto'];

/** proto/etcd from this file's place, in the source tree (server/api/http) or in dist/. */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of [['..', '..', '..'], ['..', '..', '..', '..']]) {
    const dir = join(here, ...up, 'proto', 'etcd');
    if (existsSync(join(dir, 'rpc.proto'))) return dir;
  }
  throw new Error(`gateway: cannot find proto/etcd above ${here}`);
}

// ---------- Go's base64 (StdEncoding: padded, CR/LF skipped, error offsets as Go reports them) ----------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(256).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

function illegalBase64(at: number): JsonDecodeError {
  return new JsonDecodeError(`illegal base64 data at input byte ${at}`);
}

/** Decodes as Go's base64.StdEncoding.DecodeString; throws with Go's "illegal base64 data" offset. */
export function goBase64Decode(text: string): Uint8Array {
  const src = Buffer.from(text, 'latin1');
  const out: number[] = [];
  let si = 0;
  for (;;) {
    const quantum: number[] = [];
    let j = 0;
    let padded = false;
    while (j < 4) {
      if (si === src.length) {
        if (j === 0) return Uint8Array.from(out);
        throw illegalBase64(si - j);
      }
      const c = src[si] ?? 0;
      si += 1;
      const v = B64_INDEX[c] ?? -1;
      if (v >= 0) {
        quantum.push(v);
        j += 1;
        continue;
      }
      if (c === 0x0a || c === 0x0d) continue;
      if (c !== 0x3d /* = */) throw illegalBase64(si - 1);
      // Padding: "xx==" or "xxx=", then nothing but newlines.
      if (j === 0 || j === 1) throw illegalBase64(si - 1);
      if (j === 2) {
        while (si < src.length && (src[si] === 0x0a || src[si] === 0x0d)) si += 1;
        if (si === src.length) throw illegalBase64(src.length);
        if (src[si] !== 0x3d) throw illegalBase64(si - 1);
        si += 1;
      }
      while (si < src.length && (src[si] === 0x0a || src[si] === 0x0d)) si += 1;
      if (si < src.length) throw illegalBase64(si);
      padded = true;
      break;
    }
    const [a = 0, b = 0, c = 0, d = 0] = quantum;
    const bits = (a << 18) | (b << 12) | (c << 6) | d;
    out.push((bits >> 16) & 0xff);
    if (j > 2) out.push((bits >> 8) & 0xff);
    if (j > 3) out.push(bits & 0xff);
    if (padded) return Uint8Array.from(out);
  }
}

// ---------- Go's JSON string encoding (encoding/json: HTML-safe, \u00XX controls) ----------

export function goJsonString(s: string): string {
  let out = '"';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c === 0x22) esc = '\\"';
    else if (c === 0x5c) esc = '\\\\';
    else if (c === 0x0a) esc = '\\n';
    else if (c === 0x0d) esc = '\\r';
    else if (c === 0x09) esc = '\\t';
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029) esc = `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const pair = c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      if (pair) {
        i += 1;
        continue;
      }
      esc = '\\ufffd';
    }
    if (esc === undefined) continue;
    out += s.slice(from, i) + esc;
    from = i + 1;
  }
  return out + s.slice(from) + '"';
}

// ---------- schema helpers ----------

type Field = protobuf.Field;
type LongLike = { toString(): string; isZero(): boolean };

/** protoc's json_name: underscores dropped, the next letter upper-cased. */
function jsonName(name: string): string {
  return name.replace(/_+([a-zA-Z0-9]?)/g, (_m, ch: string) => ch.toUpperCase());
}

/** The Go type name of an enum as jsonpb prints it: package.Outer_Inner. */
function goEnumName(e: protobuf.Enum): string {
  const nested: string[] = [e.name];
  let p = e.parent;
  while (p instanceof protobuf.Type) {
    nested.unshift(p.name);
    p = p.parent;
  }
  const pkg = p === null ? '' : p.fullName.replace(/^\./, '');
  return pkg === '' ? nested.join('_') : `${pkg}.${nested.join('_')}`;
}

const INT_BITS: Readonly<Record<string, { goType: string; signed: boolean; bits: 32 | 64 }>> = {
  int64: { goType: 'int64', signed: true, bits: 64 },
  sint64: { goType: 'int64', signed: true, bits: 64 },
  sfixed64: { goType: 'int64', signed: true, bits: 64 },
  uint64: { goType: 'uint64', signed: false, bits: 64 },
  fixed64: { goType: 'uint64', signed: false, bits: 64 },
  int32: { goType: 'int32', signed: true, bits: 32 },
  sint32: { goType: 'int32', signed: true, bits: 32 },
  sfixed32: { goType: 'int32', signed: true, bits: 32 },
  uint32: { goType: 'uint32', signed: false, bits: 32 },
  fixed32: { goType: 'uint32', signed: false, bits: 32 },
};

function unmarshalType(found: string, goType: string): JsonDecodeError {
  return new JsonDecodeError(`json: cannot unmarshal ${found} into Go value of type ${goType}`);
}

/** json.Unmarshal of a number literal into a Go integer type (strconv.ParseInt/ParseUint rules). */
function parseGoInt(raw: string, goType: string, signed: boolean, bits: 32 | 64): bigint {
  const ok = signed ? /^-?[0-9]+$/.test(raw) : /^[0-9]+$/.test(raw);
  if (ok) {
    const v = BigInt(raw);
    const min = signed ? -(1n << BigInt(bits - 1)) : 0n;
    const max = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
    if (v >= min && v <= max) return v;
  }
  throw unmarshalType(`number ${raw}`, goType);
}

// ---------- the codec ----------

export interface MethodTypes {
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
}

export class GatewayCodec {
  private readonly inputNames = new Map<protobuf.Type, Map<string, Field>>();

  private constructor(private readonly root: protobuf.Root) {}

  static load(dir: string = protoDir()): GatewayCodec {
    const root = new protobuf.Root();
    root.resolvePath = (_origin: string, target: string): string => (target.startsWith('/') ? target : join(dir, target));
    root.loadSync(PROTO_FILES.map((f) => join(dir, f)), { keepCase: true });
    root.resolveAll();
    return new GatewayCodec(root);
  }

  /** Request and response types of `/package.Service/Method`; undefined when the schema lacks it. */
  methodTypes(grpcPath: string): MethodTypes | undefined {
    const m = /^\/([^/]+)\/([^/]+)$/.exec(grpcPath);
    if (m === null) return undefined;
    const service = this.root.lookup(m[1] ?? '');
    if (!(service instanceof protobuf.Service)) return undefined;
    const method = service.methods[m[2] ?? ''];
    if (method === undefined) return undefined;
    method.resolve();
    const { resolvedRequestType: request, resolvedResponseType: response } = method;
    return request === null || response === null ? undefined : { request, response };
  }

  /** One JSON request text → protobuf bytes; throws JsonSyntaxError or JsonDecodeError with Go's text. */
  encodeRequest(type: protobuf.Type, text: Buffer): Uint8Array {
    const node = text.length === 0 ? ({ kind: 'null' } as const) : parseJson(text);
    const obj = this.objectFromJson(type, node);
    return type.encode(type.fromObject(obj)).finish();
  }

  /** Protobuf bytes → the JSON text jsonpb (OrigName, no defaults) writes. */
  responseJson(type: protobuf.Type, bytes: Uint8Array): string {
    return this.messageJson(type, type.decode(bytes));
  }

  // ----- JSON → object for protobufjs fromObject -----

  private fieldsByInputName(type: protobuf.Type): Map<string, Field> {
    let names = this.inputNames.get(type);
    if (names === undefined) {
      names = new Map();
      for (const f of type.fieldsArray) {
        names.set(jsonName(f.name), f);
        names.set(f.name, f); // the proto name wins when both spellings collide
      }
      this.inputNames.set(type, names);
    }
    return names;
  }

  private objectFromJson(type: protobuf.Type, node: JsonNode): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (node.kind === 'null') return out;
    if (node.kind !== 'object') throw unmarshalType(goKind(node), 'map[string]json.RawMessage');
    const names = this.fieldsByInputName(type);
    for (const [key, value] of node.entries) {
      const field = names.get(key);
      if (field === undefined || value.kind === 'null') continue; // unknown fields are ignored, null is unset
      field.resolve();
      if (field.repeated) {
        if (value.kind !== 'array') throw unmarshalType(goKind(value), '[]json.RawMessage');
        out[field.name] = value.items.map((item) => this.valueFromJson(field, item));
      } else {
        out[field.name] = this.valueFromJson(field, value);
      }
    }
    return out;
  }

  private valueFromJson(field: Field, node: JsonNode): unknown {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) return this.objectFromJson(rt, node);
    if (rt instanceof protobuf.Enum) return enumFromJson(rt, node);
    const int = INT_BITS[field.type];
    if (int !== undefined) return intFromJson(node, int.goType, int.signed, int.bits);
    switch (field.type) {
      case 'bool':
        if (node.kind !== 'bool') throw unmarshalType(goKind(node), 'bool');
        return node.value;
      case 'string':
        if (node.kind !== 'string') throw unmarshalType(goKind(node), 'string');
        return node.value;
      case 'bytes':
        if (node.kind !== 'string') throw unmarshalType(goKind(node), '[]uint8');
        return goBase64Decode(node.value);
      default:
        if (node.kind !== 'number') throw unmarshalType(goKind(node), field.type === 'float' ? 'float32' : 'float64');
        return Number(node.raw);
    }
  }

  // ----- message → JSON text -----

  private messageJson(type: protobuf.Type, msg: protobuf.Message): string {
    const record = msg as unknown as Record<string, unknown>;
    const parts: string[] = [];
    for (const field of type.fieldsArray) {
      field.resolve();
      const v = record[field.name];
      const inOneof = field.partOf !== null && Object.prototype.hasOwnProperty.call(record, field.name);
      const text = field.repeated ? this.repeatedJson(field, v) : this.singleJson(field, v, inOneof);
      if (text !== undefined) parts.push(`${goJsonString(field.name)}:${text}`);
    }
    return `{${parts.join(',')}}`;
  }

  private repeatedJson(field: Field, v: unknown): string | undefined {
    if (!Array.isArray(v) || v.length === 0) return undefined;
    return `[${v.map((item: unknown) => this.singleJson(field, item, true) ?? 'null').join(',')}]`;
  }

  /** One value's JSON, or undefined for a zero value that jsonpb omits (unless `keepZero`). */
  private singleJson(field: Field, v: unknown, keepZero: boolean): string | undefined {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) return v === null || v === undefined ? undefined : this.messageJson(rt, v as protobuf.Message);
    if (v === null || v === undefined) return undefined;
    if (rt instanceof protobuf.Enum) {
      const n = Number(v);
      if (n === 0 && !keepZero) return undefined;
      const name = rt.valuesById[n];
      return name === undefined ? String(n) : goJsonString(name);
    }
    if (typeof v === 'object' && 'isZero' in v) {
      const long = v as LongLike;
      if (long.isZero() && !keepZero) return undefined;
      return goJsonString(long.toString());
    }
    if (typeof v === 'number') {
      if (v === 0 && !keepZero) return undefined;
      const int = INT_BITS[field.type];
      return int !== undefined && int.bits === 64 ? goJsonString(String(v)) : String(v);
    }
    if (typeof v === 'boolean') return v || keepZero ? String(v) : undefined;
    if (typeof v === 'string') return v === '' && !keepZero ? undefined : goJsonString(v);
    if (v instanceof Uint8Array) return v.length === 0 && !keepZero ? undefined : goJsonString(Buffer.from(v.buffer, v.byteOffset, v.length).toString('base64'));
    return undefined;
  }
}

function enumFromJson(e: protobuf.Enum, node: JsonNode): number {
  const goType = goEnumName(e);
  if (node.kind === 'string') {
    const n = e.values[node.value];
    if (n === undefined) throw new JsonDecodeError(`unknown value ${goJsonString(node.value)} for enum ${goType}`);
    return n;
  }
  if (node.kind !== 'number') throw unmarshalType(goKind(node), goType);
  return Number(parseGoInt(node.raw, goType, true, 32));
}

/** jsonpb's integer rule: a quoted value is unquoted (raw, unescaped) and read as JSON again. */
function intFromJson(node: JsonNode, goType: string, signed: boolean, bits: 32 | 64): string | number {
  let n = node;
  if (node.kind === 'string') {
    const raw = Buffer.from(node.raw, 'utf8');
    checkJson(raw);
    n = parseJson(raw);
  }
  if (n.kind !== 'number') throw unmarshalType(goKind(n), goType);
  const v = parseGoInt(n.raw, goType, signed, bits);
  return bits === 64 ? v.toString() : Number(v);
}
