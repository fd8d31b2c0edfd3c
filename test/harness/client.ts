// A small promise-based gRPC client for the etcd v3 API, built from our protos with
// @grpc/proto-loader. Every call settles to a CallResult (never throws for a gRPC error),
// so tests can compare failures (code + exact message) as data.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { MethodDefinition, PackageDefinition, ServiceDefinition } from '@grpc/proto-loader';
import { join } from 'node:path';
import { REPO_ROOT } from './procs.js';

export type CallResult<T> = { ok: true; value: T } | { ok: false; code: number; details: string };

/** A decoded message: proto-loader options keepCase, longs String, enums String, bytes Buffer, defaults, oneofs. */
export type Msg = Record<string, unknown>;

export const PROTO_DIR = join(REPO_ROOT, 'proto', 'etcd');
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cachedDef: PackageDefinition | undefined;

/** The package definition of rpc.proto (and the kv/auth protos it imports) and the lock and election protos, loaded once. */
export function packageDefinition(): PackageDefinition {
  cachedDef ??= protoLoader.loadSync(['rpc.proto', 'v3lock.proto', 'v3election.proto'], LOADER_OPTIONS);
  return cachedDef;
}

function isServiceDefinition(d: unknown): d is ServiceDefinition {
  // Message and enum definitions carry `format`; service definitions are maps of methods.
  return typeof d === 'object' && d !== null && !('format' in d);
}

/** The method definition of e.g. ("KV", "Range") or ("etcdserverpb.KV", "Range"). */
export function methodDefinition(service: string, method: string): MethodDefinition<object, object> {
  const full = service.includes('.') ? service : `etcdserverpb.${service}`;
  const svc = packageDefinition()[full];
  if (!isServiceDefinition(svc)) throw new Error(`unknown service ${full}`);
  const m = svc[method];
  if (m === undefined) throw new Error(`unknown method ${full}/${method}`);
  return m;
}

/** Serializes a request object for service/method (proto-loader's fromObject + encode). */
export function encodeRequest(service: string, method: string, request: object): Buffer {
  return methodDefinition(service, method).requestSerialize(request);
}

/** Decodes response bytes of service/method with LOADER_OPTIONS. */
export function decodeResponse(service: string, method: string, bytes: Buffer): Msg {
  return methodDefinition(service, method).responseDeserialize(bytes) as Msg;
}

export interface CallOpts {
  /** Per-call deadline; default 10 s. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const identity = (b: Buffer): Buffer => b;

function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

export class EtcdClient {
  readonly endpoint: string;
  private readonly client: grpc.Client;

  /** The underlying channel (for streams). */
  get channel(): grpc.Client {
    return this.client;
  }

  constructor(endpoint: string) {
    this.endpoint = endpoint;
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
  }

  close(): void {
    this.client.close();
  }

  /** Waits until the channel is connected (or the deadline passes). */
  waitReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((res, rej) => {
      this.client.waitForReady(Date.now() + timeoutMs, (err) => (err === undefined || err === null ? res() : rej(err)));
    });
  }

  private call<Req, Res>(
    path: string,
    serialize: (r: Req) => Buffer,
    deserialize: (b: Buffer) => Res,
    request: Req,
    opts: CallOpts,
  ): Promise<CallResult<Res>> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    const options: grpc.CallOptions = { deadline: Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) };
    return new Promise((res) => {
      this.client.makeUnaryRequest(path, serialize, deserialize, request, md, options, (err, value) => {
        if (err !== null && err !== undefined) {
          if (isServiceError(err)) res({ ok: false, code: err.code, details: err.details });
          else res({ ok: false, code: grpc.status.UNKNOWN, details: String(err) });
          return;
        }
        if (value === undefined) {
          res({ ok: false, code: grpc.status.INTERNAL, details: 'no response message' });
          return;
        }
        res({ ok: true, value });
      });
    });
  }

  /** Generic unary call by service ("KV" or "etcdserverpb.KV") and method name. */
  unary(service: string, method: string, request: object, opts: CallOpts = {}): Promise<CallResult<Msg>> {
    const def = methodDefinition(service, method);
    const deserialize = (b: Buffer): Msg => def.responseDeserialize(b) as Msg;
    return this.call(def.path, def.requestSerialize, deserialize, request, opts);
  }

  /** Unary call with raw request bytes; the response comes back undecoded. */
  unaryRaw(service: string, method: string, request: Buffer, opts: CallOpts = {}): Promise<CallResult<Buffer>> {
    const full = service.includes('.') ? service : `etcdserverpb.${service}`;
    return this.call(`/${full}/${method}`, identity, identity, request, opts);
  }

  range(req: object, opts: CallOpts = {}): Promise<CallResult<Msg>> {
    return this.unary('KV', 'Range', req, opts);
  }
  put(req: object, opts: CallOpts = {}): Promise<CallResult<Msg>> {
    return this.unary('KV', 'Put', req, opts);
  }
  deleteRange(req: object, opts: CallOpts = {}): Promise<CallResult<Msg>> {
    return this.unary('KV', 'DeleteRange', req, opts);
  }
  txn(req: object, opts: CallOpts = {}): Promise<CallResult<Msg>> {
    return this.unary('KV', 'Txn', req, opts);
  }
  compact(req: object, opts: CallOpts = {}): Promise<CallResult<Msg>> {
    return this.unary('KV', 'Compact', req, opts);
  }
}

