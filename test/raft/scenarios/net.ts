// A tiny deterministic network of RawNodes for the raft scenario tests (test/raft/raft-*.test.ts): it
// persists each Ready to a MemoryStorage before sending its messages, applies committed entries (conf
// changes through applyConfChange, like the host), and delivers messages FIFO, with cut links, crashed
// nodes and a drop filter. No clock, no randomness but a seeded per-node generator.

import assert from 'node:assert/strict';
import {
  MemoryStorage,
  NONE,
  RawNode,
  decodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type RaftStatus,
  type ReadState,
  type SnapshotMeta,
} from '../../../server/raft/index.js';

export interface NodeOptions {
  preVote: boolean;
  checkQuorum: boolean;
  electionTicks: number;
  heartbeatTicks: number;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxUncommittedEntriesBytes: number;
  stepDownOnRemoval: boolean;
}

export const defaultOptions: NodeOptions = {
  preVote: true,
  checkQuorum: true,
  electionTicks: 10,
  heartbeatTicks: 1,
  maxSizePerMsg: 1 << 20,
  maxInflightMsgs: 256,
  maxUncommittedEntriesBytes: 0,
  stepDownOnRemoval: false,
};

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** xorshift32, seeded (seed 0 counts as 1): the scenarios' only randomness, and the fuzz test's. */
export function seededRandomInt(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

export class TestNode {
  rn: RawNode;
  /** Every committed entry applied, in order (a snapshot resets nothing here; see snapshots). */
  readonly applied: Entry[] = [];
  appliedIndex: number;
  readonly readStates: ReadState[] = [];
  readonly snapshots: SnapshotMeta[] = [];
  readonly confChanges: ConfChange[] = [];

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
    readonly cfg: RaftConfig,
  ) {
    this.rn = new RawNode(cfg, storage);
    this.appliedIndex = cfg.applied;
  }

  status(): RaftStatus {
    return this.rn.status();
  }

  /** The data of applied normal, non-empty entries. */
  appliedData(): string[] {
    return this.applied.filter((e) => e.type === 'normal' && e.data.byteLength > 0).map((e) => dec(e.data));
  }

  logTerms(): number[] {
    const out: number[] = [];
    for (let i = this.storage.firstIndex(); i <= this.storage.lastIndex(); i++) out.push(this.storage.term(i));
    return out;
  }
}

export class Net {
  readonly nodes = new Map<NodeId, TestNode>();
  private queue: Message[] = [];
  private readonly cut = new Set<string>();
  readonly down = new Set<NodeId>();
  /** Messages matching this are dropped when sent. */
  drop: ((m: Message) => boolean) | undefined = undefined;
  /** Every message delivered (stepped), in order. */
  readonly delivered: Message[] = [];
  /** When set, committed conf changes are queued here instead of applied (apply with applyDeferred). */
  deferConfChanges = false;
  readonly deferred: { id: NodeId; cc: ConfChange }[] = [];
  /** What a leader's host reports after a snap message is delivered (a lost one is reported failed). */
  snapshotReport: 'ok' | 'fail' | 'none' = 'ok';

  constructor(
    voters: readonly NodeId[],
    readonly opts: NodeOptions = defaultOptions,
    learners: readonly NodeId[] = [],
  ) {
    const cs: ConfState = { voters, learners };
    for (const id of [...voters, ...learners]) this.addNode(id, cs);
  }

  config(id: NodeId, applied: number, over: Partial<NodeOptions> = {}): RaftConfig {
    const o = { ...this.opts, ...over };
    return {
      id,
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      applied,
      maxSizePerMsg: o.maxSizePerMsg,
      maxInflightMsgs: o.maxInflightMsgs,
      maxUncommittedEntriesBytes: o.maxUncommittedEntriesBytes,
      checkQuorum: o.checkQuorum,
      preVote: o.preVote,
      randomInt: seededRandomInt(Number(id) * 7919 + 17),
      stepDownOnRemoval: o.stepDownOnRemoval,
    };
  }

