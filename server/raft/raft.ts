// The Raft state machine (etcd-io/raft v3.5 semantics, ConfChange v1): roles, elections with pre-vote and
// check-quorum, replication with per-follower flow control, ReadIndex (ReadOnlySafe), leadership transfer,
// learners, membership changes and snapshots. Pure: messages out go to `msgs`, read results to `readStates`;
// RawNode packages them (with the log's unstable tail and committed entries) into a Ready.

import { applyToTracker, restoreTracker } from './confchange.js';
import { bytesEqual, invariant, payloadBytes } from './invariant.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { ReadOnly } from './readonly.js';
import { ProgressTracker } from './tracker.js';
import {
  CompactedError,
  NONE,
  ProposalDroppedError,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type LogStorage,
  type Message,
  type MessageType,
  type NodeId,
  type ProgressStatus,
  type RaftConfig,
  type RaftStatus,
  type ReadState,
  type Ready,
  type Role,
  type SnapshotMeta,
  type SoftState,
} from './types.js';

const EMPTY = new Uint8Array(0);

/** Context of the vote requests of a leadership transfer: bypasses the leader lease (etcd's "CampaignTransfer"). */
export const CAMPAIGN_TRANSFER_CONTEXT: Uint8Array = Uint8Array.from('CampaignTransfer', (c) => c.charCodeAt(0));

type CampaignType = 'preElection' | 'election' | 'transfer';

/** A message being built: `from` defaults to us, `term` as etcd's send() decides. */
interface Outgoing {
  readonly type: MessageType;
  readonly to: NodeId;
  readonly from?: NodeId;
  readonly term?: number;
  readonly index?: number;
  readonly logTerm?: number;
  readonly commit?: number;
  readonly entries?: readonly Entry[];
  readonly reject?: boolean;
  readonly rejectHint?: number;
  readonly snapshot?: SnapshotMeta;
  readonly context?: Uint8Array;
}

function isVoteType(t: MessageType): boolean {
  return t === 'vote' || t === 'preVote' || t === 'voteResp' || t === 'preVoteResp';
}

/** A local (host-made) message: no term, from NONE unless given. */
export function localMessage(type: MessageType, fields: Partial<Omit<Message, 'type'>> = {}): Message {
  return {
    type,
    from: fields.from ?? NONE,
    to: fields.to ?? NONE,
    term: 0,
    index: fields.index ?? 0,
    logTerm: 0,
    commit: 0,
    entries: fields.entries ?? [],
    reject: fields.reject ?? false,
    rejectHint: 0,
    context: fields.context ?? EMPTY,
  };
}

export class Raft {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly log: RaftLog;
  tracker: ProgressTracker;

  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = 'follower';

  msgs: Message[] = [];
  readStates: ReadState[] = [];

  leadTransferee: NodeId = NONE;
  /** Leader: index of the latest conf change proposed (a new one waits until it is applied). */
  pendingConfIndex = 0;
  /** Leader: data bytes of proposed entries not yet committed (handed out). */
  uncommittedSize = 0;
  private readOnly = new ReadOnly();
  /** Leader: read requests waiting for the first commit of our term. */
  private pendingReadIndexMessages: Message[] = [];

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  constructor(cfg: RaftConfig, storage: LogStorage) {
    validateConfig(cfg);
    this.id = cfg.id;
    this.cfg = cfg;
    this.log = new RaftLog(storage);
    const { hardState, confState } = storage.initialState();
    this.tracker = new ProgressTracker(cfg.maxInflightMsgs);
    restoreTracker(this.tracker, confState, this.log.lastIndex());
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (cfg.applied > 0) this.log.appliedTo(cfg.applied);
    this.becomeFollower(this.term, NONE);
    this.info('raft started', { term: this.term, commit: this.log.committed, applied: this.log.applied, lastIndex: this.log.lastIndex(), voters: confState.voters, learners: confState.learners });
  }