/** A unary call that must succeed (with optional metadata); throws naming the call and the server's answer. */
export async function unaryOk(c: EtcdClient, service: string, method: string, req: object, md: Record<string, string> = {}): Promise<Msg> {
  const r = await c.unary(service, method, req, { metadata: md });
  if (!r.ok) throw new Error(`${service}.${method} on ${c.endpoint}: ${r.details}`);
  return r.value;
}

/**
 * Auth on with two users: root (password "r", role root) and u (password "p", role w with READWRITE on
 * [key, rangeEnd)); returns the token metadata of each.
 */
export async function authRootAndUser(c: EtcdClient, key: Buffer, rangeEnd: Buffer): Promise<{ rootMd: Record<string, string>; uMd: Record<string, string> }> {
  await unaryOk(c, 'Auth', 'UserAdd', { name: 'root', password: 'r' });
  await unaryOk(c, 'Auth', 'RoleAdd', { name: 'root' });
  await unaryOk(c, 'Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  await unaryOk(c, 'Auth', 'RoleAdd', { name: 'w' });
  await unaryOk(c, 'Auth', 'RoleGrantPermission', { name: 'w', perm: { permType: 'READWRITE', key, range_end: rangeEnd } });
  await unaryOk(c, 'Auth', 'UserAdd', { name: 'u', password: 'p' });
  await unaryOk(c, 'Auth', 'UserGrantRole', { user: 'u', role: 'w' });
  await unaryOk(c, 'Auth', 'AuthEnable', {});
  const rootMd = { token: String((await unaryOk(c, 'Auth', 'Authenticate', { name: 'root', password: 'r' }))['token']) };
  const uMd = { token: String((await unaryOk(c, 'Auth', 'Authenticate', { name: 'u', password: 'p' }))['token']) };
  return { rootMd, uMd };
}

/** The gRPC status code name (e.g. 3 → "INVALID_ARGUMENT") for messages. */
export function statusName(code: number): string {
  return grpc.status[code] ?? `CODE_${code}`;
}

/**
 * A bidirectional stream (Watch, LeaseKeepAlive) with decoded messages: `send` writes a request,
 * `next` resolves with the next response in arrival order (or rejects once the stream ended with an
 * error / rejects on timeout), `end` half-closes, `cancel` resets it.
 */
export class BidiStream {
  private readonly queue: Msg[] = [];
  private readonly waiters: { resolve: (m: Msg) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  /** Set once the stream ended: the error (CallResult-style) or undefined for OK. */
  ended: { code: number; details: string } | undefined = undefined;
  private readonly call: grpc.ClientDuplexStream<object, Msg>;

  constructor(client: grpc.Client, service: string, method: string, opts: CallOpts = {}) {
    const def = methodDefinition(service, method);
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    const options: grpc.CallOptions = opts.timeoutMs !== undefined ? { deadline: Date.now() + opts.timeoutMs } : {};
    this.call = client.makeBidiStreamRequest(def.path, def.requestSerialize, (b: Buffer) => def.responseDeserialize(b) as Msg, md, options);
    this.call.on('data', (m: Msg) => {
      const w = this.waiters.shift();
      if (w !== undefined) {
        clearTimeout(w.timer);
        w.resolve(m);
      } else this.queue.push(m);
    });
    this.call.on('error', (e: unknown) => {
      this.ended = isServiceError(e) ? { code: e.code, details: e.details } : { code: grpc.status.UNKNOWN, details: String(e) };
      this.flushEnded();
    });
    this.call.on('end', () => {
      this.ended ??= { code: grpc.status.OK, details: '' };
      this.flushEnded();
    });
  }

  private flushEnded(): void {
    const e = this.ended;
    if (e === undefined) return;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`stream ended: ${statusName(e.code)} ${e.details}`));
    }
  }

  send(request: object): void {
    this.call.write(request);
  }

  /** Responses received and not yet taken by `next`. */
  get buffered(): number {
    return this.queue.length;
  }

  next(timeoutMs = 10_000): Promise<Msg> {
    const m = this.queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.ended !== undefined) return Promise.reject(new Error(`stream ended: ${statusName(this.ended.code)} ${this.ended.details}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  end(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }
}

/** Opens a Watch stream on `client`'s channel. */
export function openWatch(client: EtcdClient, opts: CallOpts = {}): BidiStream {
  return new BidiStream(client.channel, 'Watch', 'Watch', opts);
}

/** Opens a LeaseKeepAlive stream on `client`'s channel. */
export function openKeepAlive(client: EtcdClient, opts: CallOpts = {}): BidiStream {
  return new BidiStream(client.channel, 'Lease', 'LeaseKeepAlive', opts);
}
