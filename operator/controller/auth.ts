// The auth manager (spec.auth): before each reconcile it makes sure the operator can talk to the
// cluster with auth on, and turns auth on or off as the spec says.
//
// Credentials: the operator has its own etcd user, `cairn-operator`, with the root role (what
// membership changes, Status, Defragment, Snapshot and MoveLeader need under auth), its password
// generated once and kept in the Secret <cluster>-operator-auth (owned by the EtcdCluster). root gets
// the password of the user's Secret (spec.auth.rootSecretRef) and stays the user's: they may change
// it (the Secret is the source of truth: a changed Secret is set as root's password by the operator's
// user) without the operator losing access, and the cluster's own audit tells the two apart. The
// user's root password is needed again only to recover the operator's user (its Secret deleted, or
// its password changed by someone): root logs in and sets it anew.
//
// Enabling (auth off, spec.auth set; every step idempotent): user root with the Secret's password
// (an existing root gets it), role root, root granted root, user cairn-operator granted root, auth
// enable. Disabling (spec.auth removed, auth on): auth disable as cairn-operator.
//
// Bad input: a missing Secret, a missing or empty key, a password root refuses are reported in the
// AuthReady condition (the reason names the case, the message the Secret) and retried with
// exponential backoff (AUTH_BACKOFF_MIN_MS .. AUTH_BACKOFF_MAX_MS), never in a tight loop: no etcd
// login is tried again before the backoff ran out. While auth is on and the operator cannot log in
// at all, the reconcile stops there (block): an observation without credentials would see every
// member unhealthy.
import { randomBytes } from 'node:crypto';
import { API_VERSION, KIND, type AuthStatus, type Condition, type EtcdCluster, type JsonObject } from '../api/index.js';
import { EtcdAccess, EtcdAdmin, EtcdCallError, registerAccess, type ClientTls } from '../etcd/index.js';
import { KubeError, pathOf, type KubeRest } from '../kube/index.js';
import { FIELD_MANAGER, selectorLabels } from '../plan/index.js';

export const OPERATOR_USER = 'cairn-operator';
export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';
export const AUTH_BACKOFF_MIN_MS = 5_000;
export const AUTH_BACKOFF_MAX_MS = 300_000;
export const AUTH_CALL_TIMEOUT_MS = 10_000;

export const operatorSecretName = (cluster: string): string => `${cluster}-operator-auth`;

/** What the reconcile does with the auth manager's outcome. */
export interface AuthOutcome {
  /** The access the cluster's members are reached with (registered for their endpoints). */
  access: EtcdAccess | undefined;
  /** status.auth to write (undefined: leave as it is). */
  status?: AuthStatus;
  /** The AuthReady condition (undefined: none, auth not asked for and never on). */
  condition?: Pick<Condition, 'status' | 'reason' | 'message'>;
  /** Skip observe/plan/act this time (auth is on and the operator cannot log in). */
  block: boolean;
  /** Come back no later than this (a backoff running). */
  requeueMs?: number;
}

type RootPassword = { ok: true; password: string; version: string } | { ok: false; reason: 'RootSecretMissing' | 'RootSecretInvalid'; message: string };

class Refused extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const isAuthFailed = (e: unknown): boolean => e instanceof EtcdCallError && /authentication failed|user name not found|permission denied/.test(e.details);

export class AuthManager {
  private readonly accesses = new Map<string, EtcdAccess>();
  /** The operator's client TLS per cluster (spec.tls.client), from the certificate manager. */
  private readonly tls = new Map<string, ClientTls | undefined>();
  private readonly failures = new Map<string, { n: number; nextAt: number; outcome: AuthOutcome }>();

  constructor(
    private readonly rest: KubeRest,
    private readonly now: () => number = Date.now,
  ) {}

  /** The access of a cluster (key ns/name), if the manager made one. */
  accessOf(key: string): EtcdAccess | undefined {
    return this.accesses.get(key);
  }

  forget(key: string): void {
    this.accesses.delete(key);
    this.failures.delete(key);
    this.tls.delete(key);
  }

