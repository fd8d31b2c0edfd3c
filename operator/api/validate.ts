// The operator's gate: the rules of rules.ts (the same the CRD carries as CEL) run over a spec and,
// on an update, the previous spec. The apiserver normally refuses a bad object first; this gate
// covers objects written before the CRD carried a rule, and gives the planner a typed refusal.
import { BACKUP_RULES, RULES, type Node, type Rule } from './rules.js';

export class SpecInvalid extends Error {
  override readonly name = 'SpecInvalid';
  constructor(
    readonly problems: readonly string[],
    kind = 'EtcdCluster',
  ) {
    super(`invalid ${kind} spec: ${problems.join('; ')}`);
  }
}

function rec(v: unknown): Node | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Node) : undefined;
}

/** The node at a dotted path under `{spec}` (`spec.storage.data`). */
function at(spec: unknown, path: string): Node | undefined {
  let cur: Node | undefined = rec({ spec });
  for (const k of path.split('.')) cur = cur === undefined ? undefined : rec(cur[k]);
  return cur;
}

/** Every rule message the spec breaks (empty: valid). `old` enables the transition rules. */
export function problemsOf(spec: unknown, old?: unknown, rules: readonly Rule[] = RULES): string[] {
  const out: string[] = [];
  for (const r of rules) {
    const self = at(spec, r.at);
    if (self === undefined) continue;
    const prev = old === undefined ? undefined : at(old, r.at);
    if (r.transition && prev === undefined) continue;
    if (!r.check(self, prev) && !out.includes(r.message)) out.push(r.message);
  }
  return out;
}

/** Throws SpecInvalid listing every broken rule. */
export function validateSpec(spec: unknown, old?: unknown): void {
  const p = problemsOf(spec, old);
  if (p.length > 0) throw new SpecInvalid(p);
}

/** The same for an EtcdBackup spec. */
export function backupProblemsOf(spec: unknown, old?: unknown): string[] {
  return problemsOf(spec, old, BACKUP_RULES);
}
