// Proposals: client writes handed to raft in batches, their waiters (resolved when the entry is
// applied here, refused on timeout), the proposals that wait for a leader, and raft's refusals mapped
// to etcd's. Bounded by the caller (PROPOSALS_PENDING_MAX in node.ts); every waiter has the request
// timeout as its deadline. Time comes from an injected Clock (the simulation runs this in virtual time).
import { ServerRefusal } from '../base/errors.js';
import { ProposalDroppedError } from '../raft/index.js';
import type { Clock } from './clock.js';
import { nodeStats } from './stats.js';

/** A proposal raft refused, as the refusal etcd gives. */
export function dropped(err: unknown): Error {
  if (err instanceof ProposalDroppedError) {
    switch (err.reason) {
      case 'noLeader':
        return new ServerRefusal('noLeader');
      case 'uncommittedBytes':
        return new ServerRefusal('tooManyRequests');
      case 'confChangePending':
        return new ServerRefusal('timeout', 'etcdserver: request timed out');
      default:
        return new ServerRefusal('leaderChanged');
    }
  }
  return err instanceof Error ? err : new Error(String(err));
}

export interface ProposalsHost {
  readonly clock: Clock;
  readonly reqTimeoutMs: number;
  readonly electionMs: number;
  /** raft's proposeMany: one append for the batch (throws ProposalDroppedError when raft refuses). */
  proposeMany(datas: readonly Uint8Array[]): void;
  kick(): void;
  /** Fail-stop on anything raft throws but a refusal. */
  fail(err: unknown): void;
}

interface Waiter<O> {
  readonly resolve: (o: O) => void;
  readonly reject: (e: Error) => void;
  readonly timer: unknown;
}

interface Proposal {
  readonly id: bigint;
  readonly data: Uint8Array;
}

/** Proposals by request id; O is what applying one yields (ApplyOutcome in the member). */
export class Proposals<O> {
  private readonly waiters = new Map<bigint, Waiter<O>>();
  /** Proposals of this turn, handed to raft together by flush(). */
  private batch: Proposal[] = [];
  /** Proposals made while no leader was known, proposed again once one is (by id, in order). */
  private readonly leaderless = new Map<bigint, Uint8Array>();
  /** When this member last saw a leader elected (monotonic ms). */
  private leadElectedMs: number | undefined;

  constructor(private readonly host: ProposalsHost) {}

  /** Client proposals waiting to be applied (etcd_server_proposals_pending). */
  get pending(): number {
    return this.waiters.size;
  }

  /** Proposes `data` (its header carries `id`); resolves once it is applied here. */
  submit(id: bigint, data: Uint8Array): Promise<O> {
    const clock = this.host.clock;
    const startMs = clock.now();
    return new Promise<O>((resolve, reject) => {
      const timer = clock.after(this.host.reqTimeoutMs, () => {
        this.waiters.delete(id);
        nodeStats.proposalsFailed++;
        reject(new ServerRefusal(this.leaderless.delete(id) ? 'noLeader' : this.timeoutKind(startMs)));
      });
      this.waiters.set(id, { resolve, reject, timer });
      this.batch.push({ id, data });
      // Gather every proposal that arrives in this I/O phase (many client requests at once).
      if (this.batch.length === 1) this.flushSoon();
    });
  }

  /** The entry of proposal `id` was applied here (a proposal of another member: nothing to do). */
  applied(id: bigint, outcome: O): void {
    const w = this.waiters.get(id);
    if (w === undefined) return;
    this.waiters.delete(id);
    this.host.clock.cancel(w.timer);
    w.resolve(outcome);
  }

  /** A leader was elected: proposals that waited for one are proposed again. */
  leaderElected(): void {
    this.leadElectedMs = this.host.clock.now();
    if (this.leaderless.size === 0) return;
    const waiting = [...this.leaderless].map(([id, data]) => ({ id, data }));
    this.leaderless.clear();
    const first = this.batch.length === 0;
    this.batch.unshift(...waiting);
    if (first) this.flushSoon();
  }

  /** Stopping: every waiter ends with err. */
  failAll(err: Error): void {
    for (const w of this.waiters.values()) {
      this.host.clock.cancel(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }

  private flushSoon(): void {
    this.host.clock.defer(() => {
      this.flush();
      this.host.kick();
    });
  }

  /**
   * Hands the proposals of this turn to raft as one message: one append, one app per follower for
   * the batch (one per proposal would multiply peer messages and acknowledgements).
   */
  private flush(): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    try {
      this.host.proposeMany(batch.map((p) => p.data));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) {
        this.host.fail(err);
        return;
      }
      if (err.reason === 'noLeader') {
        // As etcd, a proposal made without a leader waits for one (until the request times out,
        // then fails with "no leader"); hasleader callers were refused before getting here.
        for (const p of batch) this.leaderless.set(p.id, p.data);
        return;
      }
      const e = dropped(err);
      for (const p of batch) {
        const w = this.waiters.get(p.id);
        if (w === undefined) continue;
        nodeStats.proposalsFailed++;
        this.waiters.delete(p.id);
        this.host.clock.cancel(w.timer);
        w.reject(e);
      }
    }
  }

  /**
   * Which timeout a proposal made at startMs ran into (etcd's parseProposeCtxErr): one that started
   * within two election timeouts before the current leader was elected most likely died with the
   * previous leader.
   */
  private timeoutKind(startMs: number): 'timeout' | 'timeoutLeaderFail' {
    const elected = this.leadElectedMs;
    return elected !== undefined && startMs > elected - 2 * this.host.electionMs && startMs < elected ? 'timeoutLeaderFail' : 'timeout';
  }
}