  private loadState(hs: HardState): void {
    invariant(hs.commit >= this.log.committed && hs.commit <= this.log.lastIndex(), `hard state commit ${hs.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`);
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- views ----

  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  isMemberVoter(): boolean {
    const pr = this.tracker.progress.get(this.id);
    return pr !== undefined && !pr.isLearner;
  }

  /** May campaign: a voter of the current configuration without a snapshot waiting to be installed. */
  promotable(): boolean {
    return this.isMemberVoter() && !this.log.hasPendingSnapshot();
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, ProgressStatus>();
    if (this.role === 'leader') for (const id of this.tracker.ids()) progress.set(id, this.progressOf(id).status());
    return {
      id: this.id,
      hardState: this.hardState(),
      softState: this.softState(),
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      leadTransferee: this.leadTransferee,
      confState: this.tracker.confState(),
      progress,
    };
  }

  /** Cross-field invariants, checked after every public call by RawNode. */
  checkInvariants(): void {
    const log = this.log;
    invariant(log.applied <= log.committed && log.committed <= log.lastIndex(), `applied ${log.applied} <= committed ${log.committed} <= last ${log.lastIndex()}`);
    invariant(log.firstIndex() - 1 <= log.committed, `committed ${log.committed} below the snapshot ${log.firstIndex() - 1}`);
    if (this.role === 'leader') {
      invariant(this.lead === this.id, 'leader without lead = self');
      const self = this.tracker.progress.get(this.id);
      invariant(self === undefined || self.match === log.lastIndex(), 'leader has not matched its own log');
    }
    if (this.role === 'candidate') invariant(this.vote === this.id, 'candidate did not vote for itself');
    this.tracker.check();
  }

  // ---- time ----

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(localMessage('hup', { from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) this.step(localMessage('checkQuorum', { from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned: we lead on.
      if (this.role === 'leader' && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(localMessage('beat', { from: this.id }));
    }
  }

  private resetRandomizedElectionTimeout(): void {
    const n = this.cfg.electionTicks;
    const r = this.cfg.randomInt(n);
    invariant(Number.isInteger(r) && r >= 0 && r < n, `randomInt(${n}) returned ${r}`);
    this.randomizedElectionTimeout = n + r;
  }

  // ---- role transitions ----

  private reset(term: number): void {
    invariant(term >= this.term, `term going backwards ${this.term} -> ${term}`);
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    const last = this.log.lastIndex();
    for (const [id, pr] of this.tracker.progress) {
      const fresh = new Progress(last + 1, this.cfg.maxInflightMsgs, pr.isLearner, false);
      if (id === this.id) fresh.match = last;
      this.tracker.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
    this.info('became follower', { term, lead });
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', 'invalid transition leader -> candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.info('became candidate', { term: this.term });
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', 'invalid transition leader -> preCandidate');
    // Neither the term nor the vote changes: a pre-election disturbs nobody.
    this.tracker.resetVotes();
    this.lead = NONE;
    this.role = 'preCandidate';
    this.info('became pre-candidate', { term: this.term });
  }

  private becomeLeader(): void {
    invariant(this.role !== 'follower', 'invalid transition follower -> leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    this.tracker.progress.get(this.id)?.becomeReplicate();
    // Conservatively, an unapplied conf change may sit in our log: block new ones until it is applied.
    this.pendingConfIndex = this.log.lastIndex();
    const ok = this.appendEntries([{ index: this.log.lastIndex() + 1, term: this.term, type: 'normal', data: EMPTY }]);
    invariant(ok, 'empty entry refused at election');
    this.info('became leader', { term: this.term });
  }

  // ---- elections ----

  hup(t: CampaignType): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) {
      this.warn('not promotable, not campaigning');
      return;
    }
    if (this.hasUnappliedConfChange()) {
      this.warn('not campaigning: a committed conf change is not applied yet');
      return;
    }
    this.campaign(t);
  }

  private hasUnappliedConfChange(): boolean {
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    if (this.log.committed < lo) return false;
    return this.log.slice(lo, this.log.committed + 1, Infinity).some((e) => e.type === 'confChange');
  }

  private campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let term: number;
    let type: MessageType;
    if (t === 'preElection') {
      this.becomePreCandidate();
      type = 'preVote';
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      type = 'vote';
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single voter wins at once.
      if (t === 'preElection') this.campaign('election');
      else this.winElection();
      return;
    }
    const context = t === 'transfer' ? CAMPAIGN_TRANSFER_CONTEXT : EMPTY;
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      this.send({ type, to: id, term, index: this.log.lastIndex(), logTerm: this.log.lastTerm(), context });
    }
  }

  private winElection(): void {
    this.becomeLeader();
    this.bcastAppend();
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes();
  }

  // ---- step ----

  step(m: Message): void {
    if (!this.stepTerm(m)) return;
    switch (m.type) {
      case 'hup':
        this.hup(this.cfg.preVote ? 'preElection' : 'election');
        return;
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  /** The term rules before any role-specific handling; false when the message is done with. */
  private stepTerm(m: Message): boolean {
    if (m.term === 0) return true; // local, or a forwarded prop/readIndex (sent without a term)
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER_CONTEXT);
        const inLease = this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.cfg.electionTicks;
        if (!force && inLease) {
          // Leader lease: we heard from a leader within the election timeout; ignore (no term change).
          this.debug('ignored vote request in lease', { type: m.type, from: m.from, term: m.term });
          return false;
        }
      }
      if (m.type === 'preVote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // The future term of our pre-election: we take it when we win.
      } else {
        const lead = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' ? m.from : NONE;
        this.becomeFollower(m.term, lead);
      }
      return true;
    }
    if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'heartbeat' || m.type === 'app')) {
        // A stale leader (e.g. partitioned, its term passed by): our answer makes it step down.
        this.send({ type: 'appResp', to: m.from });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', to: m.from, term: this.term, reject: true });
      }
      return false;
    }
    return true;
  }

  private handleVoteRequest(m: Message): void {
    const canVote = this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === 'preVote' && m.term > this.term);
    const respType: MessageType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send({ type: respType, to: m.from, term: m.term });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  // ---- leader ----

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'beat':
        this.bcastHeartbeat();
        return;
      case 'checkQuorum':
        this.checkQuorum();
        return;
      case 'prop':
        this.leaderPropose(m);
        return;
      case 'readIndex':
        this.leaderReadIndex(m);
        return;
      default:
        break;
    }
    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case 'appResp':
        this.handleAppResp(m, pr);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResp(m, pr);
        return;
      case 'snapStatus':
        if (pr.state !== 'snapshot') return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Success: wait for the follower's appResp; failure: wait for a heartbeat round before retrying.
        pr.probeSent = true;
        return;
      case 'unreachable':
        // In replicate state an app was probably lost: fall back to probing.
        if (pr.state === 'replicate') pr.becomeProbe();
        return;
      case 'transferLeader':
        this.handleTransferLeader(m.from, pr);
        return;
      default:
        return;
    }
  }

  private checkQuorum(): void {
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined) self.recentActive = true;
    if (!this.tracker.quorumActive()) {
      this.warn('stepped down: quorum not active');
      this.becomeFollower(this.term, NONE);
    }
    for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false;
  }

  private leaderPropose(m: Message): void {
    invariant(m.entries.length > 0, 'empty proposal');
    if (!this.tracker.progress.has(this.id)) throw new ProposalDroppedError('notMember');
    if (this.leadTransferee !== NONE) throw new ProposalDroppedError('transferring');
    const local = m.from === NONE || m.from === this.id;
    const last = this.log.lastIndex();
    let pendingConf = this.pendingConfIndex;
    const ents = m.entries.map((e, i): Entry => {
      if (e.type !== 'confChange') return { index: last + 1 + i, term: this.term, type: 'normal', data: e.data };
      if (pendingConf > this.log.applied) {
        if (local) throw new ProposalDroppedError('confChangePending');
        this.info('conf change refused (another is pending): replaced by an empty entry', { pendingConf, applied: this.log.applied });
        return { index: last + 1 + i, term: this.term, type: 'normal', data: EMPTY };
      }
      pendingConf = last + 1 + i;
      return { index: last + 1 + i, term: this.term, type: 'confChange', data: e.data };
    });
    if (!this.appendEntries(ents)) throw new ProposalDroppedError('uncommittedBytes');
    this.pendingConfIndex = pendingConf;
    this.bcastAppend();
  }

  /** Leader: append entries of our term; we count them as matched at once (thesis 10.2.1). */
  private appendEntries(ents: readonly Entry[]): boolean {
    invariant(ents.every((e, i) => e.term === this.term && e.index === this.log.lastIndex() + 1 + i), 'leader appends entries of its term after its last index');
    if (!this.increaseUncommittedSize(ents)) return false;
    const li = this.log.append(ents);
    this.tracker.progress.get(this.id)?.maybeUpdate(li);
    this.leaderMaybeCommit();
    return true;
  }

  private increaseUncommittedSize(ents: readonly Entry[]): boolean {
    const s = payloadBytes(ents);
    const limit = this.cfg.maxUncommittedEntriesBytes > 0 ? this.cfg.maxUncommittedEntriesBytes : Infinity;
    if (this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > limit) return false;
    this.uncommittedSize += s;
    return true;
  }

  private reduceUncommittedSize(ents: readonly Entry[]): void {
    if (this.role !== 'leader') return;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadBytes(ents));
  }

  /** Commit what a quorum of voters matched (only entries of our term); true when the commit index moved. */
  private leaderMaybeCommit(): boolean {
    const moved = this.log.maybeCommit(this.tracker.committed(), this.term);
    if (moved) this.releasePendingReadIndexMessages();
    return moved;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.termOrZero(this.log.committed) === this.term;
  }

  private leaderReadIndex(m: Message): void {
    if (this.tracker.isSingleton(this.id)) {
      this.respondRead(m, this.log.committed);
      return;
    }
    // Until an entry of our term is committed we do not know the latest commit index (Raft §6.4).
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.readOnly.addRequest(this.log.committed, m);
    // Our own ack, then a heartbeat round carrying the request's context.
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeatWithContext(m.context);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.leaderReadIndex(m);
  }

  private respondRead(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, context: req.context });
    } else {
      this.send({ type: 'readIndexResp', to: req.from, index, context: req.context });
    }
  }

  private handleAppResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm) : m.rejectHint;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      // The follower has caught up past the snapshot: probe, then replicate, from its match.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.leaderMaybeCommit()) this.bcastAppend();
    else if (wasPaused) this.sendAppend(m.from);
    // The window may have room for several batches now.
    for (let n = 0; this.maybeSendAppend(m.from, false); n++) {
      invariant(n <= this.cfg.maxInflightMsgs, 'append loop did not stop at the inflight window');
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // Free one slot of a full window so a lost app cannot stall the follower forever.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.context.byteLength === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined || this.tracker.voteResult(acks) !== 'won') return;
    for (const rs of this.readOnly.advance(m.context)) this.respondRead(rs.req, rs.index);
  }

  private handleTransferLeader(transferee: NodeId, pr: Progress): void {
    if (pr.isLearner) return;
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    // The transfer must finish within an election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    this.info('leadership transfer started', { to: transferee, match: pr.match, lastIndex: this.log.lastIndex() });
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', to });
  }

  // ---- replication ----

  /** Leader: every peer hears the commit index (with any entries it lacks); flow control as sendAppend. */
  bcastCommit(): void {
    if (this.role === 'leader') this.bcastAppend();
  }

  private bcastAppend(): void {
    for (const id of this.tracker.ids()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithContext(this.readOnly.lastPendingContext() ?? EMPTY);
  }

  private bcastHeartbeatWithContext(context: Uint8Array): void {
    for (const id of this.tracker.ids()) {
      if (id === this.id) continue;
      // Never tell a follower of a commit index past what it is known to hold.
      const commit = Math.min(this.progressOf(id).match, this.log.committed);
      this.send({ type: 'heartbeat', to: id, commit, context });
    }
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends an app (or a snapshot) to `to` per its flow-control state; true when something was sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progressOf(to);
    if (pr.isPaused()) return false;
    invariant(pr.next <= this.log.lastIndex() + 1, `progress of ${to}: next ${pr.next} past last index ${this.log.lastIndex()}`);
    const prevTerm = this.log.maybeTerm(pr.next - 1);
    let ents: readonly Entry[] | undefined;
    try {
      ents = this.log.entries(pr.next, this.cfg.maxSizePerMsg);
    } catch (e) {
      if (!(e instanceof CompactedError)) throw e;
      ents = undefined;
    }
    if ((ents === undefined || ents.length === 0) && !sendIfEmpty) return false;
    if (prevTerm === undefined || ents === undefined) return this.sendSnapshot(to, pr);
    this.send({ type: 'app', to, index: pr.next - 1, logTerm: prevTerm, entries: ents, commit: this.log.committed });
    const last = ents[ents.length - 1];
    if (last !== undefined) {
      if (pr.state === 'replicate') {
        pr.optimisticUpdate(last.index);
        pr.inflights.add(last.index);
      } else {
        invariant(pr.state === 'probe', `app sent in ${pr.state} state`);
        pr.probeSent = true;
      }
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.debug('not sending a snapshot to an inactive follower', { to });
      return false;
    }
    const snapshot = this.log.snapshot();
    invariant(snapshot.index > 0, 'a snapshot is needed but the storage has none');
    pr.becomeSnapshot(snapshot.index);
    this.info('sending snapshot', { to, index: snapshot.index, term: snapshot.term });
    this.send({ type: 'snap', to, snapshot });
    return true;
  }

  // ---- candidate / follower ----

  private stepCandidate(m: Message): void {
    const myResp: MessageType = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'prop':
        throw new ProposalDroppedError('noLeader');
      case 'app':
        this.becomeFollower(m.term, m.from); // m.term === our term: a leader exists
        this.handleAppendEntries(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      default:
        break;
    }
    if (m.type !== myResp) return;
    const res = this.poll(m.from, !m.reject);
    if (res === 'won') {
      if (this.role === 'preCandidate') this.campaign('election');
      else this.winElection();
    } else if (res === 'lost') {
      // A preVoteResp carries our future term: stay at ours.
      this.becomeFollower(this.term, NONE);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'prop':
        if (this.lead === NONE) throw new ProposalDroppedError('noLeader');
        this.forward(m, this.lead);
        return;
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'transferLeader':
      case 'readIndex':
        if (this.lead !== NONE) this.forward(m, this.lead);
        return;
      case 'timeoutNow':
        this.info('campaigning for a leadership transfer', { from: m.from });
        this.hup('transfer');
        return;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  private forward(m: Message, to: NodeId): void {
    this.send({ type: m.type, to, from: m.from, entries: m.entries, context: m.context });
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send({ type: 'appResp', to: m.from, index: this.log.committed });
      return;
    }
    const last = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== undefined) {
      this.send({ type: 'appResp', to: m.from, index: last });
      return;
    }
    // Reject, with a hint that lets the leader skip a whole term of mismatching entries.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.debug('rejected app', { from: m.from, index: m.index, logTerm: m.logTerm, hint });
    this.send({ type: 'appResp', to: m.from, index: m.index, reject: true, rejectHint: hint, logTerm: this.log.termOrZero(hint) });
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.send({ type: 'heartbeatResp', to: m.from, context: m.context });
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) {
      this.warn('snap message without a snapshot', { from: m.from });
      return;
    }
    if (this.restore(s)) {
      this.info('restored snapshot', { index: s.index, term: s.term });
      this.send({ type: 'appResp', to: m.from, index: this.log.lastIndex() });
    } else {
      this.send({ type: 'appResp', to: m.from, index: this.log.committed });
    }
  }

  /** Installs a snapshot newer than our commit; false when it is stale or our log already holds it. */
  private restore(s: SnapshotMeta): boolean {
    if (s.index <= this.log.committed) return false;
    invariant(this.role === 'follower', `snapshot restore as ${this.role}`);
    if (this.log.matchTerm(s.index, s.term)) {
      // We have the snapshot's last entry: just move the commit index.
      this.log.commitTo(s.index);
      return false;
    }
    this.log.restore(s);
    this.tracker = new ProgressTracker(this.cfg.maxInflightMsgs);
    restoreTracker(this.tracker, s.confState, this.log.lastIndex());
    this.switchToConfig();
    return true;
  }

  // ---- membership ----

  applyConfChange(cc: ConfChange): ConfState {
    applyToTracker(this.tracker, cc, this.log.lastIndex());
    this.info('applied conf change', { type: cc.type, node: cc.nodeId });
    return this.switchToConfig();
  }

  private switchToConfig(): ConfState {
    const cs = this.tracker.confState();
    if (this.role === 'leader' && !this.isMemberVoter()) {
      // Removed (or demoted): etcd 3.5 leads on (refusing proposals) until the host stops it.
      if (this.cfg.stepDownOnRemoval === true) this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.role !== 'leader' || cs.voters.length === 0) return cs;
    this.tracker.progress.get(this.id)?.maybeUpdate(this.log.lastIndex()); // (re-)added self: we hold our log
    // A smaller quorum may commit more; otherwise probe new members now rather than at the next heartbeat.
    if (this.leaderMaybeCommit()) this.bcastAppend();
    else for (const id of this.tracker.ids()) if (id !== this.id) this.maybeSendAppend(id, false);
    if (this.leadTransferee !== NONE && !this.tracker.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  // ---- host hand-off ----

  /** The host persisted rd's entries/snapshot and applied its committed entries. */
  advance(rd: Ready): void {
    this.reduceUncommittedSize(rd.committedEntries);
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    const applied = lastCommitted?.index ?? rd.snapshot?.index ?? 0;
    if (applied > 0) this.log.appliedTo(applied);
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) this.log.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot !== undefined) this.log.stableSnapTo(rd.snapshot.index);
  }

  // ---- plumbing ----

  private progressOf(id: NodeId): Progress {
    const pr = this.tracker.progress.get(id);
    invariant(pr !== undefined, `no progress for ${id}`);
    return pr;
  }

  private send(o: Outgoing): void {
    let term: number;
    if (isVoteType(o.type)) {
      invariant(o.term !== undefined, `${o.type} sent without a term`);
      term = o.term;
    } else {
      invariant(o.term === undefined, `${o.type} sent with an explicit term`);
      // Proposals and read requests travel without a term (handled as local at the receiver, as etcd).
      term = o.type === 'prop' || o.type === 'readIndex' ? 0 : this.term;
    }
    invariant(o.to !== NONE && o.to !== this.id, `${o.type} sent to ${o.to}`);
    this.msgs.push({
      type: o.type,
      from: o.from === undefined || o.from === NONE ? this.id : o.from,
      to: o.to,
      term,
      index: o.index ?? 0,
      logTerm: o.logTerm ?? 0,
      commit: o.commit ?? 0,
      entries: o.entries ?? [],
      reject: o.reject ?? false,
      rejectHint: o.rejectHint ?? 0,
      snapshot: o.snapshot,
      context: o.context ?? EMPTY,
    });
  }

  private fields(extra?: Record<string, unknown>): Record<string, unknown> {
    return { id: this.id, term: this.term, role: this.role, ...extra };
  }

  private debug(msg: string, extra?: Record<string, unknown>): void {
    this.cfg.logger?.debug(msg, this.fields(extra));
  }

  private info(msg: string, extra?: Record<string, unknown>): void {
    this.cfg.logger?.info(msg, this.fields(extra));
  }

  private warn(msg: string, extra?: Record<string, unknown>): void {
    this.cfg.logger?.warn(msg, this.fields(extra));
  }
}

function validateConfig(cfg: RaftConfig): void {
  const bad = (what: string): never => {
    throw new Error(`raft: invalid config: ${what}`);
  };
  if (cfg.id === NONE) bad('id must not be 0');
  if (!Number.isInteger(cfg.heartbeatTicks) || cfg.heartbeatTicks <= 0) bad('heartbeatTicks must be a positive integer');
  if (!Number.isInteger(cfg.electionTicks) || cfg.electionTicks <= cfg.heartbeatTicks) bad('electionTicks must be an integer > heartbeatTicks');
  if (!Number.isInteger(cfg.maxInflightMsgs) || cfg.maxInflightMsgs <= 0) bad('maxInflightMsgs must be a positive integer');
  if (cfg.maxSizePerMsg < 0 || cfg.maxUncommittedEntriesBytes < 0) bad('byte limits must be >= 0');
  if (!Number.isInteger(cfg.applied) || cfg.applied < 0) bad('applied must be an integer >= 0');
}
