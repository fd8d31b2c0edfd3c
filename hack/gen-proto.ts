// Generates static TypeScript codecs for proto/etcd/*.proto and proto/cairn/*.proto into proto/gen/<package>.ts.
// Run with `npm run gen:proto`. protobufjs is used only to parse the .proto files; the emitted
// code depends on nothing but proto/wire.ts.
//
// Types: bytes -> Buffer (decode) / Uint8Array (encode); string; bool; int32/uint32/enums -> number;
// 64-bit integers -> number, except ids (see isIdField) which are bigint so that random 64-bit
// member, cluster, lease and watch ids survive exactly.
import protobuf from 'protobufjs';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const protoDir = join(repo, 'proto', 'etcd');
const outDir = join(repo, 'proto', 'gen');
const PACKAGES = ['mvccpb', 'authpb', 'etcdserverpb', 'v3lockpb', 'v3electionpb', 'cairnpb'] as const;

const root = new protobuf.Root();
root.resolvePath = (_origin: string, target: string): string => (target.startsWith('/') ? target : join(protoDir, target));
root.loadSync([...['kv.proto', 'auth.proto', 'rpc.proto', 'v3lock.proto', 'v3election.proto'].map((f) => join(protoDir, f)), join(repo, 'proto', 'cairn', 'internal.proto'), join(repo, 'proto', 'cairn', 'peer.proto')], { keepCase: true });
root.resolveAll();

function isIdField(name: string): boolean {
  return /(^|_)(id|ID)$|ID$|^lease$|^leader$|^memberID$|^targetID$/.test(name);
}

