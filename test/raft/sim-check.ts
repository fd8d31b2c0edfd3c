// The simulation's invariants (Raft paper, figure 3), checked incrementally as the hosts act, so that
// every step is checked without rescanning logs:
// - election safety: at most one leader per term, over the whole run;
// - log matching: an (index, term) pair names one entry with one predecessor term, whoever holds it
//   (by induction, two logs holding the same (index, term) are identical up to it);
// - leader completeness: a new leader of term T holds every entry committed in a term below T;
// - state machine safety: every member applies, at each index, the entry every other member applied
//   there; no member skips or repeats an index; no client payload is applied at two indexes;
// - ReadIndex: a read's index is at least the commit index known anywhere when it was requested;
// - votes: a member's durable vote for a term never changes (a host that forgets votes fails here);
// - durability (issue 17): nothing is applied on a member before its own WAL holds it durably (checked
//   by the host as it applies); nothing is acknowledged to a client before a quorum holds it durably;
//   every acknowledged proposal is applied on every member that survives (checked after healing).
import type { ConfState, Entry, HardState, LogStorage, NodeId, ReadState, SnapshotMeta } from '../../server/raft/index.js';
import { entryKey, fmtHs, nid } from './sim-core.js';

export type Invariant =
  | 'election safety'
  | 'log matching'
  | 'leader completeness'
  | 'state machine safety'
  | 'linearizable read'
  | 'durable vote'
  | 'local durability'
  | 'quorum durability'
  | 'acknowledged write lost'
  | 'host contract'
  | 'raft error'
  | 'liveness';

/** A broken invariant: carries which one and what was seen. */
export class SimViolation extends Error {
  constructor(readonly invariant: Invariant, readonly detail: string) {
    super(`${invariant}: ${detail}`);
  }
}

interface Committed {
  readonly term: number;
  readonly key: string;
  /** An upper bound on the term in which the entry was committed (the real one is <= this). */
  commitTermMax: number;
}

interface AppendedEntry {
  readonly key: string;
  readonly prevTerm: number;
}

export interface CheckerOptions {
  /** Check that durable votes never change (off in the sanity test that needs a core invariant to fire). */
  readonly checkVotes: boolean;
}

