/** Cairn's own release. */
export const CAIRN_VERSION = '0.1.0';

/**
 * The etcd version Cairn reports (Maintenance.Status `version`, /version, etcd_server_version, the
 * "etcd Version:" line of --version): clients and tools detect features from it. The Go client rejects
 * < 3.2; kube-apiserver 1.34 reads it for one feature only, RequestWatchProgress (on for >= 3.4.31
 * outside [3.5.0, 3.5.13): the same answer for 3.5.17 and 3.6.8, checked in
 * k8s.io/apiserver/pkg/storage/feature); etcd 3.6's e2e framework gates 3.6 flags on it. Cairn serves
 * etcd 3.6.8's v3 API, flags and Status fields (storageVersion, dbSizeQuota).
 */
export const ETCD_COMPAT_VERSION = '3.6.8';

/** The cluster version etcd reports beside it (/version's etcdcluster, etcd_cluster_version): "3.6.0". */
export const ETCD_CLUSTER_VERSION = `${ETCD_COMPAT_VERSION.split('.').slice(0, 2).join('.')}.0`;
