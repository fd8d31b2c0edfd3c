// Auth tokens (etcd's simple_token.go and jwt.go).
//
// Simple tokens: `<16 random letters>.<raft index of the Authenticate entry>`. The proposing member
// picks the letters; every member registers the token when it applies the entry, in memory only
// (tokens die with the process, as in etcd), valid for --auth-token-ttl seconds after their last use.
//
// JWT: signed by the member that answers Authenticate, verified by any member holding the public
// key; claims as etcd's: username, revision (the auth revision at issue), exp (unix seconds).
import { createPrivateKey, createPublicKey, randomInt, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jwtVerify, SignJWT } from 'jose';
import bcrypt from 'bcryptjs';
import type { AuthInfo } from './store.js';

/** etcd's defaultSimpleTokenLength. */
export const SIMPLE_TOKEN_LETTERS = 16;
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** Registrations between sweeps of expired tokens (bounds the memory of tokens nobody uses again). */
const SWEEP_EVERY = 1024;
const DEFAULT_TTL_MS = 300_000;

export function simpleTokenPrefix(): string {
  let s = '';
  for (let i = 0; i < SIMPLE_TOKEN_LETTERS; i++) s += LETTERS[randomInt(LETTERS.length)] ?? 'a';
  return s;
}

/** The raft index a well-formed simple token carries, or undefined (etcd's isValidSimpleToken format check). */
export function simpleTokenIndex(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 2 || !/^[0-9]+$/.test(parts[1] ?? '')) return undefined;
  return Number(parts[1]);
}

export class SimpleTokens {
  ttlMs = DEFAULT_TTL_MS;
  private readonly tokens = new Map<string, { user: string; expiresAt: number }>();
  private sinceSweep = 0;

  constructor(private readonly now: () => number) {}

  register(token: string, user: string): void {
    this.tokens.set(token, { user, expiresAt: this.now() + this.ttlMs });
    if (++this.sinceSweep >= SWEEP_EVERY) this.sweep();
  }

  /** The token's user, extending its life (etcd's resetSimpleToken); undefined when unknown or expired. */
  use(token: string): string | undefined {
    const t = this.tokens.get(token);
    if (t === undefined) return undefined;
    const now = this.now();
    if (t.expiresAt <= now) {
      this.tokens.delete(token);
      return undefined;
    }
    t.expiresAt = now + this.ttlMs;
    return t.user;
  }

  invalidateUser(user: string): void {
    for (const [k, t] of this.tokens) if (t.user === user) this.tokens.delete(k);
  }

  clear(): void {
    this.tokens.clear();
  }

  get size(): number {
    return this.tokens.size;
  }

  private sweep(): void {
    this.sinceSweep = 0;
    const now = this.now();
    for (const [k, t] of this.tokens) if (t.expiresAt <= now) this.tokens.delete(k);
  }
}

// ---------- passwords ----------

/** bcrypt hash of a password, base64 as etcd 3.5 puts it in AuthUserAddRequest.hashedPassword. */
export async function hashPassword(password: string, cost: number): Promise<string> {
  const h = await bcrypt.hash(password, cost);
  return Buffer.from(h, 'utf8').toString('base64');
}

/** The stored form (bcrypt hash bytes) of a hashedPassword field. */
export function storedPassword(hashedBase64: string): Buffer {
  return Buffer.from(hashedBase64, 'base64');
}

export function checkPassword(password: string, stored: Buffer): Promise<boolean> {
  if (stored.length === 0) return Promise.resolve(false);
  return bcrypt.compare(password, stored.toString('utf8'));
}

// ---------- JWT ----------

export interface JwtOptions {
  readonly pubKeyFile: string;
  readonly privKeyFile: string;
  readonly signMethod: string;
  readonly ttlMs: number;
}

/** etcd's supported sign methods (jwt-go names = JOSE alg names). */
const ASYMMETRIC = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);
const SYMMETRIC = new Set(['HS256', 'HS384', 'HS512']);
/** Verified tokens kept (token -> claims) so a hot client does not pay a signature check per call. */
const VERIFIED_CACHE_MAX = 4096;

export class JwtTokens {
  private readonly signKey: KeyObject | Uint8Array | undefined;
  private readonly verifyKey: KeyObject | Uint8Array;
  private readonly verified = new Map<string, AuthInfo & { exp: number }>();

  constructor(
    private readonly opts: JwtOptions,
    private readonly nowMs: () => number,
  ) {
    const alg = opts.signMethod;
    if (SYMMETRIC.has(alg)) {
      if (opts.privKeyFile === '') throw new Error(`jwt: sign-method ${alg} needs priv-key (the shared secret)`);
      const secret = readFileSync(opts.privKeyFile);
      this.signKey = secret;
      this.verifyKey = secret;
      return;
    }
    if (!ASYMMETRIC.has(alg)) throw new Error(`jwt: unsupported sign-method "${alg}"`);
    if (opts.pubKeyFile === '' && opts.privKeyFile === '') throw new Error('jwt: pub-key and/or priv-key are required');
    this.signKey = opts.privKeyFile === '' ? undefined : createPrivateKey(readFileSync(opts.privKeyFile));
    this.verifyKey = opts.pubKeyFile !== '' ? createPublicKey(readFileSync(opts.pubKeyFile)) : createPublicKey(this.signKey as KeyObject);
  }

  async sign(info: AuthInfo): Promise<string> {
    if (this.signKey === undefined) throw new Error('jwt: no priv-key: this member can verify tokens but not issue them');
    return new SignJWT({ username: info.username, revision: info.revision, exp: Math.floor((this.nowMs() + this.opts.ttlMs) / 1000) })
      .setProtectedHeader({ alg: this.opts.signMethod })
      .sign(this.signKey);
  }

  /** The claims of a valid, unexpired token; undefined otherwise. */
  async verify(token: string): Promise<AuthInfo | undefined> {
    const hit = this.verified.get(token);
    if (hit !== undefined) {
      if (hit.exp * 1000 > this.nowMs()) return hit;
      this.verified.delete(token);
      return undefined;
    }
    try {
      const { payload } = await jwtVerify(token, this.verifyKey, { algorithms: [this.opts.signMethod], currentDate: new Date(this.nowMs()) });
      const { username, revision, exp } = payload;
      if (typeof username !== 'string' || typeof revision !== 'number' || typeof exp !== 'number') return undefined;
      if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.clear();
      const info = { username, revision, exp };
      this.verified.set(token, info);
      return info;
    } catch {
      return undefined;
    }
  }
}
