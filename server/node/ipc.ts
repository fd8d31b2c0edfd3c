// Writes from client processes to the process that owns the WAL, over Node's IPC channel (advanced
// serialization, so Buffers travel as bytes). Both sides batch what one turn of the event loop
// produced into one message.
//
// worker -> primary: { t: 'w', b: [[id, encoded cairnpb.InternalRequest], ...] }
// primary -> worker: { t: 'r', b: [[id, 1, encoded response] | [id, 0, WireError], ...] }
import { decodeInternalRequest, encodeInternalRequest, type InternalRequestInit } from '../../proto/gen/cairnpb.js';
import { ClientError, ServerRefusal, type ClientErrorKind, type RefusalKind } from '../base/errors.js';
import { PROPOSALS_PENDING_MAX } from '../base/limits.js';
import type { WritePath } from './writer.js';

type WireError = { readonly c: 'client'; readonly kind: ClientErrorKind; readonly message: string } | { readonly c: 'refusal'; readonly kind: RefusalKind } | { readonly c: 'other'; readonly message: string };
type WriteMsg = { readonly t: 'w'; readonly b: [number, Uint8Array][] };
type ReplyMsg = { readonly t: 'r'; readonly b: ([number, 1, Uint8Array] | [number, 0, WireError])[] };

/** One end of a message channel: a process's IPC channel (process in a client process, a cluster Worker in the primary). */
export interface Channel {
  send(msg: unknown): boolean;
  on(event: 'message', cb: (msg: unknown) => void): unknown;
}

function toWire(err: unknown): WireError {
  if (err instanceof ClientError) return { c: 'client', kind: err.kind, message: err.message };
  if (err instanceof ServerRefusal) return { c: 'refusal', kind: err.kind };
  return { c: 'other', message: err instanceof Error ? err.message : String(err) };
}

function fromWire(e: WireError): Error {
  if (e.c === 'client') return new ClientError(e.kind, e.message);
  if (e.c === 'refusal') return new ServerRefusal(e.kind);
  return new Error(e.message);
}

function isMsg<T extends { t: string }>(m: unknown, t: T['t']): m is T {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === t && Array.isArray((m as { b?: unknown }).b);
}

/** Batches messages produced during one turn into one send. */
class Batcher<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly flush: (items: T[]) => void) {}

  push(item: T): void {
    this.items.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const items = this.items;
      this.items = [];
      this.flush(items);
    });
  }
}

/** Worker side: a WritePath that forwards to the primary. */
export class RemoteWriter implements WritePath {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private readonly out: Batcher<[number, Uint8Array]>;
  private closed = false;

  constructor(private readonly channel: Channel) {
    this.out = new Batcher((b) => {
      if (!this.closed) channel.send({ t: 'w', b } satisfies WriteMsg);
    });
    channel.on('message', (m) => {
      if (!isMsg<ReplyMsg>(m, 'r')) return;
      for (const reply of m.b) {
        const w = this.waiting.get(reply[0]);
        if (w === undefined) continue;
        this.waiting.delete(reply[0]);
        if (reply[1] === 1) w.resolve(reply[2]);
        else w.reject(fromWire(reply[2]));
      }
    });
  }

  write(req: InternalRequestInit): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ServerRefusal('stopped'));
    if (this.waiting.size >= PROPOSALS_PENDING_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // slice(): an exact copy, so the serializer does not copy a whole pooled backing buffer.
      this.out.push([id, encodeInternalRequest(req).slice()]);
    });
  }

  /** The primary is gone: every waiting write fails as etcd fails requests of a stopped server. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.values()) w.reject(new ServerRefusal('stopped'));
    this.waiting.clear();
  }
}

/** Primary side: serves one worker's writes through the local write path. */
export function serveWrites(channel: Channel, local: WritePath): void {
  const out = new Batcher<ReplyMsg['b'][number]>((b) => {
    channel.send({ t: 'r', b } satisfies ReplyMsg);
  });
  channel.on('message', (m) => {
    if (!isMsg<WriteMsg>(m, 'w')) return;
    for (const [id, bytes] of m.b) {
      let req: InternalRequestInit;
      try {
        req = decodeInternalRequest(bytes);
      } catch (err) {
        out.push([id, 0, toWire(err)]);
        continue;
      }
      local.write(req).then(
        (resp) => out.push([id, 1, resp.slice()]),
        (err: unknown) => out.push([id, 0, toWire(err)]),
      );
    }
  });
}
