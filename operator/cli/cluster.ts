// One EtcdCluster as the plugin sees it: the object (status written by the operator) through the
// Kubernetes API, and an etcd admin connection per member pod through a port-forward tunnel
// (tunnel.ts). Connections are opened on first use and closed together by close().
import type { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, PLURAL, type EtcdClusterStatus, type JsonObject } from '../api/index.js';
import { CALL_TIMEOUT_MS, EtcdAccess, EtcdAdmin, type EtcdCredentials, type ListedMember, type MemberStatusReply } from '../etcd/index.js';
import { KubeError, KubeRest, pathOf } from '../kube/index.js';
import { CLIENT_PORT } from '../plan/index.js';
import { openTunnel, type Tunnel } from './tunnel.js';

export class CliError extends Error {
  override readonly name = 'CliError';
}

export interface LiveMember {
  /** The pod (= member) name. */
  readonly name: string;
  readonly status?: MemberStatusReply;
  /** Why the member did not answer Status. */
  readonly error?: string;
}

interface Creds {
  auth?: EtcdCredentials;
  tls?: { ca: Buffer; cert: Buffer; key: Buffer };
}

export class ClusterHandle {
  private readonly rest: KubeRest;
  private readonly open = new Map<string, { tunnel: Tunnel; admin: EtcdAdmin }>();
  /** undefined: not looked up yet. */
  private credsCache: Creds | undefined;
  private readonly accesses = new Map<string, EtcdAccess>();

  constructor(
    private readonly kc: KubeConfig,
    readonly namespace: string,
    readonly name: string,
    private readonly callTimeoutMs?: number,
  ) {
    this.rest = new KubeRest(kc);
  }

  /** The EtcdCluster's status (a CliError naming the object when it does not exist). */
  async status(): Promise<EtcdClusterStatus> {
    const path = `/apis/${API_VERSION}/namespaces/${this.namespace}/${PLURAL}/${this.name}`;
    try {
      const o = await this.rest.get(path);
      return (o['status'] ?? {}) as EtcdClusterStatus;
    } catch (e) {
      if (e instanceof KubeError && e.notFound) throw new CliError(`EtcdCluster ${this.namespace}/${this.name} not found`);
      throw e;
    }
  }

  /** The member pods' names (sorted by ordinal), from the cluster's label selector. */
  async podNames(): Promise<string[]> {
    const sel = encodeURIComponent(`app.kubernetes.io/name=cairn,app.kubernetes.io/instance=${this.name}`);
    const list = await this.rest.get(`/api/v1/namespaces/${this.namespace}/pods?labelSelector=${sel}`);
    const items = (list['items'] ?? []) as Array<{ metadata?: { name?: string }; status?: { phase?: string } }>;
    const names = items.filter((p) => p.status?.phase === 'Running').map((p) => p.metadata?.name ?? '');
    const ordinal = (n: string): number => Number(n.slice(n.lastIndexOf('-') + 1));
    return names.filter((n) => n !== '').sort((a, b) => ordinal(a) - ordinal(b));
  }

  private async connection(pod: string): Promise<{ tunnel: Tunnel; admin: EtcdAdmin }> {
    const had = this.open.get(pod);
    if (had !== undefined) return had;
    const tunnel = await openTunnel(this.kc, this.namespace, pod, CLIENT_PORT);
    const c = { tunnel, admin: new EtcdAdmin(tunnel.endpoint, this.callTimeoutMs, (await this.access(pod)) ?? undefined) };
    this.open.set(pod, c);
    return c;
  }

  /** An admin client of one member pod (tunnelled; opened once). */
  async admin(pod: string): Promise<EtcdAdmin> {
    return (await this.connection(pod)).admin;
  }

  /** The local "127.0.0.1:port" that reaches a member pod's client port (for other gRPC clients). */
  async endpoint(pod: string): Promise<string> {
    return (await this.connection(pod)).tunnel.endpoint;
  }

