// A linearizability checker: the algorithm of Porcupine (github.com/anishathalye/porcupine), i.e.
// the Wing & Gong search with Lowe's optimisations, in TypeScript.
//
// - The history is split into call and return entries, sorted by time, in a doubly linked list.
//   The search repeatedly tries to linearize the first pending call whose operation the model
//   accepts in the current state ("lift" it and its return out of the list); when it meets a return
//   entry whose call is not linearized yet, it backtracks (the last linearized op goes back and the
//   next candidate after it is tried). The history is linearizable iff the list empties.
// - Memoisation (Lowe): a (set of linearized ops, model state) pair already explored is never
//   explored again. The set is a bitset; its hash is kept incrementally (Zobrist: one random word per
//   op, xor'ed in and out).
// - P-compositionality: the KV history is partitioned per key and each key is checked on its own.
// - Operations with an unknown outcome (a write that timed out or lost its connection) have return
//   time +Infinity and output undefined: the model accepts them with any effect they could have had,
//   at any point after their call, including "at the very end" (= never took effect).
// - Models may be nondeterministic (step returns every possible next state); the search runs on
//   sets of states (the power-set construction, as Porcupine's NondeterministicModel).
// - A time budget: a partition that is not decided within it is reported "unknown", never hangs.
//
// The KV model (kvModel) models etcd revisions too: a put/CAS/delete returns the store revision it
// created, a get returns the value's mod_revision and the header revision. This pins the order of
// acknowledged writes and makes histories far more constrained (and faster to check).
//
// Many open-ended writes make the search exponential in the worst case (each may or may not have
// happened, anywhere after its call). resolveWithHistory() narrows them with the store's own
// history of puts and deletes (a Watch from revision 1 after the run, as etcd's robustness tests
// do): a write whose value appears took effect at that revision, one whose value does not never
// took effect. That only removes linearizations, so it cannot hide a violation, and the history is
// itself checked against every acknowledged write.

// ---------------------------------------------------------------------------------------------
// Generic part

export interface Model<S, I, O> {
  /** Possible initial states. */
  init(): S[];
  /**
   * Every state the op can lead to from `state` with this output (output undefined: outcome unknown).
   * Empty: illegal. With output undefined it must never be empty (an op of unknown outcome is possible anywhere).
   */
  step(state: S, input: I, output: O | undefined): S[];
  /** Canonical identity of a state (equal keys = equal states). */
  key(state: S): string;
}

export interface Operation<I, O> {
  readonly client: number;
  /** Invocation time (any monotonic clock, same unit for all ops). */
  readonly call: number;
  /** Response time; Infinity when the outcome is unknown. */
  readonly ret: number;
  readonly input: I;
  /** undefined: outcome unknown (the op may have taken effect at any point after `call`, or never). */
  readonly output: O | undefined;
}

export type CheckResult = 'ok' | 'illegal' | 'unknown';

