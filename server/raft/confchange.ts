// Membership changes, one member at a time (etcd's ConfChange v1): the entry codec and how a change (or a
// snapshot's ConfState) rebuilds the tracker's configuration.

import { invariant } from './invariant.js';
import { Progress } from './progress.js';
import type { ProgressTracker } from './tracker.js';
import { NONE, type ConfChange, type ConfChangeType, type ConfState, type NodeId } from './types.js';

const TYPE_CODES: readonly ConfChangeType[] = ['addNode', 'addLearner', 'removeNode', 'updateNode'];
const HEADER_BYTES = 9;
const ID_MAX = (1n << 64n) - 1n;

/** [type u8 (0 addNode, 1 addLearner, 2 removeNode, 3 updateNode)] [nodeId u64 big-endian] [context...] */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const code = TYPE_CODES.indexOf(cc.type);
  if (code < 0) throw new Error(`raft: unknown conf change type ${String(cc.type)}`);
  if (cc.nodeId < 0n || cc.nodeId > ID_MAX) throw new Error(`raft: conf change node id ${cc.nodeId} is not a u64`);
  const out = new Uint8Array(HEADER_BYTES + cc.context.byteLength);
  out[0] = code;
  new DataView(out.buffer).setBigUint64(1, cc.nodeId, false);
  out.set(cc.context, HEADER_BYTES);
  return out;
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  if (b.byteLength < HEADER_BYTES) throw new Error(`raft: malformed conf change: ${b.byteLength} bytes, need at least ${HEADER_BYTES}`);
  const type = TYPE_CODES[b[0] ?? 255];
  if (type === undefined) throw new Error(`raft: malformed conf change: unknown type code ${String(b[0])}`);
  const nodeId = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(1, false);
  return { type, nodeId, context: b.slice(HEADER_BYTES) };
}

/** Applies one change to the tracker; lastIndex seeds a new member's progress (probed at the last index). */
export function applyToTracker(t: ProgressTracker, cc: ConfChange, lastIndex: number): void {
  if (cc.nodeId === NONE) return; // etcd: a zeroed change is a no-op (the host chose not to apply it)
  const dropsVoter = cc.type === 'removeNode' || cc.type === 'addLearner';
  if (dropsVoter && t.voters.size === 1 && t.voters.has(cc.nodeId)) {
    throw new Error(`raft: conf change ${cc.type} ${cc.nodeId} would remove all voters`);
  }
  switch (cc.type) {
    case 'addNode':
      makeVoter(t, cc.nodeId, lastIndex);
      break;
    case 'addLearner':
      makeLearner(t, cc.nodeId, lastIndex);
      break;
    case 'removeNode':
      t.voters.delete(cc.nodeId);
      t.learners.delete(cc.nodeId);
      t.progress.delete(cc.nodeId);
      break;
    case 'updateNode':
      break;
  }
  t.check();
}

/** Rebuilds the configuration of an empty tracker from a ConfState (start-up, snapshot restore). */
export function restoreTracker(t: ProgressTracker, cs: ConfState, lastIndex: number): void {
  invariant(t.progress.size === 0, 'restore into a non-empty tracker');
  for (const id of cs.voters) makeVoter(t, id, lastIndex);
  for (const id of cs.learners) {
    invariant(!t.voters.has(id), `conf state lists ${id} as voter and learner`);
    makeLearner(t, id, lastIndex);
  }
  t.check();
}

function newProgress(t: ProgressTracker, lastIndex: number, isLearner: boolean): Progress {
  // etcd: probe at the last index; a new member counts as recently active so check-quorum spares it.
  return new Progress(Math.max(lastIndex, 1), t.maxInflight, isLearner, true);
}

function makeVoter(t: ProgressTracker, id: NodeId, lastIndex: number): void {
  invariant(id !== NONE, 'member id 0');
  const pr = t.progress.get(id);
  if (pr === undefined) t.progress.set(id, newProgress(t, lastIndex, false));
  else pr.isLearner = false; // promotion keeps the learner's progress
  t.learners.delete(id);
  t.voters.add(id);
}

function makeLearner(t: ProgressTracker, id: NodeId, lastIndex: number): void {
  invariant(id !== NONE, 'member id 0');
  const pr = t.progress.get(id);
  if (pr === undefined) t.progress.set(id, newProgress(t, lastIndex, true));
  else pr.isLearner = true; // v1 addLearner on a voter demotes it (etcd raft allows it; etcd server refuses)
  t.voters.delete(id);
  t.learners.add(id);
}
