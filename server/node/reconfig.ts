// Membership changes (the Cluster service's MemberAdd/Remove/Update/Promote): etcd's strict
// reconfiguration checks, the conf change proposal and its waiter (proposed again until applied), a
// follower's MemberPromote forwarded to the leader, and what an applied change does to raft and the
// transport. Bounded: CONF_CHANGES_PENDING_MAX changes waiting; each waits at most the request timeout.
import type { RawNode, ConfChange } from '../raft/index.js';
import { ProposalDroppedError } from '../raft/index.js';
import type { Transport } from '../transport/index.js';
import { computeMemberId, checkChange, encodeChange, mayAdd, mayPromote, mayRemove, type Member, type MemberChange, type MemberStore, type ReconfigVerdict, type ReconfigView } from '../membership/index.js';
import { ClientError, ServerRefusal } from '../base/errors.js';
import { CONF_CHANGES_PENDING_MAX } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import type { RequestIds } from './ids.js';
import { dropped } from './proposals.js';
import { nodeStats } from './stats.js';
import type { MemberInfo } from './surface.js';

/** A membership change not applied after this many election timeouts is proposed again. */
const CONF_REPROPOSE_ELECTIONS = 2;

/** Throws etcd's refusal for a failed strict reconfiguration check. */
function refuseReconfig(v: ReconfigVerdict): void {
  if (v === 'notEnoughStarted') throw new ClientError('notEnoughStarted');
  if (v === 'unhealthy') throw new ServerRefusal('unhealthy');
}

interface ConfWaiter {
  readonly resolve: (members: Member[]) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
  /** The proposal, proposed again until it is applied (see reproposeConfChanges). */
  readonly cc: ConfChange;
  readonly retry: NodeJS.Timeout;
}

/** A member added later gets etcd's id: its peer URLs, the token and the current time hashed. */
function computeAddedId(peerURLs: readonly string[], token: string): bigint {
  return computeMemberId(peerURLs, token, Math.floor(Date.now() / 1000));
}

export interface ReconfigHost {
  readonly cfg: NodeConfig;
  readonly memberId: bigint;
  readonly members: MemberStore;
  readonly ids: RequestIds;
  readonly reqTimeoutMs: number;
  raft(): RawNode;
  transport(): Transport;
  isLeader(): boolean;
  stopped(): boolean;
  kick(): void;
  fail(err: unknown): void;
  /** A follower's MemberPromote, decided by the leader (peer.ts); its refusals come back as ClientErrors. */
  forwardPromote(id: bigint): Promise<void>;
  waitApplied(index: number): Promise<void>;
  /** This member was removed: it stops. */
  removed(why: string): void;
}

export class Reconfig {
  private readonly confWaiters = new Map<bigint, ConfWaiter>();

  constructor(private readonly host: ReconfigHost) {}

  /** Stopping: every change waiting ends with err. */
  failAll(err: Error): void {
    for (const w of this.confWaiters.values()) {
      clearTimeout(w.timer);
      clearInterval(w.retry);
      w.reject(err);
    }
    this.confWaiters.clear();
  }

  async add(peerURLs: readonly string[], isLearner: boolean): Promise<{ member: MemberInfo; members: MemberInfo[] }> {
    const member: Member = { id: computeAddedId(peerURLs, this.host.cfg.cluster.initialClusterToken), name: '', peerURLs: [...peerURLs], clientURLs: [], isLearner };
    const members = await this.propose({ kind: isLearner ? 'addLearner' : 'add', requestId: this.host.ids.next(), member }, isLearner ? 'addLearner' : 'addNode');
    return { member, members };
  }

  remove(id: bigint): Promise<MemberInfo[]> {
    const cur = this.host.members.get(id);
    const member: Member = cur ?? { id, name: '', peerURLs: [], clientURLs: [], isLearner: false };
    return this.propose({ kind: 'remove', requestId: this.host.ids.next(), member }, 'removeNode');
  }

  update(id: bigint, peerURLs: readonly string[]): Promise<MemberInfo[]> {
    const cur = this.host.members.get(id);
    const member: Member = { id, name: cur?.name ?? '', peerURLs: [...peerURLs], clientURLs: cur?.clientURLs ?? [], isLearner: cur?.isLearner ?? false };
    return this.propose({ kind: 'update', requestId: this.host.ids.next(), member }, 'updateNode');
  }

  async promote(id: bigint): Promise<MemberInfo[]> {
    const cur = this.host.members.get(id);
    if (cur === undefined) throw new ClientError('memberNotFound');
    if (!cur.isLearner) throw new ClientError('memberNotLearner');
    if (!this.host.isLeader()) {
      await this.host.forwardPromote(id);
      await this.host.waitApplied(this.host.raft().status().hardState.commit);
      return this.host.members.all();
    }
    if (!this.learnerReady(id)) throw new ClientError('learnerNotReady');
    if (this.strictReconfig()) refuseReconfig(mayPromote(this.reconfigView()));
    const members = await this.propose({ kind: 'promote', requestId: this.host.ids.next(), member: cur }, 'addNode');
    nodeStats.learnersPromoted++;
    return members;
  }

