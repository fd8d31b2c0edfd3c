// The Lock service (etcd's v3lock, on clientv3/concurrency's Mutex): a lock is the key
// `<name>/<lease in hex>` attached to the caller's lease (a 60 s lease, never kept alive, when the
// request names none); the oldest key under `<name>/` by create revision holds it, and a waiter
// watches its predecessors' deletion. Unlock deletes the key. Every call runs as the caller (auth).
import { encodeLockResponse, encodeUnlockResponse, type LockRequest, type UnlockRequest } from '../../proto/gen/v3lockpb.js';
import { ClientError } from '../base/errors.js';
import { byCreate, compareCreate, headerOf, leaseHex, Session, type Ctx, type RecipeDeps } from './concurrency.js';

export interface LockApi {
  readonly lock: (r: LockRequest, ctx: Ctx) => Promise<Uint8Array>;
  readonly unlock: (r: UnlockRequest, ctx: Ctx) => Promise<Uint8Array>;
}

export function lockApi(deps: RecipeDeps): LockApi {
  return {
    lock: async (r, ctx) => {
      const s = new Session(deps, ctx);
      const lease = await s.lease(r.lease);
      const prefix = Buffer.concat([r.name, Buffer.from('/')]);
      const key = Buffer.concat([prefix, Buffer.from(leaseHex(lease))]);
      const owner = { requestRange: byCreate(prefix, 'first') };
      const resp = await s.txn([compareCreate(key, 0)], [{ requestPut: { key, lease } }, owner], [{ requestRange: { key } }, owner]);
      const myRev = resp.succeeded ? headerOf(resp).revision : (resp.responses[0]?.responseRange?.kvs[0]?.createRevision ?? 0);
      const holder = resp.responses[1]?.responseRange?.kvs[0];
      if (holder === undefined || holder.createRevision === myRev) return encodeLockResponse({ header: headerOf(resp), key });
      const release = (err: unknown): never => {
        // Mutex.Unlock on the in-process client's own context (no token): the waiter's key is deleted.
        void s
          .detached()
          .delete(key)
          .catch(() => undefined);
        throw err;
      };
      await s.waitDeletes(prefix, myRev - 1).catch(release);
      const mine = await s.range({ key }).catch(release);
      if (mine.kvs.length === 0) throw new ClientError('sessionExpired');
      return encodeLockResponse({ header: headerOf(mine), key });
    },
    unlock: async (r, ctx) => {
      const resp = await new Session(deps, ctx).delete(r.key);
      return encodeUnlockResponse({ header: headerOf(resp) });
    },
  };
}