interface Entry {
  readonly isCall: boolean;
  readonly id: number;
  readonly time: number;
  /** For a call: its return entry. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

function lift(e: Entry): void {
  // A call entry always has a predecessor (at least the sentinel) and its return after it.
  const m = e.match;
  if (e.prev === null || m === null || m.prev === null) throw new Error('lift: malformed entry list');
  e.prev.next = e.next;
  if (e.next !== null) e.next.prev = e.prev;
  if (m.prev !== null) m.prev.next = m.next;
  if (m.next !== null) m.next.prev = m.prev;
}

function unlift(e: Entry): void {
  const m = e.match;
  if (e.prev === null || m === null || m.prev === null) throw new Error('unlift: malformed entry list');
  m.prev.next = m;
  if (m.next !== null) m.next.prev = m;
  e.prev.next = e;
  if (e.next !== null) e.next.prev = e;
}

/** xorshift32: deterministic Zobrist words. */
function zobristWords(n: number): Int32Array {
  const out = new Int32Array(n);
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

function bitsEqual(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface SearchStats {
  /** Search steps (model steps tried). */
  steps: number;
  /** Distinct (linearized set, state) pairs remembered. */
  cached: number;
  ms: number;
}

/**
 * Checks one partition (ops of one key). deadline: performance.now() value after which the result
 * is "unknown". One addition to Porcupine: once only "free" ops remain (outcome unknown and no
 * bound on their return), the history is linearizable, as they can all go at the very end (the
 * model accepts an unknown outcome in any state, and nothing has to follow them).
 */
export function checkSingle<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  deadline: number,
  stats?: SearchStats,
): CheckResult {
  const t0 = performance.now();
  const n = ops.length;
  const entries: Entry[] = [];
  const free = new Uint8Array(n);
  let nonFree = 0;
  for (let id = 0; id < n; id++) {
    const op = ops[id];
    if (op === undefined) continue;
    if (!(op.call <= op.ret)) throw new Error(`operation ${id}: call ${op.call} after return ${op.ret}`);
    if (op.output === undefined && op.ret === Infinity) free[id] = 1;
    else nonFree += 1;
    const ret: Entry = { isCall: false, id, time: op.ret, match: null, prev: null, next: null };
    const call: Entry = { isCall: true, id, time: op.call, match: ret, prev: null, next: null };
    entries.push(call, ret);
  }
  // By time; at equal times calls first (touching ops count as concurrent, as Porcupine does).
  entries.sort((a, b) => (a.time !== b.time ? a.time - b.time : a.isCall !== b.isCall ? (a.isCall ? -1 : 1) : a.id - b.id));
  const head: Entry = { isCall: false, id: -1, time: -Infinity, match: null, prev: null, next: null };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }

  const zob = zobristWords(n);
  const bits = new Uint32Array((n + 31) >>> 5);
  let hash = 0;
  const dedupe = (states: S[]): { states: S[]; key: string } => {
    if (states.length === 1) {
      const only = states[0] as S;
      return { states, key: model.key(only) };
    }
    const byKey = new Map<string, S>();
    for (const s of states) byKey.set(model.key(s), s);
    const keys = [...byKey.keys()].sort();
    return { states: keys.map((k) => byKey.get(k) as S), key: keys.join('\u0001') };
  };
  let cur = dedupe(model.init());
  const cache = new Map<number, { bits: Uint32Array; key: string }[]>();
  const stack: { entry: Entry; states: S[]; key: string; hash: number }[] = [];
  let steps = 0;
  const finish = (r: CheckResult): CheckResult => {
    if (stats !== undefined) {
      stats.steps += steps;
      for (const l of cache.values()) stats.cached += l.length;
      stats.ms += performance.now() - t0;
    }
    return r;
  };
  if (nonFree === 0) return finish('ok');

  let entry = head.next;
  while (head.next !== null) {
    if (entry === null) throw new Error('checkSingle: ran off the entry list');
    if ((++steps & 0x3ff) === 0 && performance.now() > deadline) return finish('unknown');
    if (entry.isCall) {
      const op = ops[entry.id] as Operation<I, O>;
      const nextStates: S[] = [];
      for (const s of cur.states) for (const t of model.step(s, op.input, op.output)) nextStates.push(t);
      if (nextStates.length > 0) {
        const next = dedupe(nextStates);
        const w = entry.id >>> 5;
        const bit = 1 << (entry.id & 31);
        bits[w] = (bits[w] as number) | bit;
        const newHash = hash ^ (zob[entry.id] as number);
        const h = (newHash ^ fnv1a(next.key)) | 0;
        const bucket = cache.get(h);
        const seen = bucket !== undefined && bucket.some((c) => c.key === next.key && bitsEqual(c.bits, bits));
        if (!seen) {
          if (free[entry.id] === 0 && --nonFree === 0) return finish('ok'); // only free ops left
          const rec = { bits: bits.slice(), key: next.key };
          if (bucket === undefined) cache.set(h, [rec]);
          else bucket.push(rec);
          stack.push({ entry, states: cur.states, key: cur.key, hash });
          cur = next;
          hash = newHash;
          lift(entry);
          entry = head.next;
          continue;
        }
        bits[w] = bits[w] & ~bit;
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized: the current prefix cannot be extended; backtrack.
      const top = stack.pop();
      if (top === undefined) return finish('illegal');
      entry = top.entry;
      if (free[entry.id] === 0) nonFree += 1;
      cur = { states: top.states, key: top.key };
      hash = top.hash;
      const w = entry.id >>> 5;
      bits[w] = (bits[w] as number) & ~(1 << (entry.id & 31));
      unlift(entry);
      entry = entry.next;
    }
  }
  return finish('ok');
}

// ---------------------------------------------------------------------------------------------
// The key-value model (one register per key, with etcd revisions)

export type KvInput =
  | { readonly f: 'get' }
  | { readonly f: 'put'; readonly value: string }
  | { readonly f: 'delete' }
  /** Txn: if value(key) == expected then put(key, value). A missing key never compares equal (etcd). */
  | { readonly f: 'cas'; readonly cmp: 'value'; readonly expected: string; readonly value: string }
  /** Txn: if mod_revision(key) == expected then put(key, value) (0 = the key does not exist). */
  | { readonly f: 'cas'; readonly cmp: 'modRev'; readonly expected: number; readonly value: string };

/** Revision fields are optional: without them only values are checked. */
export type KvOutput =
  /** value null: key absent. modRev: the kv's mod_revision; headerRev: the response header's revision. */
  | { readonly f: 'get'; readonly value: string | null; readonly modRev?: number; readonly headerRev?: number }
  /** rev: header revision of the put (= the new mod_revision). */
  | { readonly f: 'put'; readonly rev?: number }
  | { readonly f: 'delete'; readonly deleted: number; readonly rev?: number }
  | { readonly f: 'cas'; readonly succeeded: boolean; readonly rev?: number };

export interface KvOp extends Operation<KvInput, KvOutput> {
  readonly key: string;
}

/**
 * The state of one key. rev: the revision of the last write to the key (its mod_revision while it
 * exists; the deleting revision after a delete; 0 initially). exact false: the true revision is
 * unknown but > rev (the last write had an unknown outcome). The lower bound over-approximates the
 * possible states, so it never rejects a linearizable history.
 */
export interface KvState {
  readonly v: string | null;
  readonly rev: number;
  readonly exact: boolean;
}

/** The smallest revision the key's last write can have had. */
function minRev(s: KvState): number {
  return s.exact ? s.rev : s.rev + 1;
}

/**
 * The state after a write of v (null: delete) on top of a last write whose revision is >= base,
 * with result revision r. With r unknown the new state only keeps a lower bound: lb (<= base),
 * deliberately coarse (the stored bound of the previous state, not base) so that chains of
 * open-ended writes lead to equal states and the memo merges them; still sound, as the new
 * revision is > the previous one >= lb.
 */
function written(base: number, lb: number, v: string | null, r: number | undefined): KvState[] {
  if (r === undefined) return [{ v, rev: lb, exact: false }];
  return r > base ? [{ v, rev: r, exact: true }] : [];
}

/** Conditions a CAS may see in state s, each with the minimum revision of the key's last write in that case. */
function casConditions(s: KvState, input: Extract<KvInput, { f: 'cas' }>): { cond: boolean; base: number; lb: number }[] {
  const same = { base: minRev(s), lb: s.rev };
  if (input.cmp === 'value') return [{ cond: s.v !== null && s.v === input.expected, ...same }];
  if (s.v === null) return [{ cond: input.expected === 0, ...same }];
  if (s.exact) return [{ cond: s.rev === input.expected, ...same }];
  // Unknown true revision t > s.rev: equal to expected is possible only if expected > s.rev.
  return input.expected > s.rev
    ? [
        { cond: true, base: input.expected, lb: input.expected },
        { cond: false, ...same },
      ]
    : [{ cond: false, ...same }];
}

export function kvStep(s: KvState, input: KvInput, out: KvOutput | undefined): KvState[] {
  if (out !== undefined && out.f !== input.f) throw new Error(`kv model: output ${out.f} for input ${input.f}`);
  switch (input.f) {
    case 'get': {
      if (out === undefined || out.f !== 'get') return [s];
      if (out.value !== s.v) return [];
      if (out.headerRev !== undefined && out.headerRev < minRev(s)) return [];
      if (s.v === null || out.modRev === undefined) return [s];
      if (s.exact) return out.modRev === s.rev ? [s] : [];
      if (out.modRev <= s.rev) return [];
      if (out.headerRev !== undefined && out.headerRev < out.modRev) return [];
      return [{ v: s.v, rev: out.modRev, exact: true }];
    }
    case 'put': {
      if (out === undefined) return written(minRev(s), s.rev, input.value, undefined);
      if (out.f !== 'put') return [];
      return written(minRev(s), s.rev, input.value, out.rev);
    }
    case 'delete': {
      if (out === undefined) return s.v === null ? [s] : written(minRev(s), s.rev, null, undefined);
      if (out.f !== 'delete') return [];
      if (s.v === null) return out.deleted === 0 && (out.rev === undefined || out.rev >= minRev(s)) ? [s] : [];
      return out.deleted === 1 ? written(minRev(s), s.rev, null, out.rev) : [];
    }
    case 'cas': {
      const res: KvState[] = [];
      for (const c of casConditions(s, input)) {
        if (out === undefined) {
          if (c.cond) res.push(...written(c.base, c.lb, input.value, undefined));
          else res.push(s);
          continue;
        }
        if (out.f !== 'cas' || out.succeeded !== c.cond) continue;
        if (c.cond) res.push(...written(c.base, c.lb, input.value, out.rev));
        else if (out.rev === undefined || out.rev >= c.base) res.push(s);
      }
      return res;
    }
  }
}

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => [{ v: null, rev: 0, exact: true }],
  step: kvStep,
  key: (s) => `${s.v === null ? '\u0000' : `=${s.v}`}\u0002${s.rev}\u0002${s.exact ? 'e' : 'g'}`,
};

// ---------------------------------------------------------------------------------------------
// Checking KV histories: partition per key, tighten unknown writes, report.

export interface PartitionReport {
  key: string;
  result: CheckResult;
  ops: number;
  unknownOps: number;
  stats: SearchStats;
}

export interface KvCheckReport {
  result: CheckResult;
  partitions: PartitionReport[];
  /** For an illegal history: the smallest illegal partition, minimised (see minimalFailingPrefix) and printed. */
  failure?: string;
  /** Reads without a response, dropped before checking. */
  droppedReads: number;
}

export interface CheckOptions {
  /** Budget per key partition in ms (default 60 s). */
  timeoutMs?: number;
}

function writtenValue(input: KvInput): string | undefined {
  return input.f === 'put' || input.f === 'cas' ? input.value : undefined;
}

/**
 * Sound preprocessing of one key's ops. (1) Reads with unknown outcome are dropped (they have no
 * effect). (2) When every written value is unique: a write with unknown return time whose value was
 * observed (a get returned it, or a value-CAS that expected it succeeded) must have taken effect
 * before the earliest such observation returned, so its return time becomes that time (its output,
 * known or not, stays as it is). This bounds most open-ended ops and keeps the search small.
 */
export function prepareKeyOps(ops: readonly KvOp[]): KvOp[] {
  const kept = ops.filter((o) => !(o.input.f === 'get' && o.output === undefined));
  const writers = new Map<string, number>();
  for (const o of kept) {
    const v = writtenValue(o.input);
    if (v !== undefined) writers.set(v, (writers.get(v) ?? 0) + 1);
  }
  for (const c of writers.values()) if (c > 1) return kept.map((o) => (o.output === undefined ? { ...o, ret: Infinity } : o));
  const firstSeen = new Map<string, number>();
  const see = (v: string, t: number): void => {
    const old = firstSeen.get(v);
    if (old === undefined || t < old) firstSeen.set(v, t);
  };
  for (const o of kept) {
    if (o.output === undefined || !Number.isFinite(o.ret)) continue;
    if (o.output.f === 'get' && o.output.value !== null) see(o.output.value, o.ret);
    if (o.input.f === 'cas' && o.input.cmp === 'value' && o.output.f === 'cas' && o.output.succeeded) see(o.input.expected, o.ret);
  }
  return kept.map((o) => {
    if (o.output !== undefined && Number.isFinite(o.ret)) return o;
    const v = writtenValue(o.input);
    const seen = v === undefined ? undefined : firstSeen.get(v);
    return seen !== undefined && seen >= o.call ? { ...o, ret: seen } : { ...o, ret: Infinity };
  });
}

/** Groups ops by key, keeping their order. */
export function partitionByKey(ops: readonly KvOp[]): Map<string, KvOp[]> {
  const m = new Map<string, KvOp[]>();
  for (const o of ops) {
    const l = m.get(o.key);
    if (l === undefined) m.set(o.key, [o]);
    else l.push(o);
  }
  return m;
}

export function checkKvHistory(ops: readonly KvOp[], opts: CheckOptions = {}): KvCheckReport {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const droppedReads = ops.filter((o) => o.input.f === 'get' && o.output === undefined).length;
  const partitions: PartitionReport[] = [];
  const illegal: KvOp[][] = [];
  for (const [key, keyOps] of [...partitionByKey(ops)].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const prepared = prepareKeyOps(keyOps);
    const stats: SearchStats = { steps: 0, cached: 0, ms: 0 };
    const result = checkSingle(kvModel, prepared, performance.now() + timeoutMs, stats);
    partitions.push({ key, result, ops: prepared.length, unknownOps: prepared.filter((o) => o.output === undefined).length, stats });
    if (result === 'illegal') illegal.push(keyOps);
  }
  const result: CheckResult = partitions.some((p) => p.result === 'illegal')
    ? 'illegal'
    : partitions.some((p) => p.result === 'unknown')
      ? 'unknown'
      : 'ok';
  const report: KvCheckReport = { result, partitions, droppedReads };
  if (illegal.length > 0) {
    const smallest = illegal.reduce((a, b) => (b.length < a.length ? b : a));
    report.failure = describeFailure(smallest, timeoutMs);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Resolving unknown outcomes from the store's own history (as etcd's robustness tests do)

/** One event of the key-value store's history (e.g. a Watch from revision 1 after the run). */
export interface KvEvent {
  readonly key: string;
  readonly type: 'put' | 'delete';
  /** The value put; null for a delete. */
  readonly value: string | null;
  /** The revision that created the event. */
  readonly rev: number;
}

export interface Resolution {
  /** The ops with unknown writes resolved: given their revision if they took effect, dropped if not. */
  ops: KvOp[];
  /** Inconsistencies between the acknowledged ops and the history (each one a bug by itself). */
  problems: string[];
  applied: number;
  dropped: number;
  /** Unknown deletes that could not be matched (left open-ended). */
  unresolved: number;
}

/**
 * Uses the store's history (every put and delete with its revision; written values are unique) to
 * resolve writes of unknown outcome: one whose value appears took effect at that revision (its
 * output becomes known, its return time stays open); one whose value does not appear never took
 * effect and is dropped; unknown deletes are dropped when the key's history has no delete that an
 * acknowledged delete does not explain. This only narrows the possible linearizations, so a
 * history that passes after resolution passes without it too. The history itself is checked
 * against the acknowledged ops: every acknowledged write must appear at its revision, and every
 * event must be explained by some op.
 */
export function resolveWithHistory(ops: readonly KvOp[], events: readonly KvEvent[]): Resolution {
  const problems: string[] = [];
  const byValue = new Map<string, KvEvent>();
  const deletesAt = new Map<string, KvEvent>();
  let lastRev = 0;
  for (const e of events) {
    if (e.rev < lastRev) problems.push(`history: revision ${e.rev} after ${lastRev}`);
    lastRev = Math.max(lastRev, e.rev);
    if (e.type === 'put') {
      if (e.value === null) continue;
      if (byValue.has(e.value)) problems.push(`history: value ${JSON.stringify(e.value)} put twice`);
      byValue.set(e.value, e);
    } else deletesAt.set(`${e.key}@${e.rev}`, e);
  }
  const explained = new Set<KvEvent>();
  const unknownDeletes = new Map<string, number>();
  for (const o of ops) {
    const out = o.output;
    if (out === undefined) {
      if (o.input.f === 'delete') unknownDeletes.set(o.key, (unknownDeletes.get(o.key) ?? 0) + 1);
      const v = writtenValue(o.input);
      const e = v === undefined ? undefined : byValue.get(v);
      if (e !== undefined) {
        explained.add(e);
        if (e.key !== o.key) problems.push(`history: ${JSON.stringify(v)} (written to ${o.key}) appears on ${e.key}`);
      }
      continue;
    }
    const what = `c${o.client} ${o.key}: ${fmtInput(o.input)} → ${fmtOutput(out)}`;
    if ((out.f === 'put' || (out.f === 'cas' && out.succeeded)) && out.rev !== undefined) {
      const v = writtenValue(o.input) ?? '';
      const e = byValue.get(v);
      if (e === undefined) problems.push(`acknowledged write missing from the history: ${what}`);
      else {
        explained.add(e);
        if (e.rev !== out.rev || e.key !== o.key) problems.push(`acknowledged write at another place in the history (${e.key}@${e.rev}): ${what}`);
      }
    }
    if (out.f === 'delete' && out.deleted > 0 && out.rev !== undefined) {
      const e = deletesAt.get(`${o.key}@${out.rev}`);
      if (e === undefined) problems.push(`acknowledged delete missing from the history: ${what}`);
      else explained.add(e);
    }
  }
  const unclaimedDeletes = new Map<string, number>();
  for (const e of events) {
    if (explained.has(e)) continue;
    if (e.type === 'delete') unclaimedDeletes.set(e.key, (unclaimedDeletes.get(e.key) ?? 0) + 1);
    else problems.push(`history: ${e.key}@${e.rev} = ${JSON.stringify(e.value)} was written by no op`);
  }
  for (const [key, n] of unclaimedDeletes) {
    if (n > (unknownDeletes.get(key) ?? 0)) problems.push(`history: ${n} deletes of ${key} that no op explains`);
  }
  let applied = 0;
  let dropped = 0;
  let unresolved = 0;
  const out: KvOp[] = [];
  for (const o of ops) {
    if (o.output !== undefined) {
      out.push(o);
      continue;
    }
    if (o.input.f === 'get') continue;
    if (o.input.f === 'delete') {
      if ((unclaimedDeletes.get(o.key) ?? 0) === 0) dropped += 1;
      else {
        unresolved += 1;
        out.push(o);
      }
      continue;
    }
    const e = byValue.get(o.input.value);
    if (e === undefined) {
      dropped += 1;
      continue;
    }
    applied += 1;
    const output: KvOutput = o.input.f === 'put' ? { f: 'put', rev: e.rev } : { f: 'cas', succeeded: true, rev: e.rev };
    out.push({ ...o, output });
  }
  return { ops: out, problems, applied, dropped, unresolved };
}

/**
 * The history cut at time t: ops called by t; those that returned after t lose their output (a
 * read is dropped, a write becomes open-ended). If a history is linearizable, so is every cut, so
 * the illegal cuts are exactly those at or after the earliest illegal one.
 */
export function cutAt(ops: readonly KvOp[], t: number): KvOp[] {
  const out: KvOp[] = [];
  for (const o of ops) {
    if (o.call > t) continue;
    if (o.ret <= t) out.push(o);
    else if (o.input.f !== 'get') out.push({ ...o, ret: Infinity, output: undefined });
  }
  return out;
}

/**
 * The earliest return time at which the cut history is illegal (binary search), with the op that
 * returned then (its response is the first one no linearization can explain). undefined if a cut
 * is undecided within the budget.
 */
export function minimalFailingPrefix(ops: readonly KvOp[], timeoutMs: number): { t: number; culprit: KvOp; cut: KvOp[] } | undefined {
  const times = [...new Set(ops.filter((o) => Number.isFinite(o.ret)).map((o) => o.ret))].sort((a, b) => a - b);
  const illegalAt = (t: number): boolean | undefined => {
    const r = checkSingle(kvModel, prepareKeyOps(cutAt(ops, t)), performance.now() + timeoutMs);
    return r === 'unknown' ? undefined : r === 'illegal';
  };
  let lo = 0;
  let hi = times.length - 1;
  if (hi < 0) return undefined;
  const top = illegalAt(times[hi] as number);
  if (top !== true) return undefined;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const r = illegalAt(times[mid] as number);
    if (r === undefined) return undefined;
    if (r) hi = mid;
    else lo = mid + 1;
  }
  const t = times[lo] as number;
  const culprit = ops.find((o) => o.ret === t);
  if (culprit === undefined) return undefined;
  return { t, culprit, cut: cutAt(ops, t) };
}

function fmtInput(i: KvInput): string {
  switch (i.f) {
    case 'get':
      return 'get()';
    case 'put':
      return `put(${JSON.stringify(i.value)})`;
    case 'delete':
      return 'delete()';
    case 'cas':
      return i.cmp === 'value'
        ? `cas(value==${JSON.stringify(i.expected)} → ${JSON.stringify(i.value)})`
        : `cas(modRev==${i.expected} → ${JSON.stringify(i.value)})`;
  }
}

function fmtOutput(o: KvOutput | undefined): string {
  if (o === undefined) return '? (outcome unknown)';
  const rev = (r: number | undefined): string => (r === undefined ? '' : ` rev=${r}`);
  switch (o.f) {
    case 'get':
      return `${o.value === null ? 'absent' : JSON.stringify(o.value)}${o.modRev === undefined || o.value === null ? '' : ` modRev=${o.modRev}`}${o.headerRev === undefined ? '' : ` hdr=${o.headerRev}`}`;
    case 'put':
      return `ok${rev(o.rev)}`;
    case 'delete':
      return `deleted=${o.deleted}${rev(o.rev)}`;
    case 'cas':
      return `${o.succeeded ? 'succeeded' : 'failed'}${rev(o.rev)}`;
  }
}

/** One line per op, times in ms relative to t0. */
export function formatOps(ops: readonly KvOp[], t0: number, mark?: KvOp): string {
  const sorted = [...ops].sort((a, b) => a.call - b.call || a.ret - b.ret);
  const ms = (t: number): string => (Number.isFinite(t) ? (t - t0).toFixed(3) : '∞');
  return sorted
    .map((o) => `${o === mark ? '>>' : '  '} c${o.client} [${ms(o.call)} → ${ms(o.ret)}] ${o.key}: ${fmtInput(o.input)} → ${fmtOutput(o.output)}`)
    .join('\n');
}

const SHOW_OPS = 60;

/** A readable account of an illegal partition (all ops of one key). */
export function describeFailure(keyOps: readonly KvOp[], timeoutMs: number): string {
  const key = keyOps[0]?.key ?? '?';
  const t0 = Math.min(...keyOps.map((o) => o.call));
  const min = minimalFailingPrefix(keyOps, timeoutMs);
  const lines: string[] = [];
  if (min === undefined) {
    lines.push(`key ${JSON.stringify(key)}: not linearizable (${keyOps.length} ops; no minimal prefix found within the budget). All ops:`);
    lines.push(formatOps(keyOps, t0));
    return lines.join('\n');
  }
  // Same op objects as in keyOps where the output was kept (cutAt copies only the changed ones).
  const culprit = min.cut.find((o) => o.ret === min.t && o.output !== undefined) ?? min.culprit;
  lines.push(
    `key ${JSON.stringify(key)}: not linearizable. The shortest illegal prefix ends when this op returned ` +
      `(no order of the ops before it explains its response):`,
  );
  lines.push(formatOps([culprit], t0, culprit));
  const shown = [...min.cut].sort((a, b) => a.call - b.call).slice(-SHOW_OPS);
  lines.push(
    `the prefix: ${min.cut.length} ops (times in ms from the first call; ∞ = outcome unknown)` +
      (min.cut.length > shown.length ? `, last ${shown.length} shown:` : ':'),
  );
  lines.push(formatOps(shown, t0, culprit));
  return lines.join('\n');
}

/** A one-paragraph summary of a report (per partition: result, ops, unknown ops, search steps, ms). */
export function summarize(r: KvCheckReport): string {
  const parts = r.partitions.map(
    (p) => `${p.key}: ${p.result} (${p.ops} ops, ${p.unknownOps} unknown, ${p.stats.steps} steps, ${p.stats.cached} cached, ${p.stats.ms.toFixed(0)} ms)`,
  );
  return `linearizability: ${r.result}; dropped reads: ${r.droppedReads}\n  ${parts.join('\n  ')}`;
}
