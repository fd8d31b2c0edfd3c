// The Auth service (etcd's v3rpc/auth.go + v3_server.go). Changes go through the log as the caller
// (checked for root here and again at apply, etcd's needAdminPermission); passwords are bcrypt-hashed
// here, before proposing, so no password reaches the log (etcd 3.5's hashedPassword). Authenticate
// checks the password here, then proposes so every member registers the simple token; a JWT is
// signed by this member after the entry applied. Reads are served locally after a read barrier
// (etcd 3.4 sends them through the log; the answers are the same): a user may read itself and the
// roles it has, root everything.
import {
  encodeAuthenticateResponse,
  encodeAuthRoleGetResponse,
  encodeAuthRoleListResponse,
  encodeAuthStatusResponse,
  encodeAuthUserGetResponse,
  encodeAuthUserListResponse,
  type AuthDisableRequest,
  type AuthEnableRequest,
  type AuthenticateRequest,
  type AuthRoleAddRequest,
  type AuthRoleDeleteRequest,
  type AuthRoleGetRequest,
  type AuthRoleGrantPermissionRequest,
  type AuthRoleRevokePermissionRequest,
  type AuthUserAddRequest,
  type AuthUserChangePasswordRequest,
  type AuthUserDeleteRequest,
  type AuthUserGetRequest,
  type AuthUserGrantRoleRequest,
  type AuthUserRevokeRoleRequest,
} from '../../proto/gen/etcdserverpb.js';
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import { ClientError } from '../base/errors.js';
import { checkPassword, hashPassword, simpleTokenPrefix, type AuthInfo } from '../auth/index.js';
import { encodeOutcome, header } from '../node/index.js';
import { then, type Authorizer, type Maybe } from './authz.js';
import type { CallContext } from './grpc/index.js';

type Ctx = Pick<CallContext, 'metadata' | 'tlsCommonName'>;
type Handler<Req> = (r: Req, ctx: Ctx) => Maybe<Uint8Array>;

export interface AuthApi {
  readonly authEnable: Handler<AuthEnableRequest>;
  readonly authDisable: Handler<AuthDisableRequest>;
  readonly authStatus: Handler<unknown>;
  readonly authenticate: Handler<AuthenticateRequest>;
  readonly userAdd: Handler<AuthUserAddRequest>;
  readonly userGet: Handler<AuthUserGetRequest>;
  readonly userList: Handler<unknown>;
  readonly userDelete: Handler<AuthUserDeleteRequest>;
  readonly userChangePassword: Handler<AuthUserChangePasswordRequest>;
  readonly userGrantRole: Handler<AuthUserGrantRoleRequest>;
  readonly userRevokeRole: Handler<AuthUserRevokeRoleRequest>;
  readonly roleAdd: Handler<AuthRoleAddRequest>;
  readonly roleGet: Handler<AuthRoleGetRequest>;
  readonly roleList: Handler<unknown>;
  readonly roleDelete: Handler<AuthRoleDeleteRequest>;
  readonly roleGrantPermission: Handler<AuthRoleGrantPermissionRequest>;
  readonly roleRevokePermission: Handler<AuthRoleRevokePermissionRequest>;
}

export interface AuthApiOptions {
  /** --bcrypt-cost */
  readonly bcryptCost: number;
}

/** Authenticate retries when the auth store changed between the password check and the apply (etcd does the same). */
const AUTHENTICATE_ATTEMPTS_MAX = 3;

