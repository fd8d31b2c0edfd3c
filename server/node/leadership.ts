// Leadership as the member sees it: how long it has been without a leader (the api's hasleader
// and leaderless subscriptions), readiness (etcd's ReadyNotify: a leader is known and this member
// published its name and client URLs through the log), leadership transfer (MoveLeader, and the
// hand-over when a leader stops), and the election tick advance at start.
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import type { ApplyOutcome } from '../apply/index.js';
import type { MemberStore } from '../membership/index.js';
import type { Transport } from '../transport/index.js';
import { ClientError, ServerRefusal } from '../base/errors.js';
import { electionTicksOf, type NodeConfig } from './config.js';
import type { Driver } from './driver.js';
import { monotonicMs } from './clock.js';

/** etcd's adjustTicks: how long a starting member looks for its peer connections, and how often. */
const TICK_ADVANCE_WAIT_MS = 5_000;
const TICK_ADVANCE_POLL_MS = 50;

interface LeaderlessSub {
  readonly ms: number;
  readonly fn: () => void;
  timer: NodeJS.Timeout | undefined;
}

export interface LeadershipHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly members: MemberStore;
  readonly reqTimeoutMs: number;
  driver(): Driver;
  transport(): Transport;
  stopped(): boolean;
  propose(req: InternalRequestInit): Promise<ApplyOutcome>;
}

export class Leadership {
  private leaderlessSince: number | undefined = monotonicMs();
  private readonly leaderlessSubs = new Set<LeaderlessSub>();
  private attrsPublished = false;
  private readonly readyWaiters: (() => void)[] = [];
  private isReady = false;

  constructor(private readonly host: LeadershipHost) {}

  /** Calls fn when the member has had no leader for `ms` (once per leaderless period); returns an unsubscribe. */
  onLeaderless(ms: number, fn: () => void): () => void {
    const sub: LeaderlessSub = { ms, fn, timer: undefined };
    this.leaderlessSubs.add(sub);
    if (this.leaderlessSince !== undefined) this.armLeaderless(sub);
    return () => {
      if (sub.timer !== undefined) clearTimeout(sub.timer);
      this.leaderlessSubs.delete(sub);
    };
  }

  private armLeaderless(sub: LeaderlessSub): void {
    const since = this.leaderlessSince ?? monotonicMs();
    sub.timer = setTimeout(() => {
      sub.timer = undefined;
      if (this.leaderlessSince !== undefined) sub.fn();
    }, Math.max(0, since + sub.ms - monotonicMs()));
    sub.timer.unref();
  }

  leaderLost(): void {
    this.leaderlessSince = monotonicMs();
    for (const s of this.leaderlessSubs) this.armLeaderless(s);
  }

  leaderFound(): void {
    this.leaderlessSince = undefined;
    for (const s of this.leaderlessSubs) {
      if (s.timer !== undefined) clearTimeout(s.timer);
      s.timer = undefined;
    }
  }

  stop(): void {
    for (const s of this.leaderlessSubs) if (s.timer !== undefined) clearTimeout(s.timer);
  }

  // ---------- readiness ----------

  /** etcd publishes the member's name and client URLs through the log once a leader exists. */
  publishAttrs(): void {
    if (this.attrsPublished) return;
    const { cfg, memberId } = this.host;
    const urls = cfg.advertiseClientUrls;
    if (this.attrsInStore()) {
      this.attrsPublished = true;
      this.becomeReady();
      return;
    }
    this.attrsPublished = true;
    this.host.propose({ memberAttrs: { memberId, name: cfg.name, clientUrls: [...urls] } }).then(
      () => {
        cfg.logger.info('published local member to cluster through raft', { 'member-id': memberId.toString(16), name: cfg.name, 'client-urls': urls });
        this.becomeReady();
      },
      (err: unknown) => {
        this.attrsPublished = false;
        // The entry may have been applied all the same, inside a snapshot installed from the leader
        // (which resolves no waiter): the retry finds it in the member store. etcd retries in a loop too.
        cfg.logger.warn('failed to publish member attributes; will retry', { error: err });
        if (!this.host.stopped()) setTimeout(() => this.publishAttrs(), cfg.electionMs).unref();
      },
    );
  }

  /**
   * A snapshot may carry this member's own published attributes (its publish proposal applied on
   * the leader before the snapshot was cut): then it is ready now, its waiter never resolves.
   */
  snapshotInstalled(): void {
    if (!this.isReady && this.attrsInStore()) this.becomeReady();
  }

  /** Whether the member store already holds this member's name and client URLs as configured. */
  private attrsInStore(): boolean {
    const { cfg } = this.host;
    const me = this.host.members.get(this.host.memberId);
    const urls = cfg.advertiseClientUrls;
    return me !== undefined && me.name === cfg.name && me.clientURLs.length === urls.length && me.clientURLs.every((u, i) => u === urls[i]);
  }

  private becomeReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  /** Resolves once the member has a leader and has published itself (etcd's ReadyNotify). */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  // ---------- leadership transfer ----------

