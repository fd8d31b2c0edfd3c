// The configuration files of localkube's components, as text (pure: paths and names in, text out).
import {
  APISERVER_PORT, CLUSTER_CIDR, CNI_BIN_DIR, CNI_NETWORK, COREDNS_HEALTH, COREDNS_PORT, COREDNS_READY,
  CGROUP_ROOT, DNS_SERVICE_IP, HOST_IF, NFT_TABLE, NODE_IP, NODE_NAME, NODE_POD_CIDR, PAUSE_IMAGE, POD_IF,
  SERVICE_CIDR, type Paths,
} from './layout.js';

export function kubeconfig(server: string, caFile: string, user: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: localkube',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${caFile}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: localkube',
    `  context: {cluster: localkube, user: ${user}}`,
    'current-context: localkube',
    '',
  ].join('\n');
}

export const APISERVER_URL = `https://${NODE_IP}:${String(APISERVER_PORT)}`;

export function containerdToml(p: Paths): string {
  return `version = 2
root = "${p.containerdRoot}"
state = "${p.containerdState}"
oom_score = 0

[grpc]
  address = "${p.containerdSock}"

[ttrpc]
  address = "${p.containerdSock}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${p.dir}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # This VM lacks CAP_SYS_RESOURCE: without this runc fails with
  # "can't get final child's PID from pipe: EOF" when it raises a container's oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${p.cniConfDir}"
    max_conf_num = 1
`;
}

/** The pod network: one bridge, host-local addresses, no masquerading (pods reach nothing outside). */
export function cniConflist(p: Paths): string {
  return `${JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: CNI_NETWORK,
      plugins: [
        {
          type: 'bridge',
          bridge: POD_IF,
          isGateway: true,
          isDefaultGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: p.cniDataDir,
            ranges: [[{ subnet: NODE_POD_CIDR, gateway: '10.244.0.1' }]],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
}

export function kubeletYaml(p: Paths): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${p.pki}/kubelet.crt
tlsPrivateKeyFile: ${p.pki}/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: ${p.pki}/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://${p.containerdSock}
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
cgroupsPerQOS: true
failCgroupV1: false
enforceNodeAllocatable: [pods]
failSwapOn: false
protectKernelDefaults: false
clusterDNS: [${DNS_SERVICE_IP}]
clusterDomain: cluster.local
resolvConf: ${p.conf}/resolv.conf
podCIDR: ${NODE_POD_CIDR}
podLogsDir: ${p.podLogs}
volumePluginDir: ${p.kubeletRoot}/volume-plugins
rotateCertificates: false
serverTLSBootstrap: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
mergeDefaultEvictionSettings: false
maxPods: 110
shutdownGracePeriod: 0s
`;
}

export function kubeProxyYaml(p: Paths): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${p.conf}/kube-proxy.kubeconfig
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${CLUSTER_CIDR}
bindAddress: ${NODE_IP}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [${NODE_IP}/32]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`;
}

export function corefile(p: Paths): string {
  return `.:${String(COREDNS_PORT)} {
    bind ${NODE_IP}
    errors
    health ${COREDNS_HEALTH}
    ready ${COREDNS_READY}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${p.conf}/admin.kubeconfig localkube
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    cache 5
}
`;
}

/** nftables: pod traffic never leaves through another interface than the pod bridge, and the
 * service and pod ranges are never sent out of the machine. */
export function nftRules(): string {
  return `table inet ${NFT_TABLE} {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "${POD_IF}" oifname != "${POD_IF}" drop
  }
  chain output {
    type filter hook output priority -10; policy accept;
    ip daddr { ${SERVICE_CIDR}, ${CLUSTER_CIDR}, ${NODE_IP} } oifname != { "${POD_IF}", "${HOST_IF}", "lo" } drop
  }
}
`;
}

/** Objects the host-side add-ons need: the kube-dns Service pointing at CoreDNS on the node, the two
 * storage classes and local-path-provisioner's ConfigMap and ServiceAccount (its helper pods, which
 * make and remove the volume directories, run `helperImage`: a local image with a shell). */
export function bootstrapYaml(p: Paths, helperImage: string): string {
  const lppConfig = JSON.stringify({
    storageClassConfigs: {
      'local-path': { nodePathMap: [{ node: 'DEFAULT_PATH_FOR_NON_LISTED_NODES', paths: [`${p.volumes}/local-path`] }] },
      'local-nvme': { nodePathMap: [{ node: 'DEFAULT_PATH_FOR_NON_LISTED_NODES', paths: [`${p.volumes}/local-nvme`] }] },
    },
  });
  const indent = (s: string, n: number): string => s.split('\n').map((l) => ' '.repeat(n) + l).join('\n');
  const helperPod = [
    'apiVersion: v1',
    'kind: Pod',
    'metadata:',
    '  name: helper-pod',
    'spec:',
    '  priorityClassName: system-node-critical',
    '  tolerations:',
    '  - {key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}',
    '  containers:',
    '  - name: helper-pod',
    `    image: ${helperImage}`,
    '    imagePullPolicy: IfNotPresent',
  ].join('\n');
  return `apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: ${DNS_SERVICE_IP}
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: ${String(COREDNS_PORT)}}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: ${String(COREDNS_PORT)}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: localkube
addressType: IPv4
endpoints:
- addresses: [${NODE_IP}]
  conditions: {ready: true}
ports:
- {name: dns, port: ${String(COREDNS_PORT)}, protocol: UDP}
- {name: dns-tcp, port: ${String(COREDNS_PORT)}, protocol: TCP}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-nvme
  annotations: {description: "the WAL's class (a second directory on this machine)"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: kube-system}
data:
  config.json: '${lppConfig}'
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "$VOL_DIR"
  helperPod.yaml: |-
${indent(helperPod, 4)}
`;
}
