// The member set and its change rules (pure): what MemberAdd/Remove/Update/Promote may do given the
// current members, checked when proposed and again when applied (two changes may race in the log).
// A change travels in a raft ConfChange whose context is encodeChange().
import { ClientError } from '../base/errors.js';

export interface Member {
  readonly id: bigint;
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly clientURLs: readonly string[];
  readonly isLearner: boolean;
}

export type ChangeKind = 'add' | 'addLearner' | 'remove' | 'update' | 'promote';

/** What a conf-change entry carries beside raft's own fields. */
export interface MemberChange {
  readonly kind: ChangeKind;
  /** The proposal id the proposing member waits on (0n for bootstrap entries). */
  readonly requestId: bigint;
  readonly member: Member;
}

/** etcd's --max-learners default. */
export const MAX_LEARNERS = 1;

export function encodeChange(c: MemberChange): Uint8Array {
  const m = c.member;
  return Buffer.from(
    JSON.stringify({ kind: c.kind, requestId: c.requestId.toString(16), id: m.id.toString(16), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner }),
  );
}

export function decodeChange(b: Uint8Array): MemberChange {
  const v = JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown>;
  const strs = (x: unknown): string[] => {
    if (!Array.isArray(x) || !x.every((e) => typeof e === 'string')) throw new Error('membership: bad member change (urls)');
    return x;
  };
  const kinds: readonly ChangeKind[] = ['add', 'addLearner', 'remove', 'update', 'promote'];
  const kind = kinds.find((k) => k === v['kind']);
  if (kind === undefined || typeof v['id'] !== 'string' || typeof v['requestId'] !== 'string' || typeof v['name'] !== 'string' || typeof v['isLearner'] !== 'boolean') {
    throw new Error('membership: bad member change');
  }
  return {
    kind,
    requestId: BigInt(`0x${v['requestId']}`),
    member: { id: BigInt(`0x${v['id']}`), name: v['name'], peerURLs: strs(v['peerURLs']), clientURLs: strs(v['clientURLs']), isLearner: v['isLearner'] },
  };
}

function urlsTaken(members: readonly Member[], urls: readonly string[], except: bigint): boolean {
  const set = new Set(urls);
  return members.some((m) => m.id !== except && m.peerURLs.some((u) => set.has(u)));
}

/**
 * Throws the ClientError etcd would answer for this change, or returns. `removed` = ids removed
 * earlier (an id may never come back). `started` = members known to be up (for the quorum rule).
 */
export function checkChange(members: readonly Member[], removed: (id: bigint) => boolean, c: MemberChange): void {
  const cur = members.find((m) => m.id === c.member.id);
  switch (c.kind) {
    case 'add':
    case 'addLearner':
      if (cur !== undefined || removed(c.member.id)) throw new ClientError('memberIdExists');
      if (urlsTaken(members, c.member.peerURLs, 0n)) throw new ClientError('peerUrlExists');
      if (c.kind === 'addLearner' && members.filter((m) => m.isLearner).length >= MAX_LEARNERS) throw new ClientError('tooManyLearners');
      return;
    case 'remove':
      if (cur === undefined) throw new ClientError('memberNotFound');
      return;
    case 'update':
      if (cur === undefined) throw new ClientError('memberNotFound');
      if (urlsTaken(members, c.member.peerURLs, c.member.id)) throw new ClientError('peerUrlExists');
      return;
    case 'promote':
      if (cur === undefined) throw new ClientError('memberNotFound');
      if (!cur.isLearner) throw new ClientError('memberNotLearner');
      return;
  }
}

/** The member set after a checked change. */
export function applyChange(members: readonly Member[], c: MemberChange): Member[] {
  const others = members.filter((m) => m.id !== c.member.id);
  const cur = members.find((m) => m.id === c.member.id);
  switch (c.kind) {
    case 'add':
    case 'addLearner':
      return sortMembers([...others, { ...c.member, isLearner: c.kind === 'addLearner' }]);
    case 'remove':
      return others;
    case 'update':
      return cur === undefined ? others : sortMembers([...others, { ...cur, peerURLs: c.member.peerURLs }]);
    case 'promote':
      return cur === undefined ? others : sortMembers([...others, { ...cur, isLearner: false }]);
  }
}

