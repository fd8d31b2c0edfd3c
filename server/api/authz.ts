// Who is calling, and may they (etcd's AuthInfoFromCtx, AuthInfoFromTLS and the per-service checks).
//
// The caller is the user of the `token` metadata (etcd's clients), else of `authorization` (the HTTP
// gateway passes it; "Bearer " is stripped), else, with --client-cert-auth, the CN of the verified TLS
// client certificate. No credentials = NOBODY (revision 0), which every check refuses with
// 'user name is empty' while auth is enabled. While auth is disabled nothing here runs: callers test
// `enabled` first (one boolean on the hot path) and tokens are ignored.
import type { RequestHeaderInit } from '../../proto/gen/cairnpb.js';
import { ClientError } from '../base/errors.js';
import { NOBODY, simpleTokenIndex, type AuthInfo, type AuthStore, type JwtTokens } from '../auth/index.js';
import type { AuthPath } from '../node/index.js';
import type { CallContext } from './grpc/index.js';

type Metadata = CallContext['metadata'];

function first(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : v;
}

/** The token a call carries, if any (etcd: metadata `token`, then `authorization`). */
export function tokenOf(md: Metadata): string | undefined {
  const t = first(md['token']);
  if (t !== undefined) return t;
  const a = first(md['authorization']);
  if (a === undefined) return undefined;
  return a.startsWith('Bearer ') ? a.slice('Bearer '.length) : a;
}

export type Maybe<T> = T | Promise<T>;

/** Runs fn on a value that may still be on its way, staying synchronous when it is not. */
export function then<T, U>(v: Maybe<T>, fn: (t: T) => Maybe<U>): Maybe<U> {
  return v instanceof Promise ? v.then(fn) : fn(v);
}

export interface AuthorizerOptions {
  /** JWT tokens (--auth-token jwt,...); undefined = simple tokens. */
  readonly jwt: JwtTokens | undefined;
  /** --client-cert-auth: the verified client certificate's CN is the user when no token is given. */
  readonly certCommonNameIsUser: boolean;
}

export class Authorizer {
  readonly store: AuthStore;

  constructor(
    readonly path: AuthPath,
    readonly opts: AuthorizerOptions,
  ) {
    this.store = path.auth;
  }

  get enabled(): boolean {
    return this.store.enabled;
  }

  /** The caller (NOBODY without credentials); rejects with 'invalid auth token' for a bad token. */
  who(ctx: Pick<CallContext, 'metadata' | 'tlsCommonName'>): Maybe<AuthInfo> {
    const token = tokenOf(ctx.metadata);
    if (token === undefined) {
      const cn = this.opts.certCommonNameIsUser ? ctx.tlsCommonName : undefined;
      return cn === undefined ? NOBODY : { username: cn, revision: this.store.revision };
    }
    const jwt = this.opts.jwt;
    if (jwt !== undefined) {
      return jwt.verify(token).then((ai) => {
        if (ai === undefined) throw new ClientError('invalidAuthToken');
        return ai;
      });
    }
    return this.simple(token);
  }

  private simple(token: string): Maybe<AuthInfo> {
    const user = this.store.simpleTokens.use(token);
    if (user !== undefined) return { username: user, revision: this.store.revision };
    // A well-formed token may come from an Authenticate this member has not applied yet (issued by
    // another member): etcd waits for the token's index; we wait for a read barrier, then look again.
    if (simpleTokenIndex(token) === undefined) throw new ClientError('invalidAuthToken');
    const wait = this.path.readBarrier();
    if (wait === undefined) throw new ClientError('invalidAuthToken');
    return wait.then(() => {
      const u = this.store.simpleTokens.use(token);
      if (u === undefined) throw new ClientError('invalidAuthToken');
      return { username: u, revision: this.store.revision };
    });
  }

  /** The log entry header that carries the caller to apply time (checked again there). */
  header(ai: AuthInfo): RequestHeaderInit {
    return { username: ai.username, authRevision: ai.revision };
  }

  /** Root only (etcd's IsAdminPermitted). */
  admin(ctx: Pick<CallContext, 'metadata' | 'tlsCommonName'>): Maybe<AuthInfo> {
    return then(this.who(ctx), (ai) => {
      this.store.checkAdmin(ai.revision === 0 ? undefined : ai);
      return ai;
    });
  }

  /** A read served locally: fails with 'revision of auth store is old' if the auth store moved meanwhile (etcd's doSerialize). */
  afterRead<T>(ai: AuthInfo, v: Maybe<T>): Maybe<T> {
    return then(v, (out) => {
      if (ai.revision !== 0 && ai.revision !== this.store.revision && this.store.enabled) throw new ClientError('authOldRevision');
      return out;
    });
  }
}
