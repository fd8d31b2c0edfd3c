// The configuration (voters, learners) and the leader's per-member progress, plus the votes of an
// election. Quorums are majorities of voters; learners never count.

import { invariant, compareIds } from './invariant.js';
import type { Progress } from './progress.js';
import type { ConfState, NodeId } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

export class ProgressTracker {
  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  readonly progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(readonly maxInflight: number) {}

  /** Every member (voters and learners) in id order: deterministic iteration. */
  ids(): NodeId[] {
    return [...this.progress.keys()].sort(compareIds);
  }

  voterIds(): NodeId[] {
    return [...this.voters].sort(compareIds);
  }

  isSingleton(self: NodeId): boolean {
    return this.voters.size === 1 && this.voters.has(self);
  }

  confState(): ConfState {
    return { voters: this.voterIds(), learners: [...this.learners].sort(compareIds) };
  }

  /** The largest index a majority of voters have matched (0 without voters). */
  committed(): number {
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    if (matches.length === 0) return 0;
    matches.sort((a, b) => b - a);
    return matches[Math.floor(matches.length / 2)] ?? 0;
  }

  /** Outcome of yes/no answers among the voters (answers of non-voters are ignored). */
  voteResult(answers: ReadonlyMap<NodeId, boolean>): VoteResult {
    if (this.voters.size === 0) return 'won';
    let granted = 0;
    let missing = 0;
    for (const id of this.voters) {
      const v = answers.get(id);
      if (v === undefined) missing++;
      else if (v) granted++;
    }
    const q = Math.floor(this.voters.size / 2) + 1;
    if (granted >= q) return 'won';
    if (granted + missing >= q) return 'pending';
    return 'lost';
  }

  quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) if (!pr.isLearner) active.set(id, pr.recentActive);
    return this.voteResult(active) === 'won';
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): VoteResult {
    return this.voteResult(this.votes);
  }

  /** Voters and learners are disjoint and each has a progress of the right kind. */
  check(): void {
    for (const id of this.voters) {
      invariant(!this.learners.has(id), `member ${id} is both voter and learner`);
      invariant(this.progress.get(id)?.isLearner === false, `voter ${id} without a voter progress`);
    }
    for (const id of this.learners) invariant(this.progress.get(id)?.isLearner === true, `learner ${id} without a learner progress`);
    invariant(this.progress.size === this.voters.size + this.learners.size, 'progress for a non-member');
  }
}