export class Checker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly appended = new Map<string, AppendedEntry>();
  private readonly committed: (Committed | undefined)[] = [];
  private readonly payloadAt = new Map<string, number>();
  private readonly votes = new Map<string, NodeId>();
  private readonly reads = new Map<string, { readonly id: NodeId; readonly atLeast: number }>();
  /** The highest index known to be committed (a leader said so, or a member applied it). */
  knownCommit = 0;
  readsServed = 0;
  private readonly served = new Set<string>();
  private readonly acked: { readonly payload: string; readonly index: number }[] = [];

  constructor(private readonly opts: CheckerOptions) {}

  get elections(): number {
    return this.leaderOfTerm.size;
  }

  fail(invariant: Invariant, detail: string): never {
    throw new SimViolation(invariant, detail);
  }

  // ---- election safety and leader completeness ----

  /** `log` already holds everything the new leader appended in the Ready that announced it. */
  onLeader(id: NodeId, term: number, log: LogStorage): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== id) this.fail('election safety', `${nid(prev)} and ${nid(id)} both lead term ${term}`);
    this.leaderOfTerm.set(term, id);
    // With log matching checked on every append, holding the highest committed (index, term) implies
    // holding the whole committed prefix; a second, random, committed index guards the argument.
    const top = this.highestCommittedBefore(term, this.knownCommit);
    if (top === undefined) return;
    this.checkHolds(id, term, log, top);
    const first = log.firstIndex();
    if (top > first) {
      const probe = first + ((top * 7919) % (top - first));
      const c = this.committed[probe];
      if (c !== undefined && c.commitTermMax < term) this.checkHolds(id, term, log, probe);
    }
  }

  private highestCommittedBefore(term: number, from: number): number | undefined {
    for (let i = from, scanned = 0; i > 0 && scanned < 4096; i--, scanned++) {
      const c = this.committed[i];
      if (c !== undefined && c.commitTermMax < term) return i;
    }
    return undefined;
  }

  private checkHolds(id: NodeId, term: number, log: LogStorage, index: number): void {
    const c = this.committed[index] as Committed;
    const snap = log.snapshot();
    if (index < snap.index) return; // covered by its snapshot (checked when installed)
    if (index > log.lastIndex()) {
      this.fail('leader completeness', `${nid(id)} leads term ${term} but its log ends at ${log.lastIndex()}, before committed entry ${index}/t${c.term} (${c.key}, committed by term ${c.commitTermMax})`);
    }
    const t = index === snap.index ? snap.term : log.term(index);
    if (t !== c.term) {
      this.fail('leader completeness', `${nid(id)} leads term ${term} with ${index}/t${t} where ${index}/t${c.term} (${c.key}) was committed by term ${c.commitTermMax}`);
    }
  }

  // ---- log matching ----

  /** Entries a member just appended; `prevTerm` is the term its log holds just before the first one. */
  onAppend(id: NodeId, entries: readonly Entry[], prevTerm: number): void {
    let prev = prevTerm;
    for (const e of entries) {
      this.recordAppended(id, e.index, e.term, entryKey(e), prev);
      prev = e.term;
    }
  }

  private recordAppended(id: NodeId, index: number, term: number, key: string, prevTerm: number): void {
    const k = `${index}:${term}`;
    const seen = this.appended.get(k);
    if (seen === undefined) {
      this.appended.set(k, { key, prevTerm });
      return;
    }
    if (seen.key !== key) this.fail('log matching', `${nid(id)} holds ${index}/t${term} = ${key}, another log holds ${index}/t${term} = ${seen.key}`);
    if (seen.prevTerm !== prevTerm) {
      this.fail('log matching', `${nid(id)} holds ${index}/t${term} after an entry of term ${prevTerm}, another log holds it after term ${seen.prevTerm}`);
    }
  }

  /** A log rebuilt from durable storage must be made of entries appended before, in the same order. */
  onRestartLog(id: NodeId, log: LogStorage): void {
    const snap = log.snapshot();
    let prev = snap.term;
    for (let i = snap.index + 1; i <= log.lastIndex(); i++) {
      const t = log.term(i);
      const seen = this.appended.get(`${i}:${t}`);
      if (seen === undefined) this.fail('host contract', `${nid(id)} restarted with ${i}/t${t}, which no member ever appended`);
      if (seen.prevTerm !== prev) this.fail('log matching', `${nid(id)} restarted with ${i}/t${t} after term ${prev}; it was appended after term ${seen.prevTerm}`);
      prev = t;
    }
  }

  /** Sampled cross-check of two logs (the map above is the main check; this guards it). */
  compareLogs(a: NodeId, la: LogStorage, b: NodeId, lb: LogStorage, pick: (n: number) => number): void {
    const lo = Math.max(la.firstIndex(), lb.firstIndex());
    const hi = Math.min(la.lastIndex(), lb.lastIndex());
    if (hi < lo) return;
    const i = lo + pick(hi - lo + 1);
    if (la.term(i) !== lb.term(i)) return;
    for (let j = i; j >= lo && j > i - 8; j--) {
      const ea = la.entries(j, j + 1, Number.MAX_SAFE_INTEGER)[0];
      const eb = lb.entries(j, j + 1, Number.MAX_SAFE_INTEGER)[0];
      if (ea === undefined || eb === undefined) return;
      if (ea.term !== eb.term || entryKey(ea) !== entryKey(eb)) {
        this.fail('log matching', `${nid(a)} and ${nid(b)} both hold ${i}/t${la.term(i)} but differ at ${j}: ${ea.index}/t${ea.term}=${entryKey(ea)} vs ${eb.index}/t${eb.term}=${entryKey(eb)}`);
      }
    }
  }

  // ---- commitment and state machine safety ----

  /** A leader of `term` moved its commit index from `from` to `commit`; `log` holds its entries. */
  onLeaderCommit(id: NodeId, term: number, from: number, commit: number, log: LogStorage): void {
    const first = Math.max(log.firstIndex(), 1);
    for (let i = Math.max(first, from + 1, commit - 256); i <= commit; i++) {
      if (i > log.lastIndex()) this.fail('host contract', `${nid(id)} (leader t${term}) says commit ${commit} but its log ends at ${log.lastIndex()}`);
      const e = log.entries(i, i + 1, Number.MAX_SAFE_INTEGER)[0];
      if (e === undefined) continue;
      this.recordCommitted(id, e.index, e.term, entryKey(e), term, 'commits');
    }
    if (commit > this.knownCommit) this.knownCommit = commit;
  }

  private recordCommitted(id: NodeId, index: number, term: number, key: string, commitTermMax: number, how: string): void {
    const c = this.committed[index];
    if (c === undefined) {
      this.committed[index] = { term, key, commitTermMax };
      return;
    }
    if (c.term !== term || c.key !== key) {
      this.fail('state machine safety', `${nid(id)} ${how} ${index}/t${term} = ${key}, but ${index}/t${c.term} = ${c.key} was committed there`);
    }
    if (commitTermMax < c.commitTermMax) c.commitTermMax = commitTermMax;
  }

  /** A member applies `e`; `term` is the member's current term (the entry was committed in a term <= it). */
  onApply(id: NodeId, term: number, e: Entry): void {
    const key = entryKey(e);
    this.recordCommitted(id, e.index, e.term, key, term, 'applies');
    if (e.index > this.knownCommit) this.knownCommit = e.index;
    if (e.type === 'normal' && key !== '-') {
      const at = this.payloadAt.get(key);
      if (at === undefined) this.payloadAt.set(key, e.index);
      else if (at !== e.index) this.fail('state machine safety', `payload ${key} applied at index ${at} and again at ${e.index}`);
    }
  }

  /** A member installs a snapshot: its meta must name a committed entry (or one nobody applied yet). */
  onSnapshotInstalled(id: NodeId, meta: SnapshotMeta, lastKey: string | undefined): void {
    const c = this.committed[meta.index];
    if (c === undefined || lastKey === undefined) return;
    if (c.term !== meta.term || c.key !== lastKey) {
      this.fail('state machine safety', `${nid(id)} installs a snapshot ending at ${meta.index}/t${meta.term} (${lastKey}) but ${meta.index}/t${c.term} (${c.key}) was committed there`);
    }
  }

  /** Is index i known committed, and with which content? (for the host's own assertions) */
  committedKey(i: number): string | undefined {
    return this.committed[i]?.key;
  }

  // ---- votes ----

  onDurableHardState(id: NodeId, hs: HardState): void {
    if (!this.opts.checkVotes || hs.vote === 0n) return;
    const k = `${id}:${hs.term}`;
    const prev = this.votes.get(k);
    if (prev === undefined) this.votes.set(k, hs.vote);
    else if (prev !== hs.vote) this.fail('durable vote', `${nid(id)} durably voted for ${nid(prev)} in term ${hs.term}, now ${fmtHs(hs)}`);
  }

  // ---- ReadIndex ----

  onReadRequest(ctx: string, id: NodeId): void {
    this.reads.set(ctx, { id, atLeast: this.knownCommit });
  }

  onReadState(id: NodeId, rs: ReadState): void {
    const ctx = Buffer.from(rs.context).toString('latin1');
    const req = this.reads.get(ctx);
    if (req === undefined) this.fail('linearizable read', `${nid(id)} got a read state for unknown context ${ctx}`);
    if (req.id !== id) this.fail('linearizable read', `read ${ctx} was asked of ${nid(req.id)} but answered on ${nid(id)}`);
    if (rs.index < req.atLeast) {
      this.fail('linearizable read', `read ${ctx} on ${nid(id)} got index ${rs.index}, but index ${req.atLeast} was already committed when it was requested`);
    }
    this.readsServed++;
    this.served.add(ctx);
  }

  isServed(ctx: string): boolean {
    return this.served.has(ctx);
  }

  // ---- acknowledgements ----

  /**
   * A client proposal was acknowledged at `index`: the members whose disks hold it durably must be a
   * quorum of a membership that may have committed it (one the acknowledging member went through up
   * to that index: under ConfChange v1 a leader commits with the membership it has applied, which may
   * be an older one than the entry's).
   */
  onAck(id: NodeId, payload: string, index: number, holders: readonly NodeId[], confs: readonly ConfState[]): void {
    const held = new Set(holders);
    const ok = confs.some((cs) => cs.voters.filter((v) => held.has(v)).length > cs.voters.length / 2);
    if (!ok) {
      const last = confs[confs.length - 1];
      this.fail('quorum durability', `${nid(id)} acknowledged ${payload} (index ${index}) but only {${holders.map(nid).join(',')}} hold it durably (voters ${last === undefined ? '?' : last.voters.map(nid).join(',')})`);
    }
    this.acked.push({ payload, index });
  }

  /** The acknowledged proposals, by index, with the highest index acknowledged. */
  get acknowledged(): readonly { readonly payload: string; readonly index: number }[] {
    return this.acked;
  }

  /** Where a client payload was applied, if anywhere. */
  payloadIndex(key: string): number | undefined {
    return this.payloadAt.get(key);
  }
}
