// Fail-stop (issue 17 item 3): what stops the member, and the short, explicit list of refusals that do
// not. An error out of the Ready -> WAL -> transport -> apply pipeline is either a storage fault (the
// disk failed us: exit 1, restart recovers from the WAL and the peers) or a bug (a raft invariant, an
// assertion, anything unexpected: exit 70). A bug is never relabelled a storage fault.
import { AssertionFailure, StorageFault } from '../base/errors.js';
import { WalFatalError } from '../wal/index.js';
import { ProposalDroppedError, StepRefusedError } from '../raft/index.js';

/** An operating-system I/O error (EIO, ENOSPC, EROFS, ...): the storage under us failed. */
function isSystemIoError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/**
 * The cause the member stops with: storage faults as they are; anything else becomes an
 * AssertionFailure (a bug) carrying the original error as its cause.
 */
export function fatalCause(err: unknown): StorageFault | WalFatalError | AssertionFailure {
  if (err instanceof StorageFault || err instanceof WalFatalError || err instanceof AssertionFailure) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  if (isSystemIoError(e)) return new StorageFault(`node: I/O error: ${e.message}`, { cause: e });
  return new AssertionFailure(`node: unexpected error in the raft pipeline: ${e.message}`, { cause: e });
}

/**
 * The known, benign refusals raft gives a peer's message, dropped with a warning; the only ones. Stale
 * terms, misaddressed or malformed messages and responses from non-members raft ignores by itself
 * (RawNode.step), and messages from removed members the transport refuses before raft sees them.
 * - StepRefusedError: the peer sent a message type only the local host may step (a peer's bug, not ours).
 * - ProposalDroppedError: a forwarded proposal raft could not take (no leader, transfer, ...): the
 *   proposer times out, as in etcd.
 */
export function isBenignStepRefusal(err: unknown): boolean {
  return err instanceof StepRefusedError || err instanceof ProposalDroppedError;
}
