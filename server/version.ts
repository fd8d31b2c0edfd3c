/** Cairn's own release. */
export const CAIRN_VERSION = '0.1.0';

/**
 * The etcd version Cairn reports (Maintenance.Status `version`): clients detect features from it (the
 * Go client rejects < 3.2; kube-apiserver enables RequestWatchProgress for >= 3.4.31 outside
 * [3.5.0, 3.5.13)). Cairn serves the v3 API with etcd 3.5's watch-progress semantics.
 */
export const ETCD_COMPAT_VERSION = '3.5.17';
