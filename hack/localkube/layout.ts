// Where localkube puts things, the addresses it uses and what it records at `up` for `down`.
// One localkube per machine (cni0, the node address and the iptables chains are machine-wide).
import { join } from 'node:path';

/** A bridge with no ports that carries the node address (this VM has no dummy interfaces). */
export const HOST_IF = 'lkube0';
/** The node's address: kube-apiserver, the kubelet and CoreDNS listen here; pods reach it. */
export const NODE_IP = '10.200.0.1';
export const NODE_NAME = 'localkube';
/** The CNI bridge plugin's bridge and the node's pod range on it. */
export const POD_IF = 'cni0';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const NODE_POD_CIDR = '10.244.0.0/24';
export const SERVICE_CIDR = '10.96.0.0/12';
export const DNS_SERVICE_IP = '10.96.0.10';
export const APISERVER_PORT = 6443;
export const COREDNS_PORT = 1053;
export const COREDNS_HEALTH = '127.0.0.1:18080';
export const COREDNS_READY = '127.0.0.1:18181';
export const STORE_CLIENT_PORT = 22379;
export const STORE_PEER_PORT = 22380;
/** Every pod cgroup lives under this name in each cgroup v1 hierarchy (kubelet cgroupRoot). */
export const CGROUP_ROOT = 'cairn-localkube';
/** The nftables table that keeps pod traffic off every interface but the pod bridge. */
export const NFT_TABLE = 'cairn_localkube';
/** The sandbox image containerd runs for every pod (built from hack/localkube/pause.c). */
export const PAUSE_IMAGE = 'localhost/cairn/pause:3.10';
export const CAIRN_IMAGE = 'localhost/cairn:dev';
export const CNI_NETWORK = 'localkube';
export const CNI_BIN_DIR = '/usr/lib/cni';

/** Kernel settings the components change: recorded at up, put back at down. */
export const SYSCTLS = [
  'net/ipv4/ip_forward',
  'net/ipv6/conf/all/forwarding',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'net/ipv4/conf/all/route_localnet',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
] as const;

/** Host paths components create outside the state dir: removed at down when absent at up. */
export const HOST_PATHS = ['/run/containerd', '/var/lib/cni', '/var/log/containers', '/run/netns', '/etc/cni'] as const;

export type Store = 'cairn' | 'etcd';

export interface ProcRecord {
  readonly pid: number;
  /** /proc/<pid>/stat start time: a recycled pid is never mistaken for ours. */
  readonly start: string;
}

export interface State {
  readonly dir: string;
  readonly store: Store;
  readonly startedAtMs: number;
  /** Values before up, by /proc/sys path; absent keys did not exist. */
  readonly sysctls: Record<string, string>;
  /** HOST_PATHS that did not exist before up. */
  readonly createdPaths: string[];
  /** nftables tables ("family name") before up: tables created since are removed at down once empty. */
  readonly nftTables?: string[];
  /** Daemons by component name. */
  procs: Record<string, ProcRecord>;
  kubeconfig: string;
  ready: boolean;
}

/** Paths inside the state dir. */
export function paths(dir: string) {
  return {
    dir,
    state: join(dir, 'state.json'),
    logs: join(dir, 'logs'),
    pki: join(dir, 'pki'),
    conf: join(dir, 'conf'),
    kubeconfig: join(dir, 'kubeconfig'),
    run: join(dir, 'run'),
    containerdSock: join(dir, 'run', 'containerd.sock'),
    containerdRoot: join(dir, 'containerd', 'root'),
    containerdState: join(dir, 'containerd', 'state'),
    cniConfDir: join(dir, 'conf', 'cni'),
    cniDataDir: join(dir, 'cni'),
    kubeletRoot: join(dir, 'kubelet'),
    podLogs: join(dir, 'pod-logs'),
    storeData: join(dir, 'store'),
    volumes: join(dir, 'volumes'),
  };
}

export type Paths = ReturnType<typeof paths>;

// SeaweedFS (S3 for backups): started by `up` from hack/install-s3.sh's weed, data in <dir>/s3.
// The S3 gateway listens on the node IP (a host address: reachable from the host and from pods);
// master, volume and filer on loopback only.
export const S3_PORT = 8333;
export const S3_ENDPOINT = `http://${NODE_IP}:${String(S3_PORT)}`;
/** Internal SeaweedFS ports (loopback); gRPC ports are these + 10000 (SeaweedFS's convention). Every
 * fixed port here stays below the kernel's ephemeral range (32768-60999): a port in it can be held by
 * any outgoing connection of the tests running beside localkube (38888 once was: the filer died). */
export const S3_INTERNAL_PORTS = { master: 19333, volume: 18081, filer: 18888 } as const;
export const S3_BUCKET = 'cairn-backups';
/** Development credentials of the local S3 (not a secret: printed by `status`). */
export const S3_KEYS = { accessKeyId: 'localkube', secretAccessKey: 'localkube-secret' } as const;
/** The Secret `up` makes in namespace default with S3_KEYS (examples/backup.yaml names it). */
export const S3_SECRET = 'cairn-backup-s3';
