// The simulation's deterministic machinery: one seeded PRNG, a virtual-time event queue, and the
// formatting used by traces. Nothing here reads the clock or does I/O.
import { decodeConfChange, type ConfState, type Entry, type HardState, type Message, type NodeId, type Ready } from '../../server/raft/index.js';

/** sfc32 seeded through splitmix32: fast, 128 bits of state, good enough for fault injection. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = split();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (n <= 0) throw new Error(`rng.int(${n})`);
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    const v = items[this.int(items.length)];
    if (v === undefined) throw new Error('rng.pick of an empty list');
    return v;
  }

  /** Picks by weight; weights may be zero (never picked) but not all of them. */
  weighted<T extends string>(table: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of table) total += w;
    let x = this.float() * total;
    for (const [k, w] of table) {
      if (x < w) return k;
      x -= w;
    }
    const last = table[table.length - 1];
    if (last === undefined) throw new Error('rng.weighted of an empty table');
    return last[0];
  }
}

/** A min-heap of events by (time, insertion order): ties run in the order they were scheduled. */
export class EventQueue<E> {
  private readonly times: number[] = [];
  private readonly seqs: number[] = [];
  private readonly items: E[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(time: number, item: E): void {
    this.times.push(time);
    this.seqs.push(this.seq++);
    this.items.push(item);
    this.up(this.items.length - 1);
  }

  peekTime(): number | undefined {
    return this.times[0];
  }

  pop(): { time: number; item: E } | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const time = this.times[0] as number;
    const item = this.items[0] as E;
    this.swap(0, n - 1);
    this.times.pop();
    this.seqs.pop();
    this.items.pop();
    this.down(0);
    return { time, item };
  }

  private less(i: number, j: number): boolean {
    const ti = this.times[i] as number;
    const tj = this.times[j] as number;
    return ti < tj || (ti === tj && (this.seqs[i] as number) < (this.seqs[j] as number));
  }

  private swap(i: number, j: number): void {
    const t = this.times[i] as number;
    this.times[i] = this.times[j] as number;
    this.times[j] = t;
    const s = this.seqs[i] as number;
    this.seqs[i] = this.seqs[j] as number;
    this.seqs[j] = s;
    const it = this.items[i] as E;
    this.items[i] = this.items[j] as E;
    this.items[j] = it;
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

/** The last `capacity` trace lines, formatted only when someone reads them. */
export class TraceRing {
  private readonly lines: (() => string)[] = [];
  private next = 0;

  constructor(private readonly capacity: number, private readonly live: ((line: string) => void) | undefined) {}

  add(line: () => string): void {
    if (this.live !== undefined) this.live(line());
    if (this.lines.length < this.capacity) this.lines.push(line);
    else this.lines[this.next] = line;
    this.next = (this.next + 1) % this.capacity;
  }

  dump(): string[] {
    const n = this.lines.length;
    const start = n < this.capacity ? 0 : this.next;
    const out: string[] = [];
    for (let k = 0; k < n; k++) out.push((this.lines[(start + k) % n] as () => string)());
    return out;
  }
}

export function nid(id: NodeId): string {
  return `n${id.toString()}`;
}

/** A readable, stable identity of an entry's content (payloads are ASCII in the simulation). */
export function entryKey(e: Entry): string {
  if (e.type === 'confChange') {
    const cc = decodeConfChange(e.data);
    return `${cc.type}(${nid(cc.nodeId)}):${Buffer.from(cc.context).toString('latin1')}`;
  }
  return e.data.length === 0 ? '-' : Buffer.from(e.data).toString('latin1');
}

export function fmtConf(cs: ConfState): string {
  const v = cs.voters.map(nid).join(',');
  return cs.learners.length === 0 ? `{${v}}` : `{${v} learners ${cs.learners.map(nid).join(',')}}`;
}

export function fmtHs(hs: HardState): string {
  return `t${hs.term} vote ${hs.vote === 0n ? '-' : nid(hs.vote)} commit ${hs.commit}`;
}

export function fmtEntries(es: readonly Entry[]): string {
  if (es.length === 0) return '[]';
  const first = es[0] as Entry;
  const last = es[es.length - 1] as Entry;
  if (es.length <= 3) return `[${es.map((e) => `${e.index}/t${e.term}:${entryKey(e)}`).join(' ')}]`;
  return `[${first.index}/t${first.term}:${entryKey(first)} .. ${last.index}/t${last.term}:${entryKey(last)} (${es.length})]`;
}

export function fmtMsg(m: Message): string {
  const parts = [`${nid(m.from)}->${nid(m.to)} ${m.type} t${m.term}`];
  switch (m.type) {
    case 'app':
      parts.push(`prev ${m.index}/t${m.logTerm} commit ${m.commit} ${fmtEntries(m.entries)}`);
      break;
    case 'appResp':
      parts.push(m.reject ? `REJECT ${m.index} hint ${m.rejectHint}/t${m.logTerm}` : `match ${m.index}`);
      break;
    case 'vote':
    case 'preVote':
      parts.push(`last ${m.index}/t${m.logTerm}${m.context.length > 0 ? ' (transfer)' : ''}`);
      break;
    case 'voteResp':
    case 'preVoteResp':
      parts.push(m.reject ? 'REJECT' : 'granted');
      break;
    case 'heartbeat':
      parts.push(`commit ${m.commit}`);
      break;
    case 'snap':
      if (m.snapshot !== undefined) parts.push(`snapshot ${m.snapshot.index}/t${m.snapshot.term} ${fmtConf(m.snapshot.confState)}`);
      break;
    case 'prop':
      parts.push(fmtEntries(m.entries));
      break;
    case 'readIndexResp':
      parts.push(`index ${m.index}`);
      break;
    default:
      break;
  }
  return parts.join(' ');
}

export function fmtReady(id: NodeId, rd: Ready): string {
  const parts = [`${nid(id)} ready`];
  if (rd.softState !== undefined) parts.push(`role ${rd.softState.role} lead ${nid(rd.softState.lead)}`);
  if (rd.hardState !== undefined) parts.push(`hs(${fmtHs(rd.hardState)})`);
  if (rd.snapshot !== undefined) parts.push(`snapshot ${rd.snapshot.index}/t${rd.snapshot.term} ${fmtConf(rd.snapshot.confState)}`);
  if (rd.entries.length > 0) parts.push(`append ${fmtEntries(rd.entries)}`);
  if (rd.committedEntries.length > 0) parts.push(`apply ${fmtEntries(rd.committedEntries)}`);
  if (rd.messages.length > 0) parts.push(`msgs ${rd.messages.length}`);
  if (rd.readStates.length > 0) parts.push(`reads ${rd.readStates.map((r) => `${Buffer.from(r.context).toString('latin1')}@${r.index}`).join(',')}`);
  if (!rd.mustSync) parts.push('(no sync)');
  return parts.join(' ');
}
