// The Cluster service (E v3rpc/member.go). Each handler: check the request (pure), call the node,
// map the error (server.ts), fill the header. Member lists are sorted by id; a member that has not
// started yet has no name and no client URLs (node/ reports them empty).
//
// Header: cluster id, member id and raft term; revision 0, as the reference etcd 3.4 answers
// (etcd 3.5+ fills the current revision). MemberAdd's `member` carries id, peer URLs and the learner flag only, as etcd's.
import {
  encodeMemberAddResponse,
  encodeMemberListResponse,
  encodeMemberPromoteResponse,
  encodeMemberRemoveResponse,
  encodeMemberUpdateResponse,
  type MemberAddRequest,
  type MemberInit,
  type MemberListRequest,
  type MemberPromoteRequest,
  type MemberRemoveRequest,
  type MemberUpdateRequest,
} from '../../proto/gen/etcdserverpb.js';
import type { ClusterPath, MemberInfo } from '../node/index.js';
import { currentHeader, type HeaderSource } from './header.js';

function clusterHeader(hdr: HeaderSource): ReturnType<typeof currentHeader> {
  return { ...currentHeader(hdr), revision: 0 };
}
import { checkPeerUrls } from './validate.js';

export interface ClusterApi {
  readonly memberAdd: (r: MemberAddRequest) => Promise<Uint8Array>;
  readonly memberRemove: (r: MemberRemoveRequest) => Promise<Uint8Array>;
  readonly memberUpdate: (r: MemberUpdateRequest) => Promise<Uint8Array>;
  readonly memberList: (r: MemberListRequest) => Uint8Array | Promise<Uint8Array>;
  readonly memberPromote: (r: MemberPromoteRequest) => Promise<Uint8Array>;
}

function byId(a: MemberInfo, b: MemberInfo): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** etcd's membersToProtoMembers over the member list sorted by id. */
export function toProtoMembers(members: readonly MemberInfo[]): MemberInit[] {
  return [...members].sort(byId).map((m) => ({ ID: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner }));
}

/** A linearizable read barrier (node's ReadIndex wait): undefined when this member may answer at once. */
export interface ReadBarrier {
  linearizableRead(): Promise<void> | undefined;
}

export function clusterApi(cluster: ClusterPath, hdr: HeaderSource, reads?: ReadBarrier): ClusterApi {
  const list = (): Uint8Array => encodeMemberListResponse({ header: clusterHeader(hdr), members: toProtoMembers(cluster.members()) });
  return {
    memberAdd: async (r) => {
      const peerURLs = checkPeerUrls(r.peerURLs);
      const { member, members } = await cluster.addMember(peerURLs, r.isLearner);
      return encodeMemberAddResponse({
        header: clusterHeader(hdr),
        member: { ID: member.id, peerURLs: member.peerURLs, isLearner: member.isLearner },
        members: toProtoMembers(members),
      });
    },
    memberRemove: async (r) => {
      const members = await cluster.removeMember(r.ID);
      return encodeMemberRemoveResponse({ header: clusterHeader(hdr), members: toProtoMembers(members) });
    },
    memberUpdate: async (r) => {
      // etcd stores the URLs as given, unchecked; Cairn refuses those its peers could never dial
      // (same rule as MemberAdd) but keeps valid ones exactly as sent.
      checkPeerUrls(r.peerURLs);
      const members = await cluster.updateMember(r.ID, r.peerURLs);
      return encodeMemberUpdateResponse({ header: clusterHeader(hdr), members: toProtoMembers(members) });
    },
    // `linearizable` (etcd 3.6): the list after a ReadIndex wait, so it holds every change committed
    // before the call (etcd's LinearizableReadNotify); without it, this member's applied view.
    memberList: (r) => {
      const barrier = r.linearizable ? reads?.linearizableRead() : undefined;
      return barrier === undefined ? list() : barrier.then(list);
    },
    memberPromote: async (r) => {
      const members = await cluster.promoteMember(r.ID);
      return encodeMemberPromoteResponse({ header: clusterHeader(hdr), members: toProtoMembers(members) });
    },
  };
}
