// The certificate manager (spec.tls): before each reconcile it makes sure the Secrets the members
// mount hold a good certificate for each TLS side, and gives the operator its own client certificate.
//
// Secrets (all owned by the EtcdCluster):
//   <cluster>-client-tls, <cluster>-peer-tls   what the members mount (tls.crt, tls.key, ca.crt) and
//                                              serve; written only by this manager
//   <cluster>-ca                               the operator's CA (when it issues certificates)
//   <cluster>-operator-tls                     the operator's client certificate (CN cairn-operator)
// A side with spec.tls.<side>.secretName takes the user's Secret (cert-manager's keys): it is checked
// (PEM, validity, key match, signed by its ca.crt) and only then copied to the mounted Secret, so an
// expired or mismatched certificate is reported (TLSReady=False, reason InvalidCertificate, naming
// the Secret) and the members keep serving the previous one. A side without secretName gets a
// certificate issued from the CA, renewed once a third of its lifetime is left (or when it is gone or
// not the CA's). Members pick up a changed Secret without a restart: the kubelet updates the mounted
// volume in place and the server reloads certificates it sees change on disk.
import { API_VERSION, KIND, type ClientTlsSpec, type Condition, type EtcdCluster, type JsonObject, type ServedCertificate, type TlsSideSpec, type TlsStatus } from '../api/index.js';
import type { ClientTls } from '../etcd/index.js';
import { KubeError, pathOf, type KubeRest } from '../kube/index.js';
import { certInfo, issue, needsRenewal, newCA, problemOf, CERT_VALIDITY_DAYS, type KeyPair } from '../pki/index.js';
import { FIELD_MANAGER, names, selectorLabels } from '../plan/index.js';
import { OPERATOR_USER } from './auth.js';

export const tlsSecretNames = {
  serving: (cluster: string, side: 'client' | 'peer'): string => `${cluster}-${side}-tls`,
  ca: (cluster: string): string => `${cluster}-ca`,
  operator: (cluster: string): string => `${cluster}-operator-tls`,
};

export interface TlsOutcome {
  /** The operator's client TLS (undefined: the client port is plaintext). */
  client: ClientTls | undefined;
  status?: TlsStatus;
  condition?: Pick<Condition, 'status' | 'reason' | 'message'>;
}

interface Material {
  cert: string;
  key: string;
  ca: string;
}

const dec = (v: unknown): string => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : '');

/** The DNS names a member certificate must cover (peer names through the headless Service, the client Service). */
export function memberDnsNames(cluster: string, ns: string): string[] {
  const peer = names.peerService(cluster);
  const client = names.clientService(cluster);
  return [`*.${peer}.${ns}.svc`, `*.${peer}.${ns}.svc.cluster.local`, client, `${client}.${ns}`, `${client}.${ns}.svc`, `${client}.${ns}.svc.cluster.local`, 'localhost'];
}

export class TlsManager {
  private readonly clients = new Map<string, { fingerprint: string; tls: ClientTls }>();

  constructor(
    private readonly rest: KubeRest,
    private readonly now: () => Date = () => new Date(),
  ) {}

  forget(key: string): void {
    this.clients.delete(key);
  }

  /** One pass; `serverName` maps a member endpoint (pod IP:port) to the name its certificate is checked against. */
  async prepare(c: EtcdCluster, serverName: (endpoint: string) => string | undefined): Promise<TlsOutcome> {
    const spec = c.spec.tls;
    const key = `${c.metadata.namespace}/${c.metadata.name}`;
    if (spec === undefined || (spec.client === undefined && spec.peer === undefined)) {
      this.clients.delete(key);
      return { client: undefined };
    }
    const problems: string[] = [];
    const status: TlsStatus = {};
    let ca: KeyPair | undefined;
    const caPair = async (): Promise<KeyPair> => (ca ??= await this.ensureCA(c));
    let clientMaterial: Material | undefined;
    for (const side of ['client', 'peer'] as const) {
      const s: TlsSideSpec | undefined = spec[side];
      if (s === undefined) continue;
      const r = await this.side(c, side, s, caPair);
      if (r.problem !== undefined) problems.push(r.problem);
      if (r.served !== undefined) status[side] = r.served;
      if (side === 'client') clientMaterial = r.material;
    }
    let client: ClientTls | undefined;
    if (spec.client !== undefined && clientMaterial !== undefined) {
      const own = await this.operatorCert(c, spec.client, clientMaterial.ca, caPair);
      if (typeof own === 'string') problems.push(own);
      else {
        const fingerprint = `${clientMaterial.ca}|${own.cert}`;
        const had = this.clients.get(key);
        client = had !== undefined && had.fingerprint === fingerprint ? had.tls : { ca: Buffer.from(clientMaterial.ca), cert: Buffer.from(own.cert), key: Buffer.from(own.key), serverName };
        this.clients.set(key, { fingerprint, tls: client });
      }
    }
    const served = (['client', 'peer'] as const).flatMap((sd) => {
      const x = status[sd];
      return x === undefined ? [] : [`${sd} serial ${x.serial} until ${x.notAfter}${x.from !== undefined ? ` (from Secret ${x.from})` : ' (issued by the operator)'}`];
    });
    const condition: TlsOutcome['condition'] =
      problems.length > 0
        ? { status: 'False', reason: 'InvalidCertificate', message: `${problems.join('; ')}; the members keep serving the previous certificate` }
        : { status: 'True', reason: 'CertificatesServed', message: served.join('; ') };
    return { client, status, condition };
  }

