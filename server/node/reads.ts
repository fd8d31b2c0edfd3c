// Linearizable reads (etcd's ReadIndex), batched: the reads that arrive while one ReadIndex is in
// flight share the next one. A read is answered once the leader confirmed its leadership at some
// commit index and this member applied up to it. Bounded: READS_PENDING_MAX reads, APPLIED_WAITERS_MAX
// waits for the apply; every wait times out after the request timeout.
import { ServerRefusal } from '../base/errors.js';
import { APPLIED_WAITERS_MAX, READS_PENDING_MAX } from '../base/limits.js';
import { ProposalDroppedError } from '../raft/index.js';
import { dropped } from './proposals.js';
import { nodeStats } from './stats.js';

interface AppliedWaiter {
  readonly index: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface ReadWaiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

interface ReadBatch {
  readonly ctx: Buffer;
  readonly waiters: ReadWaiter[];
  readonly timer: NodeJS.Timeout;
}

export interface ReadsHost {
  readonly memberId: bigint;
  readonly reqTimeoutMs: number;
  leaderId(): bigint;
  appliedIndex(): number;
  stopped(): boolean;
  /** raft's ReadIndex (throws ProposalDroppedError without a leader). */
  readIndex(ctx: Uint8Array): void;
  kick(): void;
  /** Fail-stop on an unexpected error. */
  fail(err: unknown): void;
}

export class ReadIndexBatcher {
  private queue: ReadWaiter[] = [];
  /** Reads not answered yet (queued, in flight, or waiting for the apply): READS_PENDING_MAX. */
  private pending = 0;
  private inFlight: ReadBatch | undefined = undefined;
  private seq = 0n;
  private waitTimer: NodeJS.Timeout | undefined = undefined;
  private readonly appliedWaiters: AppliedWaiter[] = [];

  constructor(private readonly host: ReadsHost) {}

  /** Resolves once this member has applied everything committed before the call. */
  read(): Promise<void> {
    if (this.pending >= READS_PENDING_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    this.pending++;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({
        resolve: () => {
          this.pending--;
          resolve();
        },
        reject: (e) => {
          this.pending--;
          reject(e);
        },
      });
      if (this.inFlight === undefined) this.start();
    });
  }

  /** A leader is known again: reads that waited for one go ahead. */
  leaderKnown(): void {
    if (this.waitTimer !== undefined) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
    }
    if (this.inFlight === undefined && this.queue.length > 0) queueMicrotask(() => {
      if (this.inFlight === undefined) this.start();
    });
  }

  /** The leader changed: the read in flight will never be answered. */
  leaderChanged(): void {
    if (this.inFlight !== undefined) this.failInFlight(new ServerRefusal('leaderChanged'));
  }

  /** Stopping: every read and every wait for the apply ends with err. */
  failAll(err: Error): void {
    this.failInFlight(err);
    this.failAppliedWaiters(err);
  }

  private start(): void {
    const waiters = this.queue;
    this.queue = [];
    if (waiters.length === 0) return;
    if (this.host.leaderId() === 0n) {
      // Wait for a leader (as etcd's read loop does), failing with "no leader" after the request timeout.
      this.queue = waiters;
      this.waitTimer ??= setTimeout(() => {
        this.waitTimer = undefined;
        if (this.host.leaderId() !== 0n) return;
        for (const w of this.queue.splice(0)) w.reject(new ServerRefusal('noLeader'));
      }, this.host.reqTimeoutMs);
      return;
    }
    // The leader keeps pending reads by context: it must be unique across members (a duplicate is dropped).
    const ctx = Buffer.alloc(16);
    ctx.writeBigUInt64BE(this.host.memberId, 0);
    ctx.writeBigUInt64BE(++this.seq, 8);
    const timer = setTimeout(() => {
      nodeStats.slowReadIndexes++;
      this.failInFlight(new ServerRefusal('timeout'));
    }, this.host.reqTimeoutMs);
    this.inFlight = { ctx, waiters, timer };
    try {
      this.host.readIndex(ctx);
    } catch (err) {
      if (err instanceof ProposalDroppedError) this.failInFlight(dropped(err));
      else this.host.fail(err);
      return;
    }
    this.host.kick();
  }

  private failInFlight(err: Error): void {
    const b = this.inFlight;
    this.inFlight = undefined;
    if (b !== undefined) {
      nodeStats.readIndexesFailed++;
      clearTimeout(b.timer);
      for (const w of b.waiters) w.reject(err);
    }
    if (this.queue.length > 0) this.start();
  }

  onReadState(index: number, ctx: Uint8Array): void {
    const b = this.inFlight;
    if (b === undefined || !b.ctx.equals(ctx)) {
      // An answer to an earlier round that failed (timed out, leader changed): etcd's slow read index.
      nodeStats.slowReadIndexes++;
      return;
    }
    clearTimeout(b.timer);
    this.inFlight = undefined;
    if (this.host.appliedIndex() >= index) for (const w of b.waiters) w.resolve();
    else {
      this.waitApplied(index).then(
        () => {
          for (const w of b.waiters) w.resolve();
        },
        (err: unknown) => {
          for (const w of b.waiters) w.reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    }
    if (this.queue.length > 0) this.start();
  }

  /**
   * Resolves once this member has applied up to index: refused past APPLIED_WAITERS_MAX waiters, and
   * timed out ('timeout') after the request timeout.
   */
  waitApplied(index: number): Promise<void> {
    if (this.host.appliedIndex() >= index) return Promise.resolve();
    if (this.host.stopped()) return Promise.reject(new ServerRefusal('stopped'));
    if (this.appliedWaiters.length >= APPLIED_WAITERS_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    return new Promise<void>((resolve, reject) => {
      const w: AppliedWaiter = {
        index,
        resolve,
        reject,
        timer: setTimeout(() => {
          const at = this.appliedWaiters.indexOf(w);
          if (at >= 0) this.appliedWaiters.splice(at, 1);
          reject(new ServerRefusal('timeout'));
        }, this.host.reqTimeoutMs),
      };
      this.appliedWaiters.push(w);
    });
  }

  wakeApplied(appliedIndex: number): void {
    if (this.appliedWaiters.length === 0) return;
    const keep: AppliedWaiter[] = [];
    for (const w of this.appliedWaiters) {
      if (w.index <= appliedIndex) {
        clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.appliedWaiters.length = 0;
    this.appliedWaiters.push(...keep);
  }

  /** Every wait for the apply loop ends with err (stopping). */
  private failAppliedWaiters(err: Error): void {
    for (const w of this.appliedWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

}