  /**
   * etcd's --initial-election-tick-advance (its adjustTicks): a member that is the only voter
   * campaigns at once (bootstrap entries are applied first, so this runs after them). In a
   * larger cluster, once streams to more than one peer are up (looked for every 50 ms for 5 s, as
   * etcd waits for its peer connections), the election timer is fast-forwarded to two ticks short of
   * its timeout, so a cluster starting or restarting elects about two ticks after its members
   * connect instead of a whole election timeout later. Skipped once a leader is known.
   */
  advanceTicksAtStart(): void {
    setImmediate(() => {
      const { cfg, memberId } = this.host;
      const st = this.host.driver().raft.status();
      if (this.host.stopped()) return;
      if (st.confState.voters.length === 1 && st.confState.voters[0] === memberId) {
        // etcd advances electionTicks - 1 ticks here, which leaves the randomised part of the
        // timeout (0.1-1 s at the defaults; measured on etcd 3.6.8: 0.13-1.0 s from spawn to
        // ready on restart). With no other voter nobody can compete: campaign now.
        if (st.softState.lead === 0n) {
          cfg.logger.info('started as the only voter; campaigning now', { 'election-ticks': electionTicksOf(cfg) });
          const driver = this.host.driver();
          driver.guard(() => driver.raft.campaign());
          driver.kick();
        }
        return;
      }
      this.advanceOnceConnected(monotonicMs() + TICK_ADVANCE_WAIT_MS);
    });
  }

  private advanceOnceConnected(deadlineMs: number): void {
    const t = setTimeout(() => {
      const { cfg, memberId } = this.host;
      if (this.host.stopped() || this.host.driver().leaderId !== 0n) return;
      const transport = this.host.transport();
      const active = this.host.members.all().filter((m) => m.id !== memberId && transport.activeSince(m.id) !== undefined).length;
      if (active > 1) {
        const ticks = electionTicksOf(cfg) - 2;
        cfg.logger.info('initialized peer connections; fast-forwarding election ticks', { 'forward-ticks': ticks, 'active-remote-members': active });
        this.advanceTicks(ticks);
      } else if (monotonicMs() < deadlineMs) this.advanceOnceConnected(deadlineMs);
    }, TICK_ADVANCE_POLL_MS);
    t.unref();
  }

  private advanceTicks(ticks: number): void {
    const driver = this.host.driver();
    driver.guard(() => {
      for (let i = 0; i < ticks; i++) driver.raft.tick();
    });
    driver.kick();
  }

  /**
   * etcd's TransferLeadership when a member stops: a leader with other voters hands leadership to
   * the voter whose peer connection is the oldest among those caught up with its log (else the oldest
   * connected), and waits for it within the request timeout, so the others need not wait out an
   * election timeout. Failures are logged, never thrown: the member stops anyway.
   */
  async transferForStop(): Promise<void> {
    const { cfg, memberId } = this.host;
    const driver = this.host.driver();
    if (driver.role !== 'leader' || this.host.stopped()) return;
    const others = this.host.members.all().filter((m) => !m.isLearner && m.id !== memberId);
    if (others.length === 0) {
      cfg.logger.info('skipped leadership transfer for single voting member cluster');
      return;
    }
    const st = driver.raft.status();
    const mine = st.progress.get(memberId)?.match ?? 0;
    const transport = this.host.transport();
    const connected = others
      .map((m) => ({ id: m.id, since: transport.activeSince(m.id), caughtUp: (st.progress.get(m.id)?.match ?? -1) >= mine }))
      .filter((c): c is { id: bigint; since: number; caughtUp: boolean } => c.since !== undefined)
      .sort((a, b) => Number(b.caughtUp) - Number(a.caughtUp) || a.since - b.since);
    const target = connected[0];
    if (target === undefined) {
      cfg.logger.warn('failed to transfer leadership before stopping: no voter is connected');
      return;
    }
    const started = monotonicMs();
    try {
      await this.moveLeader(target.id);
      cfg.logger.info('leadership transferred before stopping', { transferee: target.id.toString(16), took: `${String(monotonicMs() - started)}ms` });
    } catch (err) {
      cfg.logger.warn('failed to transfer leadership before stopping', { transferee: target.id.toString(16), error: err });
    }
  }

  /** MoveLeader: this member must be the leader; resolves once `target` leads. */
  async moveLeader(target: bigint): Promise<void> {
    const driver = this.host.driver();
    if (driver.role !== 'leader') throw new ClientError('notLeader');
    const t = this.host.members.get(target);
    if (t === undefined || t.isLearner) throw new ClientError('badLeaderTransferee');
    if (target === this.host.memberId) return;
    driver.guard(() => driver.raft.transferLeader(target));
    driver.kick();
    const deadline = monotonicMs() + this.host.reqTimeoutMs;
    while (driver.leaderId !== target) {
      if (monotonicMs() > deadline) throw new ServerRefusal('timeoutLeaderTransfer');
      await new Promise((r) => setTimeout(r, this.host.cfg.heartbeatMs));
    }
  }
}
