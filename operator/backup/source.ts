// Which member a backup streams from: a healthy voting member, a follower before the leader (the
// leader serves the writes; a snapshot stream costs disk reads and bandwidth), never a learner.
// Pure: the caller observed the members (Status through the etcd API).
export interface SourceCandidate {
  readonly endpoint: string;
  readonly memberId: string;
  readonly leaderId: string;
  readonly isLearner: boolean;
  readonly healthy: boolean;
  readonly revision: number;
}

/** Candidates in the order to try: healthy followers (most caught up first), then the leader. */
export function sourceOrder(members: readonly SourceCandidate[]): SourceCandidate[] {
  const voters = members.filter((m) => m.healthy && !m.isLearner);
  const followers = voters.filter((m) => m.memberId !== m.leaderId).sort((a, b) => b.revision - a.revision || a.endpoint.localeCompare(b.endpoint));
  const leaders = voters.filter((m) => m.memberId === m.leaderId);
  return [...followers, ...leaders];
}
