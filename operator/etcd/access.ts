// How the operator reaches one cluster's members: the credentials it authenticates with once the
// cluster has auth enabled (spec.auth), with the token cached and renewed, and the channel
// credentials of its gRPC connections.
//
// Every etcd call the operator makes goes through an EtcdAccess once auth is on: an unauthenticated
// call to a cluster with auth enabled fails with 'user name is empty' (the trap that broke other
// operators). Tokens expire (simple tokens --auth-token-ttl after their last use, JWTs at their exp);
// a call refused for its token authenticates again and is retried once (EtcdAdmin.call).
//
// The controller registers each cluster's access for the endpoints of its pods (registerAccess), so
// every EtcdAdmin made for such an endpoint (observe/, act/, backups) uses it without being handed it.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

export interface EtcdCredentials {
  readonly user: string;
  readonly password: string;
}

/** What authenticating needs: EtcdAdmin.authenticate (an interface: access.ts does not import client.ts). */
export interface Authenticator {
  authenticate(user: string, password: string): Promise<string | undefined>;
}

/** A refusal that a fresh token can cure. */
export function isTokenRefusal(code: number, details: string): boolean {
  return /user name is empty|invalid auth token|revision of auth store is old/.test(details) || (code === Number(grpc.status.UNAUTHENTICATED) && details === '');
}

export function isNotEnabled(details: string): boolean {
  return /authentication is not enabled/.test(details);
}

/** After Authenticate answered 'not enabled', calls go without a token this long (then ask again). */
export const NOT_ENABLED_RECHECK_MS = 2000;

/** TLS material of the client side (PEM). */
export interface ClientTls {
  readonly ca: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** The name the members' certificates are checked against when dialling a pod IP (per endpoint). */
  readonly serverName?: (endpoint: string) => string | undefined;
}

export class EtcdAccess {
  private cached: string | undefined;
  private pending: Promise<string | undefined> | undefined;
  private notEnabledUntil = 0;
  /** Authenticate calls made (tests and metrics read it). */
  authentications = 0;

  constructor(
    readonly auth: EtcdCredentials | undefined,
    readonly tls: ClientTls | undefined = undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** The token to send (undefined: auth is not enabled on the cluster), authenticating if needed. */
  async token(via: Authenticator, fresh = false): Promise<string | undefined> {
    const a = this.auth;
    if (a === undefined) return undefined;
    if (!fresh && this.cached !== undefined) return this.cached;
    if (!fresh && this.now() < this.notEnabledUntil) return undefined;
    if (this.pending !== undefined) return this.pending;
    this.authentications++;
    this.pending = via.authenticate(a.user, a.password).then(
      (t) => {
        this.pending = undefined;
        this.cached = t;
        if (t === undefined) this.notEnabledUntil = this.now() + NOT_ENABLED_RECHECK_MS;
        return t;
      },
      (e: unknown) => {
        this.pending = undefined;
        throw e;
      },
    );
    return this.pending;
  }

  /** Drops a token the cluster refused (the next call authenticates again). */
  forget(token: string | undefined): void {
    if (token === undefined || this.cached === token) this.cached = undefined;
    this.notEnabledUntil = 0;
  }

  /** The channel credentials of a connection (TLS with the client certificate, or plaintext). */
  channelCredentials(): grpc.ChannelCredentials {
    const t = this.tls;
    return t === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(t.ca, t.key ?? null, t.cert ?? null);
  }

  /** Channel options for an endpoint (the TLS server name when dialling a pod IP). */
  channelOptions(endpoint: string): grpc.ChannelOptions {
    const name = this.tls?.serverName?.(endpoint);
    return name === undefined ? {} : { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name };
  }

  /**
   * Channel credentials that also carry the token on every call: for gRPC clients that take only
   * channel credentials (the backup's SnapshotSource). `via` authenticates when there is no token.
   */
  callChannelCredentials(via: () => Authenticator & { close(): void }): grpc.ChannelCredentials {
    const base = this.channelCredentials();
    if (this.auth === undefined) return base;
    const call = grpc.credentials.createFromMetadataGenerator((_opts, cb) => {
      const a = via();
      this.token(a).then(
        (t) => {
          a.close();
          const md = new grpc.Metadata();
          if (t !== undefined) md.set('token', t);
          cb(null, md);
        },
        (e: unknown) => {
          a.close();
          cb(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
    return this.tls === undefined ? new InsecureWithCallCredentials(call) : base.compose(call);
  }
}

type Connector = grpc.ChannelCredentials['_createSecureConnector'];

/**
 * Plaintext channel credentials with call credentials (grpc-js composes call credentials with TLS
 * ones only; etcd sends tokens over plaintext connections too, as etcdctl --user does over http).
 */
class InsecureWithCallCredentials extends grpc.ChannelCredentials {
  private readonly inner = grpc.credentials.createInsecure();

  constructor(private readonly call: grpc.CallCredentials) {
    super();
  }

  override compose(c: grpc.CallCredentials): grpc.ChannelCredentials {
    return new InsecureWithCallCredentials(this.call.compose(c));
  }

  _isSecure(): boolean {
    return false;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(target: Parameters<Connector>[0], options: Parameters<Connector>[1], callCredentials?: grpc.CallCredentials): ReturnType<Connector> {
    return this.inner._createSecureConnector(target, options, callCredentials === undefined ? this.call : this.call.compose(callCredentials));
  }
}

const registry = new Map<string, EtcdAccess>();

/** The access registered for an endpoint ("host:port"), if any. */
export function accessFor(endpoint: string): EtcdAccess | undefined {
  return registry.get(endpoint);
}

/** Registers (or with undefined, removes) the access of an endpoint. */
export function registerAccess(endpoint: string, access: EtcdAccess | undefined): void {
  if (access === undefined) registry.delete(endpoint);
  else registry.set(endpoint, access);
}

/**
 * The access of a member pod's own client calls with client TLS (CAIRN_CLIENT_TLS_DIR: the mounted
 * Secret's ca.crt, tls.crt, tls.key, read at each call so a renewed certificate is used); undefined
 * without a directory.
 */
export function accessFromTlsDir(dir: string | undefined): EtcdAccess | undefined {
  if (dir === undefined || dir === '') return undefined;
  const read = (f: string): Buffer => readFileSync(`${dir}/${f}`);
  return new EtcdAccess(undefined, { ca: read('ca.crt'), cert: read('tls.crt'), key: read('tls.key') });
}
