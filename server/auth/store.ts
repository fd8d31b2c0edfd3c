// Users, roles and permissions (etcd's auth/store.go): the authUsers / authRoles tables and the
// enabled flag and revision in meta, written by apply/ inside the apply transaction, mirrored in
// memory for the permission checks. Every change bumps the auth revision except AuthEnable (as etcd);
// a fresh store starts at revision 1 so that revision 0 means "no user".
//
// Mutations run inside the caller's LMDB write transaction. If that transaction aborts, the caller
// must call reload() (as it does for the KV and member stores).
import type { Permission, PermissionInit, Role, User } from '../../proto/gen/authpb.js';
import { ClientError } from '../base/errors.js';
import type { Backend, Table } from '../storage/backend/index.js';
import {
  authNameKey,
  decodeAuthRoleRecord,
  decodeAuthUserRecord,
  decodeNum,
  encodeAuthRoleRecord,
  encodeAuthUserRecord,
  encodeNum,
  META,
  parseAuthNameKey,
} from '../storage/schema/index.js';
import { MergedPermissions, PERM_READ, PERM_WRITE } from './perms.js';
import { SimpleTokens } from './tokens.js';

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** Who a request runs as: a user name and the auth revision its credentials were checked at (0 = nobody). */
export interface AuthInfo {
  readonly username: string;
  readonly revision: number;
}

export const NOBODY: AuthInfo = { username: '', revision: 0 };