export function sortMembers(ms: Member[]): Member[] {
  return ms.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * etcd's HealthInterval: a peer counts as connected for the strict reconfiguration check only once
 * its connection is at least this old (etcd's isConnectedSince(transport, now - HealthInterval)).
 */
export const HEALTH_INTERVAL_MS = 5_000;

/** What the strict reconfiguration check looks at (etcd's --strict-reconfig-check, on by default). */
export interface ReconfigView {
  readonly members: readonly Member[];
  readonly self: bigint;
  /** When the connection to a peer came up (ms since the epoch); undefined while it is down. */
  readonly activeSince: (id: bigint) => number | undefined;
  readonly nowMs: number;
}

/** 'ok', or the refusal etcd answers: ErrNotEnoughStartedMembers or ErrUnhealthy. */
export type ReconfigVerdict = 'ok' | 'notEnoughStarted' | 'unhealthy';

/** etcd's Member.IsStarted: the member has published its name (bootstrap members are named from the start). */
function isStarted(m: Member): boolean {
  return m.name !== '';
}

function voters(members: readonly Member[]): Member[] {
  return members.filter((m) => !m.isLearner);
}

/** etcd's numConnectedSince: voters (self included) whose connection is older than HEALTH_INTERVAL_MS. */
function connectedVoters(v: ReconfigView): number {
  const since = v.nowMs - HEALTH_INTERVAL_MS;
  return voters(v.members).filter((m) => {
    if (m.id === v.self) return true;
    const t = v.activeSince(m.id);
    return t !== undefined && t < since;
  }).length;
}

/**
 * etcd's mayAddMember: a voter only if the started voters stay a quorum once it is added (etcd's
 * IsReadyToAddVotingMember, which accepts a second voter beside one started member: growing a
 * one-member cluster); then, voter or learner, every voter connected for HEALTH_INTERVAL_MS.
 */
export function mayAdd(v: ReconfigView, isLearner: boolean): ReconfigVerdict {
  if (!isLearner) {
    const vs = voters(v.members);
    const nmembers = vs.length + 1;
    const nstarted = vs.filter(isStarted).length;
    const oneToTwo = nstarted === 1 && nmembers === 2;
    if (!oneToTwo && nstarted < Math.floor(nmembers / 2) + 1) return 'notEnoughStarted';
  }
  return connectedVoters(v) === voters(v.members).length ? 'ok' : 'unhealthy';
}

/**
 * etcd's mayRemoveMember: a learner always; a voter only if the other started voters stay a quorum
 * of the other voters (IsReadyToRemoveVotingMember); a peer that is down may go; otherwise the
 * connected voters without the removed one must still be a quorum of the voters after the removal.
 */
export function mayRemove(v: ReconfigView, id: bigint): ReconfigVerdict {
  const target = v.members.find((m) => m.id === id);
  if (target?.isLearner === true) return 'ok';
  const others = voters(v.members).filter((m) => m.id !== id);
  if (others.filter(isStarted).length < Math.floor(others.length / 2) + 1) return 'notEnoughStarted';
  if (id !== v.self && v.activeSince(id) === undefined) return 'ok';
  const n = voters(v.members).length;
  return connectedVoters(v) - 1 < 1 + Math.floor((n - 1) / 2) ? 'unhealthy' : 'ok';
}

/** etcd's IsReadyToPromoteMember: the learner counts as started; the started voters plus it must be a quorum. */
export function mayPromote(v: ReconfigView): ReconfigVerdict {
  const vs = voters(v.members);
  const nmembers = vs.length + 1;
  const nstarted = vs.filter(isStarted).length + 1;
  return nstarted < Math.floor(nmembers / 2) + 1 ? 'notEnoughStarted' : 'ok';
}
