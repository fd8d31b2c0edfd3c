// Who this member is and where its log starts: a brand-new cluster (`--initial-cluster-state new`:
// every member computes the same ids and writes the same bootstrap entries, as etcd), a member joining
// a running cluster (`existing`: learns the cluster id and member list from its peers), or a restart
// (everything comes from the data dir; the flags are ignored, as etcd ignores them).
import { META, decodeId, decodeNum, encodeId } from '../storage/schema/index.js';
import type { Backend } from '../storage/backend/index.js';
import { computeClusterId, computeMemberId, encodeChange, parseInitialCluster, sortMembers, type Member } from '../membership/index.js';
import { encodeConfChange, type Entry, type HardState } from '../raft/index.js';
import { Transport } from '../transport/index.js';
import { StorageFault } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import type { TlsConfig } from '../base/tls.js';
import { MEMBERS_KIND, decodeMembersAnswer, membersRequestBody } from './peer.js';

export interface ClusterFlags {
  readonly name: string;
  readonly initialCluster: string;
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: readonly string[];
}

export interface Identity {
  readonly clusterId: bigint;
  readonly memberId: bigint;
  /** Peers to dial before the member table says otherwise (bootstrap and join). */
  readonly knownPeers: readonly Member[];
  /** Entries to write to the empty WAL (a new cluster's member list, committed at term 1). */
  readonly bootstrap: { entries: Entry[]; hardState: HardState } | undefined;
}

/** Thrown for flag combinations etcd refuses at start (exit with a clear message). */
export class BootstrapError extends Error {
  override readonly name = 'BootstrapError';
}

export async function establishIdentity(backend: Backend, flags: ClusterFlags, log: Logger, peerTls?: TlsConfig): Promise<Identity> {
  const meta = backend.table('meta');
  const cluster = decodeId(meta.get(META.clusterId));
  const member = decodeId(meta.get(META.memberId));
  if (cluster !== undefined && member !== undefined) return { clusterId: cluster, memberId: member, knownPeers: [], bootstrap: undefined };
  if (decodeNum(meta.get(META.appliedIndex), 0) !== 0) throw new StorageFault('node: backend has applied entries but no member id');
  const id = flags.initialClusterState === 'new' ? newCluster(flags) : await joinCluster(flags, log, peerTls);
  backend.write(() => {
    meta.put(META.clusterId, encodeId(id.clusterId));
    meta.put(META.memberId, encodeId(id.memberId));
  });
  return id;
}

function sameUrls(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((u, i) => u === y[i]);
}

function newCluster(flags: ClusterFlags): Identity {
  let byName: Map<string, string[]>;
  try {
    byName = parseInitialCluster(flags.initialCluster);
  } catch (err) {
    throw new BootstrapError(err instanceof Error ? err.message : String(err));
  }
  const mine = byName.get(flags.name);
  if (mine === undefined) throw new BootstrapError(`couldn't find local name "${flags.name}" in the initial cluster configuration`);
  if (!sameUrls(mine, flags.initialAdvertisePeerUrls)) {
    throw new BootstrapError(`--initial-cluster has ${flags.name}=${mine.join(',')} but missing from --initial-advertise-peer-urls=${flags.initialAdvertisePeerUrls.join(',')}`);
  }
  const members = sortMembers(
    [...byName].map(([name, urls]) => ({ id: computeMemberId(urls, flags.initialClusterToken), name, peerURLs: urls, clientURLs: [], isLearner: false })),
  );
  const self = members.find((m) => m.name === flags.name);
  if (self === undefined) throw new BootstrapError('internal: own member missing');
  const entries: Entry[] = members.map((m, i) => ({
    index: i + 1,
    term: 1,
    type: 'confChange',
    data: encodeConfChange({ type: 'addNode', nodeId: m.id, context: encodeChange({ kind: 'add', requestId: 0n, member: m }) }),
  }));
  return {
    clusterId: computeClusterId(members.map((m) => m.id)),
    memberId: self.id,
    knownPeers: members,
    bootstrap: { entries, hardState: { term: 1, vote: 0n, commit: entries.length } },
  };
}

const JOIN_FETCH_TIMEOUT_MS = 2000;

async function joinCluster(flags: ClusterFlags, log: Logger, peerTls: TlsConfig | undefined): Promise<Identity> {
  let byName: Map<string, string[]>;
  try {
    byName = parseInitialCluster(flags.initialCluster);
  } catch (err) {
    throw new BootstrapError(err instanceof Error ? err.message : String(err));
  }
  const own = new Set(flags.initialAdvertisePeerUrls);
  const urls = [...byName.values()].flat().filter((u) => !own.has(u));
  const errors: string[] = [];
  for (const url of urls) {
    try {
      const reply = decodeMembersAnswer(await Transport.requestUrl(url, MEMBERS_KIND, membersRequestBody(), JOIN_FETCH_TIMEOUT_MS, 0n, peerTls));
      const self = reply.members.find((m) => sameUrls(m.peerURLs, flags.initialAdvertisePeerUrls));
      if (self === undefined) {
        throw new BootstrapError(`member with peer URLs ${flags.initialAdvertisePeerUrls.join(',')} is not in the cluster's member list (add it with member add first)`);
      }
      log.info('joining an existing cluster', { 'cluster-id': reply.clusterId.toString(16), 'member-id': self.id.toString(16), 'fetched-from': url, members: reply.members.length });
      return { clusterId: reply.clusterId, memberId: self.id, knownPeers: reply.members, bootstrap: undefined };
    } catch (err) {
      if (err instanceof BootstrapError) throw err;
      errors.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new BootstrapError(`cannot fetch cluster info from peer urls (${errors.join('; ') || 'no peers in --initial-cluster'})`);
}