  private async side(c: EtcdCluster, side: 'client' | 'peer', s: TlsSideSpec, caPair: () => Promise<KeyPair>): Promise<{ problem?: string; served?: ServedCertificate; material?: Material }> {
    const ns = c.metadata.namespace;
    const servingName = tlsSecretNames.serving(c.metadata.name, side);
    const current = await this.read(ns, servingName);
    const servedOf = (m: Material, from?: string): ServedCertificate => {
      const i = certInfo(m.cert);
      return { secret: servingName, serial: i.serial, notAfter: i.notAfter.toISOString(), ...(from !== undefined ? { from: `${ns}/${from}` } : {}) };
    };
    const now = this.now();
    if (s.secretName !== undefined) {
      const user = await this.read(ns, s.secretName);
      const keep = current !== undefined ? { served: servedOf(current), material: current } : {};
      if (user === undefined) return { problem: `${side}: Secret ${ns}/${s.secretName} does not exist`, ...keep };
      const p = problemOf(user, now);
      if (p !== undefined) return { problem: `${side}: Secret ${ns}/${s.secretName}: ${p}`, ...keep };
      if (current === undefined || current.cert !== user.cert || current.key !== user.key || current.ca !== user.ca) await this.write(c, servingName, user);
      return { served: servedOf(user, s.secretName), material: user };
    }
    const ca = await caPair();
    if (current !== undefined && current.ca === ca.cert && problemOf({ ...current }, now) === undefined && !needsRenewal(current.cert, now)) return { served: servedOf(current), material: current };
    const pair = issue(ca, { commonName: `${c.metadata.name}-member`, dnsNames: memberDnsNames(c.metadata.name, ns), ips: ['127.0.0.1'], server: true, client: true, validityDays: CERT_VALIDITY_DAYS });
    const m: Material = { cert: pair.cert, key: pair.key, ca: ca.cert };
    await this.write(c, servingName, m);
    return { served: servedOf(m), material: m };
  }

  /** The operator's client certificate: the user's (with a user-provided client Secret) or issued. */
  private async operatorCert(c: EtcdCluster, s: ClientTlsSpec, clientCa: string, caPair: () => Promise<KeyPair>): Promise<KeyPair | string> {
    const ns = c.metadata.namespace;
    const now = this.now();
    if (s.secretName !== undefined) {
      if (s.operatorSecretName === undefined) return `client: spec.tls.client.operatorSecretName is needed with secretName (the members require client certificates; the operator needs one signed by ${ns}/${s.secretName}'s ca.crt)`;
      const m = await this.read(ns, s.operatorSecretName, false);
      if (m === undefined) return `client: Secret ${ns}/${s.operatorSecretName} (the operator's client certificate) does not exist`;
      const p = problemOf({ cert: m.cert, key: m.key, ca: clientCa }, now);
      return p === undefined ? m : `client: Secret ${ns}/${s.operatorSecretName}: ${p}`;
    }
    const ca = await caPair();
    const name = tlsSecretNames.operator(c.metadata.name);
    const current = await this.read(ns, name);
    if (current !== undefined && current.ca === ca.cert && problemOf(current, now) === undefined && !needsRenewal(current.cert, now)) return current;
    const pair = issue(ca, { commonName: OPERATOR_USER, dnsNames: [], ips: [], server: false, client: true, validityDays: CERT_VALIDITY_DAYS });
    await this.write(c, name, { ...pair, ca: ca.cert });
    return pair;
  }

  private async ensureCA(c: EtcdCluster): Promise<KeyPair> {
    const name = tlsSecretNames.ca(c.metadata.name);
    const current = await this.read(c.metadata.namespace, name);
    if (current !== undefined && problemOf(current, this.now()) === undefined) return current;
    const ca = newCA(`${c.metadata.namespace}/${c.metadata.name} cairn CA`);
    await this.write(c, name, { ...ca, ca: ca.cert });
    return ca;
  }

  /** A Secret's tls.crt, tls.key, ca.crt (undefined: no Secret or no tls.crt/tls.key; `needCa`: ca.crt too). */
  private async read(ns: string, name: string, needCa = true): Promise<Material | undefined> {
    let s: JsonObject;
    try {
      s = await this.rest.get(pathOf('Secret', ns, name));
    } catch (e) {
      if (e instanceof KubeError && e.notFound) return undefined;
      throw e;
    }
    const d = (s['data'] ?? {}) as Record<string, unknown>;
    const m = { cert: dec(d['tls.crt']), key: dec(d['tls.key']), ca: dec(d['ca.crt']) };
    return m.cert === '' || m.key === '' || (needCa && m.ca === '') ? undefined : m;
  }

  private async write(c: EtcdCluster, name: string, m: Material): Promise<void> {
    const { namespace: ns, uid } = c.metadata;
    const b64 = (v: string): string => Buffer.from(v).toString('base64');
    await this.rest.apply(
      pathOf('Secret', ns, name),
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name,
          namespace: ns,
          labels: { ...selectorLabels(c), 'app.kubernetes.io/managed-by': FIELD_MANAGER },
          ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name: c.metadata.name, uid, controller: true, blockOwnerDeletion: true }],
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': b64(m.cert), 'tls.key': b64(m.key), 'ca.crt': b64(m.ca) },
      },
      FIELD_MANAGER,
    );
  }
}
