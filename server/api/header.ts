// The response header of the Cluster and Maintenance services: the member's identity (term read at
// call time) and the store's current revision, as etcd's header.fill does.
import type { ResponseHeaderInit } from '../../proto/gen/etcdserverpb.js';
import { header, type Identity } from '../node/index.js';

export interface HeaderSource {
  readonly identity: Identity;
  /** The store's current revision. */
  currentRevision(): number;
}

export function currentHeader(src: HeaderSource): ResponseHeaderInit {
  return header(src.identity, src.currentRevision());
}