  /** A Secret's data, decoded (undefined: no such Secret, or not allowed to read it). */
  private async secret(name: string): Promise<Record<string, Buffer> | undefined> {
    try {
      const s = await this.rest.get(pathOf('Secret', this.namespace, name));
      const data = (s['data'] ?? {}) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(typeof v === 'string' ? v : '', 'base64')]));
    } catch (e) {
      if (e instanceof KubeError && (e.notFound || e.status === 403)) return undefined;
      throw e;
    }
  }

  /**
   * What the operator reaches the members with, read through the Kubernetes API as the operator keeps
   * it: with spec.auth its own etcd user (Secret <cluster>-operator-auth: root-only calls need it under
   * auth); with spec.tls.client its client certificate (spec.tls.client.operatorSecretName, else
   * <cluster>-operator-tls) and the CA of the members' certificate (<cluster>-client-tls ca.crt). The
   * TLS name of a tunnelled member is its pod's DNS name.
   */
  async access(pod: string): Promise<EtcdAccess | null> {
    if (this.credsCache === undefined) {
      const c: Creds = {};
      const auth = await this.secret(`${this.name}-operator-auth`);
      const pw = auth?.['password']?.toString('utf8') ?? '';
      if (pw !== '') c.auth = { user: auth?.['username']?.toString('utf8') || 'cairn-operator', password: pw };
      const o = await this.rest.get(`/apis/${API_VERSION}/namespaces/${this.namespace}/${PLURAL}/${this.name}`).catch((): JsonObject => ({}));
      const client = ((o['spec'] as { tls?: { client?: { operatorSecretName?: string } } } | undefined)?.tls)?.client;
      if (client !== undefined) {
        const served = await this.secret(`${this.name}-client-tls`);
        const own = await this.secret(client.operatorSecretName ?? `${this.name}-operator-tls`);
        const ca = served?.['ca.crt'];
        const cert = own?.['tls.crt'];
        const key = own?.['tls.key'];
        if (ca === undefined || cert === undefined || key === undefined) throw new CliError(`EtcdCluster ${this.namespace}/${this.name} has client TLS but the CA or the operator's client certificate cannot be read (Secrets ${this.name}-client-tls, ${client.operatorSecretName ?? `${this.name}-operator-tls`})`);
        c.tls = { ca, cert, key };
      }
      this.credsCache = c;
    }
    const c = this.credsCache;
    if (c.auth === undefined && c.tls === undefined) return null;
    let a = this.accesses.get(pod);
    if (a === undefined) {
      const serverName = `${pod}.${this.name}-peer.${this.namespace}.svc`;
      a = new EtcdAccess(c.auth, c.tls === undefined ? undefined : { ...c.tls, serverName: () => serverName });
      this.accesses.set(pod, a);
    }
    return a;
  }

  /** Channel credentials for other gRPC clients of a member (the snapshot stream): the token on every call under auth. */
  async channelCredentials(pod: string): Promise<ReturnType<EtcdAccess['callChannelCredentials']> | undefined> {
    const a = await this.access(pod);
    if (a === null) return undefined;
    const ep = await this.endpoint(pod);
    return a.callChannelCredentials(() => new EtcdAdmin(ep, CALL_TIMEOUT_MS, a));
  }

  /** Status of every running member pod (a member that does not answer carries its error). */
  async live(): Promise<LiveMember[]> {
    const pods = await this.podNames();
    if (pods.length === 0) throw new CliError(`EtcdCluster ${this.namespace}/${this.name}: no running member pods`);
    const out: LiveMember[] = [];
    for (const name of pods) {
      try {
        out.push({ name, status: await (await this.admin(name)).status() });
      } catch (e) {
        out.push({ name, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return out;
  }

  /** The member list as one answering member sees it, and that member's pod. */
  async memberList(): Promise<{ via: string; members: ListedMember[] }> {
    let last: unknown;
    for (const pod of await this.podNames()) {
      try {
        return { via: pod, members: (await (await this.admin(pod)).memberList()).members };
      } catch (e) {
        last = e;
      }
    }
    throw new CliError(`EtcdCluster ${this.namespace}/${this.name}: no member answered MemberList (${last instanceof Error ? last.message : String(last)})`);
  }

  /** The pod of the current leader (from the members' Status). */
  async leaderPod(): Promise<{ pod: string; id: string }> {
    const live = await this.live();
    const leaderId = live.find((m) => m.status !== undefined && m.status.leader !== '0')?.status?.leader;
    const pod = live.find((m) => m.status?.memberId === leaderId)?.name;
    if (leaderId === undefined || pod === undefined) throw new CliError(`EtcdCluster ${this.namespace}/${this.name}: no leader among ${live.map((m) => m.name).join(', ')}`);
    return { pod, id: leaderId };
  }

  async close(): Promise<void> {
    for (const { tunnel, admin } of this.open.values()) {
      admin.close();
      await tunnel.close();
    }
    this.open.clear();
  }
}