  /** etcd: a learner may be promoted once its match index is at least 90% of the leader's. */
  private learnerReady(id: bigint): boolean {
    const st = this.host.raft().status();
    const p = st.progress.get(id);
    const mine = st.progress.get(this.host.memberId);
    if (p === undefined || mine === undefined) return false;
    return p.match >= mine.match * 0.9;
  }

  /** etcd's --strict-reconfig-check (default on). */
  private strictReconfig(): boolean {
    return this.host.cfg.strictReconfigCheck !== false;
  }

  private reconfigView(): ReconfigView {
    return { members: this.host.members.all(), self: this.host.memberId, activeSince: (id) => this.host.transport().activeSince(id), nowMs: Date.now() };
  }

  private propose(change: MemberChange, type: ConfChange['type']): Promise<Member[]> {
    if (this.host.stopped()) return Promise.reject(new ServerRefusal('stopped'));
    if (this.confWaiters.size >= CONF_CHANGES_PENDING_MAX) return Promise.reject(new ServerRefusal('tooManyRequests'));
    if (this.strictReconfig()) {
      // etcd checks these before the change is proposed, and validates it only when applied.
      const view = this.reconfigView();
      if (change.kind === 'add' || change.kind === 'addLearner') refuseReconfig(mayAdd(view, change.kind === 'addLearner'));
      else if (change.kind === 'remove') refuseReconfig(mayRemove(view, change.member.id));
    }
    checkChange(this.host.members.all(), (id) => this.host.members.isRemoved(id), change);
    const cc: ConfChange = { type, nodeId: change.member.id, context: encodeChange(change) };
    return new Promise<Member[]>((resolve, reject) => {
      // Proposed while this member knows no leader (an election after the leader's removal, say):
      // as a client proposal, the change waits for a leader (repropose at the next one) until the
      // request times out, then fails with "no leader" if none came.
      let leaderless = false;
      try {
        this.host.raft().proposeConfChange(cc);
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) this.host.fail(err);
        if (!(err instanceof ProposalDroppedError && err.reason === 'noLeader')) {
          reject(dropped(err));
          return;
        }
        leaderless = true;
      }
      const retry = setInterval(() => this.repropose(), CONF_REPROPOSE_ELECTIONS * this.host.cfg.electionMs);
      const timer = setTimeout(() => {
        this.confWaiters.delete(change.requestId);
        clearInterval(retry);
        reject(new ServerRefusal(leaderless && this.host.raft().status().softState.lead === 0n ? 'noLeader' : 'timeout'));
      }, this.host.reqTimeoutMs);
      this.confWaiters.set(change.requestId, { resolve, reject, timer, cc, retry });
      this.host.kick();
    });
  }

  /**
   * Proposes the membership changes still waiting to be applied once more. A proposal forwarded to a
   * leader that is gone (removed, killed) or that had another change pending is lost without a word,
   * and etcd's caller then times out ("request timed out"); a change is safe to propose twice because
   * the second copy fails checkChange when applied (the member exists, is gone, or is no learner) and
   * changes nothing, so Cairn proposes again at every new leader and every few election timeouts.
   */
  repropose(): void {
    if (this.host.stopped() || this.confWaiters.size === 0 || this.host.raft().status().softState.lead === 0n) return;
    for (const w of this.confWaiters.values()) {
      try {
        this.host.raft().proposeConfChange(w.cc);
      } catch (err) {
        // No leader or a change pending at the leader: the next leader or the next interval retries.
        if (!(err instanceof ProposalDroppedError)) this.host.fail(err);
      }
    }
    this.host.kick();
  }

  applied(cc: ConfChange, change: MemberChange, error: ClientError | undefined): void {
    const w = this.confWaiters.get(change.requestId);
    if (w !== undefined) {
      this.confWaiters.delete(change.requestId);
      clearTimeout(w.timer);
      clearInterval(w.retry);
    }
    if (error !== undefined) {
      w?.reject(error);
      return;
    }
    this.host.raft().applyConfChange(cc);
    const id = change.member.id;
    if (id !== this.host.memberId) {
      if (change.kind === 'remove') this.host.transport().removePeer(id);
      else if (change.kind === 'add' || change.kind === 'addLearner') this.host.transport().addPeer(id, [...change.member.peerURLs]);
      else if (change.kind === 'update') this.host.transport().updatePeer(id, [...change.member.peerURLs]);
    }
    this.host.cfg.logger.info('applied a membership change', { change: change.kind, member: id.toString(16), 'peer-urls': change.member.peerURLs });
    w?.resolve(this.host.members.all());
    if (change.kind === 'remove' && id === this.host.memberId) this.host.removed('this member was removed from the cluster');
  }

}
