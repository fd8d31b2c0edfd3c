// ReadIndex requests waiting at the leader for a quorum of heartbeat acks (etcd's ReadOnlySafe): each holds
// the commit index at the time of the request; an ack for a request also acks every older one.

import { invariant } from './invariant.js';
import type { Message, NodeId } from './types.js';

export interface ReadIndexStatus {
  readonly req: Message;
  readonly index: number;
  readonly acks: Map<NodeId, boolean>;
}

function key(ctx: Uint8Array): string {
  let s = '';
  for (const b of ctx) s += b.toString(16).padStart(2, '0');
  return s;
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Queues a request; a second request with a context already pending is dropped (etcd). */
  addRequest(index: number, req: Message): boolean {
    const k = key(req.context);
    if (this.pending.has(k)) return false;
    this.pending.set(k, { req, index, acks: new Map() });
    this.queue.push(k);
    return true;
  }

  /** Records id's ack of the request with this context; the acks so far, or undefined if not pending. */
  recvAck(id: NodeId, ctx: Uint8Array): ReadonlyMap<NodeId, boolean> | undefined {
    const rs = this.pending.get(key(ctx));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Releases the request with this context and every request queued before it. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const k = key(ctx);
    const at = this.queue.indexOf(k);
    if (at < 0) return [];
    const released = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    return released.map((rk) => {
      const rs = this.pending.get(rk);
      invariant(rs !== undefined, 'read-only queue and pending map disagree');
      this.pending.delete(rk);
      return rs;
    });
  }

  lastPendingContext(): Uint8Array | undefined {
    const k = this.queue[this.queue.length - 1];
    return k === undefined ? undefined : this.pending.get(k)?.req.context;
  }

  size(): number {
    return this.queue.length;
  }
}
