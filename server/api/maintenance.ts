// The Maintenance service's Status, MoveLeader and HashKV (E v3rpc/maintenance.go). Alarm,
// Defragment, Hash, Snapshot and Downgrade are not registered yet (they answer UNIMPLEMENTED).
import {
  encodeHashKVResponse,
  encodeMoveLeaderResponse,
  encodeStatusResponse,
  type HashKVRequest,
  type MoveLeaderRequest,
} from '../../proto/gen/etcdserverpb.js';
import { ServerRefusal } from '../base/errors.js';
import { DEFAULT_QUOTA_BYTES } from '../base/limits.js';
import type { MaintenancePath } from '../node/index.js';
import { toGrpcError } from './errors.js';
import { currentHeader, type HeaderSource } from './header.js';

export interface MaintenanceApiOptions {
  /**
   * The etcd version this server reports as Status.version. Clients parse it: the Go client's
   * RejectOldCluster wants >= 3.2, kube-apiserver enables RequestWatchProgress only for a semver
   * >= 3.4.31 outside [3.5.0, 3.5.13).
   */
  readonly version: string;
  /** --quota-backend-bytes (0 = etcd's 2 GiB default), reported as dbSizeQuota. */
  readonly backendQuotaBytes: number;
}

export interface MaintenanceApi {
  readonly status: () => Uint8Array;
  readonly moveLeader: (r: MoveLeaderRequest) => Promise<Uint8Array>;
  readonly hashKV: (r: HashKVRequest) => Uint8Array;
}

/** Status.errors entry while the member knows no leader (etcd's ErrNoLeader text). */
const NO_LEADER = toGrpcError(new ServerRefusal('noLeader')).details;

export function maintenanceApi(m: MaintenancePath, hdr: HeaderSource, opts: MaintenanceApiOptions): MaintenanceApi {
  const dbSizeQuota = opts.backendQuotaBytes > 0 ? opts.backendQuotaBytes : DEFAULT_QUOTA_BYTES;
  return {
    status: () => {
      const s = m.status();
      return encodeStatusResponse({
        header: currentHeader(hdr),
        version: opts.version,
        dbSize: s.dbSizeBytes,
        leader: s.leader,
        raftIndex: s.raftIndex,
        raftTerm: s.raftTerm,
        raftAppliedIndex: s.raftAppliedIndex,
        errors: s.leader === 0n ? [NO_LEADER] : [],
        dbSizeInUse: s.dbSizeInUseBytes,
        isLearner: s.isLearner,
        dbSizeQuota,
      });
    },
    // etcd answers an empty MoveLeaderResponse (no header) once the target leads.
    moveLeader: async (r) => {
      await m.moveLeader(r.targetID);
      return encodeMoveLeaderResponse({});
    },
    // Header revision = the current revision (etcd's HashByRev returns it), hash_revision = the one hashed.
    hashKV: (r) => {
      const h = m.hashKV(r.revision);
      return encodeHashKVResponse({ header: currentHeader(hdr), hash: h.hash, compactRevision: h.compactRevision, hashRevision: h.hashRevision });
    },
  };
}
