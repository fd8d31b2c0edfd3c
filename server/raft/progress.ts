// The leader's view of one follower (etcd's tracker.Progress): how far its log matches, what to send next,
// and the flow-control state: probe (one app in flight until answered), replicate (optimistic pipelining
// within an in-flight window), snapshot (waiting for a snapshot to land).

import { invariant } from './invariant.js';
import type { ProgressState, ProgressStatus } from './types.js';

/** Last indexes of the app messages in flight to one follower, oldest first; at most `capacity`. */
export class Inflights {
  private buf: number[] = [];
  private start = 0;
  constructor(readonly capacity: number) {
    invariant(capacity > 0, 'inflights capacity must be > 0');
  }

  count(): number {
    return this.buf.length - this.start;
  }

  full(): boolean {
    return this.count() >= this.capacity;
  }

  add(last: number): void {
    invariant(!this.full(), 'inflights: add to a full window');
    const prev = this.buf[this.buf.length - 1];
    invariant(this.count() === 0 || prev === undefined || prev < last, `inflights: ${last} added after ${String(prev)}`);
    this.buf.push(last);
  }

  /** Frees every message whose last index is <= to (acknowledged). */
  freeLE(to: number): void {
    while (this.start < this.buf.length && (this.buf[this.start] ?? Infinity) <= to) this.start++;
    this.compact();
  }

  freeFirstOne(): void {
    if (this.start < this.buf.length) this.start++;
    this.compact();
  }

  reset(): void {
    this.buf = [];
    this.start = 0;
  }

  private compact(): void {
    if (this.start === this.buf.length) this.reset();
    else if (this.start > 64 && this.start * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.start);
      this.start = 0;
    }
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round (a fresh member counts as active). */
  recentActive: boolean;
  /** probe state: an app was sent and not yet answered (or a heartbeat answered). */
  probeSent = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, maxInflight: number, isLearner: boolean, recentActive: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An ack up to n: true when match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    this.checkOrder();
    return updated;
  }

  optimisticUpdate(n: number): void {
    this.next = n + 1;
    this.checkOrder();
  }

  /**
   * A rejection of the app at `rejected` with the follower's hint `matchHint`: move next back. False when
   * the rejection is stale (an answer to an older app).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    this.checkOrder();
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  status(): ProgressStatus {
    return { match: this.match, next: this.next, state: this.state, isLearner: this.isLearner, recentActive: this.recentActive };
  }

  private checkOrder(): void {
    invariant(this.next > this.match, `progress next ${this.next} <= match ${this.match}`);
  }
}
