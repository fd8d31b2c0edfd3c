// The host's door into raft: calls that feed it (tick, step, propose, ...) and the Ready/advance hand-off.
// One Ready at a time: ready() hands out everything pending; advance(rd) acknowledges it. Between the two,
// the host may keep calling step/tick/propose (their output waits for the next Ready).

import { encodeConfChange } from './confchange.js';
import { invariant } from './invariant.js';
import { Raft, localMessage } from './raft.js';
import {
  NONE,
  ProposalDroppedError,
  StepRefusedError,
  type ConfChange,
  type ConfState,
  type HardState,
  type LogStorage,
  type Message,
  type MessageType,
  type NodeId,
  type RaftConfig,
  type RaftStatus,
  type Ready,
  type SoftState,
} from './types.js';

const LOCAL_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['hup', 'beat', 'checkQuorum', 'unreachable', 'snapStatus']);
/** Answers: dropped when they come from a peer we do not track (etcd's ErrStepPeerNotFound). */
const RESPONSE_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['appResp', 'voteResp', 'preVoteResp', 'heartbeatResp']);
/** Sent without a term (handled as local at the receiver). */
const TERMLESS_TYPES: ReadonlySet<MessageType> = new Set<MessageType>(['prop', 'readIndex']);

export class RawNode {
  private readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: Ready | undefined = undefined;
  /** The outstanding Ready's messages carry a commit index capped below the leader's (capCommit). */
  private commitCapped = false;

  constructor(cfg: RaftConfig, storage: LogStorage) {
    this.raft = new Raft(cfg, storage);
    this.prevSoft = this.raft.softState();
    this.prevHard = this.raft.hardState();
    this.raft.checkInvariants();
  }

  tick(): void {
    this.raft.tick();
    this.raft.checkInvariants();
  }

  /** Starts an election now (pre-vote first when enabled); a no-op for leaders, learners and non-members. */
  campaign(): void {
    this.raft.step(localMessage('hup', { from: this.raft.id }));
    this.raft.checkInvariants();
  }

  propose(data: Uint8Array): void {
    this.raft.step(localMessage('prop', { entries: [{ index: 0, term: 0, type: 'normal', data }] }));
    this.raft.checkInvariants();
  }

