// Which backups a retention policy deletes: a pure function of the backups and the time.
//   keepLast N   the N newest good backups are kept
//   keepDaily D  the newest good backup of each of the D most recent UTC days that have one is kept
//   maxAge       good backups older than now - maxAge are deleted even if a rule above keeps them
// With neither keepLast nor keepDaily, every good backup younger than maxAge is kept; with no rule at
// all nothing is deleted. Failed backups (records without an object) are deleted once a good backup
// is newer; the newest good backup is never deleted, whatever the policy.
export interface RetentionPolicy {
  readonly keepLast?: number;
  readonly keepDaily?: number;
  readonly maxAgeMs?: number;
}

export interface RetainedItem {
  /** The object key or the EtcdBackup name. */
  readonly id: string;
  readonly startMs: number;
  /** Complete and verified. */
  readonly good: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function byNewest(a: RetainedItem, b: RetainedItem): number {
  return b.startMs - a.startMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** Ids to delete, oldest first. */
export function toDelete(items: readonly RetainedItem[], p: RetentionPolicy, nowMs: number): string[] {
  const newestFirst = [...items].sort(byNewest);
  const good = newestFirst.filter((i) => i.good);
  const newestGood = good[0];
  const keep = new Set<string>();
  const countRules = p.keepLast !== undefined || p.keepDaily !== undefined;
  if (!countRules && p.maxAgeMs === undefined) return [];
  if (!countRules) for (const g of good) keep.add(g.id);
  if (p.keepLast !== undefined) for (const g of good.slice(0, Math.max(0, p.keepLast))) keep.add(g.id);
  if (p.keepDaily !== undefined) {
    const days = new Set<number>();
    for (const g of good) {
      const day = Math.floor(g.startMs / DAY_MS);
      if (days.has(day)) continue;
      if (days.size >= p.keepDaily) break;
      days.add(day);
      keep.add(g.id);
    }
  }
  if (p.maxAgeMs !== undefined) {
    const limit = nowMs - p.maxAgeMs;
    for (const g of good) if (g.startMs < limit) keep.delete(g.id);
  }
  if (newestGood !== undefined) keep.add(newestGood.id);
  // Failed records newer than the newest good one stay visible; older ones go.
  for (const i of newestFirst) if (!i.good && (newestGood === undefined || i.startMs > newestGood.startMs)) keep.add(i.id);
  return newestFirst
    .filter((i) => !keep.has(i.id))
    .reverse()
    .map((i) => i.id);
}

/** Checks a policy at the gate; returns the problems (empty: valid). */
export function policyProblems(p: RetentionPolicy): string[] {
  const out: string[] = [];
  const whole = (v: number | undefined, name: string, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) out.push(`retention.${name} must be an integer >= ${min}, got ${String(v)}`);
  };
  whole(p.keepLast, 'keepLast', 1);
  whole(p.keepDaily, 'keepDaily', 1);
  if (p.maxAgeMs !== undefined && (!Number.isFinite(p.maxAgeMs) || p.maxAgeMs <= 0)) out.push(`retention.maxAge must be a positive duration, got ${String(p.maxAgeMs)} ms`);
  return out;
}

/** "30d", "12h", "90m", "1w", "1d12h" → milliseconds; undefined when it does not parse. */
export function parseDuration(s: string): number | undefined {
  const unit: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS };
  if (!/^(\d+[smhdw])+$/.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/(\d+)([smhdw])/g)) ms += Number(m[1]) * (unit[m[2] ?? ''] ?? NaN);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}