  /**
   * One pass for a cluster. `endpoints`: its members' client endpoints (host:port, ready pods first).
   */
  async prepare(c: EtcdCluster, endpoints: readonly string[], tls?: ClientTls): Promise<AuthOutcome> {
    const key = `${c.metadata.namespace}/${c.metadata.name}`;
    const prev = c.status?.auth;
    if (c.spec.auth === undefined && prev?.enabled !== true) {
      this.failures.delete(key);
      const had = this.accesses.get(key);
      return this.register(key, endpoints, tls === undefined ? undefined : had !== undefined && had.auth === undefined && had.tls === tls ? had : new EtcdAccess(undefined, tls), {});
    }
    this.tls.set(key, tls);
    const due = this.failures.get(key);
    if (due !== undefined && this.now() < due.nextAt) return { ...due.outcome, access: this.register(key, endpoints, this.accesses.get(key), {}).access, requeueMs: due.nextAt - this.now() };
    try {
      const out = await this.pass(c, key, endpoints, tls);
      this.failures.delete(key);
      return out;
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      const n = (due?.n ?? 0) + 1;
      const delay = Math.min(AUTH_BACKOFF_MAX_MS, AUTH_BACKOFF_MIN_MS * 2 ** (n - 1));
      const outcome: AuthOutcome = {
        access: this.accesses.get(key),
        condition: { status: 'False', reason: e.reason, message: `${e.message}; retrying in ${String(Math.round(delay / 1000))} s` },
        block: this.blockedWithoutOperator.has(key),
        requeueMs: delay,
      };
      this.failures.set(key, { n, nextAt: this.now() + delay, outcome });
      return outcome;
    }
  }

  /** Clusters whose operator user does not log in (with auth on): only root can repair that. */
  private readonly blockedWithoutOperator = new Set<string>();

  private register(key: string, endpoints: readonly string[], access: EtcdAccess | undefined, rest: Omit<AuthOutcome, 'access' | 'block'>): AuthOutcome {
    if (access === undefined) this.accesses.delete(key);
    else this.accesses.set(key, access);
    for (const ep of endpoints) registerAccess(ep, access);
    return { access, block: false, ...rest };
  }

  private async pass(c: EtcdCluster, key: string, endpoints: readonly string[], tls: ClientTls | undefined): Promise<AuthOutcome> {
    const ns = c.metadata.namespace;
    const prev = c.status?.auth;
    const op = await this.operatorSecret(c);
    let access = this.accesses.get(key);
    if (access?.auth?.password !== op.password || access.tls !== tls) access = new EtcdAccess({ user: OPERATOR_USER, password: op.password }, tls);
    this.register(key, endpoints, access, {});
    let found: { ep: string; enabled: boolean } | undefined;
    for (const e of endpoints) {
      const a = new EtcdAdmin(e, AUTH_CALL_TIMEOUT_MS, access);
      try {
        found = { ep: e, enabled: (await a.authStatus()).enabled };
        break;
      } catch {
        // the next member
      } finally {
        a.close();
      }
    }
    // Nobody answering: the planner sees it too; nothing to decide about auth now.
    if (found === undefined) return { access, block: false, ...(endpoints.length === 0 ? { condition: { status: 'Unknown', reason: 'WaitingForMembers', message: 'no member to talk to yet' } } : {}) };
    const ep = found.ep;
    const st = { enabled: found.enabled };
    const admin = new EtcdAdmin(ep, AUTH_CALL_TIMEOUT_MS, access);
    try {
      if (c.spec.auth === undefined) {
        // Auth on, spec.auth removed: turn it off with the operator's user.
        if (st.enabled) await admin.authDisable();
        return { access: this.register(key, endpoints, tls === undefined ? undefined : new EtcdAccess(undefined, tls), {}).access, block: false, status: { enabled: false } };
      }
      const ref = c.spec.auth.rootSecretRef;
      const root = await this.rootPassword(ns, ref.name, ref.key);
      if (!st.enabled) {
        if (!root.ok) throw new Refused(root.reason, root.message);
        await this.enable(admin, root.password, op.password);
        return { access, block: false, status: { enabled: true, user: OPERATOR_USER, rootSecretVersion: root.version, enabledAt: new Date(this.now()).toISOString() }, condition: { status: 'True', reason: 'AuthEnabled', message: `auth enabled; root's password from Secret ${ns}/${ref.name} key ${ref.key}; the operator logs in as ${OPERATOR_USER}` } };
      }
      // Auth on: the operator's own user first.
      let loggedIn = true;
      try {
        await access.token(admin, true);
      } catch (e) {
        if (!isAuthFailed(e)) throw e;
        loggedIn = false;
      }
      if (!loggedIn) {
        this.blockedWithoutOperator.add(key);
        if (!root.ok) throw new Refused(root.reason, `${root.message}; the operator's user ${OPERATOR_USER} cannot log in and only root can restore it`);
        await this.repairOperator(key, ep, ns, ref.name, ref.key, root.password, op.password);
        this.blockedWithoutOperator.delete(key);
        access.forget(undefined);
        return { access, block: false, status: { enabled: true, user: OPERATOR_USER, rootSecretVersion: root.version, ...(prev?.enabledAt !== undefined ? { enabledAt: prev.enabledAt } : {}) }, condition: { status: 'True', reason: 'AuthEnabled', message: `the operator's user ${OPERATOR_USER} was restored by root (Secret ${ns}/${ref.name})` } };
      }
      this.blockedWithoutOperator.delete(key);
      if (!root.ok) throw new Refused(root.reason, root.message);
      const status: AuthStatus = { enabled: true, user: OPERATOR_USER, rootSecretVersion: root.version, ...(prev?.enabledAt !== undefined ? { enabledAt: prev.enabledAt } : {}) };
      if (prev?.rootSecretVersion !== root.version) {
        // The Secret changed (or was never applied): root gets its password.
        if ((await admin.userRoles(ROOT_USER)) === undefined) {
          await admin.userAdd(ROOT_USER, root.password);
          await admin.userGrantRole(ROOT_USER, ROOT_ROLE);
        } else await admin.userChangePassword(ROOT_USER, root.password);
      }
      return { access, block: false, status, condition: { status: 'True', reason: 'AuthEnabled', message: `auth enabled; root's password from Secret ${ns}/${ref.name} key ${ref.key}; the operator logs in as ${OPERATOR_USER}` } };
    } finally {
      admin.close();
    }
  }