export function authApi(authz: Authorizer, opts: AuthApiOptions): AuthApi {
  const path = authz.path;
  const store = authz.store;
  const hdr = (): ReturnType<typeof header> => header(path.identity, path.currentRevision());
  /** Proposes as the caller (root needed while auth is enabled) and encodes the applied response. */
  const change = (ctx: Ctx, build: () => Maybe<InternalRequestInit>): Maybe<Uint8Array> => {
    const propose = (ai: AuthInfo | undefined): Maybe<Uint8Array> =>
      then(build(), async (req) => {
        const applied = await path.propose(ai === undefined ? req : { ...req, header: authz.header(ai) });
        return encodeOutcome(path.identity, { ok: true, response: { kind: 'auth', resp: applied } });
      });
    return authz.enabled ? then(authz.admin(ctx), propose) : propose(undefined);
  };
  /** A local read after the barrier; `allowed(ai)` lets a non-root caller through (own user, own role). */
  const read = (ctx: Ctx, allowed: (ai: AuthInfo) => boolean, answer: () => Uint8Array): Maybe<Uint8Array> => {
    const barrier = path.readBarrier();
    const go = (): Maybe<Uint8Array> => {
      if (!authz.enabled) return answer();
      return then(authz.who(ctx), (ai) => {
        try {
          store.checkAdmin(ai);
        } catch (err) {
          if (!allowed(ai)) throw err;
        }
        return answer();
      });
    };
    return barrier === undefined ? go() : barrier.then(go);
  };
  const root = (): boolean => false;

  const authenticate = async (r: AuthenticateRequest): Promise<Uint8Array> => {
    await path.readBarrier();
    for (let attempt = 1; ; attempt++) {
      if (!store.enabled) throw new ClientError('authNotEnabled');
      const user = store.getUser(r.name);
      if (user === undefined) throw new ClientError('authFailed');
      if (user.options?.noPassword === true) throw new ClientError('noPasswordUser');
      const checkedAt = store.revision;
      if (!(await checkPassword(r.password, user.password))) throw new ClientError('authFailed');
      const prefix = authz.opts.jwt === undefined ? simpleTokenPrefix() : '';
      const applied = await path.propose({ authenticate: { name: r.name, simpleToken: prefix } });
      const who = applied.authenticated;
      if (who === undefined) throw new ClientError('authFailed');
      if (checkedAt !== store.revision && attempt < AUTHENTICATE_ATTEMPTS_MAX) continue;
      const token = authz.opts.jwt === undefined ? who.token : await authz.opts.jwt.sign({ username: who.username, revision: who.revision });
      return encodeAuthenticateResponse({ header: header(path.identity, applied.header.revision), token });
    }
  };

  return {
    authEnable: (_r, ctx) => change(ctx, () => ({ authEnable: {} })),
    authDisable: (_r, ctx) => change(ctx, () => ({ authDisable: {} })),
    authStatus: () => {
      const answer = (): Uint8Array => encodeAuthStatusResponse({ header: hdr(), enabled: store.enabled, authRevision: store.revision });
      const barrier = path.readBarrier();
      return barrier === undefined ? answer() : barrier.then(answer);
    },
    authenticate: (r) => authenticate(r),
    userAdd: (r, ctx) =>
      change(ctx, async () => {
        const noPassword = r.options?.noPassword === true;
        const hashedPassword = noPassword ? '' : await hashPassword(r.password, opts.bcryptCost);
        return { authUserAdd: { name: r.name, options: r.options ?? { noPassword: false }, hashedPassword } };
      }),
    userGet: (r, ctx) =>
      read(
        ctx,
        (ai) => ai.username === r.name,
        () => {
          const u = store.getUser(r.name);
          if (u === undefined) throw new ClientError('userNotFound');
          return encodeAuthUserGetResponse({ header: hdr(), roles: u.roles });
        },
      ),
    userList: (_r, ctx) => read(ctx, root, () => encodeAuthUserListResponse({ header: hdr(), users: store.userNames() })),
    userDelete: (r, ctx) => change(ctx, () => ({ authUserDelete: { name: r.name } })),
    userChangePassword: (r, ctx) =>
      change(ctx, async () => ({ authUserChangePassword: { name: r.name, hashedPassword: await hashPassword(r.password, opts.bcryptCost) } })),
    userGrantRole: (r, ctx) => change(ctx, () => ({ authUserGrantRole: { user: r.user, role: r.role } })),
    userRevokeRole: (r, ctx) => change(ctx, () => ({ authUserRevokeRole: { name: r.name, role: r.role } })),
    roleAdd: (r, ctx) => change(ctx, () => ({ authRoleAdd: { name: r.name } })),
    roleGet: (r, ctx) =>
      read(
        ctx,
        (ai) => store.hasRole(ai.username, r.role),
        () => {
          if (store.getRole(r.role) === undefined) throw new ClientError('roleNotFound');
          return encodeAuthRoleGetResponse({ header: hdr(), perm: store.rolePermissions(r.role) });
        },
      ),
    roleList: (_r, ctx) => read(ctx, root, () => encodeAuthRoleListResponse({ header: hdr(), roles: store.roleNames() })),
    roleDelete: (r, ctx) => change(ctx, () => ({ authRoleDelete: { role: r.role } })),
    roleGrantPermission: (r, ctx) => change(ctx, () => (r.perm === undefined ? { authRoleGrantPermission: { name: r.name } } : { authRoleGrantPermission: { name: r.name, perm: r.perm } })),
    roleRevokePermission: (r, ctx) => change(ctx, () => ({ authRoleRevokePermission: { role: r.role, key: r.key, rangeEnd: r.rangeEnd } })),
  };
}
