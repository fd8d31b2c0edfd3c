// spec.tls in the member pods (pure): the server flags, the mounted Secrets, the URLs' scheme and the
// probes' port. The Secrets are the ones the certificate manager (controller/tls.ts) writes:
// <cluster>-client-tls and <cluster>-peer-tls with tls.crt, tls.key and ca.crt, mounted as plain
// Secret volumes (no subPath), which the kubelet updates in place; the server polls the files and
// reloads them (server/base/tls.ts), so a renewed certificate needs no restart.
//   client: --cert-file/--key-file/--trusted-ca-file and --client-cert-auth (client certificates
//           required); the probes move to a plaintext metrics listener (--listen-metrics-urls) since
//           the kubelet has no client certificate.
//   peer:   the --peer-* equivalents, --peer-client-cert-auth; peer client certificates are checked
//           against the cluster's CA, not their SANs against the dialler's address
//           (--peer-skip-client-san-verification: pod IPs are in no certificate).
import type { EtcdClusterSpec, Json, JsonObject } from '../api/index.js';

export const TLS_MOUNT = '/etc/cairn/tls';
/** The plaintext listener of /livez, /readyz and /metrics when the client port is TLS. */
export const METRICS_PORT = 2382;

export const tlsSecret = (cluster: string, side: 'client' | 'peer'): string => `${cluster}-${side}-tls`;

const files = (side: 'client' | 'peer'): { cert: string; key: string; ca: string } => ({
  cert: `${TLS_MOUNT}/${side}/tls.crt`,
  key: `${TLS_MOUNT}/${side}/tls.key`,
  ca: `${TLS_MOUNT}/${side}/ca.crt`,
});

export function clientTlsOn(spec: EtcdClusterSpec): boolean {
  return spec.tls?.client !== undefined;
}

export function peerTlsOn(spec: EtcdClusterSpec): boolean {
  return spec.tls?.peer !== undefined;
}

export function peerScheme(spec: EtcdClusterSpec): 'http' | 'https' {
  return peerTlsOn(spec) ? 'https' : 'http';
}

export function clientScheme(spec: EtcdClusterSpec): 'http' | 'https' {
  return clientTlsOn(spec) ? 'https' : 'http';
}

/** The server flags of spec.tls. */
export function tlsServerArgs(spec: EtcdClusterSpec): string[] {
  const out: string[] = [];
  if (clientTlsOn(spec)) {
    const f = files('client');
    out.push(`--cert-file=${f.cert}`, `--key-file=${f.key}`, `--trusted-ca-file=${f.ca}`, '--client-cert-auth', `--listen-metrics-urls=http://0.0.0.0:${String(METRICS_PORT)}`);
  }
  if (peerTlsOn(spec)) {
    const f = files('peer');
    out.push(`--peer-cert-file=${f.cert}`, `--peer-key-file=${f.key}`, `--peer-trusted-ca-file=${f.ca}`, '--peer-client-cert-auth', '--peer-skip-client-san-verification');
  }
  return out;
}

/**
 * The member entrypoint's URL overrides (CAIRN_*_URL, expanded by the kubelet from POD_NAME and
 * POD_NAMESPACE, defined before them), the client TLS directory its own member-list calls use, and
 * the health URL its agent proxies /livez to.
 */
export function tlsEnv(peerService: string, spec: EtcdClusterSpec): JsonObject[] {
  const host = `$(POD_NAME).${peerService}.$(POD_NAMESPACE).svc`;
  const out: JsonObject[] = [];
  if (peerTlsOn(spec)) out.push({ name: 'CAIRN_PEER_URL', value: `https://${host}:2380` }, { name: 'CAIRN_LISTEN_PEER_URL', value: 'https://0.0.0.0:2380' });
  if (clientTlsOn(spec)) {
    out.push(
      { name: 'CAIRN_CLIENT_URL', value: `https://${host}:2379` },
      { name: 'CAIRN_LISTEN_CLIENT_URL', value: 'https://0.0.0.0:2379' },
      { name: 'CAIRN_CLIENT_TLS_DIR', value: `${TLS_MOUNT}/client` },
      { name: 'CAIRN_HEALTH_PORT', value: String(METRICS_PORT) },
    );
  }
  return out;
}

/** The pod's volumes for the mounted Secrets. */
export function tlsVolumes(cluster: string, spec: EtcdClusterSpec): Json[] {
  const sides = (['client', 'peer'] as const).filter((s) => (s === 'client' ? clientTlsOn(spec) : peerTlsOn(spec)));
  return sides.map((s) => ({ name: `tls-${s}`, secret: { secretName: tlsSecret(cluster, s), defaultMode: 0o400 } }));
}

export function tlsVolumeMounts(spec: EtcdClusterSpec): Json[] {
  const sides = (['client', 'peer'] as const).filter((s) => (s === 'client' ? clientTlsOn(spec) : peerTlsOn(spec)));
  return sides.map((s) => ({ name: `tls-${s}`, mountPath: `${TLS_MOUNT}/${s}`, readOnly: true }));
}

/** The port of the readiness probe's /readyz (the client port, or the metrics listener with client TLS). */
export function healthPort(spec: EtcdClusterSpec, clientPort: number): number {
  return clientTlsOn(spec) ? METRICS_PORT : clientPort;
}