function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class AuthStore {
  /** Read on every request: the one check the hot path pays while auth is off. */
  enabled = false;
  revision = 1;
  readonly simpleTokens: SimpleTokens;
  private users = new Map<string, User>();
  private roles = new Map<string, Role>();
  private readonly permCache = new Map<string, MergedPermissions>();
  private readonly userTable: Table;
  private readonly roleTable: Table;
  private readonly meta: Table;

  constructor(backend: Backend, now: () => number) {
    this.userTable = backend.table('authUsers');
    this.roleTable = backend.table('authRoles');
    this.meta = backend.table('meta');
    this.simpleTokens = new SimpleTokens(now);
    this.reload();
  }

  /** Re-reads everything from LMDB (start, snapshot install, aborted apply transaction). */
  reload(): void {
    const wasEnabled = this.enabled;
    this.enabled = decodeNum(this.meta.get(META.authEnabled), 0) === 1;
    this.revision = decodeNum(this.meta.get(META.authRevision), 1);
    this.users = new Map();
    for (const { key, value } of this.userTable.entries(Buffer.alloc(0), undefined)) {
      const name = parseAuthNameKey(key);
      this.users.set(name, decodeAuthUserRecord(Buffer.from(value), name));
    }
    this.roles = new Map();
    for (const { key, value } of this.roleTable.entries(Buffer.alloc(0), undefined)) {
      const name = parseAuthNameKey(key);
      this.roles.set(name, decodeAuthRoleRecord(Buffer.from(value), name));
    }
    this.permCache.clear();
    if (wasEnabled && !this.enabled) this.simpleTokens.clear();
  }

  // ---------- reads ----------

  getUser(name: string): User | undefined {
    return this.users.get(name);
  }

  getRole(name: string): Role | undefined {
    return this.roles.get(name);
  }

  /** User names in key (byte) order, as etcd's UserList. */
  userNames(): string[] {
    return [...this.users.keys()].sort(byName);
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort(byName);
  }

  hasRole(user: string, role: string): boolean {
    return this.users.get(user)?.roles.includes(role) ?? false;
  }

  /** The permissions RoleGet reports: the stored ones, also for root (etcd 3.4; 3.5 reports root as readwrite on every key). */
  rolePermissions(name: string): Permission[] {
    const role = this.roles.get(name);
    if (role === undefined) throw new ClientError('roleNotFound');
    return role.keyPermission;
  }

  // ---------- permission checks (etcd's isOpPermitted / IsAdminPermitted) ----------

  private checkOp(info: AuthInfo, key: Uint8Array, rangeEnd: Uint8Array, type: typeof PERM_READ | typeof PERM_WRITE): void {
    if (!this.enabled) return;
    if (info.revision === 0) throw new ClientError('userEmpty');
    if (info.revision < this.revision) throw new ClientError('authOldRevision');
    const user = this.users.get(info.username);
    if (user === undefined) throw new ClientError('permissionDenied');
    if (user.roles.includes(ROOT_ROLE)) return;
    if (!this.mergedPermissions(user).permits(key, rangeEnd, type)) throw new ClientError('permissionDenied');
  }

  checkRange(info: AuthInfo, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.checkOp(info, key, rangeEnd, PERM_READ);
  }

  checkPut(info: AuthInfo, key: Uint8Array): void {
    this.checkOp(info, key, EMPTY, PERM_WRITE);
  }

  checkDelete(info: AuthInfo, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.checkOp(info, key, rangeEnd, PERM_WRITE);
  }

  checkAdmin(info: AuthInfo | undefined): void {
    if (!this.enabled) return;
    if (info === undefined || info.username === '') throw new ClientError('userEmpty');
    const user = this.users.get(info.username);
    if (user === undefined) throw new ClientError('userNotFound');
    if (!user.roles.includes(ROOT_ROLE)) throw new ClientError('permissionDenied');
  }

  isAdmin(info: AuthInfo | undefined): boolean {
    try {
      this.checkAdmin(info);
      return true;
    } catch {
      return false;
    }
  }

  private mergedPermissions(user: User): MergedPermissions {
    const name = user.name.toString('utf8');
    let m = this.permCache.get(name);
    if (m === undefined) {
      m = new MergedPermissions();
      for (const r of user.roles) {
        const role = this.roles.get(r);
        if (role !== undefined) m.addAll(role.keyPermission);
      }
      this.permCache.set(name, m);
    }
    return m;
  }

  // ---------- mutations (apply, inside the LMDB write transaction) ----------

  private commitRevision(): void {
    this.revision++;
    this.meta.put(META.authRevision, encodeNum(this.revision));
    this.permCache.clear();
  }

  private putUser(u: User): void {
    const name = u.name.toString('utf8');
    this.userTable.put(authNameKey(name), encodeAuthUserRecord(u));
    this.users.set(name, u);
  }

  private putRole(r: Role): void {
    const name = r.name.toString('utf8');
    this.roleTable.put(authNameKey(name), encodeAuthRoleRecord(r));
    this.roles.set(name, r);
  }

  private mustUser(name: string): User {
    const u = this.users.get(name);
    if (u === undefined) throw new ClientError('userNotFound');
    return u;
  }

  private mustRole(name: string): Role {
    const r = this.roles.get(name);
    if (r === undefined) throw new ClientError('roleNotFound');
    return r;
  }

  enable(): void {
    if (this.enabled) return;
    const root = this.users.get(ROOT_USER);
    if (root === undefined) throw new ClientError('rootUserNotExist');
    if (!root.roles.includes(ROOT_ROLE)) throw new ClientError('rootRoleNotExist');
    this.meta.put(META.authEnabled, encodeNum(1));
    // A fresh store's revision 1 was never written; keep it so a reload reads the same.
    this.meta.put(META.authRevision, encodeNum(this.revision));
    this.enabled = true;
    this.permCache.clear();
  }

  disable(): void {
    if (!this.enabled) return;
    this.meta.put(META.authEnabled, encodeNum(0));
    this.commitRevision();
    this.enabled = false;
    this.simpleTokens.clear();
  }

  /** `password` is the bcrypt hash (empty for a no-password user). */
  userAdd(name: string, password: Buffer, noPassword: boolean): void {
    if (name.length === 0) throw new ClientError('userEmpty');
    if (this.users.has(name)) throw new ClientError('userAlreadyExist');
    this.putUser({ name: Buffer.from(name, 'utf8'), password: noPassword ? Buffer.alloc(0) : password, roles: [], options: { noPassword } });
    this.commitRevision();
  }

  userDelete(name: string): void {
    if (this.enabled && name === ROOT_USER) throw new ClientError('invalidAuthMgmt');
    this.mustUser(name);
    this.userTable.del(authNameKey(name));
    this.users.delete(name);
    this.commitRevision();
    this.simpleTokens.invalidateUser(name);
  }

  userChangePassword(name: string, password: Buffer): void {
    const u = this.mustUser(name);
    this.putUser({ ...u, password });
    this.commitRevision();
    this.simpleTokens.invalidateUser(name);
  }

  userGrantRole(user: string, role: string): void {
    const u = this.mustUser(user);
    if (role !== ROOT_ROLE) this.mustRole(role);
    if (u.roles.includes(role)) return;
    this.putUser({ ...u, roles: [...u.roles, role].sort(byName) });
    this.commitRevision();
  }

  userRevokeRole(user: string, role: string): void {
    if (this.enabled && user === ROOT_USER && role === ROOT_ROLE) throw new ClientError('invalidAuthMgmt');
    const u = this.mustUser(user);
    const roles = u.roles.filter((r) => r !== role);
    if (roles.length === u.roles.length) throw new ClientError('roleNotGranted');
    this.putUser({ ...u, roles });
    this.commitRevision();
  }

  roleAdd(name: string): void {
    if (name.length === 0) throw new ClientError('roleEmpty');
    if (this.roles.has(name)) throw new ClientError('roleAlreadyExist');
    this.putRole({ name: Buffer.from(name, 'utf8'), keyPermission: [] });
    this.commitRevision();
  }

  roleDelete(name: string): void {
    if (this.enabled && name === ROOT_ROLE) throw new ClientError('invalidAuthMgmt');
    this.mustRole(name);
    this.roleTable.del(authNameKey(name));
    this.roles.delete(name);
    for (const u of [...this.users.values()]) {
      if (u.roles.includes(name)) this.putUser({ ...u, roles: u.roles.filter((r) => r !== name) });
    }
    this.commitRevision();
  }

  roleGrantPermission(name: string, perm: PermissionInit | undefined): void {
    const role = this.mustRole(name);
    if (perm === undefined) throw new ClientError('permissionNotGiven');
    const key = Buffer.from(perm.key ?? EMPTY);
    const rangeEnd = Buffer.from(perm.rangeEnd ?? EMPTY);
    const permType = perm.permType ?? 0;
    const same = (p: Permission): boolean => p.key.equals(key) && p.rangeEnd.equals(rangeEnd);
    const keyPermission = role.keyPermission.some(same)
      ? role.keyPermission.map((p) => (same(p) ? { ...p, permType } : p))
      : [...role.keyPermission, { permType, key, rangeEnd }].sort((a, b) => Buffer.compare(a.key, b.key));
    this.putRole({ ...role, keyPermission });
    this.commitRevision();
  }

  roleRevokePermission(name: string, key: Uint8Array, rangeEnd: Uint8Array): void {
    const role = this.mustRole(name);
    const keyPermission = role.keyPermission.filter((p) => !(p.key.equals(key) && p.rangeEnd.equals(rangeEnd)));
    if (keyPermission.length === role.keyPermission.length) throw new ClientError('permissionNotGranted');
    this.putRole({ ...role, keyPermission });
    this.commitRevision();
  }

  /** Authenticate at apply (the password was checked by the proposing member): the user must still exist with a password. */
  checkAuthenticate(name: string): void {
    if (!this.enabled) throw new ClientError('authNotEnabled');
    const u = this.users.get(name);
    if (u === undefined || u.options?.noPassword === true) throw new ClientError('authFailed');
  }
}

const EMPTY = Buffer.alloc(0);
