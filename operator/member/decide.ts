// The member entrypoint's start decision (pure): from what the pod finds (data on its volume, the
// marker of an earlier start, the operator's bootstrap grant on its Pod, the member list) to one of
// start-with-data, bootstrap-alone, join, or wait. Pod 0 with a wiped volume cannot bootstrap a second
// cluster: bootstrapping needs the grant (set by the operator only while creating, before any member
// answered, and revoked after) AND a volume that never held a member (no marker). A cluster restored
// from a backup restores instead of bootstrapping, and moves another cluster's data (a retained
// volume of a deleted cluster of the same name: its marker names another cluster token) aside first.

export interface Facts {
  podName: string;
  peerURL: string;
  token: string;
  /** The data dir holds a member's data. */
  hasData: boolean;
  /** The volume was used by a started member before (the marker file exists). */
  marker: boolean;
  /** The bootstrap grant annotation's value on this Pod. */
  grant: string | undefined;
  /** The member list from the client Service; undefined when none answered. */
  members: ReadonlyArray<{ id: string; name: string; peerURLs: readonly string[] }> | undefined;
  /** The cluster restores from a backup (CAIRN_RESTORE is set): pod 0 restores instead of bootstrapping. */
  restore?: boolean;
  /** The volume holds a member's data or marker of another cluster (another token, or none recorded). */
  foreign?: boolean;
  /** A quorum-loss recovery's order is set (CAIRN_RECOVER): another token's data is moved aside, as for a restore. */
  recovering?: boolean;
}

export type Decision =
  | { kind: 'start'; why: string }
  | { kind: 'bootstrap'; initialCluster: string; why: string }
  /** Restore the backup into the (empty) data dir, then start as a one-member cluster. */
  | { kind: 'restore'; initialCluster: string; why: string }
  /** Move another cluster's data and marker aside first (a restored cluster never starts on them). */
  | { kind: 'moveAside'; why: string }
  | { kind: 'join'; initialCluster: string; memberId: string; why: string }
  | { kind: 'wait'; why: string; dataLost?: boolean };

export function decide(f: Facts): Decision {
  if (f.recovering === true && f.foreign === true) return { kind: 'moveAside', why: 'the volume holds data of the cluster before its quorum-loss recovery (the old cluster token): moving it aside, never starting it' };
  if (f.restore === true && f.foreign === true) return { kind: 'moveAside', why: 'the volume holds data of another cluster (a retained volume of a deleted cluster of this name): moving it aside before restoring' };
  if (f.hasData) return { kind: 'start', why: 'the data dir holds this member' };
  const self = f.members?.find((m) => m.peerURLs.includes(f.peerURL));
  if (self !== undefined) {
    if (self.name !== '' && self.name === f.podName) {
      return { kind: 'wait', why: `member ${self.id} was started before but its data is gone; waiting for the operator to replace it`, dataLost: true };
    }
    const initialCluster = (f.members ?? [])
      .flatMap((m) => m.peerURLs.map((u) => `${m.peerURLs.includes(f.peerURL) ? f.podName : m.name}=${u}`))
      .join(',');
    return { kind: 'join', initialCluster, memberId: self.id, why: `listed as ${self.id}: joining` };
  }
  if (f.grant === f.token && !f.marker && (f.members === undefined || f.members.length === 0)) {
    if (f.restore === true) return { kind: 'restore', initialCluster: `${f.podName}=${f.peerURL}`, why: 'granted by the operator: restoring the backup into a new one-member cluster' };
    return { kind: 'bootstrap', initialCluster: `${f.podName}=${f.peerURL}`, why: 'granted by the operator: bootstrapping a new one-member cluster' };
  }
  return { kind: 'wait', why: 'waiting to be added' };
}

/** A server log line saying this member's data belongs to a removed member. */
export function isRemovedMessage(line: string): boolean {
  return line.includes('permanently removed from the cluster') || line.includes('this member was removed from the cluster');
}
