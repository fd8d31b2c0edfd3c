// Apply: committed entries into LMDB, in log order, exactly once: one write transaction per batch
// holds the entries' effects and the applied index together (DESIGN: apply is atomic with its index).
// An entry that fails halfway (MidTxnError) aborts the batch, which is redone with that entry refused.
import { decodeInternalRequest, type InternalRequest } from '../../proto/gen/cairnpb.js';
import type { Backend } from '../storage/backend/index.js';
import { META, decodeNum, encodeNum } from '../storage/schema/index.js';
import type { KvStore, RevisionEvents } from '../mvcc/index.js';
import type { LeaseStore } from '../lease/index.js';
import type { AuthStore } from '../auth/index.js';
import { applyRequest, MidTxnError, type AlarmStore, type ApplyOutcome, type LeaseChanges } from '../apply/index.js';
import { decodeConfChange, type ConfChange, type Entry } from '../raft/index.js';
import { applyChange, checkChange, decodeChange, type MemberChange, type MemberStore } from '../membership/index.js';
import { ClientError, assert } from '../base/errors.js';
import { appliedIn, nodeStats } from './stats.js';

/** What one LMDB batch changed, for everything that runs after its transaction committed. */
export interface Effects {
  revisions: RevisionEvents[];
  readonly leaseChanges: LeaseChanges;
  readonly outcomes: { id: bigint; outcome: ApplyOutcome }[];
  readonly conf: { cc: ConfChange; change: MemberChange; error: ClientError | undefined }[];
  compacted: boolean;
}

/** The request kinds an entry may carry, with etcd's op label of etcd_server_apply_duration_seconds. */
const APPLY_OPS = (
  ['put', 'deleteRange', 'txn', 'compaction', 'leaseGrant', 'leaseRevoke', 'alarm', 'authEnable', 'authDisable', 'authenticate', 'authUserAdd', 'authUserDelete', 'authUserChangePassword', 'authUserGrantRole', 'authUserRevokeRole', 'authRoleAdd', 'authRoleDelete', 'authRoleGrantPermission', 'authRoleRevokePermission'] as const
).map((k) => [k, k.charAt(0).toUpperCase() + k.slice(1)] as const);

/** etcd's op label for a request (Cairn's member attributes entry is etcd's ClusterMemberAttrSet). */
function applyOp(req: InternalRequest): string {
  if (req.memberAttrs !== undefined) return 'ClusterMemberAttrSet';
  for (const [k, op] of APPLY_OPS) if (req[k] !== undefined) return op;
  return 'unknown';
}

class MidTxnFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: ClientError,
  ) {
    super(`entry ${index}: ${error.message}`);
  }
}


export interface ApplierHost {
  readonly backend: Backend;
  readonly store: KvStore;
  readonly members: MemberStore;
  readonly alarms: AlarmStore;
  readonly auth: AuthStore;
  readonly leaseStore: LeaseStore;
  readonly memberId: bigint;
}

export class Applier {
  /** The index of the last entry whose effects LMDB holds (written in the same transaction). */
  appliedIndex: number;

  constructor(private readonly host: ApplierHost) {
    this.appliedIndex = decodeNum(host.backend.table('meta').get(META.appliedIndex), 0);
  }

  /** A snapshot replaced the database (applied through `index`): the stores read their state again. */
  installed(index: number): void {
    this.appliedIndex = index;
    this.host.store.reload();
    this.host.members.reload();
    this.host.alarms.reload();
    this.host.auth.reload();
  }

  /** Applies entries in one LMDB transaction; redoes the batch when an entry fails halfway. */
  applyChunk(chunk: readonly Entry[]): Effects {
    const failed = new Map<number, ClientError>();
    for (;;) {
      const effects: Effects = { revisions: [], leaseChanges: { granted: [], revoked: [] }, outcomes: [], conf: [], compacted: false };
      this.host.store.takeChanges();
      const before = this.appliedIndex;
      try {
        const started = performance.now();
        let changed = started;
        this.host.backend.write(() => {
          this.applyAll(chunk, failed, effects);
          changed = performance.now();
        });
        const ended = performance.now();
        appliedIn(ended - started, ended - changed);
        effects.revisions = this.host.store.takeChanges();
        return effects;
      } catch (err) {
        this.appliedIndex = before;
        if (!(err instanceof MidTxnFailure)) throw err;
        this.host.store.reload();
        this.host.members.reload();
        this.host.alarms.reload();
        this.host.auth.reload();
        failed.set(err.index, err.error);
      }
    }
  }

  private applyAll(chunk: readonly Entry[], failed: ReadonlyMap<number, ClientError>, effects: Effects): void {
    const ctx = {
      store: this.host.store,
      leases: this.host.leaseStore,
      leaseChanges: effects.leaseChanges,
      setMemberAttrs: (id: bigint, name: string, clientURLs: readonly string[]) => this.setMemberAttrs(id, name, clientURLs),
      alarms: this.host.alarms,
      auth: this.host.auth,
      entryIndex: 0,
    };
    for (const e of chunk) {
      assert(e.index === this.appliedIndex + 1, `entries apply in order (${e.index} after ${this.appliedIndex})`);
      ctx.entryIndex = e.index;
      if (e.type === 'confChange') this.applyConfEntry(e, effects);
      else if (e.data.length > 0) {
        const req = decodeInternalRequest(e.data);
        let outcome: ApplyOutcome;
        const started = performance.now();
        try {
          outcome = applyRequest(ctx, req, failed.get(e.index));
        } catch (err) {
          if (err instanceof MidTxnError) throw new MidTxnFailure(e.index, err.error);
          throw err;
        }
        nodeStats.apply.observe(applyOp(req), outcome.ok, (performance.now() - started) / 1000);
        if (outcome.ok && outcome.response.kind === 'compaction') effects.compacted = true;
        const id = req.header?.ID;
        if (id !== undefined) effects.outcomes.push({ id, outcome });
      }
      this.appliedIndex = e.index;
    }
    const last = chunk[chunk.length - 1];
    if (last !== undefined) {
      const meta = this.host.backend.table('meta');
      meta.put(META.appliedIndex, encodeNum(last.index));
      meta.put(META.appliedTerm, encodeNum(last.term));
    }
  }

  private applyConfEntry(e: Entry, effects: Effects): void {
    const cc = decodeConfChange(e.data);
    const change = decodeChange(cc.context);
    const members = this.host.members.all();
    try {
      checkChange(members, (id) => this.host.members.isRemoved(id), change);
    } catch (err) {
      if (!(err instanceof ClientError)) throw err;
      effects.conf.push({ cc, change, error: err });
      return;
    }
    const removedNow = change.kind === 'remove' ? [change.member.id] : [];
    this.host.members.write(applyChange(members, change), removedNow);
    if (change.kind === 'remove' && change.member.id === this.host.memberId) this.host.backend.table('meta').put(META.removed, encodeNum(1));
    effects.conf.push({ cc, change, error: undefined });
  }

  private setMemberAttrs(id: bigint, name: string, clientURLs: readonly string[]): void {
    const members = this.host.members.all();
    const cur = members.find((m) => m.id === id);
    if (cur === undefined) return;
    this.host.members.write(
      members.map((m) => (m.id === id ? { ...m, name, clientURLs: [...clientURLs] } : m)),
      [],
    );
  }

}