  /** Several proposals as one message: one append and one broadcast for the batch (throws as propose). */
  proposeMany(datas: readonly Uint8Array[]): void {
    if (datas.length === 0) return;
    this.raft.step(localMessage('prop', { entries: datas.map((data) => ({ index: 0, term: 0, type: 'normal' as const, data })) }));
    this.raft.checkInvariants();
  }

  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.raft.step(localMessage('prop', { entries: [{ index: 0, term: 0, type: 'confChange', data }] }));
    this.raft.checkInvariants();
  }

  /** A message from a peer. Local message types throw; malformed or misrouted messages are ignored. */
  step(m: Message): void {
    if (LOCAL_TYPES.has(m.type)) throw new StepRefusedError(`raft: step() refuses the local message type '${m.type}'`);
    const why = this.whyIgnored(m);
    if (why !== undefined) {
      this.raft.cfg.logger?.warn('ignored message', { id: this.raft.id, why, type: m.type, from: m.from, to: m.to, term: m.term });
      return;
    }
    if (RESPONSE_TYPES.has(m.type) && !this.raft.tracker.progress.has(m.from)) return;
    try {
      this.raft.step(m);
    } catch (e) {
      // A forwarded proposal the leader cannot take is dropped silently (the proposer times out), as etcd.
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
    this.raft.checkInvariants();
  }

  private whyIgnored(m: Message): string | undefined {
    if (m.to !== this.raft.id) return 'not addressed to us';
    if (m.from === NONE || m.from === this.raft.id) return 'bad sender';
    if (m.term === 0 && !TERMLESS_TYPES.has(m.type)) return 'no term';
    if (!Number.isSafeInteger(m.term) || m.term < 0 || !Number.isSafeInteger(m.index) || m.index < 0) return 'bad term or index';
    if ((m.type === 'prop' && m.entries.length === 0) || (m.type === 'snap' && m.snapshot === undefined)) return 'incomplete';
    if (m.type === 'app') {
      let prevTerm = m.logTerm;
      for (let k = 0; k < m.entries.length; k++) {
        const e = m.entries[k];
        if (e === undefined || e.index !== m.index + 1 + k || e.term > m.term || e.term < prevTerm) return 'entries do not follow index/logTerm';
        prevTerm = e.term;
      }
      if (m.commit < 0) return 'bad commit';
    }
    return undefined;
  }

  /**
   * A linearizable read: the read index arrives in Ready.readStates with this context (non-empty, unique
   * among pending reads: a duplicate of a pending context is dropped, as etcd).
   */
  readIndex(context: Uint8Array): void {
    if (context.byteLength === 0) throw new Error('raft: readIndex context must not be empty');
    if (this.raft.lead === NONE) throw new ProposalDroppedError('noLeader');
    this.raft.step(localMessage('readIndex', { context }));
    this.raft.checkInvariants();
  }

  /** Leader: hand leadership to a voter `to`; a follower forwards the request to its leader. */
  transferLeader(to: NodeId): void {
    if (to === NONE) return;
    this.raft.step(localMessage('transferLeader', { from: to }));
    this.raft.checkInvariants();
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(localMessage('unreachable', { from: id }));
    this.raft.checkInvariants();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(localMessage('snapStatus', { from: id, reject: !ok }));
    this.raft.checkInvariants();
  }

  applyConfChange(cc: ConfChange): ConfState {
    const cs = this.raft.applyConfChange(cc);
    this.raft.checkInvariants();
    return cs;
  }

  /** Something to persist, send or apply (false while a Ready is out and not yet advanced). */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    if (!softStateEqual(r.softState(), this.prevSoft)) return true;
    if (!hardStateEqual(r.hardState(), this.prevHard)) return true;
    if (r.log.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.log.unstable.entries.length > 0 || r.log.hasNextEnts()) return true;
    return r.readStates.length > 0;
  }

  ready(): Ready {
    invariant(this.outstanding === undefined, 'ready() called again before advance() of the previous Ready');
    const r = this.raft;
    const soft = r.softState();
    const hard = r.hardState();
    const entries = r.log.unstableEntries();
    const snapshot = r.log.unstable.snapshot;
    const committedEntries = r.log.nextEnts(r.cfg.maxSizePerMsg);
    const rd: Ready = {
      softState: softStateEqual(soft, this.prevSoft) ? undefined : soft,
      hardState: hardStateEqual(hard, this.prevHard) ? undefined : hard,
      snapshot,
      entries,
      committedEntries,
      messages: this.capCommit(r.msgs, r.log.unstable.offset - 1),
      readStates: r.readStates,
      mustSync: entries.length > 0 || snapshot !== undefined || hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote,
    };
    this.checkReady(rd);
    r.msgs = [];
    r.readStates = [];
    this.prevSoft = soft;
    this.prevHard = hard;
    this.outstanding = rd;
    return rd;
  }

  /** Paired with ready(): committed entries never run past what is persisted or persisted by this Ready. */
  private checkReady(rd: Ready): void {
    const r = this.raft;
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    const first = rd.committedEntries[0];
    if (lastCommitted !== undefined && first !== undefined) {
      invariant(first.index === Math.max(r.log.applied + 1, r.log.firstIndex()), 'committed entries skip or repeat an index');
      invariant(lastCommitted.index <= r.log.committed, 'committed entries past the commit index');
    }
    if (rd.hardState !== undefined) invariant(rd.hardState.commit <= r.log.lastIndex(), 'hard state commit past the log');
  }

  /**
   * Caps the commit index that app and heartbeat messages carry at what this member has persisted. A leader
   * counts its own entries as matched as soon as it appends them (thesis 10.2.1), so a lone voter commits
   * entries of the very Ready that appends them, and the host may send a leader's messages before that Ready
   * is persisted: uncapped, a learner could apply an entry the leader then loses in a crash and replaces with
   * another (found by the simulation, finding R1; its regression seeds are in test/raft/sim.test.ts).
   * With two or more voters the cap does not bite under the Ready contract: a commit index covering the
   * leader's unpersisted entries needs acks of those entries, which come back while their Ready is out, so
   * the messages carrying it leave in a later Ready, after advance(). When it bites, advance() has the
   * leader broadcast its commit index (raft.bcastCommit), so learners hear of the commit in the next Ready.
   */
  private capCommit(msgs: Message[], persisted: number): Message[] {
    return msgs.map((m) => {
      if ((m.type !== 'app' && m.type !== 'heartbeat') || m.commit <= persisted) return m;
      this.commitCapped = true;
      return { ...m, commit: persisted };
    });
  }

  advance(rd: Ready): void {
    invariant(rd === this.outstanding, 'advance() with a Ready that is not the outstanding one');
    this.raft.advance(rd);
    this.outstanding = undefined;
    // The peers were told a lower commit index than the leader's: tell them the real one now that the
    // entries are handed to storage (the host sends it once they are durable). Without this a learner
    // of a lone voter learns of a commit (a promotion: it is a voter now) only at the next heartbeat.
    if (this.commitCapped) this.raft.bcastCommit();
    this.commitCapped = false;
    this.raft.checkInvariants();
  }

  status(): RaftStatus {
    return this.raft.status();
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.lead === b.lead && a.role === b.role;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
