// Auth at apply time (etcd's authApplierV3 and the auth half of applierV3):
// - while auth is enabled, every entry is checked as the user in its header (username and the auth
//   revision its credentials were checked at): admin requests need root, KV writes and lease revokes
//   their permissions; a stale auth revision fails with 'revision of auth store is old', as etcd;
// - auth requests change the auth store; their responses carry the KV store's current revision.
import type { InternalRequest } from '../../proto/gen/cairnpb.js';
import {
  encodeAuthDisableResponse,
  encodeAuthEnableResponse,
  encodeAuthenticateResponse,
  encodeAuthRoleAddResponse,
  encodeAuthRoleDeleteResponse,
  encodeAuthRoleGrantPermissionResponse,
  encodeAuthRoleRevokePermissionResponse,
  encodeAuthUserAddResponse,
  encodeAuthUserChangePasswordResponse,
  encodeAuthUserDeleteResponse,
  encodeAuthUserGrantRoleResponse,
  encodeAuthUserRevokeRoleResponse,
  type ResponseHeaderInit,
} from '../../proto/gen/etcdserverpb.js';
import { checkDeleteRequest, checkLeaseKeys, checkPutRequest, checkTxnRequest, storedPassword, type AuthInfo, type AuthStore, type LeaseKeysOf } from '../auth/index.js';
import type { KvStore } from '../mvcc/index.js';

/** An applied auth request: encodes its response once the caller has the header. */
export interface AuthApplied {
  readonly header: { readonly revision: number };
  readonly encode: (h: ResponseHeaderInit) => Uint8Array;
  /** Authenticate: who, at which auth revision, and the simple token registered ('' with JWT: the answering member signs one). */
  readonly authenticated?: { readonly username: string; readonly revision: number; readonly token: string };
}

/** etcd's needAdminPermission. */
function needsAdmin(r: InternalRequest): boolean {
  return (
    r.authEnable !== undefined ||
    r.authDisable !== undefined ||
    r.authUserAdd !== undefined ||
    r.authUserDelete !== undefined ||
    r.authUserChangePassword !== undefined ||
    r.authUserGrantRole !== undefined ||
    r.authUserRevokeRole !== undefined ||
    r.authRoleAdd !== undefined ||
    r.authRoleGrantPermission !== undefined ||
    r.authRoleRevokePermission !== undefined ||
    r.authRoleDelete !== undefined
  );
}

/** Checks an entry as its header's user; call only while auth is enabled. Throws ClientError. */
export function checkAtApply(auth: AuthStore, store: KvStore, leaseExists: (id: bigint) => boolean, r: InternalRequest): void {
  const ai: AuthInfo = { username: r.header?.username ?? '', revision: r.header?.authRevision ?? 0 };
  if (needsAdmin(r)) {
    auth.checkAdmin(ai);
    return;
  }
  const keysOf: LeaseKeysOf = (id) => (leaseExists(id) ? store.keysOfLease(id) : undefined);
  if (r.put !== undefined) checkPutRequest(auth, ai, r.put, keysOf);
  else if (r.deleteRange !== undefined) checkDeleteRequest(auth, ai, r.deleteRange);
  else if (r.txn !== undefined) checkTxnRequest(auth, ai, r.txn);
  else if (r.leaseRevoke !== undefined) checkLeaseKeys(auth, ai, r.leaseRevoke.ID, keysOf);
}

function done(rev: number, encode: (h: ResponseHeaderInit) => Uint8Array): AuthApplied {
  return { header: { revision: rev }, encode };
}

/** Applies an auth request; undefined when `r` is none. `index` is the entry's raft index (simple tokens carry it). */
export function applyAuth(auth: AuthStore, kvRev: number, index: number, r: InternalRequest): AuthApplied | undefined {
  if (r.authenticate !== undefined) {
    const a = r.authenticate;
    auth.checkAuthenticate(a.name);
    const token = a.simpleToken === '' ? '' : `${a.simpleToken}.${index}`;
    if (token !== '') auth.simpleTokens.register(token, a.name);
    return { header: { revision: kvRev }, encode: (h) => encodeAuthenticateResponse({ header: h, token }), authenticated: { username: a.name, revision: auth.revision, token } };
  }
  if (r.authEnable !== undefined) {
    auth.enable();
    return done(kvRev, (h) => encodeAuthEnableResponse({ header: h }));
  }
  if (r.authDisable !== undefined) {
    auth.disable();
    return done(kvRev, (h) => encodeAuthDisableResponse({ header: h }));
  }
  if (r.authUserAdd !== undefined) {
    const u = r.authUserAdd;
    auth.userAdd(u.name, storedPassword(u.hashedPassword), u.options?.noPassword === true);
    return done(kvRev, (h) => encodeAuthUserAddResponse({ header: h }));
  }
  if (r.authUserDelete !== undefined) {
    auth.userDelete(r.authUserDelete.name);
    return done(kvRev, (h) => encodeAuthUserDeleteResponse({ header: h }));
  }
  if (r.authUserChangePassword !== undefined) {
    auth.userChangePassword(r.authUserChangePassword.name, storedPassword(r.authUserChangePassword.hashedPassword));
    return done(kvRev, (h) => encodeAuthUserChangePasswordResponse({ header: h }));
  }
  if (r.authUserGrantRole !== undefined) {
    auth.userGrantRole(r.authUserGrantRole.user, r.authUserGrantRole.role);
    return done(kvRev, (h) => encodeAuthUserGrantRoleResponse({ header: h }));
  }
  if (r.authUserRevokeRole !== undefined) {
    auth.userRevokeRole(r.authUserRevokeRole.name, r.authUserRevokeRole.role);
    return done(kvRev, (h) => encodeAuthUserRevokeRoleResponse({ header: h }));
  }
  if (r.authRoleAdd !== undefined) {
    auth.roleAdd(r.authRoleAdd.name);
    return done(kvRev, (h) => encodeAuthRoleAddResponse({ header: h }));
  }
  if (r.authRoleDelete !== undefined) {
    auth.roleDelete(r.authRoleDelete.role);
    return done(kvRev, (h) => encodeAuthRoleDeleteResponse({ header: h }));
  }
  if (r.authRoleGrantPermission !== undefined) {
    auth.roleGrantPermission(r.authRoleGrantPermission.name, r.authRoleGrantPermission.perm);
    return done(kvRev, (h) => encodeAuthRoleGrantPermissionResponse({ header: h }));
  }
  if (r.authRoleRevokePermission !== undefined) {
    const p = r.authRoleRevokePermission;
    auth.roleRevokePermission(p.role, p.key, p.rangeEnd);
    return done(kvRev, (h) => encodeAuthRoleRevokePermissionResponse({ header: h }));
  }
  return undefined;
}
