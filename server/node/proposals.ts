// Proposals: client writes wrapped in log entries, their waiters, and raft's refusals mapped to etcd's.
import { ServerRefusal } from '../base/errors.js';
import { ProposalDroppedError } from '../raft/index.js';

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