function camel(name: string): string {
  return name.replace(/_([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** TS name of a type: nested types joined with '_', e.g. Event_EventType. */
function tsName(t: protobuf.ReflectionObject): string {
  const parts: string[] = [];
  let cur: protobuf.ReflectionObject | null = t;
  while (cur !== null && !(cur instanceof protobuf.Namespace && !(cur instanceof protobuf.Type))) {
    parts.unshift(cur.name);
    cur = cur.parent;
  }
  return parts.join('_');
}

function pkgOf(t: protobuf.ReflectionObject): string {
  let cur: protobuf.ReflectionObject | null = t;
  while (cur !== null) {
    if (cur instanceof protobuf.Namespace && !(cur instanceof protobuf.Type) && PACKAGES.includes(cur.name as never)) return cur.name;
    cur = cur.parent;
  }
  throw new Error(`no package for ${t.fullName}`);
}

interface Scalar {
  ts: string;
  wire: number;
  write: string;
  read: string;
  zero: string;
  isZero: (v: string) => string;
}

function scalarOf(f: protobuf.Field): Scalar {
  const big = isIdField(f.name);
  switch (f.type) {
    case 'bytes':
      return { ts: 'Buffer', wire: 2, write: 'bytes', read: 'bytes', zero: 'EMPTY_BYTES', isZero: (v) => `${v}.length === 0` };
    case 'string':
      return { ts: 'string', wire: 2, write: 'string', read: 'string', zero: "''", isZero: (v) => `${v} === ''` };
    case 'bool':
      return { ts: 'boolean', wire: 0, write: 'bool', read: 'bool', zero: 'false', isZero: (v) => `!${v}` };
    case 'int32':
      return { ts: 'number', wire: 0, write: 'int32', read: 'int32', zero: '0', isZero: (v) => `${v} === 0` };
    case 'uint32':
      return { ts: 'number', wire: 0, write: 'uint32', read: 'uint32', zero: '0', isZero: (v) => `${v} === 0` };
    case 'int64':
      return big
        ? { ts: 'bigint', wire: 0, write: 'bigint64', read: 'bigint64', zero: '0n', isZero: (v) => `${v} === 0n` }
        : { ts: 'number', wire: 0, write: 'int64', read: 'int64', zero: '0', isZero: (v) => `${v} === 0` };
    case 'uint64':
      return big
        ? { ts: 'bigint', wire: 0, write: 'bigint64', read: 'biguint64', zero: '0n', isZero: (v) => `${v} === 0n` }
        : { ts: 'number', wire: 0, write: 'int64', read: 'uint64', zero: '0', isZero: (v) => `${v} === 0` };
    default:
      throw new Error(`unsupported scalar ${f.type} in ${f.fullName}`);
  }
}

const ENUM_SCALAR: Scalar = { ts: 'number', wire: 0, write: 'int32', read: 'int32', zero: '0', isZero: (v) => `${v} === 0` };

function collect(ns: protobuf.NamespaceBase, types: protobuf.Type[], enums: protobuf.Enum[], services: protobuf.Service[]): void {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) {
      types.push(nested);
      collect(nested, types, enums, services);
    } else if (nested instanceof protobuf.Enum) enums.push(nested);
    else if (nested instanceof protobuf.Service) services.push(nested);
  }
}

function refName(t: protobuf.ReflectionObject, pkg: string, imports: Map<string, Set<string>>, name: string): string {
  const p = pkgOf(t);
  if (p !== pkg) {
    const set = imports.get(p) ?? new Set<string>();
    set.add(name);
    imports.set(p, set);
  }
  return name;
}

function genEnum(e: protobuf.Enum): string {
  const name = tsName(e);
  const body = Object.entries(e.values)
    .map(([k, v]) => `  ${k}: ${v},`)
    .join('\n');
  return `export const ${name} = {\n${body}\n} as const;\nexport type ${name} = number;\n`;
}

/** For a oneof member: statements clearing its siblings (protobuf: the last member on the wire wins). */
function clearSiblings(f: protobuf.Field): string {
  if (f.partOf === null) return '';
  return f.partOf.fieldsArray
    .filter((o) => o !== f)
    .map((o) => ` m.${camel(o.name)} = undefined;`)
    .join('');
}

function genType(t: protobuf.Type, pkg: string, imports: Map<string, Set<string>>): string {
  const name = tsName(t);
  const decl: string[] = [];
  const init: string[] = [];
  const defaults: string[] = [];
  const writes: string[] = [];
  const reads: string[] = [];
  for (const f of t.fieldsArray) {
    const prop = camel(f.name);
    const resolved = f.resolvedType;
    const inOneof = f.partOf !== null;
    if (resolved instanceof protobuf.Type) {
      const rn = tsName(resolved);
      const tn = refName(resolved, pkg, imports, rn);
      refName(resolved, pkg, imports, `${rn}Init`);
      refName(resolved, pkg, imports, `write${rn}`);
      refName(resolved, pkg, imports, `read${rn}`);
      const tag = (f.id << 3) | 2;
      if (f.repeated) {
        decl.push(`  ${prop}: ${tn}[];`);
        init.push(`  ${prop}?: readonly ${tn}Init[] | undefined;`);
        defaults.push(`${prop}: []`);
        writes.push(
          `  if (m.${prop} !== undefined) for (const x of m.${prop}) { w.uint32(${tag}); const k = w.beginLength(); write${rn}(w, x); w.endLength(k); }`,
        );
        reads.push(`      case ${f.id}: if (wt !== 2) { r.skip(wt); break; } m.${prop}.push(read${rn}(r, r.nestedEnd())); break;`);
      } else {
        decl.push(`  ${prop}?: ${tn} | undefined;`);
        init.push(`  ${prop}?: ${tn}Init | undefined;`);
        defaults.push(`${prop}: undefined`);
        writes.push(`  if (m.${prop} !== undefined) { w.uint32(${tag}); const k = w.beginLength(); write${rn}(w, m.${prop}); w.endLength(k); }`);
        reads.push(`      case ${f.id}: if (wt !== 2) { r.skip(wt); break; } m.${prop} = read${rn}(r, r.nestedEnd());${clearSiblings(f)} break;`);
      }
      continue;
    }
    const s = resolved instanceof protobuf.Enum ? ENUM_SCALAR : scalarOf(f);
    const tsType = s.ts;
    const initType = s.ts === 'Buffer' ? 'Uint8Array' : s.ts;
    const tag = (f.id << 3) | s.wire;
    if (f.repeated) {
      decl.push(`  ${prop}: ${tsType}[];`);
      init.push(`  ${prop}?: readonly ${initType}[] | undefined;`);
      defaults.push(`${prop}: []`);
      if (s.wire === 0) {
        const ptag = (f.id << 3) | 2;
        writes.push(
          `  if (m.${prop} !== undefined && m.${prop}.length !== 0) { w.uint32(${ptag}); const k = w.beginLength(); for (const x of m.${prop}) w.${s.write}(x); w.endLength(k); }`,
        );
        reads.push(
          `      case ${f.id}: if (wt === 2) { const e = r.nestedEnd(); while (r.pos < e) m.${prop}.push(r.${s.read}()); if (r.pos !== e) throw new ProtoDecodeError('proto: packed field overruns its length'); } else if (wt === 0) m.${prop}.push(r.${s.read}()); else r.skip(wt); break;`,
        );
      } else {
        writes.push(`  if (m.${prop} !== undefined) for (const x of m.${prop}) { w.uint32(${tag}); w.${s.write}(x); }`);
        reads.push(`      case ${f.id}: if (wt !== ${s.wire}) { r.skip(wt); break; } m.${prop}.push(r.${s.read}()); break;`);
      }
      continue;
    }
    if (inOneof) {
      decl.push(`  ${prop}?: ${tsType} | undefined;`);
      init.push(`  ${prop}?: ${initType} | undefined;`);
      defaults.push(`${prop}: undefined`);
      writes.push(`  if (m.${prop} !== undefined) { w.uint32(${tag}); w.${s.write}(m.${prop}); }`);
    } else {
      decl.push(`  ${prop}: ${tsType};`);
      init.push(`  ${prop}?: ${initType} | undefined;`);
      defaults.push(`${prop}: ${s.zero}`);
      writes.push(`  if (m.${prop} !== undefined && !(${s.isZero(`m.${prop}`)})) { w.uint32(${tag}); w.${s.write}(m.${prop}); }`);
    }
    reads.push(`      case ${f.id}: if (wt !== ${s.wire}) { r.skip(wt); break; } m.${prop} = r.${s.read}();${clearSiblings(f)} break;`);
  }
  const oneofs = t.oneofsArray.map((o) => `// oneof ${o.name}: ${o.fieldsArray.map((f) => camel(f.name)).join(' | ')}`);
  const hasFields = t.fieldsArray.length > 0;
  return `${oneofs.join('\n')}${oneofs.length ? '\n' : ''}export interface ${name} {
${decl.join('\n')}
}

export interface ${name}Init {
${init.join('\n')}
}

export function write${name}(${hasFields ? 'w' : '_w'}: Writer, ${hasFields ? 'm' : '_m'}: ${name}Init): void {
${writes.join('\n')}
}

export function encode${name}(m: ${name}Init): Buffer {
  const w = new Writer();
  write${name}(w, m);
  return w.finish();
}

export function read${name}(r: Reader, end: number): ${name} {
  const m: ${name} = { ${defaults.join(', ')} };
  while (r.pos < end) {
    const tag = r.uint32();
    const wt = tag & 7;
    switch (tag >>> 3) {
${reads.join('\n')}
      case 0: throw new ProtoDecodeError('proto: illegal field number 0 in ${t.fullName.slice(1)}');
      default: r.skip(wt);
    }
  }
  if (r.pos !== end) throw new ProtoDecodeError('proto: ${t.fullName.slice(1)} overruns its length');
  return m;
}

export function decode${name}(b: Uint8Array): ${name} {
  return read${name}(new Reader(b), b.length);
}
`;
}

function genService(s: protobuf.Service, pkg: string, imports: Map<string, Set<string>>): string {
  const lines = s.methodsArray.map((m) => {
    const req = m.resolvedRequestType;
    const res = m.resolvedResponseType;
    if (req === null || res === null) throw new Error(`unresolved method ${m.fullName}`);
    const rq = tsName(req);
    const rs = tsName(res);
    for (const n of [rq, `${rq}Init`, `encode${rq}`, `decode${rq}`]) refName(req, pkg, imports, n);
    for (const n of [rs, `${rs}Init`, `encode${rs}`, `decode${rs}`]) refName(res, pkg, imports, n);
    return `  ${m.name}: {
    name: '${m.name}',
    path: '/${pkg}.${s.name}/${m.name}',
    requestStream: ${m.requestStream === true},
    responseStream: ${m.responseStream === true},
    encodeRequest: encode${rq},
    decodeRequest: decode${rq},
    encodeResponse: encode${rs},
    decodeResponse: decode${rs},
  } satisfies MethodDescriptor<${rq}, ${rs}, ${rq}Init, ${rs}Init>,`;
  });
  return `export const ${s.name}Service = {\n${lines.join('\n')}\n} as const;\n`;
}

function genPackage(pkg: string): string {
  const ns = root.lookup(pkg);
  if (!(ns instanceof protobuf.Namespace)) throw new Error(`package ${pkg} not found`);
  const types: protobuf.Type[] = [];
  const enums: protobuf.Enum[] = [];
  const services: protobuf.Service[] = [];
  collect(ns, types, enums, services);
  const imports = new Map<string, Set<string>>();
  const body = [...enums.map(genEnum), ...types.map((t) => genType(t, pkg, imports)), ...services.map((s) => genService(s, pkg, imports))];
  const importLines = [...imports.entries()].map(([p, names]) => {
    const sorted = [...names].sort();
    const typeOnly = sorted.filter((n) => !/^(write|read|encode|decode)/.test(n));
    const values = sorted.filter((n) => /^(write|read|encode|decode)/.test(n));
    const parts: string[] = [];
    if (typeOnly.length) parts.push(`import type { ${typeOnly.join(', ')} } from './${p}.js';`);
    if (values.length) parts.push(`import { ${values.join(', ')} } from './${p}.js';`);
    return parts.join('\n');
  });
  const usesMethod = services.length > 0;
  return `// Code generated by hack/gen-proto.ts from proto/etcd/*.proto. DO NOT EDIT.
/* eslint-disable */
import { Writer, Reader, ProtoDecodeError, EMPTY_BYTES${usesMethod ? ', type MethodDescriptor' : ''} } from '../wire.js';
${importLines.join('\n')}

void EMPTY_BYTES;
void ProtoDecodeError;

${body.join('\n')}`;
}

mkdirSync(outDir, { recursive: true });
for (const pkg of PACKAGES) {
  const file = join(outDir, `${pkg}.ts`);
  writeFileSync(file, genPackage(pkg));
  console.log(`wrote ${file}`);
}