  /** root, role root, the operator's user, auth enable: each step a no-op when already done. */
  private async enable(admin: EtcdAdmin, rootPassword: string, operatorPassword: string): Promise<void> {
    if (!(await admin.userAdd(ROOT_USER, rootPassword))) await admin.userChangePassword(ROOT_USER, rootPassword);
    await admin.roleAdd(ROOT_ROLE);
    await admin.userGrantRole(ROOT_USER, ROOT_ROLE);
    if (!(await admin.userAdd(OPERATOR_USER, operatorPassword))) await admin.userChangePassword(OPERATOR_USER, operatorPassword);
    await admin.userGrantRole(OPERATOR_USER, ROOT_ROLE);
    await admin.authEnable();
  }

  /** As root: the operator's user (re)created with its Secret's password and the root role. */
  private async repairOperator(clusterKey: string, ep: string, ns: string, secret: string, key: string, rootPassword: string, operatorPassword: string): Promise<void> {
    const rootAccess = new EtcdAccess({ user: ROOT_USER, password: rootPassword }, this.tls.get(clusterKey));
    const admin = new EtcdAdmin(ep, AUTH_CALL_TIMEOUT_MS, rootAccess);
    try {
      try {
        await rootAccess.token(admin, true);
      } catch (e) {
        if (isAuthFailed(e)) throw new Refused('RootPasswordRejected', `root refuses the password in Secret ${ns}/${secret} key ${key} (${e instanceof Error ? e.message : String(e)})`);
        throw e;
      }
      if (!(await admin.userAdd(OPERATOR_USER, operatorPassword))) await admin.userChangePassword(OPERATOR_USER, operatorPassword);
      await admin.userGrantRole(OPERATOR_USER, ROOT_ROLE);
    } finally {
      admin.close();
    }
  }

  private async rootPassword(ns: string, name: string, key: string): Promise<RootPassword> {
    let s: JsonObject;
    try {
      s = await this.rest.get(pathOf('Secret', ns, name));
    } catch (e) {
      if (e instanceof KubeError && e.notFound) return { ok: false, reason: 'RootSecretMissing', message: `Secret ${ns}/${name} (spec.auth.rootSecretRef) does not exist` };
      throw e;
    }
    const data = (s['data'] ?? {}) as Record<string, unknown>;
    const v = data[key];
    const password = typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : '';
    if (password === '') return { ok: false, reason: 'RootSecretInvalid', message: `Secret ${ns}/${name} has no key ${key} or it is empty (root's password)` };
    const meta = (s['metadata'] ?? {}) as Record<string, unknown>;
    return { ok: true, password, version: typeof meta['resourceVersion'] === 'string' ? meta['resourceVersion'] : '' };
  }

  /** The operator's own credentials Secret, made once with a random password. */
  private async operatorSecret(c: EtcdCluster): Promise<{ password: string }> {
    const { namespace: ns, name, uid } = c.metadata;
    const path = pathOf('Secret', ns, operatorSecretName(name));
    try {
      const s = await this.rest.get(path);
      const p = ((s['data'] ?? {}) as Record<string, unknown>)['password'];
      if (typeof p === 'string' && p !== '') return { password: Buffer.from(p, 'base64').toString('utf8') };
    } catch (e) {
      if (!(e instanceof KubeError && e.notFound)) throw e;
    }
    const password = randomBytes(24).toString('base64url');
    await this.rest.apply(
      path,
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: operatorSecretName(name),
          namespace: ns,
          labels: { ...selectorLabels(c), 'app.kubernetes.io/managed-by': FIELD_MANAGER },
          ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name, uid, controller: true, blockOwnerDeletion: true }],
        },
        type: 'kubernetes.io/basic-auth',
        data: { username: Buffer.from(OPERATOR_USER).toString('base64'), password: Buffer.from(password).toString('base64') },
      },
      FIELD_MANAGER,
    );
    return { password };
  }
}