  /** A node whose storage starts with `confState` at index 0 (empty conf: a joining member). */
  addNode(id: NodeId, confState: ConfState = { voters: [], learners: [] }, over: Partial<NodeOptions> = {}): TestNode {
    const storage = new MemoryStorage({ index: 0, term: 0, confState }, { term: 0, vote: NONE, commit: 0 });
    const n = new TestNode(id, storage, this.config(id, 0, over));
    this.nodes.set(id, n);
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    assert.ok(n, `no node ${id}`);
    return n;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  // ---- faults ----

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.ids()) if (other !== id) this.cutLink(id, other);
  }

  /** Splits into groups: links between different groups are cut. */
  partition(...groups: NodeId[][]): void {
    for (const g of groups) for (const h of groups) if (g !== h) for (const a of g) for (const b of h) this.cut.add(`${a}>${b}`);
  }

  heal(): void {
    this.cut.clear();
  }

  crash(id: NodeId): void {
    this.down.add(id);
  }

  /** Restart from what the node persisted (its MemoryStorage), with applied = what it applied. */
  restart(id: NodeId): void {
    const n = this.node(id);
    this.down.delete(id);
    n.rn = new RawNode(this.config(id, n.appliedIndex), n.storage);
  }

  // ---- driving ----

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) if (!this.down.has(id)) this.node(id).rn.tick();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const id of this.ids()) this.tick(id);
  }

  /** Ticks everyone and stabilizes after each tick. */
  tickAllStabilize(times: number): void {
    for (let i = 0; i < times; i++) {
      this.tickAll();
      this.stabilize();
    }
  }

  /** Processes every node's Ready (persist, send, apply, advance) until none has one. */
  processReadies(): void {
    for (let round = 0; ; round++) {
      assert.ok(round < 1000, 'readies did not settle');
      let any = false;
      for (const id of this.ids()) {
        if (this.down.has(id)) continue;
        const n = this.node(id);
        if (n.rn.hasReady()) {
          this.handleReady(n);
          any = true;
        }
      }
      if (!any) return;
    }
  }

  private handleReady(n: TestNode): void {
    const rd = n.rn.ready();
    if (rd.snapshot !== undefined) {
      n.storage.applySnapshot(rd.snapshot);
      n.snapshots.push(rd.snapshot);
      n.appliedIndex = rd.snapshot.index;
    }
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.send(m);
    for (const e of rd.committedEntries) {
      assert.equal(e.index, n.appliedIndex + 1, `node ${n.id} applies ${e.index} after ${n.appliedIndex}`);
      n.appliedIndex = e.index;
      n.applied.push(e);
      if (e.type !== 'confChange') continue;
      const cc = decodeConfChange(e.data);
      n.confChanges.push(cc);
      if (this.deferConfChanges) this.deferred.push({ id: n.id, cc });
      else n.rn.applyConfChange(cc);
    }
    n.readStates.push(...rd.readStates);
    n.rn.advance(rd);
  }

  applyDeferred(id: NodeId): void {
    for (let i = 0; i < this.deferred.length; ) {
      const d = this.deferred[i];
      if (d !== undefined && d.id === id) {
        this.node(id).rn.applyConfChange(d.cc);
        this.deferred.splice(i, 1);
      } else i++;
    }
  }

  private send(m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`) || this.drop?.(m) === true) {
      this.lost(m);
      return;
    }
    this.queue.push(m);
  }

  /** A snapshot that did not get through is reported as failed, as a host's snapshot sender would. */
  private lost(m: Message): void {
    if (m.type === 'snap' && this.snapshotReport !== 'none' && !this.down.has(m.from)) this.node(m.from).rn.reportSnapshot(m.to, false);
  }

  /** Delivers the messages queued now (not those they cause). */
  deliverQueued(): number {
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) this.deliver(m);
    return batch.length;
  }

  private deliver(m: Message): void {
    if (this.down.has(m.to) || !this.nodes.has(m.to) || this.cut.has(`${m.from}>${m.to}`)) {
      this.lost(m);
      return;
    }
    this.delivered.push(m);
    this.node(m.to).rn.step(m);
    if (m.type === 'snap' && this.snapshotReport !== 'none' && !this.down.has(m.from)) {
      this.node(m.from).rn.reportSnapshot(m.to, this.snapshotReport === 'ok');
    }
  }

  /** Readies and deliveries until no message is left. */
  stabilize(): void {
    for (let round = 0; ; round++) {
      assert.ok(round < 10_000, 'network did not stabilize');
      this.processReadies();
      if (this.deliverQueued() === 0) return;
    }
  }

  pending(): readonly Message[] {
    return this.queue;
  }

  /** Drops every queued message. */
  clearQueue(): void {
    this.queue = [];
  }

  // ---- views ----

  leaders(): NodeId[] {
    return this.ids().filter((id) => !this.down.has(id) && this.node(id).status().softState.role === 'leader');
  }

  leader(): NodeId {
    const ls = this.leaders();
    assert.equal(ls.length, 1, `expected one leader, got [${ls.join(',')}]`);
    const l = ls[0];
    assert.ok(l !== undefined);
    return l;
  }

  /** campaign() on id, then stabilize; asserts it won. */
  elect(id: NodeId): void {
    this.node(id).rn.campaign();
    this.stabilize();
    assert.equal(this.node(id).status().softState.role, 'leader', `node ${id} did not win`);
  }

  propose(id: NodeId, data: string): void {
    this.node(id).rn.propose(enc(data));
  }

  /** All live nodes' logs agree on every index they share and on what they applied. */
  assertConsistent(): void {
    const nodes = this.ids().map((id) => this.node(id));
    for (const a of nodes) {
      for (const b of nodes) {
        const lo = Math.max(a.storage.firstIndex(), b.storage.firstIndex());
        const hi = Math.min(a.storage.lastIndex(), b.storage.lastIndex());
        for (let i = lo; i <= hi; i++) {
          if (a.storage.term(i) === b.storage.term(i)) {
            // Log matching: same index and term => same entry and same prefix.
            const ea = a.storage.entries(i, i + 1, Infinity)[0];
            const eb = b.storage.entries(i, i + 1, Infinity)[0];
            assert.deepEqual(ea, eb, `entries at ${i} differ between ${a.id} and ${b.id}`);
          }
        }
        // State machine safety: whatever both applied at an index is the same entry.
        const byIndex = new Map(b.applied.map((e) => [e.index, e]));
        for (const e of a.applied) {
          const other = byIndex.get(e.index);
          if (other !== undefined) assert.deepEqual(e, other, `${a.id} and ${b.id} applied different entries at ${e.index}`);
        }
      }
    }
  }
}
